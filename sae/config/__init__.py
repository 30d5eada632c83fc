"""params.yaml, read and validated once: `load()` returns the typed Params or raises ParamError
with one line naming the key path and what is allowed.

The `check` stage (stages/check.py) runs this before any other stage of `dvc repro`, so a
bad value stops the run before DVC removes a single output; every stage then loads the
same validated object (a few milliseconds: no torch here).
"""
from __future__ import annotations

import difflib
import typing
from pathlib import Path

from pydantic import BaseModel, ValidationError

from sae.base import catalog as C
from sae.config import schema as S
from sae.base.errors import ParamError

Params = S.Params


# names people write for a key that has another name here
SYNONYMS = {"learning_rate": "lr", "lambda": "lam", "num_epochs": "epochs", "n_epochs": "epochs",
            "batch_size": "batch", "hidden_units": "hidden", "n_hidden": "hidden", "seed": "seeds",
            "wd": "weight_decay", "sigma": "sigmas", "activation_fn": "activation"}


def nearest(word: str, choices) -> str | None:
    """The allowed name closest to a misspelt one (None when none is close)."""
    choices = [str(c) for c in choices]
    if SYNONYMS.get(str(word)) in choices:
        return SYNONYMS[str(word)]
    match = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return match[0] if match else None


def unknown(path: str, value, allowed, *, what: str = "value", key: bool = False) -> str:
    """'path: unknown key; did you mean 'x'? allowed: ...' (key=True) or 'path=value: unknown ...'."""
    allowed = list(dict.fromkeys(map(str, allowed)))
    head = f"{path}: unknown {what}" if key else f"{path}={value!r}: unknown {what}"
    near = nearest(value, allowed)
    return head + (f"; did you mean {near!r}?" if near else ";") + f" allowed: {', '.join(allowed)}"


def dotted(loc) -> str:
    """A pydantic location as a params path: ('a', 'b', 1) -> 'a.b[1]'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "[key]":
            out += ("." if out else "") + str(part)
    return out


def _show(value) -> str:
    return repr(value) if isinstance(value, str) else str(value).replace("True", "true").replace("False", "false")


def _unwrap(annotation):
    """The model class or container a field holds (Optional/Annotated peeled off)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin is typing.Union or str(origin) == "types.UnionType":
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else annotation
            if len(args) != 1:
                return annotation
        else:
            return annotation


def _allowed_keys(cls, loc) -> list[str] | None:
    """The keys allowed in the mapping at loc (below the model class cls), when it is a model."""
    node = cls
    for part in loc:
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            if part not in node.model_fields:
                return None
            node = node.model_fields[part].annotation
        elif typing.get_origin(node) in (dict, list):
            node = typing.get_args(node)[-1]
        else:
            return None
    node = _unwrap(node)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return list(node.model_fields)
    return None


def _expected(ctx: dict) -> list[str]:
    """The allowed values of a pydantic literal error ("'a', 'b' or 'c'")."""
    parts = ctx.get("expected", "").replace(" or ", ", ").split(",")
    return [p.strip().strip("'") for p in parts if p.strip()]


_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_TYPES = {"int_type": "an integer", "int_parsing": "an integer", "float_type": "a number",
          "float_parsing": "a number", "bool_type": "true or false", "string_type": "a string",
          "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping",
          "model_attributes_type": "a mapping"}


