"""The shared one-hidden-layer autoencoder, G of them at once: x (G,B,D) -> h (G,B,M) -> x_hat (G,B,D).

Every registry model is this class (or a small subclass) plus one objective term. The
leading model axis holds the G seeds of one configuration (or the coefficient grid of a
003 sweep): their weights are stacked, every product is one batched matmul, and since the
models never interact (their losses add up and the optimisers act per coordinate) each
slice trains exactly as it would alone. A 2-D input (B,D) is shared by all G models.

Papers: 000 = L1SAE, 001 = PSAE, 002 = k-sparse AE, 003 = Arpit et al. (README: Papers).
"""

import copy

import torch
import torch.nn.functional as F

from sae.base import catalog

ACTIVATION_FUNCTIONS = {
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "softplus": F.softplus,
    "tanh": torch.tanh,
    "linear": lambda a: a,
}
assert tuple(ACTIVATION_FUNCTIONS) == catalog.ACTIVATIONS


def activation_derivative(a, h, name):
    """dh/da of the encoder activation `name`, given a = pre-activation and h = s(a) (any shape).

    Written with h where possible so the result stays differentiable in the bias:
    003 (Corollary 2) needs d/db of (dh/da)^2, which is zero for ReLU by construction.
    """
    if name == "sigmoid":
        return h * (1 - h)
    if name == "relu":
        return (a > 0).to(a.dtype)
    if name == "softplus":
        return torch.sigmoid(a)
    if name == "tanh":
        return 1 - h * h
    if name == "linear":
        return torch.ones_like(a)
    raise ValueError(f"unknown activation {name!r}")


def reconstruction_error(x, x_hat):
    """Batch mean of the per-sample summed squared error; x (G,B,D) or (B,D), x_hat (G,B,D) -> (G,)."""
    return (x_hat - x).pow(2).sum(dim=-1).mean(dim=-1)  # 000 eq. (2), first term


def weight_decay_penalty(lam, w_enc, w_dec):
    """lam * (||W_enc||_F^2 + ||W_dec||_F^2) per model, weights only (no biases) -> (G,)."""
    return lam * (w_enc.pow(2).sum(dim=(-2, -1)) + w_dec.pow(2).sum(dim=(-2, -1)))  # 000 eq. (2), last term


# Products of at least this many multiply-adds each are split by batched_mm (below).
SPLIT_MIN_MACS = 1 << 24


def batched_mm(a, b, bias=None):
    """a (G,B,K) times b (G,K,N), plus bias (G,N) on every row when given -> (G,B,N): the values
    of torch.bmm / torch.baddbmm, bit for bit at the sizes it splits (tests/test_models.py).

    On CPU, bmm hands each thread whole products, so G = 3 products on 2 threads take two
    rounds: a third of the cores idle. When G does not split evenly over the threads and each
    product is large, the G products run one after another, each on every thread (README:
    Benchmarks). Graphs that autograd records (grad mode with an input that needs a gradient,
    as in the DAE's double backward) keep bmm."""
    G, B, K = a.shape
    N = b.shape[-1]
    recorded = torch.is_grad_enabled() and (a.requires_grad or b.requires_grad
                                            or (bias is not None and bias.requires_grad))
    threads = torch.get_num_threads()
    if (recorded or a.device.type != "cpu" or G == 1 or G % threads == 0
            or B * K * N < SPLIT_MIN_MACS):
        return torch.bmm(a, b) if bias is None else torch.baddbmm(bias.unsqueeze(1), a, b)
    out = torch.empty(G, B, N, dtype=torch.result_type(a, b), device=a.device)
    for g in range(G):
        if bias is None:
            torch.mm(a[g], b[g], out=out[g])
        else:
            torch.addmm(bias[g], a[g], b[g], out=out[g])
    return out


class _Affine(torch.autograd.Function):
    """a = x W^T + bias with dL/dW made in W's own (G,N,K) layout. Autograd's bmm backward makes
    the gradient of the transposed view W^T, (G,K,N), and AccumulateGrad then copies it back
    into W's layout: a strided copy of every weight each step (README: Benchmarks)."""

    @staticmethod
    def forward(ctx, x, W, bias):
        ctx.save_for_backward(x, W)
        return batched_mm(x, W.transpose(1, 2), bias)

    @staticmethod
    def backward(ctx, grad):  # plain differentiable ops: double backward (the DAE gradient term) works
        x, W = ctx.saved_tensors
        grad_x = batched_mm(grad, W) if ctx.needs_input_grad[0] else None
        grad_W = batched_mm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(dim=1) if ctx.needs_input_grad[2] else None
        return grad_x, grad_W, grad_bias


def affine(x, W, bias):
    """x (G,B,K) times W (G,N,K) transposed plus bias (G,N) -> (G,B,N); the same values and
    gradients as torch.baddbmm(bias[:, None], x, W.transpose(1, 2)) (tests/test_models.py)."""
    return _Affine.apply(x, W, bias)


