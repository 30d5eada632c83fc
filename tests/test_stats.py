"""Convergence of a training curve (sae.stats)."""
from sae import stats


def test_convergence_looks_back_at_least_min_epochs():
    curve = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.5, 0.5]  # flat only over its last 2 epochs
    assert stats.converged(curve, 0.1, 0.01) is True               # window: 1 epoch back
    assert stats.converged(curve, 0.1, 0.01, min_epochs=5) is False  # 5 epochs back: 0.7 -> 0.5
    assert stats.converged(curve[:5], 0.1, 0.01, min_epochs=5) is None  # too short to tell
    assert stats.convergence_span(100, 0.1, 5) == 10 and stats.convergence_span(20, 0.1, 5) == 5
