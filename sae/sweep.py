"""Paper 003 (Arpit et al.) sec. 3: sparsity versus the regularisation coefficient.

For one (dataset, model) the sweep trains one autoencoder per (coefficient, encoder
activation, unit-length constraint) with the paper's protocol -- linear decoding, squared
loss, tied weights (003 sec. 2: x_hat = W^T h + b_d), SGD with momentum 0.9, batch 50,
zero biases, Glorot weights, standardised inputs -- and measures on held-out rows the
average activation fraction (003 eq. 14), the fraction of dead units and the
reconstruction error. Every configuration goes through the one training loop
(sae.train.train_model -> sae.train.fit).

The coefficient is the variance of the Gaussian corruption for dae (003 Thm. 3) and for
edae (003 sec. 3.1.1), and lambda for cae (eq. 9), mdae (eq. 11) and sae0 (eq. 13).
A coefficient of 0 is therefore exactly a plain tied autoencoder (model `ae` without
weight decay) trained from the same seed.

Every configuration is trained on one CPU thread, so the table does not depend on how
many worker processes share the grid (`workers`).
"""
from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

import numpy as np
import torch

from sae import metrics
from sae.errors import ParamError, TrainingError
from sae.params import check_keys, check_prepared

log = logging.getLogger(__name__)

# Models of 003's figures and what the swept coefficient means for each (build() keyword).
COEFFICIENT_KEY = {"dae": "level", "edae": "level", "cae": "lam", "mdae": "lam", "sae0": "lam"}
SWEEP_MODELS = tuple(COEFFICIENT_KEY)
SWEEP_ACTIVATIONS = ("relu", "sigmoid", "softplus")
# 003 sec. 3: {0, 0.001, 0.1^2, 0.2^2, ..., 0.9^2, 1.0} (seeds/README.md on the extraction slip)
PAPER_GRID = (0.0, 0.001, *(round((k / 10) ** 2, 4) for k in range(1, 10)), 1.0)
EVAL_SPLITS = ("val", "test")

# Shared options of every sweep model (003 sec. 3 "Experimental protocols").
PROTOCOL_MODEL = dict(decoder="linear", init="glorot", tied=True, weight_decay=0.0)

# Keys of sweep.protocol / sweep.<dataset>: name -> (type, minimum).
PROTOCOL_KEYS = {"hidden": (int, 1), "epochs": (int, 1), "batch": (int, 1), "lr": (float, 0.0),
                 "momentum": (float, 0.0), "train_rows": (int, 0), "eval_split": (str, None),
                 "input": (str, None), "workers": (int, 1)}
GRID_KEYS = ("coefficients", "activations", "unit_norm")

COLUMNS = ("dataset", "model", "activation", "unit_norm", "coefficient", "activation_fraction",
           "dead_fraction", "recon_error", "diverged", "eval_split", "n_eval", "hidden", "epochs",
           "train_rows", "lr")


# ---------------------------------------------------------------- params


def _typed(key, value, kind, minimum):
    if kind is str:
        if not isinstance(value, str):
            raise ParamError(f"{key}={value!r}: expected a string")
        return value
    ok = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok) or not math.isfinite(value):
        raise ParamError(f"{key}={value!r}: expected {kind.__name__}")
    if minimum is not None and value < minimum:
        raise ParamError(f"{key}={value!r}: must be >= {minimum}")
    return kind(value)


def _list(key, value, check, what):
    if not isinstance(value, list) or not value:
        raise ParamError(f"{key}={value!r}: expected a non-empty list of {what}")
    for v in value:
        if not check(v):
            raise ParamError(f"{key}: {v!r} is not {what}")
    if len(set(value)) != len(value):
        raise ParamError(f"{key}={value!r}: repeated value")
    return list(value)


