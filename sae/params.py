"""Load and validate params.yaml once; every error names the key and what is allowed.

Stages call `load()` first, so a typo stops the run before any work starts. This
module imports nothing heavy (no torch), so validation is instant.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from sae.errors import ParamError

DATASET_IDS = ("mnist5k", "optdigits", "patches", "mnist", "fashion", "norb",
               "cifar10_patches", "cifar10", "svhn", "optdigits_uci")
MODEL_IDS = ("raw", "ae", "kl", "l1", "studentt", "dae", "dropout", "ncae", "l1prox",
             "sl0sq", "ksparse", "cae", "mdae", "sae0", "edae")
DEVICES = ("auto", "cpu", "cuda")
VIEWS = ("pixels", "unit", "standardize", "standardize_unit")
OPTIM_KEYS = {"optimizer": str, "lr": float, "momentum": float, "schedule": str, "final_lr": float,
              "checkpoint_every": int}
TRAIN_KEYS = {"hidden": int, "epochs": int, "batch": int, "input": str}
# keys the training loop reads from a resolved model config; the rest go to sae.models.build
LOOP_KEYS = (*OPTIM_KEYS, *TRAIN_KEYS)

# Per-dataset keys of the `data` group: name -> (type, minimum).
_SPLIT_KEYS = {"val": (int, 0), "split_seed": (int, 0), "std_eps": (float, 0.0)}
_PATCH_KEYS = {"n_train": (int, 1), "n_val": (int, 1), "n_test": (int, 1), "size": (int, 2),
               "lcn_eps": (float, 0.0), "zca_eps": (float, 0.0), "split_seed": (int, 0),
               "std_eps": (float, 0.0)}
DATA_KEYS = {
    "mnist5k": {**_SPLIT_KEYS, "test": (int, 1)},
    "optdigits": {**_SPLIT_KEYS, "test": (int, 1)},
    "patches": _PATCH_KEYS,
    "mnist": _SPLIT_KEYS,
    "fashion": _SPLIT_KEYS,
    "norb": {**_SPLIT_KEYS, "crop": (int, 1), "size": (int, 1)},
    "cifar10_patches": _PATCH_KEYS,
    "cifar10": _SPLIT_KEYS,
    "svhn": _SPLIT_KEYS,
    "optdigits_uci": _SPLIT_KEYS,
}


def _check_value(key: str, value, kind: type, minimum):
    """Return value as `kind`, or raise naming the key."""
    ok_type = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type):
        raise ParamError(f"{key}={value!r}: expected {kind.__name__}")
    if minimum is not None and value < minimum:
        raise ParamError(f"{key}={value!r}: must be >= {minimum}")
    return kind(value)


def _check_ids(key: str, value, allowed: tuple[str, ...]) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ParamError(f"{key}={value!r}: expected a non-empty list; allowed: {', '.join(allowed)}")
    for item in value:
        if item not in allowed:
            raise ParamError(f"{key}: unknown id {item!r}; allowed: {', '.join(allowed)}")
    if len(set(value)) != len(value):
        raise ParamError(f"{key}={value!r}: repeated id")
    return list(value)


def check_data(dataset: str, cfg) -> dict:
    """Validate `data.<dataset>`; return a new dict with the right types."""
    schema = DATA_KEYS[dataset]
    if not isinstance(cfg, dict):
        raise ParamError(f"data.{dataset}: missing or not a mapping; keys: {', '.join(schema)}")
    for key in cfg:
        if key not in schema:
            raise ParamError(f"data.{dataset}.{key}: unknown key; allowed: {', '.join(schema)}")
    out = {}
    for key, (kind, minimum) in schema.items():
        if key not in cfg:
            raise ParamError(f"data.{dataset}.{key}: missing")
        out[key] = _check_value(f"data.{dataset}.{key}", cfg[key], kind, minimum)
    return out


def validate(params: dict) -> dict:
    """Check the whole file; return it with typed values. Raises ParamError."""
    if not isinstance(params, dict):
        raise ParamError("params.yaml: expected a mapping at the top level")
    for key in ("datasets", "train_datasets", "models", "seed", "device", "data"):
        if key not in params:
            raise ParamError(f"{key}: missing from params.yaml")
    params = dict(params)
    params["datasets"] = _check_ids("datasets", params["datasets"], DATASET_IDS)
    params["train_datasets"] = _check_ids("train_datasets", params["train_datasets"], DATASET_IDS)
    check_prepared("train_datasets", params["train_datasets"], params)
    params["models"] = _check_ids("models", params["models"], MODEL_IDS)
    params["seed"] = _check_value("seed", params["seed"], int, 0)
    if params["device"] not in DEVICES:
        raise ParamError(f"device={params['device']!r}: allowed: {', '.join(DEVICES)}")
    data = params["data"] if isinstance(params["data"], dict) else {}
    params["data"] = {d: check_data(d, data.get(d)) for d in params["datasets"]}
    if "model" in params:  # the training groups (train@D-M stages)
        for d in params["train_datasets"]:
            for m in params["models"]:
                model_config(params, d, m)
    for group in ("sweep", "ksweep"):  # checked here so the first stage fails, not the sweep hours later
        listed = (params.get(group) or {}).get("datasets") if isinstance(params.get(group), dict) else None
        check_prepared(f"{group}.datasets", listed if isinstance(listed, list) else [], params)
    return params


def check_keys(name: str, cfg, allowed, *, required: bool = True) -> dict:
    """The params group `name` as a mapping with no key outside `allowed` (and, when
    `required`, every one of them); ParamError naming the group or the first bad key."""
    if not isinstance(cfg, dict):
        raise ParamError(f"{name}: missing from params.yaml or not a mapping")
    for key in cfg:
        if key not in allowed:
            raise ParamError(f"{name}.{key}: unknown key; allowed: {', '.join(allowed)}")
    for key in allowed if required else ():
        if key not in cfg:
            raise ParamError(f"{name}.{key}: missing")
    return cfg


def check_prepared(key: str, ids, params: dict) -> None:
    """Every dataset id listed under `key` must be in `datasets` (only those have a prepare@D stage)."""
    for d in ids:
        if d not in params.get("datasets", []):
            raise ParamError(f"{key}: {d!r} is not in datasets (it has no prepare@{d} stage)")


def _check_group(key: str, cfg, schema: dict, required: bool) -> None:
    if not isinstance(cfg, dict):
        raise ParamError(f"{key}: missing or not a mapping")
    for k, v in cfg.items():
        if k not in schema:
            continue
        if schema[k] is str:
            if not isinstance(v, str):
                raise ParamError(f"{key}.{k}={v!r}: expected a string")
        else:
            _check_value(f"{key}.{k}", v, schema[k], 0)
    if required:
        for k in schema:
            if k not in cfg:
                raise ParamError(f"{key}.{k}: missing")


def model_config(params: dict, dataset: str, model: str) -> dict:
    """Resolved hyper-parameters of `model` on `dataset`:
    optim < train.<dataset> < model.<model> < model.<model>.datasets.<dataset>."""
    for key in ("optim", "train", "model"):
        if key not in params:
            raise ParamError(f"{key}: missing from params.yaml")
    _check_group("optim", params["optim"], OPTIM_KEYS, True)
    _check_group(f"train.{dataset}", (params["train"] or {}).get(dataset), TRAIN_KEYS, True)
    mcfg = (params["model"] or {}).get(model)
    if mcfg is None:
        mcfg = {}
    _check_group(f"model.{model}", mcfg, {**OPTIM_KEYS, **TRAIN_KEYS}, False)
    overrides = mcfg.get("datasets") or {}
    for d in overrides:
        if d not in DATASET_IDS:
            raise ParamError(f"model.{model}.datasets: unknown dataset {d!r}; allowed: {', '.join(DATASET_IDS)}")
    over = overrides.get(dataset) or {}
    _check_group(f"model.{model}.datasets.{dataset}", over, {**OPTIM_KEYS, **TRAIN_KEYS}, False)
    cfg = {**params["optim"], **params["train"][dataset],
           **{k: v for k, v in mcfg.items() if k != "datasets"}, **over}
    if cfg["input"] not in VIEWS:
        raise ParamError(f"model.{model}.input={cfg['input']!r}: allowed: {', '.join(VIEWS)}")
    for k in ("hidden", "epochs", "batch"):
        if cfg[k] < 1:
            raise ParamError(f"train.{dataset}.{k}={cfg[k]}: must be >= 1")
    return cfg


def load(path: str | Path = "params.yaml") -> dict:
    """Read and validate params.yaml (DVC writes `-S` overrides into this file)."""
    path = Path(path)
    if not path.is_file():
        raise ParamError(f"{path}: file not found")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return validate(params)
