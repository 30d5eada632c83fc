"""k-sparse autoencoder (002 sec. 2.2): tied weights, linear codes, keep the k largest."""

import functools

import torch
import torch.nn.functional as F

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


_per_sample_weight_grad = torch.ops.aten._embedding_bag_per_sample_weights_backward  # rows . W[j], no (B,k,D) gather


def _order_keys(z):
    """int32 keys (B,M) in the order of the float32 z (B,M), made in place over z's memory;
    an involution, so applying it to keys gives back the floats' bits."""
    bits = z.view(torch.int32)
    return bits.bitwise_xor_((bits >> 31).bitwise_and_(0x7FFFFFFF))


def kept_units(z, k):
    """(values, indices), each (B,k) in no order, of the k largest entries of each row of z
    (B,M); z is consumed. 002 sec. 2.2: Gamma = supp_k(W^T x + b).

    On the CPU the selection runs on int32 keys that order like the floats: topk's integer
    comparator skips the float one's NaN checks (0.92 -> 0.70 ms at 256 x 1000, k=25). On
    CUDA the float radix select is faster than the extra passes (0.017 vs 0.044 ms).
    """
    if z.is_cuda:
        return z.topk(k, dim=1, sorted=False)
    keys, idx = _order_keys(z).topk(k, dim=1, sorted=False)
    return _order_keys(keys).view(torch.float32), idx


class KSparseReconstruction(torch.autograd.Function):
    """Reconstruction error (000 eq. 2, first term) of the tied linear k-sparse AE, with a
    forward and backward that touch only the k kept units (002 sec. 2.2, steps 1-3):

        z = x W^T + b;  keep the k largest z_j;  x_hat = sum_kept z_j W_j + c;
        loss = mean_b ||x_hat - x||^2

    Past the dense encoder product everything is O(B k D): decode by embedding_bag, and
    dL/dW = sum over kept (b, j) of (g_bj x_b + z_bj dX_b) in row j, one embedding_bag over
    bags grouped by unit. Equals the masked dense formulation (tests/test_models.py).
    x (B,D), W (M,D), b (M,), c (D,) -> scalar.
    """

    @staticmethod
    def forward(ctx, x, W, b, c, k):
        vals, idx = kept_units(torch.addmm(b, x, W.t()), k)
        residual = F.embedding_bag(idx, W, per_sample_weights=vals, mode="sum").add_(c).sub_(x)
        ctx.save_for_backward(x, W, idx, vals, residual)
        flat = residual.view(-1)
        return torch.dot(flat, flat) / x.shape[0]

    @staticmethod
    def backward(ctx, grad_loss):
        x, W, idx, vals, residual = ctx.saved_tensors
        (B, k), M = idx.shape, W.shape[0]
        sample, offsets, pairs = _pair_indices(B, k, x.device)
        source = torch.empty(2 * B, x.shape[1], dtype=x.dtype, device=x.device)  # [x; dX] for the dL/dW bags
        source[:B] = x
        dx_hat = torch.mul(residual, 2.0 * grad_loss / B, out=source[B:])  # (B,D)
        unit = idx.view(-1)  # (B*k,) kept unit of each (sample, slot)
        g = _per_sample_weight_grad(dx_hat, W, unit, offsets, sample, 0, -1)
        grad_b = g.new_zeros(M).index_add_(0, unit, g)
        # Group the B*k pairs by unit; bag j sums g_bj x_b + z_bj dX_b over its pairs.
        by_unit, order = unit.sort()
        starts = torch._convert_indices_from_coo_to_csr(by_unit, M, out_int32=True)[:-1].mul_(2)
        weights = torch.stack([g, vals.view(-1)], 1)[order].view(-1)
        grad_W = F.embedding_bag(pairs[order].view(-1), source, offsets=starts, per_sample_weights=weights,
                                 mode="sum")
        grad_x = None
        if ctx.needs_input_grad[0]:  # through the encoder's kept units, and the -x of the residual
            grad_x = F.embedding_bag(idx, W, per_sample_weights=g.view(B, k), mode="sum").sub_(dx_hat)
        return grad_x, grad_W, grad_b, dx_hat.sum(0), None


@functools.lru_cache(maxsize=8)
def _pair_indices(B: int, k: int, device: torch.device):
    """For B samples x k slots: the sample of each slot (B*k,), bag offsets (B,), and the rows
    (B*k, 2) int32 of x_b and dX_b in [x; dX]: index tensors every backward of a shape reuses."""
    sample = torch.arange(B, device=device).repeat_interleave(k)
    pairs = torch.stack([sample, sample + B], 1).int()
    return sample, torch.arange(0, B * k, k, device=device), pairs


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
        """The paper's model (tied, linear) runs the sparse forward/backward of
        KSparseReconstruction; same result as the dense masked product of Autoencoder.objective."""
        if not (self.tied and self.activation == "linear" and self.decoder == "linear"):
            return super().objective(x, generator)
        recon = KSparseReconstruction.apply(x, self.W, self.b, self.c, self.k_now)
        return recon, recon

    def on_epoch_start(self, epoch, n_epochs):
        self.k_now = sparsity_level(epoch, n_epochs, self.k, self.k_start)
        return {"k": self.k_now}