def sweep_config(params: dict, dataset: str, model: str | None = None) -> dict:
    """The resolved sweep of `dataset` (and `model`): sweep.grid, then sweep.protocol
    overridden by sweep.<dataset>. Raises ParamError naming the key.

    Returns {"coefficients", "activations", "unit_norm", <PROTOCOL_KEYS>}.
    """
    sweep = params.get("sweep")
    if not isinstance(sweep, dict):
        raise ParamError("sweep: missing from params.yaml or not a mapping")
    datasets = sweep.get("datasets")
    if not isinstance(datasets, list) or dataset not in datasets:
        raise ParamError(f"sweep.datasets={datasets!r}: does not list {dataset!r}")
    check_prepared("sweep.datasets", [dataset], params)
    _list("sweep.models", sweep.get("models"), lambda v: v in SWEEP_MODELS, "one of " + ", ".join(SWEEP_MODELS))
    if model is not None and model not in sweep["models"]:
        raise ParamError(f"sweep.models={sweep['models']!r}: does not list {model!r}")
    grid = check_keys("sweep.grid", sweep.get("grid"), GRID_KEYS, required=False)
    cfg = {
        "coefficients": [float(v) for v in _list(
            "sweep.grid.coefficients", grid.get("coefficients"),
            lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0,
            "a number >= 0")],
        "activations": _list("sweep.grid.activations", grid.get("activations"),
                             lambda v: v in SWEEP_ACTIVATIONS, "one of " + ", ".join(SWEEP_ACTIVATIONS)),
        "unit_norm": _list("sweep.grid.unit_norm", grid.get("unit_norm"),
                           lambda v: isinstance(v, bool), "true or false"),
    }
    protocol = sweep.get("protocol")
    if not isinstance(protocol, dict):
        raise ParamError("sweep.protocol: missing or not a mapping")
    if dataset not in sweep:
        raise ParamError(f"sweep.{dataset}: missing (write {{}} to use sweep.protocol unchanged)")
    override = sweep[dataset] or {}
    if not isinstance(override, dict):
        raise ParamError(f"sweep.{dataset}={override!r}: expected a mapping")
    for group, values in (("protocol", protocol), (dataset, override)):
        for k in values:
            if k not in PROTOCOL_KEYS:
                raise ParamError(f"sweep.{group}.{k}: unknown key; allowed: {', '.join(PROTOCOL_KEYS)}")
    merged = {**protocol, **override}
    for k, (kind, minimum) in PROTOCOL_KEYS.items():
        if k not in merged:
            raise ParamError(f"sweep.protocol.{k}: missing")
        where = f"sweep.{dataset}.{k}" if k in override else f"sweep.protocol.{k}"
        cfg[k] = _typed(where, merged[k], kind, minimum)
    if cfg["eval_split"] not in EVAL_SPLITS:
        raise ParamError(f"sweep.protocol.eval_split={cfg['eval_split']!r}: allowed: {', '.join(EVAL_SPLITS)}")
    from sae.params import VIEWS
    if cfg["input"] not in VIEWS:
        raise ParamError(f"sweep.protocol.input={cfg['input']!r}: allowed: {', '.join(VIEWS)}")
    if cfg["lr"] <= 0:
        raise ParamError(f"sweep.protocol.lr={cfg['lr']!r}: must be > 0")
    return cfg


# ---------------------------------------------------------------- one configuration


def configurations(cfg: dict) -> list[tuple[float, str, bool]]:
    """(coefficient, activation, unit_norm) for every grid point, in table order."""
    return [(c, a, u) for a in cfg["activations"] for u in cfg["unit_norm"] for c in cfg["coefficients"]]


def model_options(model_id: str, coefficient: float, activation: str, unit_norm: bool) -> dict:
    """build() keywords of one sweep point: the 003 protocol plus the swept coefficient."""
    if model_id not in COEFFICIENT_KEY:
        raise ParamError(f"sweep model {model_id!r}: allowed: {', '.join(SWEEP_MODELS)}")
    opts = {**PROTOCOL_MODEL, "activation": activation, "unit_norm": unit_norm,
            COEFFICIENT_KEY[model_id]: coefficient}
    if model_id == "dae":
        opts["corruption"] = "gaussian"  # 003 Thm. 3: Gaussian noise of variance sigma^2
    return opts


def train_config(cfg: dict, options: dict) -> dict:
    """The resolved config (sae.params.model_config layout) that sae.train.train_model takes."""
    return {"hidden": cfg["hidden"], "epochs": cfg["epochs"], "batch": cfg["batch"], "input": cfg["input"],
            "optimizer": "sgd", "lr": cfg["lr"], "momentum": cfg["momentum"], "schedule": "constant",
            "final_lr": cfg["lr"], "checkpoint_every": 0, **options}


@torch.no_grad()
def held_out_metrics(model, x_eval: torch.Tensor) -> dict[str, float]:
    """003 eq. 14 activation fraction, dead-unit fraction (thresholds of 003 sec. 3) and the
    mean per-dimension squared reconstruction error on x_eval (N, D)."""
    model.eval()
    h = model.encode(x_eval)
    threshold = metrics.ACTIVATION_THRESHOLD[model.activation]
    return {"activation_fraction": float(metrics.activation_fraction(h, threshold)),
            "dead_fraction": float(metrics.dead_fraction(h, threshold)),
            "recon_error": float(metrics.reconstruction_error(x_eval, model.decode(h)).mean())}