def per_model_value(value, n_models: int):
    """A float for one shared value, a (G,) float tensor for a list of one value per model."""
    if isinstance(value, (list, tuple)):
        if len(value) != n_models:
            raise ValueError(f"{len(value)} per-model values for {n_models} models")
        return torch.tensor([float(v) for v in value])
    return value


def final_from(value_at, n_epochs) -> int:
    """The first 0-based epoch e with value_at(e') equal to value_at(n_epochs - 1) for every e' >= e."""
    def same(a, b):
        return bool(torch.equal(a, b)) if isinstance(a, torch.Tensor) else a == b
    final, e = value_at(n_epochs - 1), n_epochs - 1
    while e > 0 and same(value_at(e - 1), final):
        e -= 1
    return e


class Autoencoder(torch.nn.Module):
    """G plain autoencoders (000 AE / 001 RAE); subclasses change penalty() or objective().

    Parameters: W (G,M,D) encoder weights, b (G,M), W_dec (G,D,M) when untied, c (G,D).
    generators: one CPU torch.Generator per model for the initial weights (sae.base.rng).
    """

    trainable = True

    def __init__(self, in_dim, hidden, *, n_models=1, activation="sigmoid", decoder="linear", tied=False,
                 weight_decay=0.0, unit_norm=False, init="glorot", init_std=0.01, generators=None):
        super().__init__()
        self.in_dim, self.hidden, self.n_models = in_dim, hidden, n_models
        self.activation, self.decoder, self.tied = activation, decoder, tied
        self.weight_decay, self.unit_norm = weight_decay, unit_norm
        self.W = torch.nn.Parameter(torch.empty(n_models, hidden, in_dim))
        self.b = torch.nn.Parameter(torch.zeros(n_models, hidden))  # biases start at zero (003 sec. 3)
        self.W_dec = None if tied else torch.nn.Parameter(torch.empty(n_models, in_dim, hidden))
        self.c = torch.nn.Parameter(torch.zeros(n_models, in_dim))
        gens = generators or [None] * n_models
        with torch.no_grad():
            for g, gen in enumerate(gens):  # each model from its own seed: alone or batched, the same weights
                for w in (self.W, self.W_dec):
                    if w is None:
                        continue
                    if init == "gaussian":
                        torch.nn.init.normal_(w[g], 0.0, init_std, generator=gen)  # 002 sec. 4.2.2: sigma = 0.01
                    else:
                        torch.nn.init.xavier_uniform_(w[g], generator=gen)  # 003 sec. 3: normalized initialisation

    def set_hyper(self, **values) -> None:
        """Hyper-parameters as attributes: a float, or a (G,) buffer when each model has its own."""
        for name, value in values.items():
            value = per_model_value(value, self.n_models)
            if isinstance(value, torch.Tensor):
                self.register_buffer(name, value, persistent=False)
            else:
                setattr(self, name, value)

    @property
    def decoder_weight(self):
        """(G,D,M): W transposed when tied (003 sec. 2: y = s_d(W^T h)), else its own matrix."""
        return self.W.transpose(1, 2) if self.tied else self.W_dec

    def pre_activation(self, x):
        """a = x W^T + b; x (G,B,D) or shared (B,D) -> (G,B,M).

        A shared batch (every model of a 003 sweep sees the same rows) is one GEMM against all G
        weight matrices side by side, (B,D) x (D,G*M), instead of G small ones; the result is a
        (G,B,M) view of it."""
        if x.dim() == 3:
            return affine(x, self.W, self.b)  # bias inside the GEMM
        G, M, D = self.W.shape
        a = torch.addmm(self.b.reshape(G * M), x, self.W.reshape(G * M, D).t())
        return a.view(x.shape[0], G, M).transpose(0, 1).contiguous()  # one small copy: the rest runs contiguous

    def codes(self, x):
        """(a, h): the pre-activation and the training code, each (G,B,M), of x (G,B,D) or (B,D)."""
        a = self.pre_activation(x)
        return a, ACTIVATION_FUNCTIONS[self.activation](a)

    def encode(self, x):
        """h = s(a); x (G,B,D) or (B,D) -> (G,B,M)."""
        return self.codes(x)[1]

    def decode(self, h):
        """x_hat = s_d(h W_dec^T + c); h (G,B,M) -> (G,B,D)."""
        out = batched_mm(h, self.W, self.c) if self.tied else affine(h, self.W_dec, self.c)
        return torch.sigmoid(out) if self.decoder == "sigmoid" else out

    def dh_da(self, x, h, a=None):
        """dh/da (G,B,M) at x with codes h = encode(x) (and a, their pre-activation, when known)."""
        return activation_derivative(self.pre_activation(x) if a is None else a, h, self.activation)

    def forward(self, x):
        return self.decode(self.encode(x))

    def features(self, x):
        """The encoding used for classification, (G,B,M)."""
        return self.encode(x)

    def penalty(self, x, h, a=None):
        """The model's sparsity term per model, (G,) (batch means); none for a plain AE.
        a: the pre-activation of h, when the caller has it (the contractive terms need it)."""
        return h.new_zeros(self.n_models)

    def param_groups(self) -> list[dict]:
        """Optimiser groups. Weight decay lam(||W_enc||^2 + ||W_dec||^2) (000 eq. 2) is applied by
        the optimiser as its gradient 2 lam W (4 lam W for tied W, which counts twice) instead
        of being built into the loss: the same update without extra passes over the weights."""
        weights = [self.W] if self.tied else [self.W, self.W_dec]
        rate = 2 * self.weight_decay * (2 if self.tied else 1)
        others = [p for p in self.parameters() if all(p is not w for w in weights)]
        return [{"params": weights, "weight_decay": rate}, {"params": others, "weight_decay": 0.0}]

    def weight_penalty(self):
        """The weight-decay term's value per model, (G,) (the optimiser applies its gradient)."""
        if self.weight_decay == 0:
            return self.W.new_zeros(self.n_models)
        return weight_decay_penalty(self.weight_decay, self.W, self.decoder_weight)

    def objective(self, x, streams=None):
        """(loss, recon), each (G,), for a batch x (G,B,D) or shared (B,D); `streams`
        (sae.base.rng.Streams) feeds any noise."""
        a, h = self.codes(x)
        recon = reconstruction_error(x, self.decode(h))
        return recon + self.penalty(x, h, a), recon

    def on_epoch_start(self, epoch, n_epochs):
        """Schedule hook (0-based epoch); returns the scheduled values for logging."""
        return {}

    def on_epoch_end(self, epoch, n_epochs):
        """Hook after each trained epoch (0-based; not called for epochs replayed from a checkpoint)."""

    def on_train_end(self, epoch, n_epochs):
        """Hook after the last trained epoch (0-based), which is before n_epochs - 1 when training
        stopped at convergence."""

    def schedule_end(self, n_epochs) -> int:
        """The first epoch from which the schedule (k, alpha, sigma) holds its final value: a stop at
        convergence waits for it. 0 for models without a schedule."""
        return 0

    def monitor(self, x_val, x_train) -> dict:
        """Model-specific per-epoch curves, each (G,), beyond sae.train.probe's (RBMs add theirs)."""
        return {}

    def extra_state(self) -> dict:
        """What a checkpoint must keep beyond the weights (schedule snapshots, RBM chains)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what extra_state() returned."""

    def select(self, index):
        """Model `index` (an int) or models `index` (a range or slice) of the batch as a new batch,
        its weights copied: e.g. one seed to evaluate, the seeds of one variant to fine-tune."""
        part = slice(index, index + 1) if isinstance(index, int) else (
            slice(index.start, index.stop) if isinstance(index, range) else index)
        one = copy.copy(self)
        one._parameters = {n: None if p is None else torch.nn.Parameter(p.detach()[part].clone())
                           for n, p in self._parameters.items()}
        one._buffers = {n: b[part].clone() for n, b in self._buffers.items()}
        one.n_models = len(range(self.n_models)[part])
        one.after_select()
        return one.eval()

    def after_select(self) -> None:
        """Hook for select(): per-model state that is not a parameter or buffer."""

    @torch.no_grad()
    def after_step(self):
        """Constraints after each optimiser step."""
        if self.unit_norm:  # 003 sec. 3.1: encoder rows W_j held at unit length
            self.W.div_(self.W.norm(dim=-1, keepdim=True).clamp_min(1e-12))


