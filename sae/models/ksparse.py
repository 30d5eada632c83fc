"""k-sparse autoencoder (002 sec. 2.2): tied weights, linear codes, keep the k largest."""

import torch

from ..errors import ParamError
from .core import Autoencoder


def topk_mask(z, k):
    """0/1 mask (B,M) marking exactly the k largest entries of each row of z (B,M)."""
    idx = z.topk(k, dim=1).indices  # 002 sec. 2.2: Gamma = supp_k(W^T x + b)
    return torch.zeros_like(z).scatter_(1, idx, 1.0)


def sparsity_level(epoch, n_epochs, k, k_start):
    """k for a 0-based epoch: linear from k_start to k over the first half, then k."""
    half = n_epochs // 2  # 002 sec. 4.2.1
    if epoch >= half:
        return k
    return int(round(k_start + (k - k_start) * epoch / half))


class KSparse(Autoencoder):
    """Train on z_k = z * topk_mask(z, k), z = x @ W.T + b; decode x_hat = z_k @ W + b'.

    The mask is a constant in the graph, so gradients flow only through the kept units
    (002 sec. 2.2, step 3). A new model starts at the final k (so a reloaded model
    encodes as trained); on_epoch_start applies the schedule during training.
    """

    def __init__(self, in_dim, hidden, *, k, k_start, alpha, **core):
        super().__init__(in_dim, hidden, **core)
        if k > hidden:
            raise ParamError(f"model.ksparse.k={k} exceeds hidden={hidden}")
        if k < 1:
            raise ParamError(f"model.ksparse.k={k} must be >= 1")
        if alpha < 1:
            raise ParamError(f"model.ksparse.alpha={alpha} must be >= 1 (002 sec. 2.2)")
        if k_start < k:
            raise ParamError(f"model.ksparse.k_start={k_start} is below k={k}")
        self.k, self.k_start, self.alpha = k, min(k_start, hidden), alpha
        self.k_now = k

    def encode(self, x):
        """Training codes: the k_now largest of s(a), the rest zero; x (B,D) -> (B,M)."""
        h = super().encode(x)
        return h * topk_mask(h, self.k_now)

    def features(self, x):
        """Classification codes: the round(alpha*k) largest units (capped at M), 002 sec. 2.2."""
        h = super().encode(x)
        return h * topk_mask(h, min(int(round(self.alpha * self.k)), self.hidden))

    def on_epoch_start(self, epoch, n_epochs):
        self.k_now = sparsity_level(epoch, n_epochs, self.k, self.k_start)
        return {"k": self.k_now}
