"""Convergence of a training curve (sae.base.stats)."""
from sae.base import stats


def test_convergence_looks_back_at_least_min_epochs():
    curve = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.5, 0.5]  # flat only over its last 2 epochs
    assert stats.converged(curve, 0.1, 0.01) is True               # window: 1 epoch back
    assert stats.converged(curve, 0.1, 0.01, min_epochs=5) is False  # 5 epochs back: 0.7 -> 0.5
    assert stats.converged(curve[:5], 0.1, 0.01, min_epochs=5) is None  # too short to tell
    assert stats.convergence_span(100, 0.1, 5) == 10 and stats.convergence_span(20, 0.1, 5) == 5


def test_convergence_judges_the_trend_as_well_as_the_ends():
    # falls 1% an epoch, but the window's first epoch dips to the last one's level, so its ends
    # sit level (000's NCAE, in small)
    jittery = [1.00, 0.99, 0.98, 0.97, 0.96, 0.90, 0.94, 0.93, 0.92, 0.91, 0.90]
    assert stats.convergence_span(len(jittery), 0.1, 5) == 5      # the window: jittery[5:]
    change = stats.relative_change(jittery, 0.1, min_epochs=5)
    assert 0.01 < change < 0.02                           # its least-squares line: 1.6% across it
    assert stats.converged(jittery, 0.1, 0.01, min_epochs=5) is False
    flat = [0.5, 0.501, 0.499, 0.5, 0.501, 0.5]           # level but noisy: converged
    assert stats.converged(flat, 0.1, 0.01, min_epochs=5) is True


def test_convergence_is_never_looser_than_the_ends_alone():
    import random
    rng = random.Random(0)
    for _ in range(200):
        curve = [rng.uniform(0.5, 1.5) for _ in range(rng.randint(6, 30))]
        span = stats.convergence_span(len(curve), 0.1, 5)
        ends = abs(curve[-1] - curve[-span - 1]) / abs(curve[-1])
        assert stats.relative_change(curve, 0.1, 5) >= ends
