"""The shared one-hidden-layer autoencoder: x (B,D) -> h (B,M) -> x_hat (B,D).

Every registry model is this class (or a small subclass) plus one objective term.
Papers: 000 = L1SAE, 001 = PSAE, 002 = k-sparse AE, 003 = Arpit et al. (seeds/).
"""

import torch
import torch.nn.functional as F

ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "softplus": F.softplus,
    "tanh": torch.tanh,
    "linear": lambda a: a,
}
DECODERS = ("linear", "sigmoid")
INITS = ("glorot", "gaussian")


def activation_derivative(a, h, name):
    """dh/da (B,M) of the encoder activation `name`, given a = pre-activation and h = s(a).

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
    """Mean over the batch of sum over dims of (x_hat - x)^2; x, x_hat (B,D) -> scalar."""
    return (x_hat - x).pow(2).sum(dim=1).mean()  # 000 eq. (2), first term


def weight_decay_penalty(lam, w_enc, w_dec):
    """lam * (||W_enc||_F^2 + ||W_dec||_F^2), weights only (no biases)."""
    return lam * (w_enc.pow(2).sum() + w_dec.pow(2).sum())  # 000 eq. (2), last term


class Autoencoder(torch.nn.Module):
    """Plain AE (000 AE / 001 RAE); subclasses change penalty() or objective().

    Parameters: W (M,D) encoder weight, b (M,), optional W_dec (D,M) when untied, c (D,).
    """

    trainable = True

    def __init__(self, in_dim, hidden, *, activation="sigmoid", decoder="linear", tied=False,
                 weight_decay=0.0, unit_norm=False, init="glorot", init_std=0.01):
        super().__init__()
        self.in_dim, self.hidden = in_dim, hidden
        self.activation, self.decoder, self.tied = activation, decoder, tied
        self.weight_decay, self.unit_norm = weight_decay, unit_norm
        self.W = torch.nn.Parameter(torch.empty(hidden, in_dim))
        self.b = torch.nn.Parameter(torch.zeros(hidden))  # biases start at zero (003 sec. 3)
        self.W_dec = None if tied else torch.nn.Parameter(torch.empty(in_dim, hidden))
        self.c = torch.nn.Parameter(torch.zeros(in_dim))
        for w in (self.W, self.W_dec):
            if w is None:
                continue
            if init == "gaussian":
                torch.nn.init.normal_(w, 0.0, init_std)  # 002 sec. 4.2.2: sigma = 0.01
            else:
                torch.nn.init.xavier_uniform_(w)  # 003 sec. 3: normalized initialisation

    @property
    def decoder_weight(self):
        """(D,M): W transposed when tied (003 sec. 2: y = s_d(W^T h)), else its own matrix."""
        return self.W.t() if self.tied else self.W_dec

    def pre_activation(self, x):
        """a = x @ W.T + b; x (B,D) -> (B,M)."""
        return torch.addmm(self.b, x, self.W.t())  # bias inside the GEMM: one pass, no (B,M) temporary

    def encode(self, x):
        """h = s(a); x (B,D) -> (B,M)."""
        return ACTIVATIONS[self.activation](self.pre_activation(x))

    def decode(self, h):
        """x_hat = s_d(h @ W_dec.T + c); h (B,M) -> (B,D)."""
        out = torch.addmm(self.c, h, self.decoder_weight.t())
        return torch.sigmoid(out) if self.decoder == "sigmoid" else out

    def dh_da(self, x, h):
        """dh/da (B,M) at x (B,D) with codes h = encode(x)."""
        return activation_derivative(self.pre_activation(x), h, self.activation)

    def forward(self, x):
        return self.decode(self.encode(x))

    def features(self, x):
        """The encoding used for classification, (B,M)."""
        return self.encode(x)

    def penalty(self, x, h):
        """The model's sparsity term (scalar, a batch mean); none for a plain AE."""
        return h.new_zeros(())

    def param_groups(self) -> list[dict]:
        """Optimiser groups. Weight decay lam(||W_enc||^2 + ||W_dec||^2) (000 eq. 2) is applied by
        the optimiser as its gradient 2 lam W (4 lam W for tied W, which counts twice) instead
        of being built into the loss: the same update without extra passes over the weights."""
        weights = [self.W] if self.tied else [self.W, self.W_dec]
        rate = 2 * self.weight_decay * (2 if self.tied else 1)
        others = [p for p in self.parameters() if all(p is not w for w in weights)]
        return [{"params": weights, "weight_decay": rate}, {"params": others, "weight_decay": 0.0}]

    def weight_penalty(self):
        """The weight-decay term's value (the optimiser applies its gradient; see param_groups)."""
        if self.weight_decay == 0:
            return self.W.new_zeros(())
        return weight_decay_penalty(self.weight_decay, self.W, self.decoder_weight)

    def objective(self, x, generator=None):
        """(loss, recon) for a batch x (B,D); `generator` feeds any randomness."""
        h = self.encode(x)
        recon = reconstruction_error(x, self.decode(h))
        return recon + self.penalty(x, h), recon

    def on_epoch_start(self, epoch, n_epochs):
        """Schedule hook (0-based epoch); returns the scheduled values for logging."""
        return {}

    def on_epoch_end(self, epoch, n_epochs):
        """Hook after each trained epoch (0-based; not called for epochs replayed from a checkpoint)."""

    @torch.no_grad()
    def after_step(self):
        """Constraints after each optimiser step."""
        if self.unit_norm:  # 003 sec. 3.1: encoder rows W_j held at unit length
            self.W.div_(self.W.norm(dim=1, keepdim=True).clamp_min(1e-12))


class Penalised(Autoencoder):
    """AE + one sparsity term: `term(model, x, h, **hyper)` -> scalar (see registry.py)."""

    def __init__(self, in_dim, hidden, *, term, hyper, **core):
        super().__init__(in_dim, hidden, **core)
        self.term, self.hyper = term, dict(hyper)

    def penalty(self, x, h):
        return self.term(self, x, h, **self.hyper)


class Raw(Autoencoder):
    """Raw pixels: identity encoder and decoder, no parameters (the baseline table rows)."""

    trainable = False

    def __init__(self, in_dim, hidden=None):
        torch.nn.Module.__init__(self)
        self.in_dim = self.hidden = in_dim  # the "code" is the input itself
        self.activation, self.decoder, self.tied = "linear", "linear", True
        self.weight_decay, self.unit_norm = 0.0, False

    def encode(self, x):
        return x

    def decode(self, h):
        return h

    def pre_activation(self, x):
        return x

    def weight_penalty(self):
        return torch.zeros(())

    def objective(self, x, generator=None):
        recon = x.new_zeros(())  # identity reconstructs exactly
        return recon, recon

    def after_step(self):
        pass

