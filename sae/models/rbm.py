"""Restricted Boltzmann machines (002's baseline rows), G of them at once, trained by contrastive
divergence through the one training loop.

Bernoulli visible units for inputs in [0, 1] (MNIST), Gaussian visible units of unit variance
for standardised inputs (NORB), Bernoulli hidden units. W (G,M,D), hidden bias b (G,M), visible
bias c (G,D): the shapes of a tied autoencoder, so encode() = p(h|v) serves evaluate, the
classifier, the histogram and fine-tuning unchanged (002 sec. 4.4-4.5: "RBM", "RBM + F.T.").

CD-k (Hinton 2002, "Training products of experts by minimizing contrastive divergence") is
the gradient of F(v_data) - F(v_model) with the Gibbs samples v_model held constant: the
objective below, whose gradient is exactly <v h>_model - <v h>_data (tests/test_rbm.py).
Defaults follow Hinton's practical guide (UTML TR 2010-003): weights N(0, 0.01), hidden
states sampled, visible reconstructions as probabilities.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .core import Autoencoder, affine


class _Softplus(torch.autograd.Function):
    """log(1 + e^a) as max(a, 0) + log(1 + e^-|a|), gradient sigmoid(a). torch's CPU softplus
    runs log1p unvectorised, while exp and log are vectorised (README: Benchmarks); this form
    cannot overflow, and 1 + e^-|a| lies in (1, 2], where log is accurate to an ulp of 1."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return a.clamp_min(0).add_(a.abs().neg_().exp_().add_(1).log_())

    @staticmethod
    def backward(ctx, grad):
        a, = ctx.saved_tensors
        return grad * torch.sigmoid(a)


def softplus(a):
    """log(1 + e^a) elementwise, any shape: F.softplus's values within 1e-6 and its gradient
    (tests/test_rbm.py)."""
    return _Softplus.apply(a)


def free_energy(v, W, b, c, visible: str, pre=None):
    """F(v) per sample: -c.v - sum_j softplus(W_j v + b_j) (Bernoulli visible), or
    ||v - c||^2 / 2 - sum_j softplus(W_j v + b_j) (Gaussian, unit variance); v (G,B,D) -> (G,B).
    pre: W v + b (G,B,M) when the caller has it."""
    pre = affine(v, W, b) if pre is None else pre
    hidden = softplus(pre).sum(dim=-1)
    if visible == "gaussian":
        return 0.5 * (v - c.unsqueeze(1)).pow(2).sum(dim=-1) - hidden
    return -(v * c.unsqueeze(1)).sum(dim=-1) - hidden


