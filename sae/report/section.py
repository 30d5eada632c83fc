"""What every paper's section shares: its heading and citation, captions naming the protocol
and the dataset, "this run" cells (mean ± std over seeds, n), tables of published numbers
beside this run's, claim verdict lines, and the closing tables: published settings, the
deviations ledger, this run against the paper-scale protocol, convergence.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sae.base import catalog as C
from sae.base.errors import ParamError
from sae.report import published as PUB
from sae.report import settings as S
from sae.report.claims import Verdict
from sae.report.convergence import NOT_TRAINED, convergence
from sae.report.render import DASH, Doc, Table, fmt_metric, fmt_value, seed_spread, spread
from sae.report.results import Ref, RunResults, Value
from sae.report.scale import reductions


@dataclass
class Context:
    """What the sections read and where they write."""
    params: object
    results: RunResults
    published: list
    settings: list[dict]
    ledger: list[dict]
    verdicts: list[Verdict]
    paper_scale: object | None        # Params composed with scale=paper (None: paper_scale_error says why)
    paper_scale_error: str | None
    doc: Doc
    fig_dir: Path
    tables_dir: Path
    tables: list[Path] = field(default_factory=list)   # derived CSVs written to tables_dir
    headline: list[tuple] = field(default_factory=list)  # (paper, source, dataset, row, paper's, this run's)
    root: Path = Path(".")                               # the repository the run ran in (provenance)


def show_targets(targets: list[S.Target]) -> str:
    """Resolved values: one value, or each with the datasets / models it applies to."""
    by_value: dict[str, list[str]] = {}
    datasets = {t.dataset for t in targets}
    for t in targets:
        where = t.model if len(datasets) == 1 and t.model else "/".join(x for x in (t.dataset, t.model) if x)
        by_value.setdefault(fmt_value(t.value), []).append(where)
    if len(by_value) == 1:
        return next(iter(by_value))
    return "; ".join(f"{v} ({', '.join(dict.fromkeys(w))})" for v, w in by_value.items())


class Section:
    """One paper's part of the report: the writing helpers its module (amini2018.py, ...) calls."""

    def __init__(self, ctx: Context, paper: str):
        self.ctx, self.paper, self.info = ctx, paper, C.PAPERS[paper]
        self.r: RunResults = ctx.results
        self.doc: Doc = ctx.doc

    # ------------------------------------------------------------ writing
    def add(self, *lines: str) -> None:
        self.doc.add(*lines)

    def table(self, t: Table) -> None:
        self.doc.table(t)

    def figure(self, name: str, dataset: str) -> Path:
        return self.ctx.fig_dir / f"{self.paper}_{name}_{dataset}.png"

    def header(self, what: str) -> None:
        confirmed = f" ({self.info.confirmed})" if self.info.confirmed else ""
        self.add(f"## {self.paper}: {self.info.short}", "", f"{self.info.citation}.{confirmed}", "", what, "",
                 f"Protocol: `{self.paper}` at scale `{self.ctx.params.scale}`; datasets of this run: "
                 + (", ".join(C.DATASETS[d].label for d in self.datasets()) or "none") + ".", "")

    # ------------------------------------------------------------ datasets and captions
    def datasets(self) -> list[str]:
        return self.r.datasets(self.paper)

    def paper_dataset(self, dataset: str) -> str | None:
        """The paper dataset `dataset` stands in for, when it is one of this paper's."""
        paper_ds = C.stands_in_for(dataset)
        return paper_ds if paper_ds in self.info.datasets else None

    def dataset_sentence(self, dataset: str) -> str:
        paper_ds = self.paper_dataset(dataset)
        if paper_ds is None:
            return (f"Dataset: {C.DATASETS[dataset].label}, which stands in for no dataset of this paper: the paper "
                    "column has no numbers for it.")
        return f"Dataset: {C.DATASETS[dataset].label}; the paper column is the paper's {C.PAPER_DATASETS[paper_ds]}."

    def caption(self, label: str, what: str, dataset: str) -> str:
        return f"**{label} ({self.paper}).** {what} Protocol: `{self.paper}`, scale `{self.ctx.params.scale}`. " \
               + self.dataset_sentence(dataset)

    # ------------------------------------------------------------ cells
    def cell(self, t: Table, v: Value, metric: str, sample: bool = False) -> str:
        """'mean ± std (n=k)' over seeds; `sample` adds the spread over test samples."""
        if not v.ok:
            return t.missing(v.note or "not measured")
        out = seed_spread(v.mean, v.std, v.n, metric)
        if sample and v.sample_std is not None:
            out += f"; test-sample std {fmt_metric(v.sample_std, metric)}"
        return out

    def model_label(self, dataset: str, ref: Ref, metric: str = "") -> str:
        k = ref.k if ref.k is not None else self.r.config_k(self.paper, dataset, ref.name)
        label = f"{ref.name} (k={k})" if k is not None else ref.name
        return label + (": its network from random weights" if metric.startswith("none") else "")

    def variants(self, dataset: str, model: str) -> list[Ref]:
        """Refs of every model of `model`'s trained batch: one per k of a k sweep, else the model."""
        hp, _ = self.r.hparams(self.paper, dataset, model)
        ks = [v.get("k") for v in (hp or {}).get("variants") or []]
        return [Ref(model, k) for k in ks] if ks and None not in ks else [Ref(model)]

    def verdict_lines(self, ids, dataset: str | None = None) -> list[str]:
        return [f"- Claim `{v.claim.id}` ({v.claim.section}): **{v.status}** {v.where}: {v.evidence}"
                for v in self.ctx.verdicts if v.claim.id in ids and v.dataset in (dataset, None)]

    # ------------------------------------------------------------ published numbers beside ours
    def published_table(self, label: str, what: str, dataset: str, sources: dict[str, str],
                        extra: list[Ref] = ()) -> Table:
        """The rows of the paper's table for `dataset`'s paper dataset (sources: paper dataset ->
        published.csv source; a dataset of none takes the first one's rows), each with the paper's
        number and this run's, then the `extra` refs of this run that the table lacks."""
        paper_ds = C.stands_in_for(dataset)
        template = paper_ds if paper_ds in sources else next(iter(sources))
        source = sources[template]
        numbers = [n for n in PUB.select(self.ctx.published, self.paper, source, template)
                   if not n.metric.endswith(PUB.STD)]
        metrics = list(dict.fromkeys(n.metric for n in numbers))
        cols = ["paper row", "model (this run)"] + (["measure"] if len(metrics) > 1 else []) + ["paper", "this run"]
        rows_of = "" if paper_ds in sources else f" The rows are those of {source} ({C.PAPER_DATASETS[template]})."
        t = Table(self.caption(label, what + rows_of, dataset), cols)
        pairs, covered = [], set()
        for n in numbers:
            paper = n.show(PUB.std_of(self.ctx.published, n)) if paper_ds in sources else \
                t.missing(f"the paper has no {source} numbers for {C.PAPER_DATASETS[paper_ds]}")
            if n.ref is None:
                why = t.missing("quoted by the paper from other work, not reproduced (deviations ledger)")
                model, run = why, why
            else:
                covered.add((n.ref.name, self.r.variant(self.paper, dataset, n.ref)[0]))
                v = self.r.value(self.paper, dataset, n.ref, n.metric)
                model, run = self.model_label(dataset, n.ref, n.metric), self.cell(t, v, n.metric)
                if v.ok and paper_ds in sources:
                    pairs.append((n.row, n.value, v.mean))
                    self.ctx.headline.append((self.paper, source, dataset, n.row, paper, run))
            t.add(n.row, model, *([C.METRICS[n.metric].label] if len(metrics) > 1 else []), paper, run)
        for ref in extra:
            if (ref.name, self.r.variant(self.paper, dataset, ref)[0]) in covered:
                continue
            v = self.r.value(self.paper, dataset, ref, metrics[0])
            if v.ok:
                t.add("(not in the paper's table)", self.model_label(dataset, ref),
                      *([C.METRICS[metrics[0]].label] if len(metrics) > 1 else []),
                      t.missing("the paper has no row for this model"), self.cell(t, v, metrics[0]))
        if len(metrics) == 1:
            t.after = [ordering_line(pairs, C.METRICS[metrics[0]].better)]
        return t

    # ------------------------------------------------------------ closing tables
    def closing(self, convergence_refs: dict[str, list[Ref]] | None) -> None:
        """Published settings, deviations, this run against the paper scale, convergence."""
        self.settings_table()
        self.ledger_table()
        self.reductions_table()
        if convergence_refs is not None:
            self.convergence_table(convergence_refs)

    def _why_none(self, row_dataset: str, row_model: str) -> str:
        p = self.ctx.params.protocol(self.paper)
        if row_model != S.ANY and row_model not in getattr(p, "models", []):
            return f"{row_model} is not in this run's {self.paper}.models"
        if row_dataset != S.ANY and not any(S.matches(d, row_dataset) for d in p.datasets):
            return f"no dataset of this run stands in for {C.PAPER_DATASETS.get(row_dataset, row_dataset)}"
        return "no stage of this run uses it"

    def _resolved(self, t: Table, params, key: str, dataset: str = S.ANY, model: str = S.ANY):
        """(targets, cell): what `key` resolves to in `params` and how a cell shows it."""
        parts = key.split(".")
        if params is self.ctx.params and len(parts) == 2 and parts[0] == "model" \
                and parts[1] not in self.r.models(self.paper):
            return [], t.missing(f"{parts[1]} is not in this run's {self.paper}.models")
        try:
            targets = S.effective(params, self.paper, key, dataset, model)
        except ParamError as exc:
            return [], t.missing(str(exc))
        return targets, show_targets(targets) if targets else t.missing(self._why_none(dataset, model))

    def settings_table(self) -> None:
        self.add("### Published settings", "")
        t = Table(f"**Published settings ({self.paper}).** The paper's hyper-parameters (sae/report/settings.csv), "
                  "the value the paper-scale protocol resolves for them (a difference has a row in the deviations "
                  "below) and the value this run resolves.",
                  ["setting", "where", "source", "paper", "protocol (scale=paper)", "this run"])
        for r in (r for r in self.ctx.settings if r["paper"] == self.paper):
            where = ", ".join(x for x in (C.PAPER_DATASETS.get(r["dataset"], ""),
                                          "" if r["model"] == S.ANY else r["model"]) if x)
            if self.ctx.paper_scale is None:
                protocol = t.missing(f"the paper-scale protocol is unavailable: {self.ctx.paper_scale_error}")
            else:
                targets, protocol = self._resolved(t, self.ctx.paper_scale, r["key"], r["dataset"], r["model"])
                if any(not S.same(S.parse_value(r["value"]), x.value) for x in targets):
                    protocol += " (deviates: see the ledger)"
            _, run = self._resolved(t, self.ctx.params, r["key"], r["dataset"], r["model"])
            t.add(f"`{r['key']}`", where or "every dataset and model", r["source"], r["value"], protocol, run)
        self.table(t)

    def ledger_table(self) -> None:
        rows = [r for r in self.ctx.ledger if r["paper"] == self.paper]
        self.add("### Deviations", "")
        t = Table(f"**Deviations ({self.paper}).** Where the paper-scale protocol departs from the paper or fills "
                  "in what it does not publish (sae/report/deviations.csv), and what this run resolves for it.",
                  ["item", "paper", "ours", "this run", "why"])
        for r in rows:
            run = t.missing("not a setting of params.yaml") if S.is_named(r["item"]) else \
                self._resolved(t, self.ctx.params, r["item"])[1]
            t.add(f"`{r['item']}`", r["paper_value"], r["ours"], run, r["why"])
        self.table(t)

    def reductions_table(self) -> None:
        self.add("### This run against the paper-scale protocol", "")
        t = Table(f"**Reductions ({self.paper}).** Every setting of this run's {self.paper} stages that differs from "
                  f"the protocol composed with `scale=paper` (this run: scale `{self.ctx.params.scale}`).",
                  ["setting", "stage", "paper scale", "this run"])
        if self.ctx.paper_scale is None:
            t.add(DASH, DASH, t.missing(f"the paper-scale protocol is unavailable: {self.ctx.paper_scale_error}"),
                  DASH)
        else:
            for red in reductions(self.ctx.params, self.ctx.paper_scale, self.paper):
                t.add(f"`{red.setting}`", red.stage, red.paper if red.paper is not None else t.missing(red.note),
                      red.this_run)
            if not t.rows:
                t.add("(none)", "every stage", "as this run", "as the paper scale")
        self.table(t)

    def convergence_table(self, refs: dict[str, list[Ref]]) -> None:
        """refs: run dataset -> the model refs trained on it."""
        st = self.ctx.params.statistics
        self.add("### Convergence", "")
        t = Table(f"**Convergence ({self.paper}).** Relative change of each model's validation reconstruction "
                  f"error over the last {st.convergence_window:.0%} of its epochs, at least "
                  f"{st.convergence_min_epochs}: the larger of the change between the window's ends and that "
                  f"of its least-squares line (mean ± std over seeds); a seed counts as converged below "
                  f"{st.convergence_tolerance:g}. Where this run's epochs are a cap (stop at convergence, a declared "
                  f"reduction), training ended once every seed met that rule, and not before "
                  f"{st.stop_not_before:.0%} of the cap. The per-epoch curves are DVC plots.",
                  ["dataset", "model", "paper scale (epochs)", "this run (epochs)", "relative change", "converged"])
        for d, ds_refs in refs.items():
            for ref in ds_refs:
                c = convergence(self.r, self.paper, d, ref)
                if c.note == NOT_TRAINED:
                    continue
                t.add(d, str(ref), self._paper_epochs(t, d, ref),
                      self._run_epochs(d, ref, c.epochs) if c.epochs is not None else t.missing(c.note),
                      self._change(t, c), c.describe() if c.note is None else t.missing(c.note))
        self.table(t)

    def _run_epochs(self, dataset: str, ref: Ref, trained: int) -> str:
        """Epochs trained, with the cap when training could stop at convergence."""
        hp, _ = self.r.hparams(self.paper, dataset, ref.name)
        loop = (hp or {}).get("loop", {})
        if not loop.get("stop_at_convergence"):
            return str(trained)
        cap = loop.get("epochs")
        return f"{trained} of a cap of {cap}" + (" (stopped: converged)" if trained < cap else "")

    def _paper_epochs(self, t: Table, dataset: str, ref: Ref) -> str:
        from sae.config import protocol as P
        if self.ctx.paper_scale is None:
            return t.missing(f"the paper-scale protocol is unavailable: {self.ctx.paper_scale_error}")
        try:
            return str(P.run_config(self.ctx.paper_scale, self.paper, C.stands_in_for(dataset), ref.name).loop.epochs)
        except ParamError as exc:
            return t.missing(f"the paper-scale protocol does not resolve it ({exc})")

    @staticmethod
    def _change(t: Table, c) -> str:
        ok = [x for x in c.changes if x is not None]
        if not ok:
            return t.missing(c.note or "curves too short or not finite")
        from sae.base import stats
        s = stats.summary(ok)
        return spread(s["mean"], s["std"], s["n"], 2)


