"""k-sparse autoencoder (002 sec. 2.2): tied weights, linear codes, keep the k largest.

Each of the G models may have its own k (the k sweep of 002 Figs. 1-3 trains with the
paper's k in one batch): a row keeps its model's k largest units.
"""

import functools

import torch
import torch.nn.functional as F

from .core import ACTIVATION_FUNCTIONS, Autoencoder, affine, final_from, per_model_value


def _k_tensor(k, like: torch.Tensor) -> torch.Tensor | int:
    return k if isinstance(k, int) else k.to(like.device)


def slots_kept(k: torch.Tensor, kmax: int) -> torch.Tensor:
    """(len(k), kmax) bool: slot s of a row's kmax largest (largest first) is kept when s < k."""
    return torch.arange(kmax, device=k.device) < k[:, None]


def rank_keep(k, kmax: int, device) -> torch.Tensor | None:
    """(G,1,kmax) 0/1 float mask of the slots each model keeps of its kmax largest, or None when
    every model keeps all kmax (k an int, or a (G,) tensor of per-model k)."""
    if isinstance(k, int) or bool((k == kmax).all()):
        return None
    return slots_kept(k.to(device), kmax).to(torch.float32)[:, None, :]


def topk_mask(z, k):
    """0/1 mask (G,B,M) marking each row's k largest entries of z (G,B,M); k an int or (G,) per model."""
    kmax = k if isinstance(k, int) else int(k.max())
    keep = rank_keep(k, kmax, z.device)
    idx = z.topk(kmax, dim=-1, sorted=keep is not None).indices  # 002 sec. 2.2: Gamma = supp_k(W^T x + b)
    src = torch.ones_like(idx, dtype=z.dtype) if keep is None else keep.expand(*idx.shape).to(z.dtype)
    return torch.zeros_like(z).scatter_(-1, idx, src)


def sparsity_level(epoch, n_epochs, k, k_start):
    """k for a 0-based epoch: linear from k_start to k over the first half, then k (ints or (G,) tensors)."""
    half = n_epochs // 2  # 002 sec. 4.2.1
    if epoch >= half:
        return k
    if isinstance(k, int) and isinstance(k_start, int):
        return int(round(k_start + (k - k_start) * epoch / half))
    return torch.round(k_start + (k - k_start) * epoch / half).to(torch.long)


def _order_keys(z):
    """int32 keys (R,M) in the order of the float32 z (R,M), made in place over z's memory;
    an involution, so applying it to keys gives back the floats' bits."""
    bits = z.view(torch.int32)
    return bits.bitwise_xor_((bits >> 31).bitwise_and_(0x7FFFFFFF))


def kept_units(z, k: int, sorted: bool = False):
    """(values, indices), each (R,k), of the k largest entries of each row of z (R,M); z is consumed.
    002 sec. 2.2: Gamma = supp_k(W^T x + b); sorted=True orders each row largest first.

    On the CPU the selection runs on int32 keys that order like the floats: topk's integer
    comparator skips the float one's NaN checks, which is faster (README: Benchmarks). On
    CUDA the float radix select is faster than the extra passes.
    """
    if z.is_cuda:
        return z.topk(k, dim=1, sorted=sorted)
    keys, idx = _order_keys(z).topk(k, dim=1, sorted=sorted)
    return _order_keys(keys).view(torch.float32), idx


def _private_dots():
    """torch's kernel for per-sample-weight gradients of embedding_bag (private: see kept_unit_dots)."""
    return getattr(torch.ops.aten, "_embedding_bag_per_sample_weights_backward", None)


def kept_unit_dots(grad, weight, unit, offsets, sample, *, private: bool = True):
    """g_i = grad[sample_i] . weight[unit_i] for every kept (sample, slot) pair i; (P,).

    grad (R,D), weight (U,D), unit / sample (P,), offsets (R,) (bag starts of the pairs).
    The private aten kernel computes the P dot products without gathering P rows of D, which
    makes a whole k-sparse step clearly faster on the CPU (`benchmarks/train_step.py [--public]`,
    README: Benchmarks). The fallback, two index_selects, is the same arithmetic (tests check
    they agree) and runs wherever a torch release drops or changes the kernel.
    """
    kernel = _private_dots() if private else None
    if kernel is not None:
        try:
            return kernel(grad, weight, unit, offsets, sample, 0, -1)
        except RuntimeError:  # a torch release that changed the private signature
            pass
    return (grad.index_select(0, sample) * weight.index_select(0, unit)).sum(dim=1)


