"""Tests of sae.base.metrics on hand-made tensors, on CPU and (when present) CUDA."""

import pytest
import torch

from sae.base.metrics import (
    activation_fraction,
    dead_fraction,
    gini,
    hoyer,
    reconstruction_error,
    ssd,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _gini_loop(v):
    """Hurley & Rickard Gini index of one vector, written as the formula reads."""
    c = sorted(abs(float(a)) for a in v)
    n, l1 = len(c), sum(c)
    return 1.0 - 2.0 * sum((c[k - 1] / l1) * ((n - k + 0.5) / n) for k in range(1, n + 1))


@pytest.mark.parametrize("device", DEVICES)
def test_gini_extremes(device):
    n = 10
    h = torch.stack([torch.full((n,), 3.0), torch.eye(n)[4], -torch.eye(n)[0]]).to(device)
    g = gini(h)
    assert g.shape == (3,) and g.device.type == device
    torch.testing.assert_close(g.cpu(), torch.tensor([0.0, 1 - 1 / n, 1 - 1 / n]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_gini_matches_loop(device):
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(20, 37, generator=gen, dtype=torch.float64)
    h[h.abs() < 0.5] = 0.0
    expected = torch.tensor([_gini_loop(row) for row in h], dtype=torch.float64)
    torch.testing.assert_close(gini(h.to(device)).cpu(), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(gini(h.float().to(device)).cpu(), expected.float(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_hoyer_extremes(device):
    m = 16
    h = torch.stack([torch.full((m,), -2.0), torch.eye(m)[7] * 5.0]).to(device)
    torch.testing.assert_close(hoyer(h).cpu(), torch.tensor([0.0, 1.0]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_hoyer_matches_formula(device):
    h = torch.tensor([[1.0, 2.0, 0.0, -2.0]], device=device)
    expected = (2.0 - 5.0 / 3.0) / (2.0 - 1.0)  # sqrt(4) = 2, l1 = 5, l2 = 3
    assert hoyer(h).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_all_zero_rows_are_finite(device):
    h = torch.zeros(3, 8, device=device)
    h[1, 2] = 1.0
    for value in (gini(h), hoyer(h), ssd(h)):
        assert torch.isfinite(value).all()
    assert gini(h)[0].item() == 0.0 and hoyer(h)[0].item() == 0.0


@pytest.mark.parametrize("device", DEVICES)
def test_ssd_zero_for_equal_sparseness_positive_otherwise(device):
    gen = torch.Generator().manual_seed(1)
    v = torch.randn(12, generator=gen)
    same = torch.stack([v[torch.randperm(12, generator=gen)] for _ in range(6)]).to(device)
    assert ssd(same).dim() == 0
    assert ssd(same).item() == pytest.approx(0.0, abs=1e-6)
    mixed = torch.stack([torch.ones(12), torch.eye(12)[0]]).to(device)
    assert ssd(mixed).item() == pytest.approx(0.5, abs=1e-6)  # Hoyer 0 and 1: population std 0.5
    assert ssd(torch.randn(30, 12, generator=gen).to(device)).item() > 0.0


@pytest.mark.parametrize("device", DEVICES)
def test_activation_and_dead_fraction(device):
    h = torch.tensor(
        [
            [0.0, 0.5, 0.05, 0.0],
            [0.2, 0.0, 0.10, 0.0],
            [0.0, 0.3, 0.00, -1.0],
        ],
        device=device,
    )
    # threshold 0: entries > 0 are 0.5, 0.05, 0.2, 0.1, 0.3 -> 5 of 12; column 3 never > 0.
    assert activation_fraction(h, 0.0).item() == pytest.approx(5 / 12)
    assert dead_fraction(h, 0.0).item() == pytest.approx(1 / 4)
    # threshold 0.1: 0.5, 0.2, 0.3 -> 3 of 12 (0.10 is not > 0.1); columns 2 and 3 dead.
    assert activation_fraction(h, 0.1).item() == pytest.approx(3 / 12)
    assert dead_fraction(h, 0.1).item() == pytest.approx(2 / 4)
    assert activation_fraction(h, 0.0).dim() == 0 and dead_fraction(h, 0.0).dim() == 0


@pytest.mark.parametrize("device", DEVICES)
def test_reconstruction_error_per_row(device):
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]], device=device)
    y = torch.tensor([[1.0, 0.0, 3.0, 5.0], [1.0, -1.0, 2.0, 0.0]], device=device)
    re = reconstruction_error(x, y)
    assert re.shape == (2,)
    torch.testing.assert_close(re.cpu(), torch.tensor([(0 + 4 + 0 + 1) / 4, (1 + 1 + 4 + 0) / 4]))


def test_activation_thresholds():
    from sae.base.catalog import ACTIVATION_THRESHOLD
    assert ACTIVATION_THRESHOLD == {"relu": 0.0, "sigmoid": 0.1, "softplus": 0.1, "tanh": 0.1, "linear": 0.0}


def test_leading_model_axis_is_kept():
    h = torch.rand(3, 50, 8)
    assert gini(h).shape == (3, 50) and hoyer(h).shape == (3, 50) and ssd(h).shape == (3,)
    assert activation_fraction(h, 0.5).shape == (3,) and dead_fraction(h, 0.5).shape == (3,)
    for g in range(3):
        torch.testing.assert_close(gini(h)[g], gini(h[g]))
        torch.testing.assert_close(activation_fraction(h, 0.5)[g], activation_fraction(h[g], 0.5))
