"""Paper 003 (Arpit et al.) sec. 3: sparsity versus the regularisation coefficient.

For one (dataset, model) the sweep trains one autoencoder per (coefficient, seed, encoder
activation, unit-length constraint) with the paper's protocol -- linear decoding, squared
loss, tied weights (003 sec. 2: x_hat = W^T h + b_d), SGD with momentum 0.9, batch 50,
zero biases, Glorot weights, standardised inputs -- and measures on held-out rows the
average activation fraction (003 eq. 14), the fraction of dead units and the
reconstruction error.

Every coefficient and seed of one (activation, constraint) trains as ONE batch of models
(the coefficient is a per-model value: sae.models.registry per_model) through the one
training loop; each point is the fit it would be alone (tests/test_sweep.py).

The coefficient is the variance of the Gaussian corruption for dae (003 Thm. 3) and for
edae (003 sec. 3.1.1), and lambda for cae (eq. 9), mdae (eq. 11) and sae0 (eq. 13). A
coefficient of 0 is therefore exactly a plain tied autoencoder trained from the same seed.
"""
from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch

from sae.base import catalog, metrics

log = logging.getLogger(__name__)

# what the swept coefficient means for each model (a build() keyword)
COEFFICIENT_KEY = {"dae": "level", "edae": "level", "cae": "lam", "mdae": "lam", "sae0": "lam"}
assert set(COEFFICIENT_KEY) == set(catalog.SWEEP_MODELS)
# 003 sec. 3: {0, 0.001, 0.1^2, 0.2^2, ..., 0.9^2, 1.0}
PAPER_GRID = (0.0, 0.001, *(round((k / 10) ** 2, 4) for k in range(1, 10)), 1.0)
# shared options of every sweep model (003 sec. 3 "Experimental protocols")
PROTOCOL_MODEL = dict(decoder="linear", init="glorot", tied=True, weight_decay=0.0)

COLUMNS = ("dataset", "model", "activation", "unit_norm", "coefficient", "seed", "activation_fraction",
           "dead_fraction", "recon_error", "diverged", "eval_split", "n_eval", "hidden", "epochs", "train_rows", "lr")


def model_options(model_id: str, activation: str, unit_norm: bool) -> dict:
    """build() keywords shared by a batch: the 003 protocol, its activation and constraint."""
    opts = {**PROTOCOL_MODEL, "activation": activation, "unit_norm": unit_norm}
    if model_id == "dae":
        opts["corruption"] = "gaussian"  # 003 Thm. 3: Gaussian noise of variance sigma^2
    return opts


@torch.no_grad()
def held_out_metrics(model, x_eval: torch.Tensor) -> dict[str, list[float]]:
    """Per model: 003 eq. 14 activation fraction, dead-unit fraction (thresholds of 003 sec. 3) and
    the mean per-dimension squared reconstruction error on x_eval (N, D)."""
    model.eval()
    h = model.encode(x_eval)
    threshold = catalog.activation_threshold(model.activation)
    return {"activation_fraction": metrics.activation_fraction(h, threshold).tolist(),
            "dead_fraction": metrics.dead_fraction(h, threshold).tolist(),
            "recon_error": metrics.reconstruction_error(x_eval, model.decode(h)).mean(dim=-1).tolist()}


def train_grid(model_id: str, cfg, coefficients, seeds, activation: str, unit_norm: bool, x_train, x_probe,
               x_eval, *, progress: bool = True) -> list[dict]:
    """Train every (coefficient, seed) of one (activation, constraint) as one batch; one table row
    each, coefficient-major. A diverged point (NaN/inf loss, e.g. eq. 13 with unbounded ReLU codes)
    gets diverged=1 and NaN metrics; the others train on."""
    from sae.models import build
    from sae.base.rng import init_generators
    from sae.train import fit
    points = [(c, s) for c in coefficients for s in seeds]
    point_seeds = [s for _, s in points]
    model = build(model_id, x_train.shape[1], cfg.hidden, n_models=len(points),
                  generators=init_generators(point_seeds), per_model={COEFFICIENT_KEY[model_id]: [c for c, _ in points]},
                  **model_options(model_id, activation, unit_norm)).to(x_train.device)
    result = fit(model, x_train, x_probe, epochs=cfg.epochs, batch=cfg.batch, seeds=point_seeds, lr=cfg.lr,
                 momentum=cfg.momentum, on_divergence="mask", progress=progress,
                 name=f"{model_id}/{activation}/unit_norm={unit_norm}")
    values = held_out_metrics(model, x_eval)
    rows = []
    for g, (c, s) in enumerate(points):
        row = {"model": model_id, "activation": activation, "unit_norm": unit_norm, "coefficient": c, "seed": s,
               **{k: v[g] for k, v in values.items()}}
        bad = result.diverged[g] or not all(math.isfinite(row[k]) for k in values)
        row.update({k: math.nan for k in values} if bad else {}, diverged=int(bad))
        rows.append(row)
    return rows


def run_sweep(model_id: str, cfg, grid, seeds, x_train, x_probe, x_eval, *, progress: bool = True) -> list[dict]:
    """Every grid point of `grid` (sae.config.schema.SweepGrid) for `model_id`, each with every seed;
    rows activation-major, then constraint, coefficient, seed."""
    rows, start = [], time.process_time()
    for activation in grid.activations:
        for unit_norm in grid.unit_norm:
            rows += train_grid(model_id, cfg, grid.coefficients, seeds, activation, unit_norm, x_train, x_probe,
                               x_eval, progress=progress)
    log.info("%s: %d fits in %d batches, %.0f CPU-s", model_id, len(rows),
             len(grid.activations) * len(grid.unit_norm), time.process_time() - start)
    return rows


def select_rows(n: int, rows: int, seed: int) -> np.ndarray:
    """Indices of a seeded random subset of `rows` of n training rows (all when rows is 0 or >= n),
    in increasing order (prepared splits may be sorted by class)."""
    if rows == 0 or rows >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:rows])


def table(dataset: str, cfg, rows: list[dict], *, n_train: int, n_eval: int):
    """The tidy table (pandas DataFrame, COLUMNS): one row per (activation, unit_norm, coefficient, seed)."""
    import pandas as pd
    extra = {"dataset": dataset, "eval_split": cfg.eval_split, "n_eval": n_eval, "hidden": cfg.hidden,
             "epochs": cfg.epochs, "train_rows": n_train, "lr": cfg.lr}
    df = pd.DataFrame([{**extra, **r} for r in rows], columns=list(COLUMNS))
    df["unit_norm"] = df["unit_norm"].astype(bool)
    return df
