"""003's curves (activation fraction against the regularisation coefficient) over seeds, and
the rules that read a trend from them.

The paper states trends seen in its plots ("stable increasing sparsity", "remains unchanged");
these rules make them tests on the per-seed values (sae.base.stats.compare, Welch's t-test at
params.statistics.level) plus a shape condition on the mean curve. The thresholds are ours.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

from sae.base import stats

# Ours (003 states no test): a steady trend has a Spearman rank correlation of the mean curve
# with the coefficient of at least this size; a flat curve's mean spans at most FLAT_SPAN.
MONOTONE_RHO = 0.8
FLAT_SPAN = 0.05
SIGNED = {"falls": -1.0, "rises": 1.0}


@dataclass(frozen=True)
class Curve:
    """One (model, activation, constraint) sweep: per coefficient, the per-seed values."""
    coefficients: tuple[float, ...]
    per_seed: tuple[tuple[float, ...], ...]   # finite values only
    diverged: int = 0                         # grid points x seeds without a finite value

    @property
    def means(self) -> list[float]:
        return [sum(v) / len(v) for v in self.per_seed]

    def summary(self, i: int) -> dict:
        return stats.summary(self.per_seed[i])


def curves(df, value: str = "activation_fraction") -> dict[tuple[str, str, bool], Curve]:
    """(model, activation, unit_norm) -> Curve from a sweep table (rows: one seed at one coefficient)."""
    out = {}
    for (model, act, unit), g in df.groupby(["model", "activation", "unit_norm"], sort=False):
        coefs, values, lost = [], [], 0
        for c, h in sorted(g.groupby("coefficient"), key=lambda kv: kv[0]):
            finite = tuple(float(v) for v in h[value] if v == v and math.isfinite(v))
            lost += len(h) - len(finite)
            if finite:
                coefs.append(float(c))
                values.append(finite)
        out[(model, act, bool(unit))] = Curve(tuple(coefs), tuple(values), lost)
    return out


def spearman(x, y) -> float:
    """Spearman's rank correlation (0 for a constant curve)."""
    from scipy.stats import spearmanr
    if len(x) < 2 or max(y) == min(y):
        return 0.0
    if len(x) == 2:
        return 1.0 if y[1] > y[0] else -1.0
    return float(spearmanr(x, y).statistic)


@dataclass(frozen=True)
class Trend:
    verdict: str      # stats.HOLDS / FAILS / INCONCLUSIVE
    evidence: str


def point(curve: Curve, i: int) -> str:
    s = curve.summary(i)
    spread = f" ± {s['std']:.3g}" if s["std"] is not None else ""
    return f"{s['mean']:.3g}{spread} (n={s['n']}) at {curve.coefficients[i]:g}"


def _describe(cmp: stats.Comparison) -> str:
    if cmp.p_value is None:
        return "too few seeds for a test"
    if cmp.t is not None and math.isinf(cmp.t):
        return "no spread over seeds: the ordering is exact"
    return f"Welch t = {cmp.t:.2f}, p = {cmp.p_value:.3g}"


def flat_test(curve: Curve, level: float) -> tuple[bool, bool, float, int]:
    """(some pair of grid points differs significantly, the mean curve spans <= FLAT_SPAN, span,
    pairs): every pair is tested at level / pairs (Bonferroni, ours)."""
    pairs = list(combinations(range(len(curve.coefficients)), 2))
    sig = False
    for i, j in pairs:
        a, b = curve.per_seed[i], curve.per_seed[j]
        if len(a) > 1 and len(b) > 1 and sorted(a) != sorted(b):   # identical seeds cannot differ
            cmp = stats.compare(b, a, "higher", level / len(pairs))
            sig |= cmp.verdict != stats.INCONCLUSIVE
    span = max(curve.means) - min(curve.means)
    return sig, span <= FLAT_SPAN, span, len(pairs)


