"""Models whose objective sees a randomly perturbed batch: dae, dropout, edae.

All randomness is drawn from the `generator` passed to objective() so a run is
reproducible and resumable; perturbations apply in training mode only (eval is clean).
"""

import math

import torch

from .core import Autoencoder, reconstruction_error


def _draw(fn, like, generator):
    """Uniform or normal noise shaped like `like`, drawn on the generator's own device."""
    device = like.device if generator is None else generator.device
    return fn(like.shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


def mask_corrupt(x, p, generator=None):
    """Zero each entry of x (B,D) with probability p, no rescaling (Vincent et al. masking)."""
    return x * (_draw(torch.rand, x, generator) >= p)  # 002 Table 1: DAE, 20% input dropout


def gaussian_noise(like, variance, generator=None):
    """i.i.d. zero-mean Gaussian noise shaped like `like` (B,D), of the given VARIANCE sigma^2."""
    return math.sqrt(variance) * _draw(torch.randn, like, generator)  # 003 Theorem 3


def gaussian_corrupt(x, variance, generator=None):
    """x_tilde = x + noise of variance sigma^2; x (B,D)."""
    return x + gaussian_noise(x, variance, generator)


def inverted_dropout(x, p, generator=None):
    """Drop entries of x with probability p and rescale by 1/(1-p) (identity in expectation)."""
    if p == 0:
        return x
    return x * (_draw(torch.rand, x, generator) >= p) / (1 - p)  # 002 Table 1 (Hinton et al. 2012)


def first_order_dae_term(noise, grad):
    """Mean over the batch of (x_tilde - x)^T grad_u l(x, f(u))|_{u=x}; noise, grad (B,D)."""
    return (noise * grad).sum(dim=1).mean()  # 003 sec. 3.1.1, J_eDAE


class Denoising(Autoencoder):
    """DAE: reconstruct clean x from a corrupted x (000 DenAE, 002 Table 1, 003 eq. (6))."""

    def __init__(self, in_dim, hidden, *, corruption, level, **core):
        super().__init__(in_dim, hidden, **core)
        self.corruption, self.level = corruption, level

    def corrupt(self, x, generator=None):
        if not self.training or self.level == 0:
            return x
        if self.corruption == "mask":
            return mask_corrupt(x, self.level, generator)
        return gaussian_corrupt(x, self.level, generator)

    def objective(self, x, generator=None):
        x_tilde = self.corrupt(x, generator)
        h = self.encode(x_tilde)
        recon = reconstruction_error(x, self.decode(h))
        return recon + self.penalty(x_tilde, h), recon


class Dropout(Autoencoder):
    """Dropout AE: inverted dropout on the input (p_input) and the codes (p_hidden), 002 Table 1."""

    def __init__(self, in_dim, hidden, *, p_hidden, p_input, **core):
        super().__init__(in_dim, hidden, **core)
        self.p_hidden, self.p_input = p_hidden, p_input

    def objective(self, x, generator=None):
        x_in = inverted_dropout(x, self.p_input, generator) if self.training else x
        h = self.encode(x_in)
        if self.training:
            h = inverted_dropout(h, self.p_hidden, generator)
        recon = reconstruction_error(x, self.decode(h))
        return recon, recon


class ExplicitDAE(Autoencoder):
    """eDAE (003 sec. 3.1.1): l(x, f(x)) + (x_tilde - x)^T grad_u l(x, f(u))|_{u=x}.

    Only the first-order term of the DAE's Taylor expansion; x_tilde = x + noise of
    variance `level`. The gradient term is kept in the graph (create_graph) so that the
    parameters are trained through it.
    """

    def __init__(self, in_dim, hidden, *, level, **core):
        super().__init__(in_dim, hidden, **core)
        self.level = level

    def objective(self, x, generator=None):
        if not self.training or self.level == 0:
            return super().objective(x, generator)
        noise = gaussian_noise(x, self.level, generator)  # x_tilde - x
        keep_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            u = x.detach().requires_grad_(True)
            per_sample = (self.decode(self.encode(u)) - x).pow(2).sum(dim=1)  # l(x, f(u)), (B,)
            # samples are independent, so row i of d(sum_i l_i)/du is grad of l_i alone
            (grad,) = torch.autograd.grad(per_sample.sum(), u, create_graph=keep_graph)
        recon = per_sample.mean()
        return recon + first_order_dae_term(noise, grad), recon
