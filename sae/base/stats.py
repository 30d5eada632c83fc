"""Statistics over seeds: summaries, the verdict test, and convergence of a training curve.

Every measure is computed once per seed (model g of a batch); `summary` keeps the per-seed
values beside their mean and sample standard deviation, so a metrics file holds what a
verdict is decided from. `compare` decides an ordering claim by Welch's t-test on those
values (scipy): "holds" when the gap is significant in the claimed direction, "does not
hold" when it is significant the other way, "inconclusive" otherwise.
"""
from __future__ import annotations

import math
import statistics as _st
from dataclasses import dataclass

HOLDS, FAILS, INCONCLUSIVE, UNMEASURED = "holds", "does not hold", "inconclusive", "not measured"


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def summary(values, **extra) -> dict:
    """{"mean", "std" (sample std over seeds; None for one), "n", "per_seed"} of per-seed values
    (non-finite ones are kept in per_seed as None and left out of mean and std)."""
    per_seed = [None if v is None or not math.isfinite(float(v)) else float(v) for v in values]
    ok = _finite(per_seed)
    out = {"mean": _st.fmean(ok) if ok else None, "std": _st.stdev(ok) if len(ok) > 1 else None,
           "n": len(ok), "per_seed": per_seed}
    out.update(extra)
    return out


@dataclass(frozen=True)
class Comparison:
    verdict: str      # HOLDS / FAILS / INCONCLUSIVE
    diff: float       # mean(a) - mean(b)
    p_value: float | None
    t: float | None
    n: tuple[int, int]

    def describe(self, level: float) -> str:
        if self.p_value is None:
            return f"difference {self.diff:+.4g}, n = {self.n[0]}, {self.n[1]}: too few seeds for a test"
        return (f"difference {self.diff:+.4g}, Welch t = {self.t:.2f}, p = {self.p_value:.3g} "
                f"(level {level:g}, n = {self.n[0]}, {self.n[1]})")


def compare(a, b, better: str, level: float) -> Comparison:
    """Is `a` better than `b` (better: "higher" | "lower")? Welch's two-sided t-test on the
    per-seed values at `level`; with fewer than two values on a side, or no spread at all,
    only an exact ordering of single values decides."""
    a, b = _finite(a), _finite(b)
    if not a or not b:
        raise ValueError("compare needs at least one value on each side")
    diff = _st.fmean(a) - _st.fmean(b)
    sign = 1.0 if better == "higher" else -1.0
    if len(a) < 2 or len(b) < 2:
        return Comparison(INCONCLUSIVE, diff, None, None, (len(a), len(b)))
    va, vb = _st.variance(a), _st.variance(b)
    if va == 0 and vb == 0:  # identical seeds (e.g. raw pixels): the ordering is exact
        verdict = HOLDS if sign * diff > 0 else FAILS if sign * diff < 0 else INCONCLUSIVE
        return Comparison(verdict, diff, 0.0 if diff else 1.0, math.inf if diff else 0.0, (len(a), len(b)))
    import warnings

    from scipy.stats import ttest_ind
    with warnings.catch_warnings():  # near-identical values on one side: scipy warns, the test stands
        warnings.simplefilter("ignore", RuntimeWarning)
        res = ttest_ind(a, b, equal_var=False)
    p, t = float(res.pvalue), float(res.statistic)
    if p < level:
        verdict = HOLDS if sign * diff > 0 else FAILS
    else:
        verdict = INCONCLUSIVE
    return Comparison(verdict, diff, p, t, (len(a), len(b)))


def convergence_span(n: int, window: float, min_epochs: int = 1) -> int:
    """Epochs the convergence test looks back over on a curve of n epochs: the last `window`
    fraction of them, and never fewer than min_epochs."""
    return max(min_epochs, int(math.ceil(window * n)))


def relative_change(curve: list[float], window: float, min_epochs: int = 1) -> float | None:
    """How far a per-epoch curve still moves over its last `window` fraction (at least min_epochs
    epochs back), relative to its last value |v_end|: the larger of the change between the
    window's ends and the change of its least-squares line across the window. The ends alone
    pass a jittery curve by luck while its trend still falls (measured on 000's NCAE: ends 0.2-0.4%,
    trend 1.2-2.7%). None when the curve is too short for that span or not finite."""
    values = _finite(curve)
    span = convergence_span(len(values), window, min_epochs)
    if len(values) < span + 1 or len(values) != len(curve):
        return None
    tail = values[-span - 1:]
    start, end = tail[0], tail[-1]
    slope = _st.linear_regression(range(span + 1), tail).slope if span > 0 else 0.0
    moved = max(abs(end - start), abs(slope * span))
    if end == 0:
        return 0.0 if moved == 0 else math.inf
    return moved / abs(end)


def converged(curve: list[float], window: float, tolerance: float, min_epochs: int = 1) -> bool | None:
    """True when the curve moved by less than `tolerance` (relative_change: ends and trend) over
    its last `window` (at least min_epochs epochs); None when it is too short to tell."""
    change = relative_change(curve, window, min_epochs)
    return None if change is None else change < tolerance
