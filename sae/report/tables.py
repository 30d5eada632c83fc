"""This run's numbers and the papers' published numbers, side by side.

`RunResults` reads the files the pipeline writes (no path is hard-coded: the folders are
arguments) and answers "value of metric m for model ref r on dataset d", with the reason
when there is none. `Published` reads sae/report/published.csv. `Table` renders a
markdown pipe table (readable on a code-hosting site and in a terminal) with a caption
and footnotes; a missing value is always "—" with a footnote, never NaN.

Model refs: a registry id (`ksparse`), `ksparse@k=40` (the k sweep model at k=40), and
`none` (the shallow network trained from random weights: the `none` entry of
NONE_SOURCE's fine-tuning file, 002 Tables 3-4 "Without Pre-Training").
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DASH = "—"

# ---------------------------------------------------------------- datasets

# The papers' datasets (published.csv `dataset` column) and the run datasets that measure
# them, best first: the real set, then the offline stand-in (DESIGN.md sec. 2).
MEASURED_BY = {
    "mnist": ("mnist", "mnist5k"),
    "norb": ("norb",),
    "svhn": ("svhn",),
    "cifar10": ("cifar10",),
    "cifar10_patches": ("cifar10_patches", "patches"),
    "optdigits": ("optdigits_uci", "optdigits"),
}
PAPER_DATASET_NAME = {"mnist": "MNIST", "norb": "NORB", "svhn": "SVHN", "cifar10": "CIFAR-10",
                      "cifar10_patches": "CIFAR-10 8x8 patches", "optdigits": "OPTDIGITS"}
RUN_DATASET_LABEL = {
    "mnist5k": "mnist5k (5,000 MNIST digits: stand-in for MNIST)",
    "optdigits": "optdigits (scikit-learn's 1,797 UCI digits: stand-in for OPTDIGITS)",
    "patches": "patches (8x8 patches of scikit-learn's photos: stand-in for CIFAR-10 patches)",
    "mnist": "mnist (MNIST)",
    "fashion": "fashion (Fashion-MNIST: not used by the papers)",
    "norb": "norb (small NORB)",
    "cifar10_patches": "cifar10_patches (CIFAR-10 8x8 patches)",
    "cifar10": "cifar10 (CIFAR-10)",
    "svhn": "svhn (SVHN, grayscale)",
    "optdigits_uci": "optdigits_uci (UCI OPTDIGITS)",
}
# The datasets of each paper's experiments (seed files).
PAPER_DATASETS = {
    "000": ("mnist", "norb", "svhn"),
    "001": ("mnist", "cifar10", "optdigits"),
    "002": ("mnist", "norb", "cifar10_patches"),
    "003": ("mnist", "cifar10_patches"),
}


def run_label(dataset: str) -> str:
    return RUN_DATASET_LABEL.get(dataset, dataset)


def paper_name(paper_dataset: str) -> str:
    return PAPER_DATASET_NAME.get(paper_dataset, paper_dataset)


def measured_by(paper_dataset: str, run_datasets) -> list[str]:
    """Run datasets (in `run_datasets`) that measure a paper dataset: the real set first."""
    return [d for d in MEASURED_BY.get(paper_dataset, (paper_dataset,)) if d in run_datasets]


def paper_dataset_of(run_dataset: str) -> str | None:
    for paper_ds, ours in MEASURED_BY.items():
        if run_dataset in ours:
            return paper_ds
    return None


# ---------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Metric:
    label: str
    unit: str           # "%" or "" (unitless) or a phrase
    better: str | None  # "lower" | "higher" | None (hyper-parameters)
    digits: int = 3     # significant digits (unitless) or decimals (%)


METRICS = {
    "recon_error": Metric("reconstruction error (MSE per input dimension)", "", "lower", 3),
    "gini": Metric("Gini index of the codes", "", "higher", 3),
    "hoyer": Metric("Hoyer sparseness of the codes", "", "higher", 3),
    "ssd": Metric("sparsity standard deviation (SSD)", "", "lower", 3),
    "activation_fraction": Metric("activation fraction", "", None, 3),
    "dead_fraction": Metric("dead-unit fraction", "", None, 3),
    "logreg_test_error": Metric("logistic-regression test error", "%", "lower", 2),
    "logreg_accuracy": Metric("classification accuracy (softmax on the codes)", "%", "higher", 2),
    "shallow_finetune_error": Metric("shallow fine-tuning test error", "%", "lower", 2),
    "deep_finetune_error": Metric("deep fine-tuning test error", "%", "lower", 2),
    "shallow_finetune_accuracy": Metric("shallow fine-tuning test accuracy", "%", "higher", 2),
    "deep_finetune_accuracy": Metric("deep fine-tuning test accuracy", "%", "higher", 2),
}
# published.csv metric names that are (mean, std) halves of one of ours
PUBLISHED_PAIRS = {"deep_finetune_accuracy_mean": "deep_finetune_accuracy",
                   "deep_finetune_accuracy_std": "deep_finetune_accuracy"}


def fmt_number(v: float, digits: int = 3, percent: bool = False) -> str:
    """Percents with `digits` decimals; other numbers with `digits` significant digits."""
    if v is None or not math.isfinite(v):
        raise ValueError("fmt_number needs a finite number")
    return f"{v:.{digits}f}" if percent else f"{v:.{digits}g}"


def fmt_param(v) -> str:
    """A hyper-parameter value as written in params.yaml."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return np.format_float_positional(v, trim="-") if v != 0 else "0"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt_param(x) for x in v) + "]"
    return str(v)


