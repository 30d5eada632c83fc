"""The papers' claims as data (claims.csv) and their machine checks against this run.

Each claim: id, paper, seed_file, section, statement, and a check:
- ordering: on `metric`, every model ref in `winners` is better (METRICS[metric].better) than
  every one in `losers` by more than `tolerance` (default 0: strictly better). A ref may name its
  own metric: `ksparse[deep_finetune_error]`. Reconstruction errors measured in different input
  views (tables.RunResults.view_class) are not comparable: such a check is "not measured".
- sweep: every row of the 003 prediction table (sweep_<D>_predictions.csv, written by
  sae.report.sweep_figures.prediction_checks) with this `prediction` id holds.
- schedule: the training curve `metric` of model `winners` (dvclive, one value per epoch)
  `expect`s to rise / fall (by more than `tolerance`) from the end of the first schedule stage
  to the end of training.

A claim is checked on every run dataset that measures one of its paper `datasets`
(tables.MEASURED_BY). Result per (claim, dataset): holds / does not hold / not measured,
with the numbers that decided it.
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from sae.errors import DataError
from sae.report import tables as T

HOLDS, FAILS, UNMEASURED = "holds", "does not hold", "not measured"
CLAIM_COLUMNS = ("id", "paper", "seed_file", "section", "statement", "check", "metric", "winners", "losers",
                 "datasets", "prediction", "expect", "tolerance")
CHECKS = ("ordering", "sweep", "schedule")
# the value each scheduled model logs per epoch (sae.models: on_epoch_start)
SCHEDULE_KEY = {"l1prox": "alpha", "sl0sq": "sigma", "ksparse": "k"}
# metrics whose value depends on the scale of the input (compared only within one input view)
VIEW_DEPENDENT = {"recon_error"}


@dataclass
class Verdict:
    claim: dict
    dataset: str | None      # the run dataset it was checked on (None: no dataset measures it)
    status: str
    evidence: str


def _split(s: str) -> list[str]:
    return [x.strip() for x in (s or "").split(";") if x.strip()]


def load_claims(path) -> list[dict]:
    """Read and validate claims.csv; raises DataError naming the row."""
    path = Path(path)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CLAIM_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing columns {', '.join(missing)}")
        claims = [dict(r) for r in reader]
    seen = set()
    for i, c in enumerate(claims, start=2):
        where = f"{path}:{i} ({c['id']})"
        if c["id"] in seen:
            raise DataError(f"{where}: repeated id")
        seen.add(c["id"])
        if c["check"] not in CHECKS:
            raise DataError(f"{where}: check={c['check']!r}; allowed: {', '.join(CHECKS)}")
        if c["check"] == "ordering":
            if not _split(c["winners"]) or not _split(c["losers"]):
                raise DataError(f"{where}: an ordering needs winners and losers")
            for ref in _split(c["winners"]) + _split(c["losers"]):
                metric = _ref_metric(ref, c["metric"])[1]
                if metric not in T.METRICS or T.METRICS[metric].better is None:
                    raise DataError(f"{where}: metric {metric!r} has no better direction")
        if c["check"] == "sweep" and not c["prediction"]:
            raise DataError(f"{where}: a sweep check needs a prediction id")
        if c["check"] == "schedule" and (c["expect"] not in ("rises", "falls") or not c["winners"]):
            raise DataError(f"{where}: a schedule check needs winners (the model) and expect rises|falls")
        c["datasets_list"] = _split(c["datasets"])
    return claims


def _ref_metric(ref: str, default: str) -> tuple[str, str]:
    m = re.fullmatch(r"([\w@=]+)\[(\w+)\]", ref)
    return (m[1], m[2]) if m else (ref, default)


def _label(ref: str, metric: str, default: str) -> str:
    return ref if metric == default else f"{ref} ({metric.replace('_', ' ')})"


def _fmt(v: float, metric: str) -> str:
    m = T.METRICS[metric]
    return T.fmt_number(v, m.digits, percent=m.unit == "%") + ("%" if m.unit == "%" else "")


def check_ordering(claim: dict, results: T.RunResults, dataset: str) -> Verdict:
    default = claim["metric"]
    better = T.METRICS[default].better
    vals, missing = {}, []
    for ref in _split(claim["winners"]) + _split(claim["losers"]):
        r, metric = _ref_metric(ref, default)
        v = results.value(dataset, r, metric)
        if v.ok:
            vals[ref] = (v.mean, metric)
        else:
            missing.append(f"{_label(r, metric, default)}: {v.note}")
    if missing:
        return Verdict(claim, dataset, UNMEASURED, "; ".join(missing))
    sign = -1.0 if better == "lower" else 1.0
    winners, losers = _split(claim["winners"]), _split(claim["losers"])
    worst_winner = min(winners, key=lambda r: sign * vals[r][0])
    best_loser = max(losers, key=lambda r: sign * vals[r][0])
    margin = _num(claim.get("tolerance")) or 0.0
    holds = sign * vals[worst_winner][0] > sign * vals[best_loser][0] + margin
    ranked = sorted(vals, key=lambda r: -sign * vals[r][0])
    op = " < " if better == "lower" else " > "
    chain = op.join(f"{_label(*_ref_metric(r, default), default)} {_fmt(*vals[r])}" for r in ranked)
    evidence = f"{chain} ({better} is better" + (f", by more than {margin:g}" if margin else "") + ")"
    if any(m in VIEW_DEPENDENT for _, m in vals.values()):
        views = {r: results.input_view(dataset, _ref_metric(r, default)[0]) for r in vals}
        classes = {results.view_class(dataset, v) for v in views.values()}
        if len(classes) > 1:
            listed = ", ".join(f"{_ref_metric(r, default)[0]}: {v}" for r, v in views.items())
            return Verdict(claim, dataset, UNMEASURED, f"not comparable: the models were measured in different "
                                                       f"input views ({listed}); {evidence}")
    if not holds:
        evidence += f"; {_label(*_ref_metric(best_loser, default), default)} beats {_label(*_ref_metric(worst_winner, default), default)}"
    return Verdict(claim, dataset, HOLDS if holds else FAILS, evidence)


def read_predictions(path: Path) -> list[dict] | None:
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _truthy(s) -> bool:
    return str(s).strip().lower() in ("true", "1", "yes")


def _num(s) -> float | None:
    try:
        v = float(s)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def check_sweep(claim: dict, predictions_dir: Path, dataset: str) -> Verdict:
    path = Path(predictions_dir) / f"sweep_{dataset}_predictions.csv"
    rows = read_predictions(path)
    if rows is None:
        return Verdict(claim, dataset, UNMEASURED, f"{path} is missing (sweep_figures@{dataset} not run)")
    rows = [r for r in rows if r.get("prediction") == claim["prediction"] and r.get("dataset", dataset) == dataset]
    if not rows:
        return Verdict(claim, dataset, UNMEASURED, f"no prediction '{claim['prediction']}' rows in {path} "
                                                   "(its models or activations are not in the sweep)")
    parts, ok = [], True
    for r in rows:
        first, last = _num(r.get("af_first")), _num(r.get("af_last"))
        span = f"{first:.3f} -> {last:.3f}" if first is not None and last is not None else "no finite points"
        rho = _num(r.get("spearman"))
        holds = _truthy(r.get("holds"))
        ok &= holds
        constraint = "unit-length" if _truthy(r.get("unit_norm")) else "unconstrained"
        parts.append(f"{r['model']} {r['activation']} {constraint} ({r.get('paper_figure', '')}): expected "
                     f"{r['expected']}, observed {r['observed']} ({span}"
                     + (f", rho {rho:.2f}" if rho is not None else "") + ")")
    return Verdict(claim, dataset, HOLDS if ok else FAILS, "; ".join(parts))


def read_curve(path: Path) -> list[tuple[int, float]] | None:
    """A dvclive curve file (step<TAB>value with a header) -> [(step, value)]."""
    if not path.is_file():
        return None
    out = []
    with open(path) as f:
        for line in list(f)[1:]:
            parts = line.strip().split("\t")
            if len(parts) >= 2 and _num(parts[1]) is not None:
                out.append((int(float(parts[0])), float(parts[1])))
    return out


def check_schedule(claim: dict, results: T.RunResults, dataset: str) -> Verdict:
    model = claim["winners"]
    why = results.missing_reason(dataset, model)
    if why:
        return Verdict(claim, dataset, UNMEASURED, why)
    key = SCHEDULE_KEY.get(model)
    curves = results.models_dir / dataset / model / "live" / "plots" / "metrics"
    curve, sched = read_curve(curves / f"{claim['metric']}.tsv"), read_curve(curves / f"{key}.tsv")
    if not curve or not sched:
        return Verdict(claim, dataset, UNMEASURED, f"no {claim['metric']} / {key} curves under {curves}")
    sched = dict(sched)
    first_stage = sched[min(sched)]
    ends = [s for s, _ in curve if sched.get(s) == first_stage]
    if not ends:
        return Verdict(claim, dataset, UNMEASURED, f"{key} curve does not cover {claim['metric']}")
    v_first = dict(curve)[max(ends)]
    step_last, v_last = curve[-1]
    if sched.get(step_last) == first_stage:
        return Verdict(claim, dataset, UNMEASURED, f"{key} never changed during training (one stage)")
    margin = _num(claim.get("tolerance")) or 0.0
    holds = (v_last > v_first + margin) if claim["expect"] == "rises" else (v_last < v_first - margin)
    name = claim["metric"].replace("_", " ")
    evidence = (f"{name} {v_first:.3f} at the end of the first stage ({key}={first_stage:g}, epoch {max(ends) + 1}) "
                f"-> {v_last:.3f} at the end of training ({key}={sched.get(step_last, float('nan')):g}, "
                f"epoch {step_last + 1}); expected to {claim['expect'][:-1]}" + (f" by more than {margin:g}" if margin else ""))
    return Verdict(claim, dataset, HOLDS if holds else FAILS, evidence)


def evaluate(claims: list[dict], results: T.RunResults, *, predictions_dir, sweep_datasets=()) -> list[Verdict]:
    """One verdict per (claim, run dataset measuring one of its paper datasets); a claim no run
    dataset measures gets one 'not measured' verdict naming the datasets it needs."""
    out = []
    for c in claims:
        paper_ds = c["datasets_list"]
        # sweep claims read the sweep's datasets; the others the models' (train_datasets)
        ours = list(sweep_datasets) if c["check"] == "sweep" else results.datasets
        runs = [d for p in paper_ds for d in T.measured_by(p, ours)]
        if not runs:
            need = ", ".join(T.paper_name(p) for p in paper_ds)
            where = "`sweep.datasets`" if c["check"] == "sweep" else "`train_datasets`"
            out.append(Verdict(c, None, UNMEASURED, f"no dataset of {where} measures {need} (or a stand-in)"))
            continue
        for d in runs:
            if c["check"] == "ordering":
                out.append(check_ordering(c, results, d))
            elif c["check"] == "sweep":
                out.append(check_sweep(c, predictions_dir, d))
            else:
                out.append(check_schedule(c, results, d))
    return out