class Penalised(Autoencoder):
    """AE + one sparsity term: `term(model, x, h, a)` -> (G,) (registry.py); hyper-parameters are
    attributes (floats or (G,) buffers) that `term` reads."""

    def __init__(self, in_dim, hidden, *, term, hyper, **core):
        super().__init__(in_dim, hidden, **core)
        self.term = term
        self.set_hyper(**hyper)

    def penalty(self, x, h, a=None):
        return self.term(self, x, h, a)


class Raw(Autoencoder):
    """Raw pixels: identity encoder and decoder, no parameters (the baseline table rows)."""

    trainable = False

    def __init__(self, in_dim, hidden=None, *, n_models=1, generators=None):
        torch.nn.Module.__init__(self)
        self.in_dim = self.hidden = in_dim  # the "code" is the input itself
        self.n_models = n_models
        self.activation, self.decoder, self.tied = "linear", "linear", True
        self.weight_decay, self.unit_norm = 0.0, False

    def encode(self, x):
        return x if x.dim() == 3 else x.expand(self.n_models, *x.shape)

    def decode(self, h):
        return h

    def penalty(self, x, h, a=None):
        return h.new_zeros(self.n_models)

    def pre_activation(self, x):
        return self.encode(x)

    def weight_penalty(self):
        return torch.zeros(self.n_models)

    def objective(self, x, streams=None):
        recon = x.new_zeros(self.n_models)  # identity reconstructs exactly
        return recon, recon

    def after_step(self):
        pass
