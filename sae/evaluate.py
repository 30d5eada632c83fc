"""Evaluate a trained autoencoder on fixed features (DESIGN.md sec. 4, `evaluate`).

Features of the test split: reconstruction error, Gini, Hoyer (mean and std over samples),
SSD, activation fraction and dead units (thresholds of 003 sec. 3), the hidden-activity
histogram (002 Fig. 4), and the test error of logistic regression whose L2 strength is
chosen on the validation split (002 Tables 1-2, 001 sec. IV-A.4). For ksparse, features
keep the alpha*k largest units with alpha chosen on validation too (002 sec. 2.2, 4.4).
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch

from sae import classify, metrics
from sae.errors import DataError, ParamError
from sae.params import check_keys
from sae.models.ksparse import KSparse, topk_mask

log = logging.getLogger(__name__)

# Keys present in every metrics dict, labelled or not (values may be None, never NaN).
MEASURE_KEYS = ("recon_error", "gini", "hoyer", "ssd", "activation_fraction", "dead_fraction",
                "threshold", "units", "n_test")
LOGREG_KEYS = ("test_error", "test_accuracy", "val_error", "l2")


def check_config(cfg) -> dict:
    """Validate the `evaluate` group of params.yaml; return it with typed values."""
    schema = ("alphas", "hist_bins", "batch", "threads")
    check_keys("evaluate", cfg, schema)
    alphas = cfg["alphas"]
    if not isinstance(alphas, list) or not alphas or not all(
            isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) and a >= 1
            for a in alphas):
        raise ParamError(f"evaluate.alphas={alphas!r}: expected a non-empty list of numbers >= 1 (002 sec. 2.2)")
    for key, low in (("hist_bins", 1), ("batch", 1), ("threads", 0)):
        v = cfg[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise ParamError(f"evaluate.{key}={v!r}: expected an integer >= {low}")
    return {**cfg, "alphas": [float(a) for a in alphas]}


@torch.no_grad()
def batched(fn, x: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    """fn applied to x (N, D) in row blocks, concatenated: bounded memory on big sets."""
    return torch.cat([fn(xb) for xb in x.split(batch)])


def ksparse_units(model: KSparse, alpha: float) -> int:
    """Units kept at encoding: round(alpha * k), capped at the hidden size (002 sec. 2.2)."""
    return min(int(round(alpha * model.k)), model.hidden)


def ksparse_features(model: KSparse, x: torch.Tensor, alpha: float) -> torch.Tensor:
    """h = s(W x + b) with only its alpha*k largest units kept (002 sec. 2.2, 'Sparse Encoding')."""
    from sae.models.core import ACTIVATIONS
    h = ACTIVATIONS[model.activation](model.pre_activation(x))
    return h * topk_mask(h, ksparse_units(model, alpha))


def _mean_std(v: torch.Tensor) -> dict:
    return {"mean": float(v.mean()), "std": float(v.std(correction=0))}


def measures(h: torch.Tensor, threshold: float) -> dict:
    """Sparsity measures of codes h (N, M): Gini (000), Hoyer + SSD (001), fractions (003)."""
    out = {"gini": _mean_std(metrics.gini(h))}
    if h.shape[1] >= 2:
        out["hoyer"] = _mean_std(metrics.hoyer(h))
        out["ssd"] = float(metrics.ssd(h))
    else:  # Hoyer's denominator sqrt(M) - 1 is 0
        out["hoyer"] = {"mean": None, "std": None}
        out["ssd"] = None
    out["activation_fraction"] = float(metrics.activation_fraction(h, threshold))
    out["dead_fraction"] = float(metrics.dead_fraction(h, threshold))
    out["threshold"] = float(threshold)
    out["units"] = int(h.shape[1])
    return out


@torch.no_grad()
def histogram(h: torch.Tensor, bins: int) -> dict:
    """Counts of all entries of h over `bins` equal bins spanning [min, max] (002 Fig. 4)."""
    lo, hi = float(h.min()), float(h.max())
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts = torch.histc(h.reshape(-1).to(torch.float64), bins=bins, min=lo, max=hi)
    edges = torch.linspace(lo, hi, bins + 1, dtype=torch.float64)
    return {"left": edges[:-1].tolist(), "right": edges[1:].tolist(),
            "count": [int(c) for c in counts.tolist()]}


def evaluate(model, data: dict, *, n_classes: int, classify_cfg: dict, alphas=(1.0,),
             hist_bins: int = 50, batch: int = 4096, seed: int = 0) -> tuple[dict, dict]:
    """Metrics of a trained `model` on `data` (tensors x_train, x_val, x_test on one device,
    and y_* int64 tensors or None when the set is unlabelled).

    Returns (metrics, histogram). Model selection (L2; alpha for ksparse) uses only
    the training and validation splits; y_test is read once, for the final error.
    """
    model.eval()
    fit_kwargs = {k: classify_cfg[k] for k in ("epochs", "batch", "lr", "optimizer", "momentum")}
    labelled = data.get("y_train") is not None
    is_ksparse = isinstance(model, KSparse)
    threshold = metrics.ACTIVATION_THRESHOLD.get(getattr(model, "activation", "linear"), 0.0)
    x_te = data["x_test"]

    result: dict = {}
    logreg: dict = {k: None for k in LOGREG_KEYS}
    if is_ksparse:
        logreg["alpha"] = float(model.alpha)
    if labelled:
        feature_fns = ({a: (lambda x, a=a: ksparse_features(model, x, a)) for a in alphas}
                       if is_ksparse else {None: model.features})
        best = None
        for alpha, fn in feature_fns.items():
            f_tr, f_va = batched(fn, data["x_train"], batch), batched(fn, data["x_val"], batch)
            l2, val_errors, clf = classify.select_l2(f_tr, data["y_train"], f_va, data["y_val"],
                                                     classify_cfg["l2"], n_classes, seed=seed, **fit_kwargs)
            err = min(val_errors)
            log.info("alpha=%s: validation error per l2 %s", alpha,
                     ", ".join(f"{g:g}:{e:.4f}" for g, e in zip(classify_cfg["l2"], val_errors)))
            if best is None or err < best[0]:  # ties keep the smaller alpha (listed first)
                best = (err, alpha, l2, clf)
        val_error, alpha, l2, clf = best
        features = feature_fns[alpha]
        f_te = batched(features, x_te, batch)
        test_error = classify.error_rate(clf, f_te, data["y_test"])
        logreg.update(test_error=test_error, test_accuracy=1.0 - test_error, val_error=val_error, l2=l2)
        if is_ksparse:
            logreg["alpha"] = float(alpha)
    else:
        logreg["skipped"] = "unlabelled dataset: no classifier"
        alpha = float(model.alpha) if is_ksparse else None
        features = (lambda x: ksparse_features(model, x, alpha)) if is_ksparse else model.features
        f_te = batched(features, x_te, batch)
        if is_ksparse:
            logreg["alpha_note"] = "no labels to choose alpha on: the model's own alpha"

    # The model's reconstruction (training encoding; k units for ksparse); 0 for raw pixels.
    x_hat = batched(lambda x: model.decode(model.encode(x)), x_te, batch)
    result["recon_error"] = _mean_std(metrics.reconstruction_error(x_te, x_hat))
    result.update(measures(f_te, threshold))
    result["n_test"] = int(x_te.shape[0])
    if is_ksparse:
        result["units"] = ksparse_units(model, logreg["alpha"])
    result["logreg"] = logreg
    if result["hoyer"]["mean"] is None:
        result["hoyer"]["note"] = "one unit: Hoyer sparseness undefined"
    bad = _null_nonfinite(result)
    if bad:
        result["nonfinite"] = "not finite, written as null: " + ", ".join(bad)
    return result, histogram(torch.nan_to_num(f_te), hist_bins)


def _null_nonfinite(d: dict, prefix: str = "") -> list[str]:
    """Replace NaN/inf floats in a nested dict by None in place; return their dotted keys."""
    bad = []
    for k, v in d.items():
        if isinstance(v, dict):
            bad += _null_nonfinite(v, f"{prefix}{k}.")
        elif isinstance(v, float) and not math.isfinite(v):
            d[k] = None
            bad.append(prefix + k)
    return bad


def has_nan(obj) -> bool:
    """True if a nested dict/list holds a float NaN or inf anywhere."""
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(has_nan(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(has_nan(v) for v in obj)
    return False


# keys of hparams.json (stages/train.py) that describe the run, not the model
RUN_KEYS = ("dataset", "model", "seed", "in_dim")


def rebuild(hparams: dict, state_dict: dict | None = None):
    """The trained model described by a train stage's hparams.json, with its weights loaded."""
    from sae.models import build
    from sae.params import LOOP_KEYS
    model_params = {k: v for k, v in hparams.items() if k not in LOOP_KEYS and k not in RUN_KEYS}
    model = build(hparams["model"], hparams["in_dim"], hparams["hidden"], **model_params)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    return model.eval()