@functools.lru_cache(maxsize=8)
def _pair_indices(counts: tuple[int, ...], rows: int, device: torch.device):
    """For G models of `rows` samples each, model g keeping counts[g] units a sample: the sample of
    each kept (sample, slot) pair (P,), each sample's first pair (G*rows,), the rows (P, 2) int32
    of x_b and dX_b in [x; dX], and the slots (G*rows, kmax) bool each sample keeps of the kmax
    largest (None when all): index tensors every step of a k reuses."""
    per_row = torch.tensor(counts, device=device).repeat_interleave(rows)  # (R,)
    R = per_row.numel()
    sample = torch.arange(R, device=device).repeat_interleave(per_row)
    offsets = torch.cumsum(per_row, 0) - per_row
    pairs = torch.stack([sample, sample + R], 1).int()
    kmax = max(counts)
    slots = None if all(k == kmax for k in counts) else slots_kept(per_row, kmax)
    return sample, offsets, pairs, slots


class KSparseReconstruction(torch.autograd.Function):
    """Reconstruction error (000 eq. 2, first term) of G tied linear k-sparse AEs, with a forward
    and backward that touch only the kept units (002 sec. 2.2, steps 1-3):

        z = x W^T + b;  keep the k largest z_j;  x_hat = sum_kept z_j W_j + c;
        loss_g = batch mean of ||x_hat - x||^2

    The G models are one flat problem: row r = (g, b) keeps units of W_flat = W viewed as
    (G*M, D), offset by g*M, and exactly its model's k of them (a k sweep in one batch does not
    pay the largest k for every model). Past the dense encoder product everything is
    O(B sum_g k_g D): decode by embedding_bag over variable-size bags, and dL/dW = sum over kept
    (r, j) of (g_rj x_r + z_rj dX_r) in row j, one embedding_bag over bags grouped by unit.
    Equals the masked dense formulation (tests).
    x (G,B,D), W (G,M,D), b (G,M), c (G,D), counts: k of each model (a tuple of G ints) -> (G,).
    """

    @staticmethod
    def forward(ctx, x, W, b, c, counts):
        (G, B, D), M = x.shape, W.shape[1]
        kmax = max(counts)
        z = affine(x, W, b).view(G * B, M)
        _, offsets, _, slots = _pair_indices(counts, B, x.device)
        vals, idx = kept_units(z, kmax, sorted=slots is not None)
        unit = idx.add_(torch.arange(G, device=x.device).repeat_interleave(B).mul_(M)[:, None])  # global rows
        unit, vals = (unit.view(-1), vals.view(-1)) if slots is None else (unit[slots], vals[slots])  # (P,)
        W_flat, x_flat = W.reshape(G * M, D), x.reshape(G * B, D)
        residual = F.embedding_bag(unit, W_flat, offsets, per_sample_weights=vals, mode="sum")
        residual.view(G, B, D).add_(c.unsqueeze(1)).sub_(x)
        ctx.save_for_backward(x_flat, W_flat, unit, vals, residual)
        ctx.shape, ctx.counts = (G, B, D, M), counts
        return residual.view(G, B * D).pow(2).sum(dim=1) / B

    @staticmethod
    def backward(ctx, grad_loss):
        x, W, unit, vals, residual = ctx.saved_tensors
        G, B, D, M = ctx.shape
        R = G * B
        sample, offsets, pairs, _ = _pair_indices(ctx.counts, B, x.device)
        source = torch.empty(2 * R, D, dtype=x.dtype, device=x.device)  # [x; dX] for the dL/dW bags
        source[:R] = x
        scale = (2.0 / B) * grad_loss.repeat_interleave(B)[:, None]
        dx_hat = torch.mul(residual, scale, out=source[R:])  # (R,D)
        g = kept_unit_dots(dx_hat, W, unit, offsets, sample)  # (P,)
        grad_b = g.new_zeros(G * M).index_add_(0, unit, g)
        # Group the P pairs by unit; bag j sums g_rj x_r + z_rj dX_r over its pairs.
        by_unit, order = unit.sort()
        starts = torch.searchsorted(by_unit, torch.arange(G * M, device=x.device)).mul_(2)
        weights = torch.stack([g, vals], 1)[order].view(-1)
        grad_W = F.embedding_bag(pairs[order].view(-1), source, offsets=starts, per_sample_weights=weights,
                                 mode="sum")
        grad_x = None
        if ctx.needs_input_grad[0]:  # through the encoder's kept units, and the -x of the residual
            grad_x = F.embedding_bag(unit, W, offsets, per_sample_weights=g, mode="sum").sub_(dx_hat)
            grad_x = grad_x.view(G, B, D)
        return grad_x, grad_W.view(G, M, D), grad_b.view(G, M), dx_hat.view(G, B, D).sum(1), None


