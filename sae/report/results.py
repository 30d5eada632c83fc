"""This run's numbers, read from the stage outputs under the folders given as arguments.

    models_dir/<paper>/<dataset>/<model>/hparams.json, model.pt, stages.pt, live/plots/metrics/...
    metrics_dir/<paper>/<dataset>/<model>.json, <model>_hist.csv, <model>_finetune.json
    sweeps_dir/<paper>/<dataset>/<model>.csv
    prepared_dir/<dataset>/meta.json

`RunResults.value(paper, dataset, ref, metric)` answers "metric m of model ref": a `Value`
with every per-seed number (mean and std over seeds come from them), or the reason there is
none (a file missing or unreadable, a model not in this run's protocol, a k not trained).
A model ref is a protocol model name with an optional k-sweep variant: `ksparse`, `ksparse[k=40]`.
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from sae.base import stats

REF = re.compile(r"^(?P<name>\w+)(?:\[k=(?P<k>\d+)\])?(?::(?P<metric>\w+))?$")
# metrics of the evaluate JSON: their path of keys (logreg_accuracy is 100% minus the error)
EVAL_KEYS = {"recon_error": ("recon_error",), "gini": ("gini",), "hoyer": ("hoyer",), "ssd": ("ssd",),
             "activation_fraction": ("activation_fraction",), "dead_fraction": ("dead_fraction",),
             "logreg_test_error": ("logreg", "test_error"), "logreg_accuracy": ("logreg", "test_error"),
             "logreg_k_test_error": ("logreg", "k_test_error")}
# metrics of the finetune JSON: (kind, as an error rate)
FINETUNE_KEYS = {"shallow_finetune_error": ("shallow", True), "deep_finetune_error": ("deep", True),
                 "none_finetune_error": ("none", True), "shallow_finetune_accuracy": ("shallow", False),
                 "deep_finetune_accuracy": ("deep", False)}
# the fine-tuning kinds that only some models get: the protocol list that names them
FINETUNE_LISTS = {"deep": "deep_models", "none": "without_pretraining"}
# the columns of a sweep table this report reads (written by the sweep stages)
SWEEP_COLUMNS = ("model", "activation", "unit_norm", "coefficient", "seed", "activation_fraction",
                 "dead_fraction", "recon_error", "diverged", "eval_split", "n_eval", "hidden", "epochs", "train_rows",
                 "lr")
CURVES = "live/plots/metrics"   # dvclive's per-epoch curves under a model directory


@dataclass(frozen=True)
class Ref:
    """A model of a protocol, optionally one k of its k sweep, optionally with its own metric."""
    name: str
    k: int | None = None
    metric: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Ref":
        m = REF.match(text.strip())
        if not m:
            raise ValueError(f"bad model ref {text!r} (expected name, name[k=K] or name[k=K]:metric)")
        return cls(m["name"], int(m["k"]) if m["k"] else None, m["metric"])

    def __str__(self) -> str:
        return self.name + (f"[k={self.k}]" if self.k is not None else "")


@dataclass
class Value:
    """Per-seed values of one measure (None: not finite), or why there are none."""
    per_seed: list = field(default_factory=list)
    sample_std: float | None = None   # mean over seeds of the spread over test samples
    note: str | None = None

    @property
    def summary(self) -> dict:
        return stats.summary(self.per_seed)

    @property
    def ok(self) -> bool:
        return self.note is None and self.n > 0

    @property
    def mean(self):
        return self.summary["mean"]

    @property
    def std(self):
        return self.summary["std"]

    @property
    def n(self) -> int:
        return self.summary["n"]

    @property
    def finite(self) -> list[float]:
        return [v for v in self.per_seed if v is not None]


def missing(note: str) -> Value:
    return Value(note=note)


def _finite(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _dig(data, keys):
    for k in keys:
        if not isinstance(data, dict) or k not in data:
            return None
        data = data[k]
    return data


class RunResults:
    """What this run measured, for the protocols of `params` (sae.config.Params)."""

    def __init__(self, params, *, prepared_dir, models_dir, metrics_dir, sweeps_dir):
        self.params = params
        self.prepared_dir, self.models_dir = Path(prepared_dir), Path(models_dir)
        self.metrics_dir, self.sweeps_dir = Path(metrics_dir), Path(sweeps_dir)
        self._json: dict = {}

    # ------------------------------------------------------------ the protocol of this run
    def datasets(self, paper: str) -> list[str]:
        return list(self.params.protocol(paper).datasets)

    def models(self, paper: str) -> list[str]:
        return list(self.params.protocol(paper).models)

    def not_in_run(self, paper: str, dataset: str, name: str) -> str | None:
        """Why this run trains no `name` on `dataset` under `paper` (None when it does)."""
        p = self.params.protocol(paper)
        filters = getattr(p, "filters", None)
        if filters and dataset in filters.datasets and name in filters.models:
            return None
        if name not in p.models:
            return f"{name} is not in this run's {paper}.models"
        if dataset not in p.datasets:
            return f"{dataset} is not in this run's {paper}.datasets"
        return None

    # ------------------------------------------------------------ files
    def read_json(self, path: Path) -> tuple[dict | None, str | None]:
        """(data, None) or (None, why): a missing or unreadable file is a note, not a traceback."""
        path = Path(path)
        if path not in self._json:
            if not path.is_file():
                self._json[path] = (None, f"{path} is missing (the stage that writes it has not run)")
            else:
                try:
                    data = json.loads(path.read_text())
                    self._json[path] = (data, None) if isinstance(data, dict) else \
                        (None, f"{path} is not a JSON object; rerun the stage that writes it")
                except (OSError, ValueError) as exc:
                    self._json[path] = (None, f"{path} is unreadable ({type(exc).__name__}); rerun the stage "
                                              "that writes it")
        return self._json[path]

    def model_dir(self, paper: str, dataset: str, name: str) -> Path:
        return self.models_dir / paper / dataset / name

    def meta(self, dataset: str) -> dict | None:
        return self.read_json(self.prepared_dir / dataset / "meta.json")[0]

    def image_shape(self, dataset: str):
        shape = (self.meta(dataset) or {}).get("image_shape")
        return tuple(int(s) for s in shape) if isinstance(shape, list) and len(shape) == 3 else None

    def hparams(self, paper: str, dataset: str, name: str) -> tuple[dict | None, str | None]:
        """hparams.json of a trained model (sae.models.store checks it), or why there is none."""
        from sae.base.errors import DataError
        from sae.models import store
        why = self.not_in_run(paper, dataset, name)
        if why:
            return None, why
        key = self.model_dir(paper, dataset, name) / "hparams.json"
        if key not in self._json:
            try:
                self._json[key] = (store.read_hparams(key.parent), None)
            except DataError as exc:
                self._json[key] = (None, str(exc))
        return self._json[key]

    def variant(self, paper: str, dataset: str, ref: Ref) -> tuple[int | None, str | None]:
        """Index of ref's variant in the trained batch (0: the configuration itself), or why none."""
        if ref.k is None:
            return 0, None
        hp, why = self.hparams(paper, dataset, ref.name)
        if hp is None:
            return None, why
        ks = [v.get("k") for v in hp.get("variants") or [{}]]
        if ks and ks[0] is None:  # a configuration without a k sweep: its own k only
            ks = [hp.get("options", {}).get("k")]
        if ref.k in ks:
            return ks.index(ref.k), None
        trained = ", ".join(str(k) for k in ks if k is not None) or "none"
        return None, f"k={ref.k} is not among this run's {ref.name} k values ({trained})"

    def config_k(self, paper: str, dataset: str, name: str) -> int | None:
        hp, _ = self.hparams(paper, dataset, name)
        return (hp or {}).get("options", {}).get("k")

    def seed_labels(self, paper: str, dataset: str, ref: Ref) -> list[str]:
        """dvclive labels of ref's models, one per seed ('seed0', or 'k70/seed0' for a variant)."""
        from sae.models import store
        hp, _ = self.hparams(paper, dataset, ref.name)
        v, _ = self.variant(paper, dataset, ref)
        if hp is None or v is None:
            return []
        lay = store.layout_of(hp)
        return [lay.model_label(g) for g in lay.models_of(v)]

    def eval_entry(self, paper: str, dataset: str, ref: Ref) -> tuple[dict | None, str | None]:
        """The evaluate JSON of ref (its variant's part for a k of the sweep), or why none."""
        why = self.not_in_run(paper, dataset, ref.name)
        if why:
            return None, why
        path = self.metrics_dir / paper / dataset / f"{ref.name}.json"
        data, why = self.read_json(path)
        if data is None:
            return None, why
        v, why = self.variant(paper, dataset, ref)
        if v is None:
            return None, why
        if v == 0:
            return data, None
        entry = (data.get("variants") or {}).get(f"k={ref.k}")
        return (entry, None) if isinstance(entry, dict) else (None, f"{path} has no variant k={ref.k}")

    def finetune_json(self, paper: str, dataset: str, name: str, kind: str) -> tuple[dict | None, str | None]:
        """The `kind` part (shallow / deep / none) of a finetune JSON, or why there is none."""
        why = self.not_in_run(paper, dataset, name)
        if why:
            return None, why
        ft = self.params.protocol(paper).finetune
        if ft is None:
            return None, f"{paper} has no fine-tuning in this run"
        if kind not in ft.kinds:
            return None, f"{kind} is not in this run's {paper}.finetune.kinds"
        for attr in ("models", FINETUNE_LISTS.get(kind)):
            if attr and name not in getattr(ft, attr):
                return None, f"{name} is not in this run's {paper}.finetune.{attr}"
        path = self.metrics_dir / paper / dataset / f"{name}_finetune.json"
        data, why = self.read_json(path)
        if data is None:
            return None, why
        part = data.get(kind) if "skipped" not in data else data
        if not isinstance(part, dict):
            return None, f"{path} has no {kind} entry"
        for reason in ("skipped", "diverged"):
            if part.get(reason):
                return None, f"{kind} {reason}: {part[reason]} ({path})"
        return part, None

    # ------------------------------------------------------------ values
    def value(self, paper: str, dataset: str, ref: Ref | str, metric: str) -> Value:
        """Per-seed values of catalog metric `metric` for ref (percent metrics in %)."""
        ref = Ref.parse(ref) if isinstance(ref, str) else ref
        try:
            return self._value(paper, dataset, ref, metric)
        except (TypeError, AttributeError, ValueError) as exc:   # a file of the right name, another layout
            return missing(f"the {ref.name} results on {dataset} have an unexpected layout ({type(exc).__name__})")

    def _value(self, paper: str, dataset: str, ref: Ref, metric: str) -> Value:
        if metric in EVAL_KEYS:
            entry, why = self.eval_entry(paper, dataset, ref)
            if entry is None:
                return missing(why)
            if metric.startswith("logreg") and (entry.get("logreg") or {}).get("skipped"):
                return missing(entry["logreg"]["skipped"])
            s = _dig(entry, EVAL_KEYS[metric])
            if metric == "logreg_k_test_error" and s is None and isinstance(entry.get("logreg"), dict):
                return missing("no test error on the k training units (evaluate.alphas without 1)")
            if not isinstance(s, dict) or not isinstance(s.get("per_seed"), list):
                return missing(f"no {'.'.join(EVAL_KEYS[metric])} in the {ref.name} metrics file")
            per_seed = [_finite(v) for v in s["per_seed"]]
            if metric in ("logreg_test_error", "logreg_k_test_error"):
                per_seed = [None if v is None else 100.0 * v for v in per_seed]
            elif metric == "logreg_accuracy":
                per_seed = [None if v is None else 100.0 * (1.0 - v) for v in per_seed]
            v = Value(per_seed, _finite(s.get("sample_std")))
            return v if v.n else missing(f"{metric} is not finite for any seed ({entry.get('nonfinite', 'null')})")
        if metric in FINETUNE_KEYS:
            kind, as_error = FINETUNE_KEYS[metric]
            if ref.k is not None and ref.k != self.config_k(paper, dataset, ref.name):
                return missing(f"only the configuration (k={self.config_k(paper, dataset, ref.name)}) is fine-tuned, "
                               f"not k={ref.k}")
            part, why = self.finetune_json(paper, dataset, ref.name, kind)
            if part is None:
                return missing(why)
            acc = [_finite(v) for v in (part.get("test_accuracy") or {}).get("per_seed") or []]
            v = Value([None if a is None else 100.0 * ((1.0 - a) if as_error else a) for a in acc])
            return v if v.n else missing(f"no finite {kind} test accuracy for {ref.name}")
        raise KeyError(f"unknown metric {metric!r}")

    def chosen_alpha(self, paper: str, dataset: str, ref: Ref) -> Value:
        """alpha of alpha*k chosen on validation, per seed (ksparse, 002 sec. 2.2)."""
        entry, why = self.eval_entry(paper, dataset, ref)
        if entry is None:
            return missing(why)
        alphas = (entry.get("logreg") or {}).get("alpha")
        if not isinstance(alphas, list):
            return missing(f"the {ref.name} metrics file has no logreg.alpha")
        return Value([_finite(a) for a in alphas])

    def input_view(self, paper: str, dataset: str, ref: Ref) -> str | None:
        entry, _ = self.eval_entry(paper, dataset, ref)
        return (entry or {}).get("input")

    # ------------------------------------------------------------ curves, weights, histograms
    def curve(self, paper: str, dataset: str, name: str, curve: str, label: str | None = None) -> list | None:
        """A dvclive curve [(step, value)] (label: a per-model curve such as 'seed0'); None if absent."""
        base = self.model_dir(paper, dataset, name) / CURVES
        path = base / curve / f"{label}.tsv" if label else base / f"{curve}.tsv"
        if not path.is_file():
            return None
        out = []
        try:
            for line in path.read_text().splitlines()[1:]:
                parts = line.split("\t")
                value = _finite(float(parts[1])) if len(parts) > 1 else None
                out.append((int(float(parts[0])), value))
        except (OSError, ValueError):
            return None
        return out

    def encoder_weights(self, paper: str, dataset: str, name: str):
        """(W (G, M, D) numpy, hparams) of a trained batch, or (None, why)."""
        from sae.base.errors import DataError
        from sae.models import store
        hp, why = self.hparams(paper, dataset, name)
        if hp is None:
            return None, why
        try:
            state = store.read_weights(self.model_dir(paper, dataset, name))
        except DataError as exc:
            return None, str(exc)
        if "W" not in state:
            return None, f"{self.model_dir(paper, dataset, name) / 'model.pt'} holds no encoder weights W"
        return state["W"].float().numpy(), hp

    def snapshots(self, paper: str, dataset: str, name: str):
        """The encoder weights at the end of each schedule stage [{"epoch", "alpha", "W"}], or (None, why)."""
        from sae.base.errors import DataError
        from sae.models import store
        why = self.not_in_run(paper, dataset, name)
        if why:
            return None, why
        try:
            return store.load_snapshots(self.model_dir(paper, dataset, name)), None
        except DataError as exc:
            return None, str(exc)

    def histogram(self, paper: str, dataset: str, ref: Ref):
        """(left, right, count) lists of ref's hidden-activity histogram (first seed), or (None, why)."""
        why = self.not_in_run(paper, dataset, ref.name)
        v, why = (None, why) if why else self.variant(paper, dataset, ref)
        if v is None:
            return None, why
        path = self.metrics_dir / paper / dataset / f"{ref.name}_hist.csv"
        label = "" if v == 0 else f"k={ref.k}"
        if not path.is_file():
            return None, f"{path} is missing (the evaluate stage has not run)"
        try:
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if (r.get("variant") or "") == label]
            hist = ([float(r["bin_left"]) for r in rows], [float(r["bin_right"]) for r in rows],
                    [float(r["count"]) for r in rows])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"{path} is unreadable ({type(exc).__name__})"
        return (hist, None) if rows else (None, f"{path} has no rows for variant {label or '(the configuration)'}")

    def sweep(self, paper: str, dataset: str, model: str):
        """The sweep table of (dataset, model) as a DataFrame, or (None, why)."""
        import pandas as pd
        p = self.params.protocol(paper)
        if model not in p.models:
            return None, f"{model} is not in this run's {paper}.models"
        path = self.sweeps_dir / paper / dataset / f"{model}.csv"
        if not path.is_file():
            return None, f"{path} is missing (its sweep stage has not run)"
        try:
            df = pd.read_csv(path)
        except (OSError, ValueError) as exc:
            return None, f"{path} is unreadable ({type(exc).__name__})"
        lacking = [c for c in SWEEP_COLUMNS if c not in df.columns]
        if lacking:
            return None, f"{path} lacks columns {', '.join(lacking)}"
        df["unit_norm"] = df["unit_norm"].astype(str).str.lower().isin(("true", "1"))
        for c in ("coefficient", "activation_fraction", "dead_fraction", "recon_error"):
            df[c] = pd.to_numeric(df[c], errors="coerce")   # a damaged cell is a missing value, not a crash
        return df, None