def judge(curve: Curve, expect: str, level: float) -> Trend:
    """003's prediction `expect` ("falls", "rises" or "flat") for one curve.

    falls / rises: holds when the value at the largest coefficient is significantly below (above)
    the one at the smallest AND |Spearman rho| of the mean curve >= MONOTONE_RHO in that
    direction; does not hold when it moves significantly the other way or the curve is flat
    (no significant pair, span <= FLAT_SPAN); inconclusive otherwise.
    flat: holds when no pair differs significantly and the span <= FLAT_SPAN; does not hold when
    some pair differs significantly and the span > FLAT_SPAN; inconclusive otherwise.
    """
    if len(curve.coefficients) < 2:
        return Trend(stats.INCONCLUSIVE, "fewer than two grid points with a finite value")
    sig, narrow, span, n_pairs = flat_test(curve, level)
    rho = spearman(curve.coefficients, curve.means)
    shape = f"span of the mean curve {span:.3g}, Spearman rho {rho:+.2f}"
    if expect == "flat":
        verdict = stats.HOLDS if not sig and narrow else stats.FAILS if sig and not narrow else stats.INCONCLUSIVE
        where = "some" if sig else "no"
        return Trend(verdict, f"{point(curve, 0)} -> {point(curve, -1)}; {where} pair of the "
                              f"{len(curve.coefficients)} grid points differs at level {level:g}/{n_pairs}; {shape}")
    sign = SIGNED[expect]
    cmp = stats.compare(curve.per_seed[-1], curve.per_seed[0], "higher" if sign > 0 else "lower", level)
    if cmp.verdict == stats.HOLDS and sign * rho >= MONOTONE_RHO:
        verdict = stats.HOLDS
    elif cmp.verdict == stats.FAILS or (not sig and narrow):
        verdict = stats.FAILS
    else:
        verdict = stats.INCONCLUSIVE
    return Trend(verdict, f"{point(curve, 0)} -> {point(curve, -1)} ({_describe(cmp)}); {shape}")


# Ours (003 gives its numbers as "around 0.05", "does not go below 0.1"): "about x" spans a factor
# of ABOUT either way, and a grid point has dead units when their mean fraction exceeds DEAD_TOL
# and is significantly above zero.
ABOUT = 2.0
DEAD_TOL = 0.01


def _has_dead(values: tuple[float, ...], level: float) -> bool:
    mean = sum(values) / len(values)
    return mean > DEAD_TOL and stats.compare(values, [0.0] * len(values), "higher", level).verdict == stats.HOLDS


def onset(af: Curve, dead: Curve, published: float, level: float) -> Trend:
    """003 sec. 3.1.1: dead units appear only once the activation fraction falls to about
    `published`. Does not hold when some grid point above ABOUT * published has dead units;
    holds when none does and some point at or below it has them; inconclusive otherwise (the
    curve never got there, or no unit died)."""
    dead_at = dict(zip(dead.coefficients, dead.per_seed))
    bound = published * ABOUT
    early, late, near = [], [], []
    for c, mean in zip(af.coefficients, af.means):
        d = dead_at.get(c)
        if mean <= bound:
            near.append(c)
        if d is None or len(d) < 2 or not _has_dead(d, level):
            continue
        (late if mean <= bound else early).append((c, mean, sum(d) / len(d)))
    show = lambda pts: ", ".join(f"{m:.3g} at coefficient {c:g} (dead {x:.3g})" for c, m, x in pts)  # noqa: E731
    if early:
        return Trend(stats.FAILS, f"dead units while the activation fraction is above {bound:g}: {show(early)}")
    if late:
        return Trend(stats.HOLDS, f"no dead units while the activation fraction is above {bound:g}; dead units "
                                  f"from activation fraction {show(late[:1])}")
    if not near:
        return Trend(stats.INCONCLUSIVE, f"the activation fraction never fell to {bound:g} (lowest mean "
                                         f"{min(af.means):.3g}): no onset to see")
    return Trend(stats.INCONCLUSIVE, f"no dead units even at activation fraction {min(af.means):.3g}")


def floor(af: Curve, published: float, level: float) -> Trend:
    """003 sec. 3.1.1: the activation fraction does not go below about `published`. Does not hold
    when some grid point is significantly below published / ABOUT; holds when none is and the
    lowest mean comes within ABOUT * published (the curve reaches the floor); inconclusive
    otherwise."""
    low, high = published / ABOUT, published * ABOUT
    below = [(c, m) for c, m, v in zip(af.coefficients, af.means, af.per_seed)
             if len(v) > 1 and stats.compare(v, [low] * len(v), "lower", level).verdict == stats.HOLDS]
    lowest = min(af.means)
    if below:
        return Trend(stats.FAILS, "below " + ", ".join(f"{m:.3g} at coefficient {c:g}" for c, m in below) +
                     f" (significantly under {low:g})")
    if lowest <= high:
        return Trend(stats.HOLDS, f"lowest mean {lowest:.3g}: never significantly under {low:g}")
    return Trend(stats.INCONCLUSIVE, f"lowest mean {lowest:.3g}: the curve never came near {published:g} "
                                     f"(within {high:g})")


def shape(curve: Curve, level: float) -> str | None:
    """'falls', 'rises' or 'flat' when judge() holds for exactly that one; None when unclear."""
    found = [e for e in ("falls", "rises", "flat") if judge(curve, e, level).verdict == stats.HOLDS]
    return found[0] if len(found) == 1 else None
