"""Sparsity penalties as pure tensor functions, one paper equation each.

h is the code batch of G models, (G, B, M); each function returns one value per model, (G,),
a mean over the batch wherever the paper sums over samples (so the term's weight does not
depend on the batch size), except where a docstring says otherwise. A coefficient may be a
number or a (G,) tensor (one value per model: the 003 sweep trains a grid of them at once).
"""

import torch

EPS = 1e-6  # keeps logs finite when a unit is always off or always on


def per_model(coef, like: torch.Tensor):
    """A coefficient as a (G,) tensor broadcastable against per-model values, or a float."""
    return coef if isinstance(coef, (int, float)) else coef.to(like.dtype)


def kl_sparsity(h, rho):
    """sum_j KL(rho || rho_hat_j), rho_hat_j = batch mean of h_j; h (G,B,M), rho float or (G,) -> (G,)."""
    rho_hat = h.mean(dim=-2).clamp(EPS, 1 - EPS)  # 000 [14] KLDSAE; 003 eq. (12)
    rho = rho if isinstance(rho, (int, float)) else rho.to(h.dtype)[:, None]
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum(dim=-1)


def l1_penalty(h):
    """Batch mean of sum_j |h_j| (plain subgradient at 0); h (G,B,M) -> (G,)."""
    return h.abs().sum(dim=-1).mean(dim=-1)  # 004 Obj: lambda * sum_i |a_i|; 000 eq. (2)


def student_t_penalty(h):
    """Batch mean of sum_j log(1 + h_j^2); h (G,B,M) -> (G,)."""
    return torch.log1p(h * h).sum(dim=-1).mean(dim=-1)  # 000 sec. I [13]: AL1SAE, smooth l1 surrogate


class _NegativeSquares(torch.autograd.Function):
    """sum of min(w, 0)^2 per model, and its gradient 2 min(w, 0): one pass over w and a dot
    product forward, one pass backward, where autograd's clamp -> pow -> sum makes six passes and
    four temporaries of the weights' size every step. First derivatives only."""

    @staticmethod
    def forward(ctx, w):
        neg = w.clamp(max=0)
        ctx.save_for_backward(neg)
        flat = neg.reshape(neg.shape[0], 1, -1)
        return torch.bmm(flat, flat.transpose(1, 2)).view(-1)

    @staticmethod
    def backward(ctx, grad):
        neg, = ctx.saved_tensors
        return neg * (2 * grad).view(-1, *([1] * (neg.dim() - 1)))


def negative_weight_penalty(*weights):
    """Sum of squared negative entries over the given (G, r, c) weight matrices -> (G,) (not batch);
    the values and gradients of sum(w.clamp(max=0).pow(2).sum((-2, -1))) (tests/test_models.py)."""
    return sum(_NegativeSquares.apply(w) for w in weights)  # 000 [16] NCAE (Hosseini-Asl et al.)


def smoothed_l0_squared(h, sigma):
    """Per-sample C_s = (M - sum_i exp(-h_i^2 / (2 sigma^2)))^2; h (G,B,M) -> (G,B)."""
    l0 = h.shape[-1] - torch.exp(-h * h / (2 * sigma**2)).sum(dim=-1)  # 001 eq. (3)
    return l0 * l0  # 001 eq. (7): the square spreads sparsity evenly over samples


def contractive_penalty(dh_da, row_sq_norm):
    """Batch mean of sum_j (dh_j/da_j)^2 ||W_j||^2 = ||dh/dx||_F^2.

    dh_da (G,B,M), row_sq_norm (G,M) = ||W_j||^2 -> (G,).
    """
    return (dh_da.pow(2) * row_sq_norm[:, None, :]).sum(dim=-1).mean(dim=-1)  # 003 eq. (9)


def marginalized_dae_penalty(dh_da, row_sq_norm):
    """Batch mean of sum_j (dh_j/da_j)^2 ||W_j||^4; dh_da (G,B,M), row_sq_norm (G,M) -> (G,)."""
    return (dh_da.pow(2) * row_sq_norm.pow(2)[:, None, :]).sum(dim=-1).mean(dim=-1)  # 003 eq. (11)


def zero_rho_sparsity(h):
    """-sum_j log(1 - rho_hat_j), rho_hat_j = batch mean of h_j; h (G,B,M) -> (G,)."""
    return -torch.log((1 - h.mean(dim=-2)).clamp_min(EPS)).sum(dim=-1)  # 003 eq. (13): KL with rho = 0