def ordering_line(pairs: list[tuple[str, float, float]], better: str | None) -> str:
    """How this run orders the rows that have a paper number (row, paper, this run's mean)."""
    if len(pairs) < 2 or better is None:
        return "Ordering: fewer than two rows have both a paper and a this-run number; nothing to compare."
    sign = -1.0 if better == "lower" else 1.0
    best_p = max(pairs, key=lambda p: sign * p[1])[0]
    best_r = max(pairs, key=lambda p: sign * p[2])[0]
    n, swapped = 0, []
    for i, a in enumerate(pairs):
        for b in pairs[i + 1:]:
            if a[1] != b[1]:
                n += 1
                if (a[1] - b[1]) * (a[2] - b[2]) <= 0:
                    swapped.append(f"{a[0]} vs {b[0]}")
    head = f"Ordering ({better} is better): the paper's best row is **{best_p}**, this run's best is **{best_r}**"
    head += " (the same)." if best_p == best_r else " (they differ)."
    tail = f" {n - len(swapped)} of {n} row pairs are ordered as in the paper"
    return head + tail + (f"; reversed: {', '.join(swapped[:8])}{' ...' if len(swapped) > 8 else ''}." if swapped
                          else ".")


def metric_panels(values: dict, bars: list[tuple[str, str]], metrics: list[str], *, sample: bool = False,
                  zoom: tuple[str, ...] = ()) -> list[dict]:
    """figures.bar_panels' panels, one a metric: a bar a (label, model) of `bars` at its mean over
    seeds, error bars ±1 std over the test samples (sample) or over seeds, the seeds as dots.
    values: (model, metric) -> Value."""
    panels = []
    for metric in metrics:
        vs = [values[(m, metric)] for _, m in bars]
        panels.append({"title": C.METRICS[metric].label.split(" (")[0], "ylabel": C.METRICS[metric].label,
                       "labels": [name for name, _ in bars], "better": C.METRICS[metric].better,
                       "means": [v.mean if v.ok else None for v in vs],
                       "errors": [v.sample_std if sample else v.std for v in vs],
                       "dots": [v.finite for v in vs], "zoom": metric in zoom})
    return panels


def claims_table(paper: str, verdicts: list[Verdict]) -> Table:
    """The claims of one paper, one short row each (statement, verdict, the deciding means, p);
    every number behind each verdict goes under the table in a details block."""
    t = Table(f"**Claims ({paper}).** Each claim of sae/report/claims.csv as the paper states it; this run's "
              "deciding means ± std over seeds; p: the largest Holm-adjusted p of the claim's tests.",
              ["claim", "paper", "verdict", "this run", "p"])
    details = []
    for v in verdicts:
        if v.claim.paper == paper:
            t.add(f"`{v.claim.id}` ({v.claim.section})", v.claim.statement, f"**{v.status}** {v.where}".strip(),
                  v.means or "—", "—" if v.p is None else f"{v.p:.2g}")
            details.append(f"- `{v.claim.id}` {v.where}: {v.evidence}")
    t.after = ["<details><summary>Full statistics of every claim</summary>", "", *details, "", "</details>"]
    return t