# ---------------------------------------------------------------- values


@dataclass
class Value:
    """One number of this run (or why there is none)."""
    mean: float | None = None
    std: float | None = None
    note: str | None = None      # why mean (or std) is missing
    std_note: str | None = None

    @property
    def ok(self) -> bool:
        return self.mean is not None and math.isfinite(self.mean)


def _finite(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def parse_ref(ref: str) -> tuple[str, int | None]:
    """'ksparse@k=40' -> ('ksparse', 40); 'ae' -> ('ae', None)."""
    m = re.fullmatch(r"(\w+)@k=(\d+)", ref)
    return (m[1], int(m[2])) if m else (ref, None)


NONE_SOURCE = "ksparse"  # whose fine-tuning file holds the "without pre-training" network


class RunResults:
    """What this run measured. Layout (as the stages write it):

    metrics_dir/<D>/<M>.json, <M>_hist.csv, <M>_finetune.json   (evaluate@D-M, finetune@D-M)
    models_dir/<D>/<M>/hparams.json, model.pt, stages.pt         (train@D-M)
    ksweep_dir/<D>/k<k>/metrics.json, hist.csv, hparams.json, model.pt (ksweep@D-k)
    """

    def __init__(self, metrics_dir, models_dir, *, datasets, models, ksweep_dir=None,
                 ksweep_datasets=(), ksweep_k=(), prepared_dir=None):
        self.metrics_dir, self.models_dir = Path(metrics_dir), Path(models_dir)
        self.prepared_dir = Path(prepared_dir) if prepared_dir else None
        self.ksweep_dir = Path(ksweep_dir) if ksweep_dir else None
        self.datasets, self.models = list(datasets), list(models)
        self.ksweep_datasets, self.ksweep_k = list(ksweep_datasets), list(ksweep_k)
        self._cache: dict = {}

    # files ---------------------------------------------------------------
    def _json(self, path: Path):
        if path not in self._cache:
            self._cache[path] = _read_json(path)
        return self._cache[path]

    def ksweep_path(self, dataset: str, k: int) -> Path:
        return self.ksweep_dir / dataset / f"k{k}"

    def missing_reason(self, dataset: str, ref: str) -> str | None:
        """Why this run has no files for (dataset, ref); None when it should have them."""
        if not ref:
            return "not in the model registry (no model id in published.csv)"
        if dataset not in self.datasets:
            return f"{dataset} is not in this run's `train_datasets`"
        model, k = parse_ref(ref)
        if model == "none":
            return None if NONE_SOURCE in self.models else f"{NONE_SOURCE} is not in this run's `models`"
        if model not in self.models and k is None:
            return f"{model} is not in this run's `models`"
        if k is not None:
            if self.ksweep_dir is None or dataset not in self.ksweep_datasets:
                return f"{dataset} is not in `ksweep.datasets` (the k sweep stages)"
            if k not in self.ksweep_k:
                return f"k={k} is not in `ksweep.k`"
        return None

    def eval_json(self, dataset: str, ref: str) -> tuple[dict | None, str]:
        model, k = parse_ref(ref)
        path = (self.ksweep_path(dataset, k) / "metrics.json" if k is not None
                else self.metrics_dir / dataset / f"{model}.json")
        return self._json(path), str(path)

    def finetune_json(self, dataset: str, model: str) -> tuple[dict | None, str]:
        path = self.metrics_dir / dataset / f"{model}_finetune.json"
        return self._json(path), str(path)

    def hparams(self, dataset: str, ref: str) -> dict | None:
        model, k = parse_ref(ref)
        if model == "none":
            model = NONE_SOURCE
        path = (self.ksweep_path(dataset, k) if k is not None else self.models_dir / dataset / model) / "hparams.json"
        return self._json(path)

    def hist_path(self, dataset: str, ref: str) -> Path:
        model, k = parse_ref(ref)
        return (self.ksweep_path(dataset, k) / "hist.csv" if k is not None
                else self.metrics_dir / dataset / f"{model}_hist.csv")

    def model_path(self, dataset: str, ref: str) -> Path:
        model, k = parse_ref(ref)
        return (self.ksweep_path(dataset, k) if k is not None else self.models_dir / dataset / model) / "model.pt"

    # values --------------------------------------------------------------
    def value(self, dataset: str, ref: str, metric: str) -> Value:
        """Metric of (dataset, model ref); percent metrics in %, as published.csv."""
        why = self.missing_reason(dataset, ref)
        if why:
            return Value(note=why)
        model, k = parse_ref(ref)
        if metric in ("recon_error", "gini", "hoyer", "ssd", "activation_fraction", "dead_fraction",
                      "logreg_test_error", "logreg_accuracy"):
            if model == "none":
                return Value(note="the untrained network has no features")
            data, path = self.eval_json(dataset, ref)
            if data is None:
                return Value(note=f"{path} is missing (evaluate stage not run?)")
            if metric in ("logreg_test_error", "logreg_accuracy"):
                lr = data.get("logreg") or {}
                key = "test_error" if metric == "logreg_test_error" else "test_accuracy"
                v = _finite(lr.get(key))
                if v is None:
                    return Value(note=lr.get("skipped") or data.get("nonfinite") or f"no logreg.{key} in {path}")
                return Value(100.0 * v, None, std_note="one classifier: no spread over test samples")
            entry = data.get(metric)
            if isinstance(entry, dict):
                mean, std = _finite(entry.get("mean")), _finite(entry.get("std"))
                if mean is None:
                    return Value(note=entry.get("note") or data.get("nonfinite") or f"{metric} is null in {path}")
                return Value(mean, std)
            v = _finite(entry)
            if v is None:
                return Value(note=data.get("nonfinite") or f"{metric} is null in {path}")
            return Value(v, None, std_note=f"{metric} is one number per test set")
        if metric in ("shallow_finetune_error", "deep_finetune_error",
                      "shallow_finetune_accuracy", "deep_finetune_accuracy"):
            if k is not None:
                return Value(note="the k sweep models are not fine-tuned")
            kind = "shallow" if metric.startswith("shallow") else "deep"
            source = model
            if model == "none":
                source, kind = NONE_SOURCE, "none"
            data, path = self.finetune_json(dataset, source)
            if data is None:
                return Value(note=f"{path} is missing (finetune stage not run?)")
            if data.get("skipped"):
                return Value(note=data["skipped"])
            entry = data.get(kind) or {}
            mean = _finite(entry.get("mean"))
            if mean is None:
                why = entry.get("skipped") or entry.get("diverged") or f"{kind}.mean is null in {path}"
                return Value(note=why)
            std = _finite(entry.get("std"))
            std_note = None if std is not None else (
                "one fine-tuning seed (`finetune.seeds`): no std" if data.get("n_seeds") == 1 else "no std in the file")
            if metric.endswith("error"):
                return Value(100.0 * (1.0 - mean), None if std is None else 100.0 * std, std_note=std_note)
            return Value(100.0 * mean, None if std is None else 100.0 * std, std_note=std_note)
        raise KeyError(f"unknown metric {metric!r}")

    def input_view(self, dataset: str, ref: str) -> str | None:
        """The input view the model was trained and measured in (metrics file, else hparams)."""
        ev, _ = self.eval_json(dataset, ref) if parse_ref(ref)[0] != "none" else (None, "")
        hp = self.hparams(dataset, ref) or {}
        return (ev or {}).get("input") or hp.get("input")

    def view_class(self, dataset: str, view: str | None) -> str | None:
        """Views that give the same arrays compare: `unit` is `pixels` when the pixels are already
        in [0, 1] (sae.data.prepared.input_view), which hparams' image range tells."""
        if view == "unit" and self.pixels_in_unit_range(dataset):
            return "pixels"
        return view

    def pixels_in_unit_range(self, dataset: str) -> bool:
        meta = self._json(self.prepared_dir / dataset / "meta.json") if self.prepared_dir else None
        st = (meta or {}).get("stats") or {}
        lo, hi = st.get("x_train_min"), st.get("x_train_max")
        return lo is not None and hi is not None and lo >= 0.0 and hi <= 1.0

    def effective_hparams(self, dataset: str, ref: str) -> dict | None:
        """Every hyper-parameter the model was built with: the registry defaults overridden by
        the run's hparams.json (hparams.json lists only what params.yaml set)."""
        hp = self.hparams(dataset, ref)
        if hp is None:
            return None
        from sae.models.registry import CORE, REGISTRY
        model = hp.get("model", parse_ref(ref)[0])
        spec = REGISTRY.get(model)
        base = {} if spec is None else {**CORE, **spec.defaults}
        return {**base, **hp}


# ---------------------------------------------------------------- published numbers


PUBLISHED_COLUMNS = ("paper", "source", "dataset", "row", "model", "metric", "value", "unit")


class Published:
    """sae/report/published.csv: one row per published number, with its seed file and table."""

    def __init__(self, path):
        self.path = Path(path)
        with open(self.path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in PUBLISHED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                from sae.errors import DataError
                raise DataError(f"{self.path}: missing columns {', '.join(missing)}")
            self.rows = [dict(r) for r in reader]
        for r in self.rows:
            r["value_str"] = r["value"].strip()  # as printed in the paper (keeps "7.20")
            r["value"] = float(r["value"])

    def select(self, paper: str, source: str, dataset: str | None = None, metric: str | None = None):
        return [r for r in self.rows if r["paper"] == paper and r["source"] == source
                and (dataset is None or r["dataset"] == dataset) and (metric is None or r["metric"] == metric)]

    def datasets(self, paper: str, source: str) -> list[str]:
        return list(dict.fromkeys(r["dataset"] for r in self.rows if r["paper"] == paper and r["source"] == source))


# ---------------------------------------------------------------- markdown


@dataclass
class Table:
    """A markdown table with a caption and footnotes. Cells are strings; `note(text)` returns
    the marker "(a)", "(b)" ... of a footnote (one marker per distinct text)."""
    caption: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)   # lines printed under the footnotes

    def note(self, text: str) -> str:
        if text not in self.notes:
            self.notes.append(text)
        return f"({chr(ord('a') + self.notes.index(text))})" if len(self.notes) <= 26 else f"({self.notes.index(text) + 1})"

    def missing(self, why: str) -> str:
        return f"{DASH} {self.note(why)}"

    def add(self, *cells) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        return "\n".join([self.caption, "", pipe_table(self.columns, self.rows), ""]
                         + ([f"{self._marker(i)} {t}" for i, t in enumerate(self.notes)] + [""] if self.notes else [])
                         + ([*self.after, ""] if self.after else []))

    def _marker(self, i: int) -> str:
        return f"({chr(ord('a') + i)})" if len(self.notes) <= 26 else f"({i + 1})"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def pipe_table(columns, rows) -> str:
    """A GitHub-flavoured markdown table with padded columns (aligned in a terminal too)."""
    cells = [[_cell(c) for c in columns]] + [[_cell(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
