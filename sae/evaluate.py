"""Evaluate trained autoencoders on fixed features (the `evaluate` stages).

For every model of a trained batch (each seed, each k of a k sweep), on the test split:
reconstruction error, Gini, Hoyer (mean and std over the test samples), SSD, activation
fraction and dead units (thresholds of 003 sec. 3), the hidden-activity histogram (002
Fig. 4), and the test error of logistic regression whose L2 strength is chosen on the
validation split (002 Tables 1-2, 001 sec. IV-A.4). For ksparse the features keep the
alpha*k largest units, alpha chosen on validation too (002 sec. 2.2, 4.4). The seeds are
then summarised (sae.base.stats.summary): mean and std over seeds, and every per-seed value.
"""
from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import torch

from sae import classify
from sae.base import catalog, metrics, stats
from sae.models.ksparse import KSparse
from sae.base.rng import stream_seed

log = logging.getLogger(__name__)

# measures with a spread over test samples (per seed: its mean and std over the samples)
SAMPLE_MEASURES = ("recon_error", "gini", "hoyer")
SET_MEASURES = ("ssd", "activation_fraction", "dead_fraction")


@torch.no_grad()
def batched(fn, x: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    """fn applied to x (N, D) in row blocks, concatenated: bounded memory on big sets."""
    return torch.cat([fn(xb) for xb in x.split(batch)])


def codes(model, x: torch.Tensor, batch: int, alpha: float | None = None) -> torch.Tensor:
    """Classification codes (N, M) of a one-model batch (ksparse: alpha*k units)."""
    if isinstance(model, KSparse):
        return batched(lambda xb: model.features(xb, alpha)[0], x, batch)
    return batched(lambda xb: model.features(xb)[0], x, batch)


def measures(h: torch.Tensor, threshold: float) -> dict:
    """Sparsity measures of codes h (N, M): Gini (000), Hoyer and SSD (001), fractions (003)."""
    out = {"gini": _over_samples(metrics.gini(h))}
    if h.shape[1] >= 2:
        out["hoyer"] = _over_samples(metrics.hoyer(h))
        out["ssd"] = float(metrics.ssd(h))
    else:  # Hoyer's denominator sqrt(M) - 1 is 0
        out["hoyer"] = {"mean": None, "sample_std": None}
        out["ssd"] = None
    out["activation_fraction"] = float(metrics.activation_fraction(h, threshold))
    out["dead_fraction"] = float(metrics.dead_fraction(h, threshold))
    return out


def _over_samples(v: torch.Tensor) -> dict:
    return {"mean": float(v.mean()), "sample_std": float(v.std(correction=0))}


@torch.no_grad()
def histogram(h: torch.Tensor, bins: int, lo: float | None = None, hi: float | None = None) -> dict:
    """Counts of all entries of h over `bins` equal bins spanning [lo, hi] (default: h's range), 002 Fig. 4."""
    lo = float(h.min()) if lo is None else lo
    hi = float(h.max()) if hi is None else hi
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts = torch.histc(h.reshape(-1).to(torch.float64), bins=bins, min=lo, max=hi)
    edges = torch.linspace(lo, hi, bins + 1, dtype=torch.float64)
    return {"left": edges[:-1].tolist(), "right": edges[1:].tolist(), "count": [int(c) for c in counts.tolist()]}


def evaluate_one(model, data: dict, *, n_classes: int, classify_cfg, alphas=(1.0,), batch: int = 4096,
                 seed: int = 0) -> tuple[dict, torch.Tensor]:
    """Metrics of ONE trained model (a batch of n_models = 1) on `data` (tensors x_train, x_val,
    x_test on one device, y_* int64 tensors or None when unlabelled); returns (metrics, test codes).

    Model selection (L2; alpha for ksparse) uses only the training and validation splits;
    y_test is read once, for the final error.
    """
    model.eval()
    fit_kwargs = {k: getattr(classify_cfg, k) for k in ("epochs", "batch", "lr", "optimizer", "momentum")}
    is_ksparse = isinstance(model, KSparse)
    threshold = catalog.activation_threshold(getattr(model, "activation", "linear"))
    x_te = data["x_test"]
    logreg: dict = {"test_error": None, "val_error": None, "l2": None}
    alpha = float(model.alpha) if is_ksparse else None
    test_codes = {}  # alpha -> test codes already encoded (k_test_error needs alpha = 1's)
    if data.get("y_train") is not None:
        best = None
        for a in (alphas if is_ksparse else (None,)):
            f_tr, f_va = codes(model, data["x_train"], batch, a), codes(model, data["x_val"], batch, a)
            l2, val_errors, clf = classify.select_l2(f_tr, data["y_train"], f_va, data["y_val"], classify_cfg.l2,
                                                     n_classes, seed=stream_seed(seed, "classify"), **fit_kwargs)
            err = min(val_errors)
            if is_ksparse:  # 45 fits at the defaults: say which alpha is being fitted
                log.info("alpha=%s: validation error %.4f (l2=%g)", a, err, l2)
            if best is None or err < best[0]:  # ties keep the smaller alpha (listed first)
                best = (err, a, l2, clf)
            if is_ksparse and a == 1:  # encoding with the k units of training (002 sec. 2.2: alpha*k is better)
                test_codes[a] = codes(model, x_te, batch, a)
                logreg["k_test_error"] = classify.error_rate(clf, test_codes[a], data["y_test"])
        val_error, alpha, l2, clf = best
        f_te = test_codes[alpha] if alpha in test_codes else codes(model, x_te, batch, alpha)
        logreg.update(test_error=classify.error_rate(clf, f_te, data["y_test"]), val_error=val_error, l2=l2)
    else:
        logreg["skipped"] = "unlabelled dataset: no classifier"
        f_te = codes(model, x_te, batch, alpha)
    if is_ksparse:
        logreg["alpha"] = alpha
    # the model's reconstruction (training encoding; k units for ksparse); 0 for raw pixels
    x_hat = batched(lambda xb: model.decode(model.encode(xb))[0], x_te, batch)
    result = {"recon_error": _over_samples(metrics.reconstruction_error(x_te, x_hat)), **measures(f_te, threshold),
              "logreg": logreg, "units": int(model.units_kept(alpha)) if is_ksparse else int(f_te.shape[1])}
    return result, f_te


def summarise(per_seed: list[dict], seeds) -> dict:
    """The per-seed results of evaluate_one as mean +- std over seeds with every per-seed value
    (sample_std: the mean over seeds of the spread over test samples)."""
    out = {"n_seeds": len(per_seed), "seeds": list(seeds)}
    for key in SAMPLE_MEASURES:
        out[key] = stats.summary([r[key]["mean"] for r in per_seed],
                                 sample_std=_mean([r[key]["sample_std"] for r in per_seed]))
    for key in SET_MEASURES:
        out[key] = stats.summary([r[key] for r in per_seed])
    lr = [r["logreg"] for r in per_seed]
    out["logreg"] = {"test_error": stats.summary([x["test_error"] for x in lr]),
                     "val_error": stats.summary([x["val_error"] for x in lr]),
                     "l2": [x["l2"] for x in lr]}
    if "alpha" in lr[0]:
        out["logreg"]["alpha"] = [x["alpha"] for x in lr]
    if "k_test_error" in lr[0]:
        out["logreg"]["k_test_error"] = stats.summary([x["k_test_error"] for x in lr])
    if "skipped" in lr[0]:
        out["logreg"]["skipped"] = lr[0]["skipped"]
    out["units"] = per_seed[0]["units"]
    return out


def _mean(values):
    ok = [v for v in values if v is not None and math.isfinite(v)]
    return sum(ok) / len(ok) if ok else None


def evaluate_batch(model, layout, data: dict, *, n_classes: int, classify_cfg, evaluate_cfg) -> tuple[dict, list]:
    """Every model of a trained batch (layout: sae.models.batch.Layout): the metrics dict of the
    configuration (variant 0) with its k-sweep variants under "variants", and the histogram
    rows (variant label, bin_left, bin_right, count) of each variant's test codes (first seed)."""
    threshold = catalog.activation_threshold(getattr(model, "activation", "linear"))
    results, hist_rows, bad = [], [], []
    from tqdm.auto import tqdm
    bar = tqdm(total=len(layout.variants) * len(layout.seeds), desc="evaluate", unit="model", leave=False)
    for v in range(len(layout.variants)):
        per_seed = []
        for g, seed in zip(layout.models_of(v), layout.seeds):
            bar.set_postfix_str(f"{layout.label(v) or 'model'} seed {seed}")
            r, h = evaluate_one(model.select(g), data, n_classes=n_classes, classify_cfg=classify_cfg,
                                alphas=evaluate_cfg.alphas, batch=evaluate_cfg.batch, seed=seed)
            bad += null_nonfinite(r, f"{layout.label(v) + '/' if v else ''}seed{seed}.")
            per_seed.append(r)
            bar.update(1)
            if g == layout.models_of(v)[0]:
                hist = histogram(torch.nan_to_num(h), evaluate_cfg.hist_bins)
        label = layout.label(v)
        hist_rows += [(label, lo, hi, c) for lo, hi, c in zip(hist["left"], hist["right"], hist["count"])]
        results.append({**summarise(per_seed, layout.seeds), "threshold": threshold,
                        "n_test": int(data["x_test"].shape[0])})
        log.info("%s: test error %s, hoyer %s", label or "model", _fmt(results[-1]["logreg"]["test_error"]),
                 _fmt(results[-1]["hoyer"]))
    bar.close()
    out = results[0]
    if len(results) > 1:
        out["variants"] = {layout.label(v): {**layout.variants[v], **results[v]} for v in range(1, len(results))}
    bad += null_nonfinite(out)
    if bad:
        out["nonfinite"] = "not finite, written as null: " + ", ".join(bad)
    return out, hist_rows


def _fmt(s: dict) -> str:
    if s.get("mean") is None:
        return "n/a"
    return f"{s['mean']:.4g}" + (f" +- {s['std']:.2g}" if s.get("std") is not None else "") + f" (n={s['n']})"


def null_nonfinite(d, prefix: str = "") -> list[str]:
    """Replace NaN/inf floats in a nested dict/list by None in place; return their dotted keys."""
    bad = []
    items = d.items() if isinstance(d, dict) else enumerate(d)
    for k, v in list(items):
        if isinstance(v, (dict, list)):
            bad += null_nonfinite(v, f"{prefix}{k}.")
        elif isinstance(v, float) and not math.isfinite(v):
            d[k] = None
            bad.append(f"{prefix}{k}")
    return bad


HIST_COLUMNS = ("variant", "bin_left", "bin_right", "bin_center", "count")


def write_hist_csv(path: Path, rows) -> None:
    """Histogram rows (variant, left, right, count) as CSV with HIST_COLUMNS."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HIST_COLUMNS)
        for variant, lo, hi, c in rows:
            writer.writerow([variant, f"{lo:.6g}", f"{hi:.6g}", f"{(lo + hi) / 2:.6g}", c])