class KSparse(Autoencoder):
    """Train on z_k = z * topk_mask(z, k), z = x W^T + b; decode x_hat = z_k W + b'.

    The mask is a constant in the graph, so gradients flow only through the kept units
    (002 sec. 2.2, step 3). k and k_start are ints or one value per model. A new model
    starts at the final k (so a reloaded model encodes as trained); on_epoch_start applies
    the schedule during training.
    """

    def __init__(self, in_dim, hidden, *, k, k_start, alpha, **core):
        super().__init__(in_dim, hidden, **core)
        G = self.n_models
        k = per_model_value(k, G)
        k_start = per_model_value(k_start, G)
        if isinstance(k, torch.Tensor):
            k_start = k_start if isinstance(k_start, torch.Tensor) else torch.full((G,), float(k_start))
            k_start = torch.maximum(k_start, k)  # the schedule only ever lowers k
            self.register_buffer("k", k.to(torch.long), persistent=False)
            self.register_buffer("k_start", k_start.to(torch.long), persistent=False)
        else:
            if isinstance(k_start, torch.Tensor):
                raise ValueError("per-model k_start needs per-model k")
            self.k, self.k_start = int(k), max(int(k_start), int(k))
        self.alpha = float(alpha)
        self.k_now = self.k

    @property
    def k_now(self):
        """The k trained now: an int or a (G,) tensor (the schedule sets it each epoch)."""
        return self._k_now

    @k_now.setter
    def k_now(self, k):
        self._k_now = k
        # each model's k as Python ints, read once here rather than every step (no device sync)
        self.k_counts = (k,) * self.n_models if isinstance(k, int) else tuple(int(v) for v in k.tolist())

    def after_select(self) -> None:
        self.k_now = self.k

    def units_kept(self, alpha: float | None = None):
        """round(alpha * k) capped at the hidden size (002 sec. 2.2): an int or (G,) tensor."""
        alpha = self.alpha if alpha is None else alpha
        if isinstance(self.k, int):
            return min(int(round(alpha * self.k)), self.hidden)
        return torch.round(alpha * self.k).clamp(max=self.hidden).to(torch.long)

    def codes(self, x):
        """Training codes: each model's k_now largest of s(a), the rest zero; -> (a, h), (G,B,M)."""
        a, h = super().codes(x)
        return a, h * topk_mask(h, _k_tensor(self.k_now, h))

    def features(self, x, alpha: float | None = None):
        """Classification codes: the round(alpha*k) largest units (capped at M), 002 sec. 2.2."""
        h = ACTIVATION_FUNCTIONS[self.activation](self.pre_activation(x))
        return h * topk_mask(h, _k_tensor(self.units_kept(alpha), h))

    def objective(self, x, streams=None):
        """The paper's model (tied, linear) runs the sparse forward/backward of
        KSparseReconstruction; same result as the dense masked product of Autoencoder.objective."""
        if not (self.tied and self.activation == "linear" and self.decoder == "linear"):
            return super().objective(x, streams)
        if x.dim() == 2:
            x = x.expand(self.n_models, *x.shape).contiguous()
        recon = KSparseReconstruction.apply(x, self.W, self.b, self.c, self.k_counts)
        return recon, recon

    def schedule_end(self, n_epochs) -> int:
        return final_from(lambda e: sparsity_level(e, n_epochs, self.k, self.k_start), n_epochs)

    def on_epoch_start(self, epoch, n_epochs):
        self.k_now = sparsity_level(epoch, n_epochs, self.k, self.k_start)
        k = self.k_now
        return {"k": k if isinstance(k, int) else k.tolist()}