def trained_model_dir(dataset: str, model_id: str, models_dir: Path = Path("models")) -> Path:
    """models/<D>/<M>, once train@D-M has written model.pt and hparams.json (DataError otherwise)."""
    out = Path(models_dir) / dataset / model_id
    for name in ("model.pt", "hparams.json"):
        if not (out / name).is_file():
            raise DataError(f"{out / name}: missing; run `dvc repro train@{dataset}-{model_id}` first")
    return out


def load_trained(model_dir: Path, device: torch.device) -> tuple[dict, dict]:
    """(hparams, state_dict) of a trained model directory, tensors on `device`."""
    hparams = json.loads((Path(model_dir) / "hparams.json").read_text())
    return hparams, torch.load(Path(model_dir) / "model.pt", map_location=device, weights_only=True)


def stage_device(name: str, threads: int) -> torch.device:
    """params.yaml's `device`; on CPU with `threads` > 0, torch uses that many threads."""
    from sae.train import resolve_device
    device = resolve_device(name)
    if device.type == "cpu" and threads:
        torch.set_num_threads(threads)
    return device


def prepared_tensors(dataset: str, view: str, device: torch.device) -> tuple[dict, dict]:
    """(tensors, meta) of data/prepared/<D> in input view `view`: x_/y_ train/val/test on `device`
    (None where the split has no such array)."""
    from sae.data import prepared
    data = prepared.read(Path("data/prepared") / dataset, view)
    tensors = {k: (None if v is None else torch.from_numpy(v).to(device)) for k, v in data.items() if k != "meta"}
    return tensors, data["meta"]


def write_hist_csv(path: Path, hist: dict) -> None:
    """The hidden-activity histogram of evaluate() as CSV: bin_left, bin_right, bin_center, count."""
    import csv
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["bin_left", "bin_right", "bin_center", "count"])
        for lo, hi, c in zip(hist["left"], hist["right"], hist["count"]):
            writer.writerow([f"{lo:.6g}", f"{hi:.6g}", f"{(lo + hi) / 2:.6g}", c])
