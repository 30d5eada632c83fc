"""The k sweep of paper 002 (sec. 4.3, Figs. 1-3, Table 1 rows k = 10, 25, 40, 70):
the `ksparse` model of a dataset retrained with only k changed.

The config is the resolved `ksparse` config (sae.params.model_config: optim < train.<D> <
model.ksparse < model.ksparse.datasets.<D>) with k replaced; k_start is raised to k when k is
above it (the schedule of 002 sec. 4.2.1 only ever lowers k). Training goes through the one
loop (sae.train.train_model) and the features through sae.evaluate, so a sweep point at the
model's own k gives exactly the `ksparse` model and its metrics.
"""
from __future__ import annotations

import json
from pathlib import Path

from sae.errors import ParamError
from sae.params import check_keys, check_prepared

KEYS = ("datasets", "k")


def check_config(params: dict) -> dict:
    """Validate the `ksweep` group: {datasets: [ids of `datasets`], k: [distinct integers >= 1]}."""
    cfg = check_keys("ksweep", params.get("ksweep"), KEYS)
    datasets = cfg["datasets"]
    if not isinstance(datasets, list):
        raise ParamError(f"ksweep.datasets={datasets!r}: expected a list of dataset ids")
    check_prepared("ksweep.datasets", datasets, params)
    ks = cfg.get("k")
    if not isinstance(ks, list) or not ks or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1
                                                     for k in ks):
        raise ParamError(f"ksweep.k={ks!r}: expected a non-empty list of integers >= 1")
    if len(set(ks)) != len(ks):
        raise ParamError(f"ksweep.k={ks!r}: repeated value")
    return {"datasets": list(datasets), "k": list(ks)}


def sweep_model_config(params: dict, dataset: str, k: int) -> dict:
    """The resolved ksparse config of `dataset` with k replaced (k_start raised to k if below)."""
    from sae.params import model_config
    cfg = dict(model_config(params, dataset, "ksparse"))
    hidden = cfg["hidden"]
    if k > hidden:
        raise ParamError(f"ksweep.k: {k} exceeds train.{dataset}.hidden={hidden}")
    from sae.models.registry import REGISTRY
    k_start = cfg.get("k_start", REGISTRY["ksparse"].defaults["k_start"])
    cfg["k"] = k
    cfg["k_start"] = max(k_start, k)
    return cfg


def write_outputs(out_dir: Path, hparams: dict, state_dict, result: dict, hist: dict) -> None:
    """model.pt, hparams.json, metrics.json and hist.csv: the formats of the train and evaluate
    stages (models/<D>/<M>/, metrics/<D>/<M>.json, metrics/<D>/<M>_hist.csv)."""
    import torch
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, out_dir / "model.pt")
    (out_dir / "hparams.json").write_text(json.dumps(hparams, indent=2) + "\n")
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    from sae.evaluate import write_hist_csv
    write_hist_csv(out_dir / "hist.csv", hist)


TABLE_COLUMNS = ("dataset", "model", "k", "logreg_test_error", "alpha", "recon_error", "hoyer", "gini",
                 "activation_fraction", "dead_fraction")


def metrics_row(metrics_path: Path, hparams_path: Path) -> dict | None:
    """k and the headline numbers of one ksparse model (evaluate's metrics JSON + its
    hparams.json); None when either file is missing or unreadable (its stage has not run)."""
    try:
        m = json.loads(Path(metrics_path).read_text())
        k = json.loads(Path(hparams_path).read_text())["k"]
    except (OSError, ValueError, KeyError):
        return None
    lr = m.get("logreg") or {}
    return {"k": k, "logreg_test_error": None if lr.get("test_error") is None else 100.0 * lr["test_error"],
            "alpha": lr.get("alpha"), "recon_error": (m.get("recon_error") or {}).get("mean"),
            "hoyer": (m.get("hoyer") or {}).get("mean"), "gini": (m.get("gini") or {}).get("mean"),
            "activation_fraction": m.get("activation_fraction"), "dead_fraction": m.get("dead_fraction")}


def table_rows(dataset: str, ks, ksweep_dir: Path, metrics_dir: Path | None = None,
               models_dir: Path | None = None) -> list[dict]:
    """Rows of TABLE_COLUMNS by k: one per sweep point whose stage has run (model `ksparse@k=K`)
    and, given metrics_dir and models_dir, the `ksparse` model itself at its own k when no
    sweep point has that k (the point at model.ksparse.k)."""
    rows = []
    for k in ks:
        out = Path(ksweep_dir) / dataset / f"k{k}"
        row = metrics_row(out / "metrics.json", out / "hparams.json")
        if row is not None:
            rows.append({"dataset": dataset, "model": f"ksparse@k={k}", **row})
    if metrics_dir is not None and models_dir is not None:
        own = metrics_row(Path(metrics_dir) / dataset / "ksparse.json", Path(models_dir) / dataset / "ksparse" / "hparams.json")
        if own is not None and own["k"] not in {r["k"] for r in rows}:
            rows.append({"dataset": dataset, "model": "ksparse", **own})
    return sorted(rows, key=lambda r: r["k"])