def describe_error(err: dict, path: str, root: type[BaseModel] | None = None, loc=()) -> str:
    """One line for a pydantic error at dotted `path` (root + loc find the allowed keys)."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "missing":
        return f"{path}: missing"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(root, loc[:-1]) if root is not None else None
        if allowed is None:
            return f"{path}: unknown key"
        return unknown(path, path.rsplit(".", 1)[-1], allowed, what="key", key=True)
    if kind == "literal_error":
        return unknown(path, value, _expected(ctx), what="value")
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        return f"{path}={_show(value)}: must be {_BOUNDS[kind]} {bound}"
    if kind in _TYPES:
        return f"{path}={_show(value)}: expected {_TYPES[kind]}"
    if kind == "too_short":
        return f"{path}={_show(value)}: expected at least {ctx.get('min_length')} item(s)"
    if kind == "string_pattern_mismatch":
        return f"{path}={_show(value)}: must match {ctx.get('pattern')}"
    if kind == "finite_number":
        return f"{path}={_show(value)}: must be a finite number"
    msg = err.get("msg", "invalid").removeprefix("Value error, ")
    return f"{path}={_show(value)}: {msg}"


def validate_group(cls: type[BaseModel], data, path: str):
    """cls.model_validate(data), or ParamError naming `path`.<the bad key>."""
    if data is None:
        data = {}
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = dotted(err["loc"])
        full = f"{path}.{where}" if path and where else (path or where)
        if err["loc"] and err["loc"][-1] == "[key]":  # a mapping's key (e.g. an unknown dataset id in data)
            raise ParamError(unknown(full, err.get("input"), _expected(err.get("ctx") or {}), what="key",
                                     key=True)) from None
        loc = tuple(str(x) for x in err["loc"] if not isinstance(x, int))
        raise ParamError(describe_error(err, full, cls, loc)) from None


def data_config(dataset: str, cfg: dict) -> dict:
    """The validated prepare settings `data.<dataset>` of a dataset (ParamError naming the key)."""
    return validate_group(S.DATA_SCHEMAS[C.DATASETS[dataset].kind], cfg, f"data.{dataset}").model_dump()


def validate(raw) -> S.Params:
    """The typed Params of a parsed params.yaml, every cross-reference checked (ParamError)."""
    if not isinstance(raw, dict):
        raise ParamError("params.yaml: expected a mapping at the top level")
    params = validate_group(S.Params, raw, "")
    check_references(params)
    return params


def check_references(params: S.Params) -> None:
    """What no single group can check: datasets that must be prepared, data settings of every
    prepared set, model names, and the resolved settings of every stage (k <= hidden, ...)."""
    from sae.config import protocol as P
    for d, cfg in params.data.items():
        data_config(d, cfg)
    for d in params.datasets:
        if d not in params.data:
            raise ParamError(f"data.{d}: missing (the prepare settings of a dataset in `datasets`)")

    def prepared(key: str, ids) -> None:
        for d in ids:
            if d not in params.datasets:
                raise ParamError(f"{key}: {d!r} is not in datasets (it has no prepare@{d} stage); add it there")

    def listed(key: str, names, defined, what: str) -> None:
        for n in names:
            if n not in defined:
                near = nearest(n, defined)
                raise ParamError(f"{key}: {n!r} is not {what}" + (f"; did you mean {near!r}?" if near else ";")
                                 + f" allowed: {', '.join(defined)}")

    for paper in C.AUTOENCODER_PAPERS:
        p = params.protocol(paper)
        prepared(f"{paper}.datasets", p.datasets)
        listed(f"{paper}.models", p.models, p.model, f"defined in {paper}.model")
        if p.finetune:
            ft = p.finetune
            listed(f"{paper}.finetune.models", ft.models, p.models, f"in {paper}.models")
            listed(f"{paper}.finetune.deep_models", ft.deep_models, ft.models, f"in {paper}.finetune.models")
            listed(f"{paper}.finetune.without_pretraining", ft.without_pretraining, ft.models,
                   f"in {paper}.finetune.models")
            for d in p.datasets:
                P.finetune_settings(params, paper, d)
        if p.filters:
            prepared(f"{paper}.filters.datasets", p.filters.datasets)
            listed(f"{paper}.filters.models", p.filters.models, p.model, f"defined in {paper}.model")
        for name in p.model:
            P.model_entry(p, paper, name)
    for paper in C.SWEEP_PAPERS:
        prepared(f"{paper}.datasets", params.protocol(paper).datasets)
    for kind, paper, d, m in P.stages(params):  # the resolved settings of every stage that trains
        if kind in ("train", "filters"):
            P.run_config(params, paper, d, m)
        elif kind == "sweep":
            P.sweep_settings(params, paper, d)


def read_yaml(path: Path):
    """The parsed YAML file, or ParamError naming it."""
    import yaml
    path = Path(path)
    if not path.is_file():
        raise ParamError(f"{path}: file not found")
    try:
        return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ParamError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None


def load(path: str | Path = "params.yaml") -> S.Params:
    """Read and validate params.yaml (DVC writes the composed config and `-S` overrides there)."""
    return validate(read_yaml(path))
