"""Multinomial logistic regression (softmax) on fixed features: 002 Tables 1-2, 001's one-layer softmax.

All data stays on its device. Every L2 strength of a grid is trained at once: the
weights of the G models are one (D, G*C) matrix, so a step is one matmul and the grid
costs about one fit. The groups never interact (their losses add up and Adam / SGD act
per coordinate), so each column block is exactly the fit it would be alone.

The API keeps test labels away from model selection: `select_l2` sees train and
validation only and returns the chosen strength with its classifier; `error_rate`
is then called on the test split by the caller.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sae.base.catalog import OPTIMIZERS
from sae.base.errors import ParamError
from sae.base.optim import make_optimizer


def standardize_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std of the TRAINING features; a constant feature gets std 1."""
    mean = x.mean(dim=0)
    std = x.std(dim=0, correction=0)
    return mean, torch.where(std > 1e-8, std, torch.ones_like(std))


@dataclass
class Softmax:
    """G softmax classifiers on standardised features: logits = ((x - mean) / std) @ W[:, g] + b[g]."""

    mean: torch.Tensor  # (D,)
    std: torch.Tensor   # (D,)
    W: torch.Tensor     # (D, G, C)
    b: torch.Tensor     # (G, C)
    l2: torch.Tensor    # (G,)

    @torch.no_grad()
    def logits(self, x: torch.Tensor, batch: int = 8192) -> torch.Tensor:
        """x (N, D) -> (N, G, C)."""
        d, g, c = self.W.shape
        w = self.W.reshape(d, g * c)
        out = [(((xb - self.mean) / self.std) @ w).view(-1, g, c) + self.b
               for xb in x.split(batch)]
        return torch.cat(out)

    @torch.no_grad()
    def errors(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Error rate of each of the G classifiers on (x, y): (G,) tensor."""
        wrong = self.logits(x).argmax(dim=2) != y[:, None]
        return wrong.to(torch.float32).mean(dim=0)

    def pick(self, i: int) -> "Softmax":
        """The i-th classifier of the grid alone (G = 1)."""
        return Softmax(self.mean, self.std, self.W[:, i:i + 1], self.b[i:i + 1], self.l2[i:i + 1])


def fit_softmax(x: torch.Tensor, y: torch.Tensor, n_classes: int, l2, *, epochs: int = 30,
                batch: int = 256, lr: float = 0.01, optimizer: str = "adam", momentum: float = 0.9,
                seed: int = 0) -> Softmax:
    """Train one softmax classifier per L2 strength in `l2` (a float or a list) on (x, y), together.

    Loss of classifier g: mean cross-entropy + l2[g] * ||W_g||^2 (weights, not biases).
    Features are standardised with the statistics of x. Weights start at zero (the problem
    is convex); the learning rate decays linearly to zero over the run; minibatches come
    from a permutation seeded by `seed`, so a fit is deterministic on CPU.
    """
    grid = [float(l2)] if isinstance(l2, (int, float)) else [float(v) for v in l2]
    device, dtype = x.device, x.dtype
    n, d = x.shape
    g, c = len(grid), int(n_classes)
    mean, std = standardize_stats(x)
    xs = (x - mean) / std
    y = y.to(device=device, dtype=torch.long)
    lam = torch.tensor(grid, device=device, dtype=dtype)
    w = torch.zeros(d, g * c, device=device, dtype=dtype, requires_grad=True)
    b = torch.zeros(g * c, device=device, dtype=dtype, requires_grad=True)
    if optimizer not in OPTIMIZERS:
        raise ParamError(f"classify.optimizer={optimizer!r}: allowed: {', '.join(OPTIMIZERS)}")
    opt = make_optimizer([w, b], optimizer, lr, momentum)
    gen = torch.Generator(device=device).manual_seed(seed)
    steps_per_epoch = math.ceil(n / batch)
    total = epochs * steps_per_epoch
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen, device=device)
        for i in range(steps_per_epoch):
            idx = perm[i * batch:(i + 1) * batch]
            logits = (xs[idx] @ w + b).view(-1, g, c)
            logp = torch.log_softmax(logits, dim=2)
            nll = -logp.gather(2, y[idx].view(-1, 1, 1).expand(-1, g, 1)).squeeze(2).mean(dim=0)  # (G,)
            penalty = lam * w.view(d, g, c).pow(2).sum(dim=(0, 2))                                   # (G,)
            loss = (nll + penalty).sum()  # independent groups: the gradient of each is its own
            for group in opt.param_groups:
                group["lr"] = lr * (1 - step / total)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    return Softmax(mean, std, w.detach().view(d, g, c), b.detach().view(g, c), lam)


def select_l2(x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
              grid, n_classes: int, **fit_kwargs) -> tuple[float, list[float], Softmax]:
    """Choose the L2 strength with the lowest VALIDATION error (ties: the stronger one).

    Sees only the training and validation splits. Returns (l2, validation error of every
    grid value, the chosen classifier trained on the training split).
    """
    grid = [float(v) for v in grid]
    clf = fit_softmax(x_train, y_train, n_classes, grid, **fit_kwargs)
    val_errors = clf.errors(x_val, y_val.to(x_val.device)).tolist()
    best = min(range(len(grid)), key=lambda i: (val_errors[i], -grid[i]))
    return grid[best], val_errors, clf.pick(best)


def error_rate(clf: Softmax, x: torch.Tensor, y: torch.Tensor) -> float:
    """Error rate in [0, 1] of a single classifier (G = 1) on (x, y)."""
    if clf.W.shape[1] != 1:
        raise ValueError("error_rate expects one classifier; use Softmax.pick(i) first")
    return float(clf.errors(x, y.to(x.device))[0])
