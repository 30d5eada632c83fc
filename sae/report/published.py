"""The papers' published numbers (published.csv): paper, source, dataset, row, model, metric,
value, unit. `model` is a protocol model ref (`ksparse[k=40]`), or empty for a row no model
of ours reproduces (a ledger row says why); `metric` is a catalog metric, its `_std` (the
paper's spread over runs), or a hyper-parameter the paper prints (SETTING_METRICS).
"""
from __future__ import annotations

from dataclasses import dataclass

from sae.base import catalog as C
from sae.base.errors import DataError
from sae.report.results import Ref
from sae.report.settings import read_rows

PUBLISHED_COLUMNS = ("paper", "source", "dataset", "row", "model", "metric", "value", "unit")
# hyper-parameters printed among the results (000 Table I; 002's alpha chosen on validation)
SETTING_METRICS = ("beta", "rho", "weight_decay", "finetune_weight_decay", "level", "alpha")
STD = "_std"


@dataclass(frozen=True)
class Number:
    paper: str
    source: str
    dataset: str      # a paper dataset, or "any"
    row: str          # the row label as printed
    ref: Ref | None   # None: no model of ours reproduces the row
    metric: str
    value: float
    text: str         # the value as printed ("7.20")
    unit: str

    def show(self, std: "Number | None" = None) -> str:
        """'7.20%', or '98.05% ± 0.06' with the paper's std."""
        return f"{self.text}{self.unit}" + (f" ± {std.text}" if std else "")


def read_published(path) -> list[Number]:
    """published.csv, every row checked (DataError naming the row)."""
    out = []
    for i, r in enumerate(read_rows(path, PUBLISHED_COLUMNS), start=2):
        where = f"{path}:{i}"
        metric = r["metric"]
        if metric not in C.METRICS and metric.removesuffix(STD) not in C.METRICS and metric not in SETTING_METRICS:
            raise DataError(f"{where}: metric {metric!r} is not a catalog metric, its {STD}, or one of "
                            f"{', '.join(SETTING_METRICS)}")
        if r["dataset"] != "any" and r["dataset"] not in C.PAPERS[r["paper"]].datasets:
            raise DataError(f"{where}: {r['dataset']!r} is not a dataset of {r['paper']}")
        try:
            ref = Ref.parse(r["model"]) if r["model"].strip() else None
            value = float(r["value"])
        except ValueError as exc:
            raise DataError(f"{where}: {exc}") from None
        out.append(Number(r["paper"], r["source"], r["dataset"], r["row"], ref, metric, value, r["value"].strip(),
                          r["unit"]))
    return out


def select(numbers: list[Number], paper: str, source: str | None = None, dataset: str | None = None,
           metric: str | None = None) -> list[Number]:
    return [n for n in numbers if n.paper == paper and (source is None or n.source == source)
            and (dataset is None or n.dataset in (dataset, "any")) and (metric is None or n.metric == metric)]


def std_of(numbers: list[Number], n: Number) -> Number | None:
    """The paper's std printed beside a number (the `_std` row of the same cell)."""
    return next((x for x in numbers if x.paper == n.paper and x.source == n.source and x.dataset == n.dataset
                 and x.row == n.row and x.metric == n.metric + STD), None)
