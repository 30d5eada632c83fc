"""Evaluation metrics of the papers: reconstruction error, sparseness, activation fractions.

Torch tensors in (any float dtype, CPU or CUDA), torch tensors out on the same device.
The last two dimensions are (samples, units); any leading dimensions (the G models of a
batch) are kept: a per-row measure of h (..., N, M) is (..., N), a per-set one is (...).
An all-zero row never produces NaN.
"""
from __future__ import annotations

import math

import torch


def _rows(t: torch.Tensor, name: str) -> torch.Tensor:
    """Check that t is (..., N, M) with M >= 1."""
    if t.dim() < 2 or t.shape[-1] == 0:
        raise ValueError(f"{name} expects a (..., N, M) tensor with M >= 1, got shape {tuple(t.shape)}")
    return t


# 001 eq. 13: RE = (1/D) sum_i (x_i - y_i)^2
def reconstruction_error(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-row mean squared error. x, y: (..., N, D) (x may broadcast). Returns (..., N)."""
    _rows(y, "reconstruction_error")
    if x.shape[-2:] != y.shape[-2:]:
        raise ValueError(f"reconstruction_error: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}")
    return (x - y).square().mean(dim=-1)


# 000 sec. III, Gini index of Hurley & Rickard (2009)
def gini(h: torch.Tensor) -> torch.Tensor:
    """Gini index per row: G = 1 - 2 sum_k (c_k / ||c||_1) (N - k + 1/2) / N.

    h: (..., rows, N); c = |h| of a row sorted ascending, k = 1..N. Returns (..., rows).
    0 for a constant row, 1 - 1/N for a one-hot row; an all-zero row gives 0.
    """
    _rows(h, "gini")
    n = h.shape[-1]
    c = h.abs().sort(dim=-1).values
    k = torch.arange(1, n + 1, device=h.device, dtype=c.dtype)
    weight = (n - k + 0.5) / n  # (N,)
    l1 = c.sum(dim=-1)
    nonzero = l1 > 0
    g = 1.0 - 2.0 * (c @ weight) / torch.where(nonzero, l1, torch.ones_like(l1))
    return torch.where(nonzero, g, torch.zeros_like(g))


# 001 eq. 14 (Hoyer 2004): S(h) = (sqrt(M) - ||h||_1 / ||h||_2) / (sqrt(M) - 1)
def hoyer(h: torch.Tensor) -> torch.Tensor:
    """Hoyer sparseness per row. h: (..., N, M) with M >= 2. Returns (..., N) in [0, 1].

    0 for a constant row, 1 for a one-hot row; an all-zero row (0/0) is defined as 0.
    """
    _rows(h, "hoyer")
    m = h.shape[-1]
    if m < 2:
        raise ValueError("hoyer needs at least 2 columns (the denominator is sqrt(M) - 1)")
    l1 = h.abs().sum(dim=-1)
    l2 = torch.linalg.vector_norm(h, ord=2, dim=-1)
    nonzero = l2 > 0
    ratio = l1 / torch.where(nonzero, l2, torch.ones_like(l2))
    s = (math.sqrt(m) - ratio) / (math.sqrt(m) - 1.0)
    return torch.where(nonzero, s, torch.zeros_like(s))


# 001 eq. 15 (its square root lost in extraction): SSD = population std (1/N) of S(h^(j))
def ssd(h: torch.Tensor) -> torch.Tensor:
    """Sparsity standard deviation. h: (..., N, M). Returns (...).

    sqrt((1/N) sum_j (S(h_j) - mean_j S(h_j))^2), S = hoyer.
    """
    return torch.std(hoyer(h), dim=-1, correction=0)


# 003 eq. 14: Avg.Act.Fraction = sum_ij 1(h_ij > delta_min) / (N m)
def activation_fraction(h: torch.Tensor, threshold: float) -> torch.Tensor:
    """Fraction of the entries of each (N, m) set in h (..., N, m) above threshold. Returns (...)."""
    _rows(h, "activation_fraction")
    return (h > threshold).to(torch.float32).mean(dim=(-2, -1))


# 003 sec. 3: dead units deactivate (h <= delta_min) for all data samples
def dead_fraction(h: torch.Tensor, threshold: float) -> torch.Tensor:
    """Fraction of hidden units (columns of h (..., N, m)) never above threshold. Returns (...)."""
    _rows(h, "dead_fraction")
    alive = (h > threshold).any(dim=-2)
    return (~alive).to(torch.float32).mean(dim=-1)