class RBM(Autoencoder):
    """G RBMs; `cd_k` Gibbs steps per update, chains restarted at the data (CD) or carried over
    between batches (persistent CD, Tieleman 2008)."""

    def __init__(self, in_dim, hidden, *, n_models=1, visible="bernoulli", cd_k=1, persistent=False,
                 weight_decay=0.0, init_std=0.01, generators=None):
        super().__init__(in_dim, hidden, n_models=n_models, activation="sigmoid",
                         decoder="sigmoid" if visible == "bernoulli" else "linear", tied=True,
                         weight_decay=weight_decay, init="gaussian", init_std=init_std, generators=generators)
        self.visible, self.cd_k, self.persistent = visible, cd_k, persistent
        self.chains = None  # persistent CD: the fantasy particles (G,B,D)

    def param_groups(self) -> list[dict]:
        """weight_decay * ||W||^2 once (an RBM has one weight matrix): gradient 2 wd W."""
        others = [p for p in self.parameters() if p is not self.W]
        return [{"params": [self.W], "weight_decay": 2 * self.weight_decay}, {"params": others, "weight_decay": 0.0}]

    def weight_penalty(self):
        return self.weight_decay * self.W.pow(2).sum(dim=(-2, -1))

    def sample_hidden(self, v, streams, p=None):
        """h ~ p(h|v), (G,B,M); p: p(h|v) when the caller has it."""
        p = self.encode(v) if p is None else p
        return (streams.rand(*p.shape[-2:], dtype=p.dtype).to(p.device) < p).to(p.dtype)

    def visible_mean(self, h):
        return self.decode(h)

    def sample_visible(self, h, streams):
        mean = self.visible_mean(h)
        if self.visible == "gaussian":
            return mean + streams.randn(*mean.shape[-2:], dtype=mean.dtype).to(mean.device)
        return (streams.rand(*mean.shape[-2:], dtype=mean.dtype).to(mean.device) < mean).to(mean.dtype)

    @torch.no_grad()
    def gibbs(self, v, streams, p_first=None):
        """The negative particles: cd_k steps v -> h -> v from v (G,B,D); the last visible step
        is its mean (Hinton's guide, sec. 3.2), the chains keep samples. p_first: p(h|v) of the
        starting v, when the caller has it."""
        for step in range(self.cd_k):
            h = self.sample_hidden(v, streams, p_first if step == 0 else None)
            last = step == self.cd_k - 1
            v = self.visible_mean(h) if last and not self.persistent else self.sample_visible(h, streams)
        return v

    def objective(self, x, streams=None):
        """(mean F(v_data) - mean F(v_model), reconstruction error of the mean-field pass), each (G,)."""
        if x.dim() == 2:
            x = x.expand(self.n_models, *x.shape)
        if not self.training:
            recon = (self.decode(self.encode(x)) - x).pow(2).sum(dim=-1).mean(dim=-1)
            return recon, recon
        # One product W x + b serves the data's free energy, the first Gibbs step and the
        # logged reconstruction (6 GEMMs a CD-1 step instead of 8).
        a_data = affine(x, self.W, self.b)
        p_data = torch.sigmoid(a_data.detach())
        if self.persistent:
            if self.chains is None or self.chains.shape != x.shape:
                self.chains = x.detach().clone()
            self.chains = self.gibbs(self.chains, streams)
            negative = self.chains
        else:
            negative = self.gibbs(x, streams, p_first=p_data)
        loss = (free_energy(x, self.W, self.b, self.c, self.visible, pre=a_data).mean(dim=-1)
                - free_energy(negative.detach(), self.W, self.b, self.c, self.visible).mean(dim=-1))
        with torch.no_grad():
            recon = (self.decode(p_data) - x).pow(2).sum(dim=-1).mean(dim=-1)
        return loss, recon

    @torch.no_grad()
    def monitor(self, x_val, x_train):
        """Per-epoch curves of an RBM (Hinton's guide, sec. 5): the free-energy gap
        mean F(validation) - mean F(training rows), which grows when the model overfits, and, for
        Bernoulli units, the pseudo-likelihood of the validation rows (one flipped bit a row, a
        fixed seed so the curve is comparable across epochs). Each (G,)."""
        per_model = lambda v: v if v.dim() == 3 else v.expand(self.n_models, *v.shape)  # noqa: E731
        fe_val = free_energy(per_model(x_val), self.W, self.b, self.c, self.visible)
        fe_train = free_energy(per_model(x_train), self.W, self.b, self.c, self.visible)
        out = {"free_energy_gap": fe_val.mean(dim=-1) - fe_train.mean(dim=-1)}
        if self.visible == "bernoulli" and x_val.dim() == 2:
            g = torch.Generator(device="cpu").manual_seed(0)
            bit = torch.randint(0, x_val.shape[1], (x_val.shape[0],), generator=g).to(x_val.device)
            v = (x_val > 0.5).to(x_val.dtype)  # pseudo-likelihood of binarised rows
            flipped = v.clone()
            rows = torch.arange(v.shape[0], device=v.device)
            flipped[rows, bit] = 1 - flipped[rows, bit]
            fe_v = free_energy(v.expand(self.n_models, *v.shape), self.W, self.b, self.c, self.visible)
            fe_f = free_energy(flipped.expand(self.n_models, *v.shape), self.W, self.b, self.c, self.visible)
            out["val_pseudo_likelihood"] = (x_val.shape[1] * F.logsigmoid(fe_f - fe_v)).mean(dim=-1)
        return out

    def extra_state(self) -> dict:
        return {"chains": self.chains}

    def load_extra_state(self, state: dict) -> None:
        self.chains = state.get("chains")

    def after_step(self):
        pass