def train_point(model_id: str, cfg: dict, point: tuple[float, str, bool], x_train: torch.Tensor,
                x_probe: torch.Tensor, x_eval: torch.Tensor, *, seed: int, return_model: bool = False):
    """Train one grid point with sae.train.train_model; returns its table row (and the model).

    A run whose loss becomes NaN/inf is recorded with diverged=1 and NaN metrics instead of
    stopping the sweep (e.g. eq. 13 with unbounded ReLU codes, where rho_j can pass 1).
    """
    from sae.train import train_model
    coefficient, activation, unit_norm = point
    options = model_options(model_id, coefficient, activation, unit_norm)
    row = {"model": model_id, "activation": activation, "unit_norm": unit_norm, "coefficient": coefficient}
    model = None
    try:
        model, _ = train_model(model_id, train_config(cfg, options), x_train, x_probe, seed=seed,
                               progress=False, name=f"{model_id}/{activation}/unit_norm={unit_norm}/{coefficient:g}")
        values = held_out_metrics(model, x_eval)
        if not all(math.isfinite(v) for v in values.values()):
            raise TrainingError("non-finite held-out metrics")
        row.update(values, diverged=0)
    except TrainingError as exc:
        log.warning("%s: diverged (%s)", row, exc)
        row.update(activation_fraction=math.nan, dead_fraction=math.nan, recon_error=math.nan, diverged=1)
    return (row, model) if return_model else row


# ---------------------------------------------------------------- the grid


@contextlib.contextmanager
def _one_thread(device: torch.device):
    """Each configuration runs on one CPU thread: results never depend on the worker count."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_WORKER: dict = {}


def _init_worker(arrays, cfg, seed):
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    _WORKER.update(x={k: torch.from_numpy(v) for k, v in arrays.items()}, cfg=cfg, seed=seed)


def _in_process(index, model_id, cfg, point, x_train, x_probe, x_eval, seed):
    """(index, table row, CPU seconds) of one grid point trained in this process."""
    start = time.process_time()
    row = train_point(model_id, cfg, point, x_train, x_probe, x_eval, seed=seed)
    return index, row, time.process_time() - start


def _work(index, model_id, point):
    x = _WORKER["x"]
    return _in_process(index, model_id, _WORKER["cfg"], point, x["train"], x["probe"], x["eval"], _WORKER["seed"])


def _worker_context():
    """fork on Linux: workers inherit the imported torch and the data instead of importing torch
    again (2.5 s of every sweep stage); each sets one CPU thread before any work, as DataLoader
    workers do. spawn elsewhere (fork is unsafe on macOS)."""
    return get_context("fork" if sys.platform.startswith("linux") else "spawn")


def select_rows(n: int, rows: int, seed: int) -> np.ndarray:
    """Indices of a seeded random subset of `rows` of n training rows (all when rows is 0 or >= n),
    in increasing order (prepared splits may be sorted by class)."""
    if rows == 0 or rows >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:rows])


def run_sweep(model_id: str, cfg: dict, x_train: torch.Tensor, x_probe: torch.Tensor, x_eval: torch.Tensor,
              *, seed: int, progress: bool = True, desc: str | None = None) -> list[dict]:
    """Train every grid point of `cfg` (sweep_config) for `model_id`; rows in configurations() order.

    x_train: the training rows (already subset); x_probe: a small batch for fit()'s per-epoch
    curves; x_eval: the held-out rows the metrics are measured on. All on the same device.
    With cfg["workers"] > 1 on CPU the points are shared by that many processes.
    """
    points = configurations(cfg)
    device = x_train.device
    workers = min(cfg["workers"], len(points)) if device.type == "cpu" else 1
    rows: list[dict | None] = [None] * len(points)
    cpu = 0.0  # CPU seconds of the fits themselves (logged: a load-independent cost measure)
    with contextlib.ExitStack() as stack:
        if workers > 1:  # forked before the progress bar starts its monitor thread
            arrays = {"train": x_train.numpy(), "probe": x_probe.numpy(), "eval": x_eval.numpy()}
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=_worker_context(),
                                                           initializer=_init_worker, initargs=(arrays, cfg, seed)))
            futures = [pool.submit(_work, i, model_id, p) for i, p in enumerate(points)]
            done = (f.result() for f in as_completed(futures))
        else:
            stack.enter_context(_one_thread(device))
            done = (_in_process(i, model_id, cfg, p, x_train, x_probe, x_eval, seed) for i, p in enumerate(points))
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = stack.enter_context(tqdm(total=len(points), desc=desc or model_id, unit="fit"))
        for i, row, seconds in done:  # (index, table row, CPU seconds), in completion order
            rows[i], cpu = row, cpu + seconds
            if bar is not None:
                bar.update(1)
    log.info("%s: %d fits, %.0f CPU-s of training (%.2f s per fit) on %d worker(s)", desc or model_id,
             len(points), cpu, cpu / len(points), workers)
    return rows


def table(dataset: str, cfg: dict, rows: list[dict], *, n_train: int, n_eval: int):
    """The tidy table (pandas DataFrame, COLUMNS): one row per (coefficient, activation, unit_norm).

    n_train / n_eval: the numbers of training and held-out rows actually used.
    """
    import pandas as pd
    extra = {"dataset": dataset, "eval_split": cfg["eval_split"], "n_eval": n_eval, "hidden": cfg["hidden"],
             "epochs": cfg["epochs"], "train_rows": n_train, "lr": cfg["lr"]}
    df = pd.DataFrame([{**extra, **r} for r in rows], columns=list(COLUMNS))
    df["unit_norm"] = df["unit_norm"].astype(bool)
    return df
