"""The papers' claims as data (claims.csv) and their verdicts on this run.

Columns: id, paper (citation key), section, statement, check, metric, winners, losers,
datasets (paper datasets), activation, unit_norm, expect. Checks:

- ordering: on `metric` (a ref may name its own: `ksparse:deep_finetune_error`) every winner
  is better than every loser: each pair is decided by Welch's t-test on the per-seed values
  (sae.stats.compare at params.statistics.level); holds when every pair holds, does not hold
  when any pair is significantly reversed, inconclusive otherwise.
- schedule (000 Fig. 1c): the training curve `metric` of the winner changes from the end of
  its first schedule stage to the end of training by more (`expect` rises) than the same
  change of the control model (losers), per seed, by the same test.
- trend (003): for each winner model, with `activation` and each `unit_norm`, the activation
  fraction against the coefficient `expect`s to fall or stay flat (sae.report.trends.judge).

A claim is checked on every run dataset of its paper that stands in for one of its datasets,
and on every run dataset that stands in for no dataset of the paper (labelled as such). A side
with no number makes it "not measured", with the reason.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from sae import catalog as C
from sae import stats
from sae.errors import DataError
from sae.report import trends
from sae.report.convergence import caveat, convergence
from sae.report.render import seed_spread, spread
from sae.report.results import Ref, RunResults

CLAIM_COLUMNS = ("id", "paper", "section", "statement", "check", "metric", "winners", "losers", "datasets",
                 "activation", "unit_norm", "expect")
CHECKS = ("ordering", "schedule", "trend")
EXPECT = {"schedule": ("rises", "falls"), "trend": ("falls", "rises", "flat")}
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
    evidence: str

    @property
    def where(self) -> str:
        """'on optdigits' (+ ' (not a dataset of this paper)' for a generic stand-in)."""
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
    if not winners or not datasets or (row["check"] != "trend" and not losers):
        raise DataError(f"{where}: a {row['check']} claim needs winners, datasets" +
                        ("" if row["check"] == "trend" else " and losers"))
    if row["check"] in EXPECT and row["expect"] not in EXPECT[row["check"]]:
        raise DataError(f"{where}: expect={row['expect']!r}; allowed: {', '.join(EXPECT[row['check']])}")
    unit_norm = tuple(x.lower() == "true" for x in _split(row["unit_norm"]))
    if row["check"] == "trend":
        bad = [str(r) for r in winners if r.name not in C.SWEEP_MODELS]
        if bad or row["activation"] not in C.SWEEP_ACTIVATIONS or not unit_norm:
            raise DataError(f"{where}: a trend needs sweep models ({', '.join(C.SWEEP_MODELS)}), an activation "
                            f"({', '.join(C.SWEEP_ACTIVATIONS)}) and unit_norm true and/or false")
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
        return Verdict(claim, dataset, stats.UNMEASURED, "; ".join(lacking))
    if any((r.metric or claim.metric) == "recon_error" for r in refs):
        views = {r: results.input_view(claim.paper, dataset, r) for r in refs}
        if len(set(views.values())) > 1:
            listed = ", ".join(f"{r}: {v}" for r, v in views.items())
            return Verdict(claim, dataset, stats.UNMEASURED, f"reconstruction errors in different input views are "
                                                             f"not comparable ({listed})")
    better = C.METRICS[claim.metric].better
    shown = "; ".join(f"{_label(r, claim)} {seed_spread(v.mean, v.std, v.n, r.metric or claim.metric)}"
                      for r, v in values.items())
    pairs, verdicts = [], []
    for w in claim.winners:
        for lo in claim.losers:
            cmp = stats.compare(values[w].finite, values[lo].finite, better, level)
            verdicts.append(cmp.verdict)
            pairs.append(f"{_label(w, claim)} vs {_label(lo, claim)}: {describe(cmp)} -> {cmp.verdict}")
    note = caveat([convergence(results, claim.paper, dataset, r) for r in dict.fromkeys(Ref(r.name, r.k)
                                                                                         for r in refs)])
    evidence = f"{shown} ({better} is better); " + "; ".join(pairs) + (f"; {note}" if note else "")
    return Verdict(claim, dataset, combine(verdicts), evidence)


def stage_change(results: RunResults, claim: Claim, dataset: str, ref: Ref, start: int, end: int):
    """Per seed: curve `claim.metric` at step `end` minus at step `start` (None where absent)."""
    out = []
    for label in results.seed_labels(claim.paper, dataset, ref):
        curve = dict(results.curve(claim.paper, dataset, ref.name, claim.metric, label) or [])
        a, b = curve.get(start), curve.get(end)
        out.append(None if a is None or b is None else b - a)
    return out


def check_schedule(claim: Claim, results: RunResults, dataset: str, level: float) -> Verdict:
    model, control = claim.winners[0], claim.losers[0]
    ids = {}
    for ref in (model, control):
        hp, why = results.hparams(claim.paper, dataset, ref.name)
        if hp is None:
            return Verdict(claim, dataset, stats.UNMEASURED, f"{ref}: {why}")
        ids[ref] = hp["id"]
    key = SCHEDULE_CURVE.get(ids[model])
    schedule = results.curve(claim.paper, dataset, model.name, key) if key else None
    if not schedule:
        return Verdict(claim, dataset, stats.UNMEASURED, f"{model} logs no schedule curve ({key or 'none'})")
    first = schedule[0][1]
    end_first, last = max(s for s, v in schedule if v == first), schedule[-1][0]
    if end_first == last:
        return Verdict(claim, dataset, stats.UNMEASURED, f"{key} never changed over the {last + 1} epochs (one "
                                                         "stage): nothing to compare")
    ours, theirs = (stage_change(results, claim, dataset, r, end_first, last) for r in (model, control))
    a, b = [v for v in ours if v is not None], [v for v in theirs if v is not None]
    if not a or not b:
        return Verdict(claim, dataset, stats.UNMEASURED, f"no {claim.metric} curves at epochs {end_first + 1} and "
                                                         f"{last + 1} for {model if not a else control}")
    cmp = stats.compare(a, b, "higher" if claim.expect == "rises" else "lower", level)
    sa, sb = stats.summary(a), stats.summary(b)
    note = caveat([convergence(results, claim.paper, dataset, r) for r in (model, control)])
    evidence = (f"change of {claim.metric} from the end of the first stage (epoch {end_first + 1}, {key} "
                f"{first:g}) to the end (epoch {last + 1}, {key} {schedule[-1][1]:g}): {model} "
                f"{spread(sa['mean'], sa['std'], sa['n'])} vs {control} {spread(sb['mean'], sb['std'], sb['n'])}; "
                f"{describe(cmp)}" + (f"; {note}" if note else ""))
    return Verdict(claim, dataset, cmp.verdict, evidence)


def check_trend(claim: Claim, results: RunResults, dataset: str, level: float) -> Verdict:
    grid = results.params.protocol(claim.paper).grid
    if claim.activation not in grid.activations:
        return Verdict(claim, dataset, stats.UNMEASURED, f"{claim.activation} is not in this run's "
                                                         f"{claim.paper}.grid.activations")
    parts, verdicts, lacking = [], [], []
    for ref in claim.winners:
        df, why = results.sweep(claim.paper, dataset, ref.name)
        found = {} if df is None else trends.curves(df)
        for unit in claim.unit_norm:
            rows = "unit-length" if unit else "unconstrained"
            curve = found.get((ref.name, claim.activation, unit))
            if curve is None:
                lacking.append(f"{ref} {rows}: " + (why or f"no {claim.activation} {rows} rows in its sweep table "
                                                           f"({claim.paper}.grid.unit_norm)"))
                continue
            t = trends.judge(curve, claim.expect, level)
            verdicts.append(t.verdict)
            lost = f"; {curve.diverged} runs without a finite value" if curve.diverged else ""
            parts.append(f"{ref} {claim.activation} {rows}: {t.verdict} ({t.evidence}{lost})")
    if lacking:
        return Verdict(claim, dataset, stats.UNMEASURED, "; ".join(lacking))
    return Verdict(claim, dataset, combine(verdicts), f"expected {claim.expect}: " + "; ".join(parts))


CHECK = {"ordering": check_ordering, "schedule": check_schedule, "trend": check_trend}


def run_datasets(claim: Claim, results: RunResults) -> list[str]:
    """This run's datasets of the claim's paper that stand in for one of its datasets, or for no
    dataset of the paper at all."""
    paper_sets = C.PAPERS[claim.paper].datasets
    return [d for d in results.datasets(claim.paper)
            if C.stands_in_for(d) in claim.datasets or C.stands_in_for(d) not in paper_sets]


def evaluate(claims: list[Claim], results: RunResults) -> list[Verdict]:
    """One verdict per (claim, run dataset); one 'not measured' verdict for a claim no run dataset measures."""
    level = results.params.statistics.level
    out = []
    for claim in claims:
        datasets = run_datasets(claim, results)
        if not datasets:
            need = ", ".join(C.PAPER_DATASETS[d] for d in claim.datasets)
            out.append(Verdict(claim, None, stats.UNMEASURED, f"no dataset of this run's {claim.paper}.datasets "
                                                              f"stands in for {need}"))
        out += [CHECK[claim.check](claim, results, d, level) for d in datasets]
    return out


def counts(verdicts: list[Verdict], paper: str) -> dict[str, int]:
    """{holds, does_not_hold, inconclusive, not_measured} of one paper's verdicts."""
    return {s.replace(" ", "_"): sum(v.status == s for v in verdicts if v.claim.paper == paper) for s in STATUSES}
