"""k-sparse autoencoder (002 sec. 2.2): tied weights, linear codes, keep the k largest."""

import torch
import torch.nn.functional as F

from ..errors import ParamError
from .core import Autoencoder, reconstruction_error


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


class TopKCodes(torch.autograd.Function):
    """(values, indices) (B,k) of the k largest of z = x @ W.T + b, whose backward touches only
    those k units: O(B k D) instead of the dense O(B M D) (002 sec. 2.2, step 3: backpropagate
    through the k largest activations only)."""

    @staticmethod
    def forward(ctx, x, W, b, k):
        vals, idx = torch.addmm(b, x, W.t()).topk(k, dim=1)
        ctx.save_for_backward(x, W, idx)
        return vals, idx

    @staticmethod
    def backward(ctx, g_vals, _g_idx):
        x, W, idx = ctx.saved_tensors
        (B, k), M = idx.shape, W.shape[0]
        rows, g = idx.reshape(-1), g_vals.reshape(-1)
        grad_b = g.new_zeros(M).index_add_(0, rows, g)
        # dL/dW = G^T x with G (B,M) non-zero only at the kept units: a sparse (M,B) @ dense (B,D)
        cols = torch.arange(B, device=x.device).repeat_interleave(k)
        G_t = torch.sparse_coo_tensor(torch.stack([rows, cols]), g, (M, B), check_invariants=False)  # valid by construction
        grad_W = torch.sparse.mm(G_t, x)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = F.embedding_bag(idx, W, per_sample_weights=g_vals, mode="sum")
        return grad_x, grad_W, grad_b, None


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

    def objective(self, x, generator=None):
        """The paper's model (tied, linear) decodes from the k kept units only:
        x_hat = sum_j z_j W_j + b' over the k largest j, by embedding_bag; same result as the
        dense masked product of Autoencoder.objective, at O(B k D) past the encoder."""
        if not (self.tied and self.activation == "linear" and self.decoder == "linear"):
            return super().objective(x, generator)
        vals, idx = TopKCodes.apply(x, self.W, self.b, self.k_now)
        x_hat = F.embedding_bag(idx, self.W, per_sample_weights=vals, mode="sum") + self.c
        recon = reconstruction_error(x, x_hat)
        return recon, recon

    def on_epoch_start(self, epoch, n_epochs):
        self.k_now = sparsity_level(epoch, n_epochs, self.k, self.k_start)
        return {"k": self.k_now}
