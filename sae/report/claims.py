"""The papers' claims as data (claims.csv) and their verdicts on this run.

Columns: id, paper (citation key), section, statement, check, metric, winners, losers,
datasets (paper datasets), activation, unit_norm, expect. Checks:

- ordering: on `metric` (a ref may name its own: `ksparse:deep_finetune_error`) every winner
  is better than every loser: each pair is decided by Welch's t-test on the per-seed values
  (sae.base.stats.compare), with Holm's step-down correction over the claim's pairs at
  params.statistics.level; holds when every pair holds, does not hold when any pair is
  significantly reversed, inconclusive otherwise.
- stages (000 Fig. 1c): at each boundary of the winner's schedule (alpha decreasing), its
  training curve `metric` changes as `expect`ed (rises) from the end of one stage to the end of
  the next: per seed the change, tested against zero (Welch's test with an exact zero, i.e. a
  one-sample t-test), Holm-corrected over the boundaries.
- trend (003): for each winner model, with `activation` and each `unit_norm`, the activation
  fraction against the coefficient `expect`s to fall or stay flat (sae.report.trends.judge).
- onset / floor (003 sec. 3.1.1): the same sweep curves against a number the paper gives
  (published.csv, the row named by `expect`): dead units appear only once the activation
  fraction falls to about it (trends.onset), or the activation fraction never goes below about
  it (trends.floor).
- differs (003 Figs. 2, 5): each winner's curve has a different shape (falls / rises / flat,
  trends.shape) on the run's datasets: one verdict across them.

A comparison needs at least two seeds on each side: with fewer, the claim is "not measured".

A claim is checked on every run dataset of its paper that stands in for one of its datasets,
and on every run dataset that stands in for no dataset of the paper (labelled as such). A side
with no number makes it "not measured", with the reason.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from sae.base import catalog as C
from sae.base import stats
from sae.base.errors import DataError
from sae.report import trends
from sae.report.convergence import caveat, convergence
from sae.report.render import seed_spread, spread
from sae.report.results import Ref, RunResults

CLAIM_COLUMNS = ("id", "paper", "section", "statement", "check", "metric", "winners", "losers", "datasets",
                 "activation", "unit_norm", "expect")
CHECKS = ("ordering", "stages", "trend", "onset", "floor", "differs")
SWEEP_CHECKS = ("trend", "onset", "floor", "differs")   # read 003's sweep tables
PUBLISHED_CHECKS = ("onset", "floor")                  # compare with a published.csv number
EXPECT = {"stages": ("rises", "falls"), "trend": ("falls", "rises", "flat")}
STATUSES = (stats.HOLDS, stats.FAILS, stats.INCONCLUSIVE, stats.UNMEASURED)
# the per-epoch value a scheduled model logs (dvclive scalar curve), by registry id
SCHEDULE_CURVE = {"l1prox": "alpha", "sl0sq": "sigma"}


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    section: str
    statement: str
    check: str
    metric: str
    winners: tuple[Ref, ...]
    losers: tuple[Ref, ...]
    datasets: tuple[str, ...]
    activation: str = ""
    unit_norm: tuple[bool, ...] = ()
    expect: str = ""


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    dataset: str | None     # the run dataset it was checked on (None: no dataset could)
    status: str
    evidence: str           # every number behind the verdict
    means: str = ""         # the deciding means ± std, in one short line
    p: float | None = None  # the largest Holm-adjusted p of its tests (None: no test)
    across: tuple[str, ...] = ()  # the run datasets of a verdict taken across several (differs)

    @property
    def where(self) -> str:
        """'on optdigits' (+ ' (not a dataset of this paper)' for a generic stand-in)."""
        if self.across:
            return "across " + ", ".join(self.across)
        if self.dataset is None:
            return ""
        if C.stands_in_for(self.dataset) in C.PAPERS[self.claim.paper].datasets:
            return f"on {self.dataset}"
        return f"on {self.dataset} (stands in for {C.PAPER_DATASETS[C.stands_in_for(self.dataset)]}, not a " \
               "dataset of this paper)"


def _split(text: str) -> list[str]:
    return [x.strip() for x in (text or "").split(";") if x.strip()]


def _claim(row: dict, where: str) -> Claim:
    if row["paper"] not in C.PAPERS:
        raise DataError(f"{where}: unknown paper {row['paper']!r}; allowed: {', '.join(C.PAPERS)}")
    if row["check"] not in CHECKS:
        raise DataError(f"{where}: check={row['check']!r}; allowed: {', '.join(CHECKS)}")
    try:
        winners, losers = (tuple(Ref.parse(r) for r in _split(row[k])) for k in ("winners", "losers"))
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None
    for ref in winners + losers:
        metric = ref.metric or row["metric"]
        if metric not in C.METRICS or (row["check"] == "ordering" and C.METRICS[metric].better is None):
            raise DataError(f"{where}: metric {metric!r} is not a catalog metric with a better direction")
    datasets = tuple(_split(row["datasets"]))
    for d in datasets:
        if d not in C.PAPERS[row["paper"]].datasets:
            raise DataError(f"{where}: {d!r} is not a dataset of {row['paper']} "
                            f"({', '.join(C.PAPERS[row['paper']].datasets)})")
    if not winners or not datasets or (row["check"] == "ordering" and not losers):
        raise DataError(f"{where}: a {row['check']} claim needs winners, datasets" +
                        (" and losers" if row["check"] == "ordering" else ""))
    if row["check"] in EXPECT and row["expect"] not in EXPECT[row["check"]]:
        raise DataError(f"{where}: expect={row['expect']!r}; allowed: {', '.join(EXPECT[row['check']])}")
    unit_norm = tuple(x.lower() == "true" for x in _split(row["unit_norm"]))
    if row["check"] in SWEEP_CHECKS:
        bad = [str(r) for r in winners if r.name not in C.SWEEP_MODELS]
        if bad or row["activation"] not in C.SWEEP_ACTIVATIONS or not unit_norm:
            raise DataError(f"{where}: a {row['check']} claim needs sweep models ({', '.join(C.SWEEP_MODELS)}), an "
                            f"activation ({', '.join(C.SWEEP_ACTIVATIONS)}) and unit_norm true and/or false")
    if row["check"] in PUBLISHED_CHECKS and not row["expect"].strip():
        raise DataError(f"{where}: an {row['check']} claim names its published.csv row in `expect`")
    return Claim(row["id"], row["paper"], row["section"], row["statement"], row["check"], row["metric"], winners,
                 losers, datasets, row["activation"], unit_norm, row["expect"])


def load_claims(path) -> list[Claim]:
    """claims.csv, every row validated (DataError naming the row)."""
    path = Path(path)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        lacking = [c for c in CLAIM_COLUMNS if c not in (reader.fieldnames or [])]
        rows = list(reader)
    if lacking:
        raise DataError(f"{path}: missing columns {', '.join(lacking)}")
    claims, seen = [], set()
    for i, row in enumerate(rows, start=2):
        where = f"{path}:{i} ({row.get('id')})"
        if row["id"] in seen:
            raise DataError(f"{where}: repeated id")
        seen.add(row["id"])
        claims.append(_claim(row, where))
    return claims


# ---------------------------------------------------------------- shared pieces


def holm(comparisons: list[stats.Comparison], level: float) -> tuple[list[str], list[float | None]]:
    """Holm's step-down correction over one claim's comparisons: (verdict of each, its adjusted
    p). The k-th smallest p (k = 0..m-1) is tested at level / (m - k) until one is not
    significant; the rest are inconclusive."""
    m = len(comparisons)
    order = sorted(range(m), key=lambda i: (comparisons[i].p_value is None, comparisons[i].p_value or 0.0))
    verdicts, adjusted = [stats.INCONCLUSIVE] * m, [None] * m
    running, stopped = 0.0, False
    for rank, i in enumerate(order):
        c = comparisons[i]
        if c.p_value is None:
            continue
        running = max(running, min(1.0, (m - rank) * c.p_value))
        adjusted[i] = running
        stopped = stopped or c.p_value >= level / (m - rank)
        if not stopped:
            verdicts[i] = c.verdict  # significant at the uncorrected level too: holds or does not hold
    return verdicts, adjusted


def too_few_seeds(named: dict) -> str:
    """'' when every side has at least two finite per-seed values, else why not (the claim is not
    measured: one seed gives no test)."""
    few = [f"{name} (n={len(vals)})" for name, vals in named.items() if len(vals) < 2]
    return f"fewer than two seeds for {', '.join(few)}: no test" if few else ""


def worst_p(adjusted) -> float | None:
    ps = [p for p in adjusted if p is not None]
    return max(ps) if ps else None


def combine(verdicts) -> str:
    """All hold -> holds; any does not hold -> does not hold; else inconclusive."""
    verdicts = list(verdicts)
    if any(v == stats.FAILS for v in verdicts):
        return stats.FAILS
    return stats.HOLDS if verdicts and all(v == stats.HOLDS for v in verdicts) else stats.INCONCLUSIVE


def describe(cmp: stats.Comparison) -> str:
    """The numbers that decided one comparison."""
    if cmp.p_value is None:
        return f"n = {cmp.n[0]}, {cmp.n[1]}: too few seeds for a test"
    if cmp.t is not None and math.isinf(cmp.t):
        return "no spread over seeds on either side: the ordering is exact"
    return f"Welch t = {cmp.t:.2f}, p = {cmp.p_value:.3g}"


def _label(ref: Ref, claim: Claim) -> str:
    metric = ref.metric or claim.metric
    return str(ref) + ("" if metric == claim.metric else f" ({C.METRICS[metric].label})")


# ---------------------------------------------------------------- checks


def check_ordering(claim: Claim, results: RunResults, dataset: str, level: float) -> Verdict:
    refs = claim.winners + claim.losers
    values = {ref: results.value(claim.paper, dataset, ref, ref.metric or claim.metric) for ref in refs}
    lacking = [f"{_label(r, claim)}: {v.note}" for r, v in values.items() if not v.ok]
    if lacking:
        return Verdict(claim, dataset, stats.UNMEASURED, "; ".join(dict.fromkeys(lacking)))
    if any((r.metric or claim.metric) == "recon_error" for r in refs):
        views = {r: results.input_view(claim.paper, dataset, r) for r in refs}
        if len(set(views.values())) > 1:
            listed = ", ".join(f"{r}: {v}" for r, v in views.items())
            return Verdict(claim, dataset, stats.UNMEASURED, f"reconstruction errors in different input views are "
                                                             f"not comparable ({listed})")
    better = C.METRICS[claim.metric].better
    shown = "; ".join(f"{_label(r, claim)} {seed_spread(v.mean, v.std, v.n, r.metric or claim.metric)}"
                      for r, v in values.items())
    few = too_few_seeds({_label(r, claim): v.finite for r, v in values.items()})
    if few:
        return Verdict(claim, dataset, stats.UNMEASURED, f"{shown}; {few}", shown)
    pairs = [(w, lo, stats.compare(values[w].finite, values[lo].finite, better, level))
             for w in claim.winners for lo in claim.losers]
    verdicts, adjusted = holm([c for _, _, c in pairs], level)
    lines = [f"{_label(w, claim)} vs {_label(lo, claim)}: {describe(c)}"
             + (f", Holm p = {p:.3g}" if p is not None and len(pairs) > 1 else "") + f" -> {v}"
             for (w, lo, c), v, p in zip(pairs, verdicts, adjusted)]
    note = caveat([convergence(results, claim.paper, dataset, r) for r in dict.fromkeys(Ref(r.name, r.k)
                                                                                         for r in refs)])
    evidence = f"{shown} ({better} is better); " + "; ".join(lines) + (f"; {note}" if note else "")
    return Verdict(claim, dataset, combine(verdicts), evidence, shown, worst_p(adjusted))


def stage_ends(schedule: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """(last epoch, value) of each stage of a schedule curve [(epoch, value)]."""
    ends = []
    for (epoch, value), nxt in zip(schedule, [*schedule[1:], None]):
        if nxt is None or nxt[1] != value:
            ends.append((epoch, value))
    return ends


def check_stages(claim: Claim, results: RunResults, dataset: str, level: float) -> Verdict:
    model = claim.winners[0]
    hp, why = results.hparams(claim.paper, dataset, model.name)
    if hp is None:
        return Verdict(claim, dataset, stats.UNMEASURED, f"{model}: {why}")
    key = SCHEDULE_CURVE.get(hp["id"])
    schedule = results.curve(claim.paper, dataset, model.name, key) if key else None
    if not schedule:
        return Verdict(claim, dataset, stats.UNMEASURED, f"{model} logs no schedule curve ({key or 'none'})")
    ends = stage_ends(schedule)
    if len(ends) < 2:
        return Verdict(claim, dataset, stats.UNMEASURED, f"{key} never changed over the {len(schedule)} epochs "
                                                         "(one stage): no boundary to judge")
    curves = [dict(results.curve(claim.paper, dataset, model.name, claim.metric, label) or [])
              for label in results.seed_labels(claim.paper, dataset, model)]
    better = "higher" if claim.expect == "rises" else "lower"
    tests, parts, means = [], [], []
    for (e0, a0), (e1, a1) in zip(ends, ends[1:]):
        change = [c[e1] - c[e0] for c in curves if e0 in c and e1 in c]
        name = f"{key} {a0:.3g} -> {a1:.3g} (epochs {e0 + 1} -> {e1 + 1})"
        few = too_few_seeds({name: change})
        if few:
            return Verdict(claim, dataset, stats.UNMEASURED, f"no {claim.metric} curve of {model} at {name}; {few}")
        s = stats.summary(change)
        tests.append(stats.compare(change, [0.0] * len(change), better, level))
        means.append(f"{a1:.3g}: {s['mean']:+.3g} ± {s['std']:.2g}")
        parts.append(f"{name}: change {spread(s['mean'], s['std'], s['n'])}, {describe(tests[-1])}")
    verdicts, adjusted = holm(tests, level)
    shown = f"{claim.metric} change at each {key} decrease, " + "; ".join(means) + f" (n={len(curves)})"
    note = caveat([convergence(results, claim.paper, dataset, model)])
    evidence = (f"expected the {claim.metric} to {claim.expect.rstrip('s')} at every stage boundary; "
                + "; ".join(f"{p} -> {v}" + (f" (Holm p = {q:.3g})" if q is not None else "")
                            for p, v, q in zip(parts, verdicts, adjusted)) + (f"; {note}" if note else ""))
    return Verdict(claim, dataset, combine(verdicts), evidence, shown, worst_p(adjusted))


def check_trend(claim: Claim, results: RunResults, dataset: str, level: float) -> Verdict:
    parts, verdicts, lacking, shown = [], [], [], []
    for ref in claim.winners:
        for unit in claim.unit_norm:
            found, why = _sweep_curves(claim, results, dataset, ref, unit)
            if found is None:
                lacking.append(why)
                continue
            curve, rows = found["activation_fraction"], "unit-length" if unit else "unconstrained"
            shown.append(f"{ref} {rows}: {trends.point(curve, 0)} -> {trends.point(curve, -1)}")
            t = trends.judge(curve, claim.expect, level)
            verdicts.append(t.verdict)
            lost = f"; {curve.diverged} runs without a finite value" if curve.diverged else ""
            parts.append(f"{ref} {claim.activation} {rows}: {t.verdict} ({t.evidence}{lost})")
    if lacking:
        return Verdict(claim, dataset, stats.UNMEASURED, "; ".join(dict.fromkeys(lacking)))
    return Verdict(claim, dataset, combine(verdicts), f"expected {claim.expect}: " + "; ".join(parts),
                   "; ".join(shown))


def _sweep_curves(claim: Claim, results: RunResults, dataset: str, ref: Ref, unit: bool,
                  values=("activation_fraction",)):
    """The claim's curves of one winner and constraint on `dataset` ({value: Curve}), or (None, why)."""
    rows = "unit-length" if unit else "unconstrained"
    grid = results.params.protocol(claim.paper).grid
    if claim.activation not in grid.activations:
        return None, f"{claim.activation} is not in this run's {claim.paper}.grid.activations"
    df, why = results.sweep(claim.paper, dataset, ref.name)
    found = {v: ({} if df is None else trends.curves(df, v)).get((ref.name, claim.activation, unit)) for v in values}
    if any(c is None for c in found.values()):
        return None, f"{ref} {rows}: " + (why or f"no {claim.activation} {rows} rows in its sweep table "
                                                  f"({claim.paper}.grid.unit_norm)")
    few = [c for curve in found.values() for c, v in zip(curve.coefficients, curve.per_seed) if len(v) < 2]
    if few:
        return None, f"{ref} {rows}: fewer than two seeds at coefficient {few[0]:g}: no test"
    return found, None


