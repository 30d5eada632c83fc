"""Models whose objective sees a randomly perturbed batch: dae, dropout, edae.

All randomness is drawn from the model's seeded streams (sae.base.rng.Streams) passed to
objective(), so a run is reproducible and resumable, and model g of a batch sees exactly
the noise of a run that trains it alone; perturbations apply in training mode only.
"""

import torch

from .core import Autoencoder, reconstruction_error


def _shape(x):
    return x.shape[-2:]


def _zero(level) -> bool:
    """A shared level of 0 (no noise at all: nothing is drawn); per-model levels always draw."""
    return isinstance(level, (int, float)) and level == 0


def mask_corrupt(x, p, streams):
    """Zero each entry of x (G,B,D) with probability p, no rescaling (Vincent et al. masking)."""
    return x * (streams.rand(*_shape(x), dtype=x.dtype).to(x.device) >= p)  # 002 Table 1: DAE, 20% input dropout


def gaussian_noise(like, variance, streams):
    """i.i.d. zero-mean Gaussian noise shaped (G,B,D) of the given VARIANCE sigma^2 (float or (G,))."""
    scale = variance ** 0.5 if isinstance(variance, (int, float)) else variance.sqrt()[:, None, None]
    return scale * streams.randn(*_shape(like), dtype=like.dtype).to(like.device)  # 003 Theorem 3


def gaussian_corrupt(x, variance, streams):
    """x_tilde = x + noise of variance sigma^2; x (G,B,D)."""
    return x + gaussian_noise(x, variance, streams)


def inverted_dropout(x, p, streams):
    """Drop entries of x (G,B,D) with probability p and rescale by 1/(1-p) (identity in expectation)."""
    if p == 0:
        return x
    return x * (streams.rand(*_shape(x), dtype=x.dtype).to(x.device) >= p) / (1 - p)  # 002 Table 1 (Hinton et al. 2012)


def first_order_dae_term(noise, grad):
    """Batch mean of (x_tilde - x)^T grad_u l(x, f(u))|_{u=x}; noise, grad (G,B,D) -> (G,)."""
    return (noise * grad).sum(dim=-1).mean(dim=-1)  # 003 sec. 3.1.1, J_eDAE


class Denoising(Autoencoder):
    """DAE: reconstruct clean x from a corrupted x (000 DenAE, 002 Table 1, 003 eq. (6))."""

    def __init__(self, in_dim, hidden, *, corruption, level, **core):
        super().__init__(in_dim, hidden, **core)
        self.corruption = corruption
        self.set_hyper(level=level)

    def corrupt(self, x, streams):
        if not self.training or _zero(self.level):
            return x
        if self.corruption == "mask":
            return mask_corrupt(x, self.level, streams)
        return gaussian_corrupt(x, self.level, streams)

    def objective(self, x, streams=None):
        x_tilde = self.corrupt(x, streams)
        h = self.encode(x_tilde)
        recon = reconstruction_error(x, self.decode(h))
        return recon + self.penalty(x_tilde, h), recon


class Dropout(Autoencoder):
    """Dropout AE: inverted dropout on the input (p_input) and the codes (p_hidden), 002 Table 1."""

    def __init__(self, in_dim, hidden, *, p_hidden, p_input, **core):
        super().__init__(in_dim, hidden, **core)
        self.p_hidden, self.p_input = p_hidden, p_input

    def objective(self, x, streams=None):
        x_in = inverted_dropout(x, self.p_input, streams) if self.training else x
        h = self.encode(x_in)
        if self.training:
            h = inverted_dropout(h, self.p_hidden, streams)
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
        self.set_hyper(level=level)

    def objective(self, x, streams=None):
        if not self.training or _zero(self.level):
            return super().objective(x, streams)
        if x.dim() == 2:  # each model's gradient below is w.r.t. its own copy of the batch
            x = x.expand(self.n_models, *x.shape)
        noise = gaussian_noise(x, self.level, streams)  # x_tilde - x
        keep_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            u = x.detach().requires_grad_(True)
            per_sample = (self.decode(self.encode(u)) - x).pow(2).sum(dim=-1)  # l(x, f(u)), (G,B)
            # samples and models are independent, so row (g, i) of d(sum l)/du is grad of l_gi alone
            (grad,) = torch.autograd.grad(per_sample.sum(), u, create_graph=keep_graph)
        recon = per_sample.mean(dim=-1)
        return recon + first_order_dae_term(noise, grad), recon