def check_published(claim: Claim, results: RunResults, dataset: str, level: float, published=()) -> Verdict:
    """onset / floor: every winner and constraint against the paper's number (published.csv)."""
    number = next((n for n in published if n.paper == claim.paper and n.row == claim.expect), None)
    if number is None:
        raise DataError(f"claim {claim.id}: no published.csv row {claim.expect!r} of {claim.paper}")
    parts, verdicts, lacking, shown = [], [], [], []
    for ref in claim.winners:
        for unit in claim.unit_norm:
            found, why = _sweep_curves(claim, results, dataset, ref, unit, ("activation_fraction", "dead_fraction"))
            if found is None:
                lacking.append(why)
                continue
            af = found["activation_fraction"]
            t = trends.onset(af, found["dead_fraction"], number.value, level) if claim.check == "onset" else \
                trends.floor(af, number.value, level)
            rows = "unit-length" if unit else "unconstrained"
            verdicts.append(t.verdict)
            shown.append(f"{ref} {rows}: lowest activation fraction {min(af.means):.3g}")
            parts.append(f"{ref} {claim.activation} {rows}: {t.verdict} ({t.evidence})")
    if lacking:
        return Verdict(claim, dataset, stats.UNMEASURED, "; ".join(dict.fromkeys(lacking)))
    return Verdict(claim, dataset, combine(verdicts), f"the paper's {number.text} ({number.source}): " +
                   "; ".join(parts), "; ".join(shown))


def check_differs(claim: Claim, results: RunResults, datasets: list[str], level: float) -> Verdict:
    """differs: each winner's curve shape (falls / rises / flat) on every run dataset; holds when
    the shapes are all known and not all the same, does not hold when all known and the same."""
    if len(datasets) < 2:
        return Verdict(claim, datasets[0] if datasets else None, stats.UNMEASURED,
                       "a difference between datasets needs two of them in this run")
    parts, verdicts, lacking = [], [], []
    for ref in claim.winners:
        for unit in claim.unit_norm:
            shapes = {}
            for d in datasets:
                found, why = _sweep_curves(claim, results, d, ref, unit)
                if found is None:
                    lacking.append(f"{d}: {why}")
                    continue
                shapes[d] = trends.shape(found["activation_fraction"], level)
            if len(shapes) < len(datasets):
                continue
            known = [s for s in shapes.values() if s is not None]
            verdict = stats.INCONCLUSIVE if len(known) < len(shapes) else \
                stats.HOLDS if len(set(known)) > 1 else stats.FAILS
            verdicts.append(verdict)
            rows = "unit-length" if unit else "unconstrained"
            parts.append(f"{ref} {claim.activation} {rows}: " +
                         ", ".join(f"{d} {s or 'no clear trend'}" for d, s in shapes.items()) + f" -> {verdict}")
    if lacking:
        return Verdict(claim, None, stats.UNMEASURED, "; ".join(dict.fromkeys(lacking)), across=tuple(datasets))
    return Verdict(claim, None, combine(verdicts), "; ".join(parts), "; ".join(parts), across=tuple(datasets))


CHECK = {"ordering": check_ordering, "stages": check_stages, "trend": check_trend, "onset": check_published,
         "floor": check_published}


def run_datasets(claim: Claim, results: RunResults) -> list[str]:
    """This run's datasets of the claim's paper that stand in for one of its datasets, or for no
    dataset of the paper at all."""
    paper_sets = C.PAPERS[claim.paper].datasets
    return [d for d in results.datasets(claim.paper)
            if C.stands_in_for(d) in claim.datasets or C.stands_in_for(d) not in paper_sets]


def evaluate(claims: list[Claim], results: RunResults, published=()) -> list[Verdict]:
    """One verdict per (claim, run dataset) (a `differs` claim: one across them); one 'not
    measured' verdict for a claim no run dataset measures. published: the published.csv numbers
    (sae.report.published) that onset / floor claims compare with."""
    level = results.params.statistics.level
    out = []
    for claim in claims:
        datasets = run_datasets(claim, results)
        if not datasets:
            need = ", ".join(C.PAPER_DATASETS[d] for d in claim.datasets)
            out.append(Verdict(claim, None, stats.UNMEASURED, f"no dataset of this run's {claim.paper}.datasets "
                                                              f"stands in for {need}"))
        elif claim.check == "differs":
            out.append(check_differs(claim, results, datasets, level))
        elif claim.check in PUBLISHED_CHECKS:
            out += [check_published(claim, results, d, level, published) for d in datasets]
        else:
            out += [CHECK[claim.check](claim, results, d, level) for d in datasets]
    return out


# One word per paper, from its claims' verdicts (the report's and the README's first lines).
PAPER_VERDICTS = {
    "reproduces": "every measured claim holds",
    "partly": "some measured claims hold, others do not or are inconclusive",
    "inconclusive": "no measured claim holds and none is contradicted",
    "does not reproduce": "no measured claim holds and at least one does not hold",
    "not measured": "this run measures none of its claims",
}


def paper_verdict(c: dict[str, int]) -> str:
    """The word of PAPER_VERDICTS for a paper's counts (counts())."""
    measured = c["holds"] + c["does_not_hold"] + c["inconclusive"]
    if not measured:
        return "not measured"
    if c["holds"] == measured:
        return "reproduces"
    if c["holds"]:
        return "partly"
    return "does not reproduce" if c["does_not_hold"] else "inconclusive"


def counts(verdicts: list[Verdict], paper: str) -> dict[str, int]:
    """{holds, does_not_hold, inconclusive, not_measured} of one paper's verdicts."""
    return {s.replace(" ", "_"): sum(v.status == s for v in verdicts if v.claim.paper == paper) for s in STATUSES}
