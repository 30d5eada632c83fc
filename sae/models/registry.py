"""The model registry (DESIGN.md sec. 3): id -> class, default params, sparsity term.

A new penalty is one function in penalties.py plus one line here:
    "id": Spec(Penalised, dict(coef=...), lambda m, x, h, coef: coef * my_penalty(h)),
"""

import math
from collections import namedtuple

from ..errors import ParamError
from .core import ACTIVATIONS, DECODERS, INITS, Autoencoder, Penalised, Raw
from .corruption import Denoising, Dropout, ExplicitDAE
from .ksparse import KSparse
from .l1prox import L1Prox
from .penalties import (contractive_penalty, kl_sparsity, l1_penalty, marginalized_dae_penalty,
                        negative_weight_penalty, student_t_penalty, zero_rho_sparsity)
from .sl0sq import SL0Sq

Spec = namedtuple("Spec", "cls defaults term", defaults=(None,))

# Options every model accepts (core.Autoencoder keywords) and their defaults.
CORE = dict(activation="sigmoid", decoder="linear", tied=False, weight_decay=0.0,
            unit_norm=False, init="glorot", init_std=0.01)

# Keys the training loop reads itself: build() accepts and ignores them.
LOOP_KEYS = frozenset({"lr", "momentum", "optimizer", "schedule", "final_lr", "epochs", "batch",
                       "hidden", "input", "checkpoint_every", "datasets"})

# 003 models are tied (003 sec. 2: y = s_d(W^T h)); eq. (11) assumes it.
REGISTRY = {
    "raw": Spec(Raw, {}),  # raw-pixel baseline rows (000-002 tables)
    "ae": Spec(Autoencoder, dict(weight_decay=5e-5)),  # 000 Table I AE (lambda1); 001 RAE
    "kl": Spec(Penalised, dict(beta=1.0, rho=0.01, weight_decay=5e-5),  # 000 Table I KLDSAE; 001 SAE+Ber
               lambda m, x, h, beta, rho: beta * kl_sparsity(h, rho)),
    "l1": Spec(Penalised, dict(lam=1e-3),  # 004; 001 SAE+L1
               lambda m, x, h, lam: lam * l1_penalty(h)),
    "studentt": Spec(Penalised, dict(beta=3.0, weight_decay=5e-5),  # 000 Table I AL1SAE
                     lambda m, x, h, beta: beta * student_t_penalty(h)),
    "dae": Spec(Denoising, dict(corruption="mask", level=0.2)),  # 002 Table 1; 003 Thm. 3 (gaussian)
    "dropout": Spec(Dropout, dict(p_hidden=0.5, p_input=0.0)),  # 002 Table 1
    "ncae": Spec(Penalised, dict(beta=3.0, rho=0.05, alpha=0.003, weight_decay=1e-4),  # 000 Table I NCAE
                 lambda m, x, h, beta, rho, alpha: beta * kl_sparsity(h, rho)
                 + alpha / 2 * negative_weight_penalty(m.W, m.decoder_weight)),  # Hosseini-Asl et al.
    "l1prox": Spec(L1Prox, dict(alpha0=1.0, f=0.6, T=5, beta=0.5, weight_decay=5e-5)),  # 000 Alg. 1, Table I
    "sl0sq": Spec(SL0Sq, dict(sigmas=[1.0, 0.5, 0.25, 0.1], lam=1000.0)),  # 001 eqs. (3), (7), (9)
    "ksparse": Spec(KSparse, dict(k=25, k_start=100, alpha=3.0, tied=True, activation="linear",
                                  init="gaussian", init_std=0.01)),  # 002 sec. 2.2, 4.2
    "cae": Spec(Penalised, dict(lam=0.1, activation="relu", tied=True),  # 003 eq. (9); Rifai et al.
                lambda m, x, h, lam: lam * contractive_penalty(m.dh_da(x, h), m.W.pow(2).sum(1))),
    "mdae": Spec(Penalised, dict(lam=0.1, activation="relu", tied=True),  # 003 eq. (11)
                 lambda m, x, h, lam: lam * marginalized_dae_penalty(m.dh_da(x, h), m.W.pow(2).sum(1))),
    "sae0": Spec(Penalised, dict(lam=0.1, tied=True),  # 003 eq. (13)
                 lambda m, x, h, lam: lam * zero_rho_sparsity(h)),
    "edae": Spec(ExplicitDAE, dict(level=0.1, activation="relu", tied=True)),  # 003 sec. 3.1.1, Fig. 3
}
MODEL_IDS = tuple(REGISTRY)


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _decreasing(v):
    return (isinstance(v, (list, tuple)) and len(v) > 0 and all(_number(s) and s > 0 for s in v)
            and all(a >= b for a, b in zip(v, v[1:])))


_NONNEG = (lambda v: _number(v) and v >= 0, "a number >= 0")
_PROB = (lambda v: _number(v) and 0 <= v < 1, "a probability in [0, 1)")
_COUNT = (_count, "an integer >= 1")

# key -> (valid(value), what it must be); every key of CORE and REGISTRY has one.
CHECKS = {
    "activation": (lambda v: v in ACTIVATIONS, "one of " + ", ".join(ACTIVATIONS)),
    "decoder": (lambda v: v in DECODERS, "one of " + ", ".join(DECODERS)),
    "init": (lambda v: v in INITS, "one of " + ", ".join(INITS)),
    "tied": (lambda v: isinstance(v, bool), "true or false"),
    "unit_norm": (lambda v: isinstance(v, bool), "true or false"),
    "weight_decay": _NONNEG,
    "init_std": (lambda v: _number(v) and v > 0, "a number > 0"),
    "beta": _NONNEG,
    "lam": _NONNEG,
    "alpha": _NONNEG,  # ksparse also needs alpha >= 1 (checked in KSparse)
    "rho": (lambda v: _number(v) and 0 < v < 1, "in (0, 1)"),
    "corruption": (lambda v: v in ("mask", "gaussian"), "one of mask, gaussian"),
    "level": _NONNEG,
    "p_hidden": _PROB,
    "p_input": _PROB,
    "alpha0": (lambda v: _number(v) and v > 0, "a number > 0"),
    "f": (lambda v: _number(v) and 0 < v <= 1, "in (0, 1]"),
    "T": _COUNT,
    "k": _COUNT,
    "k_start": _COUNT,
    "sigmas": (_decreasing, "a non-empty, non-increasing list of numbers > 0"),
}


def build(model_id, in_dim=None, hidden=None, /, **params):
    """A fresh model for `model_id` with defaults overridden by `params` (ParamError if bad).

    Positional-only, so `params` may carry the loop's own `hidden` key; in_dim and hidden
    given only as keywords are taken from `params`.
    """
    in_dim_kw = params.pop("in_dim", None)
    in_dim = in_dim_kw if in_dim is None else in_dim
    hidden = params.get("hidden") if hidden is None else hidden
    if model_id not in REGISTRY:
        raise ParamError(f"unknown model id {model_id!r}; allowed: {', '.join(MODEL_IDS)}")
    spec = REGISTRY[model_id]
    allowed = {**CORE, **spec.defaults}
    given = {k: v for k, v in params.items() if k not in LOOP_KEYS}
    for key, value in given.items():
        if key not in allowed:
            raise ParamError(f"unknown param model.{model_id}.{key}; allowed: {', '.join(sorted(allowed))}")
        valid, what = CHECKS[key]
        if not valid(value):
            raise ParamError(f"model.{model_id}.{key}={value!r} must be {what}")
    for name, value in (("in_dim", in_dim), ("hidden", hidden)):
        if not _count(value):
            raise ParamError(f"model.{model_id}.{name}={value!r} must be an integer >= 1")
    merged = {**allowed, **given}
    if spec.cls is Raw:
        return Raw(in_dim, hidden)
    if model_id == "dae" and merged["corruption"] == "mask" and merged["level"] >= 1:
        raise ParamError(f"model.dae.level={merged['level']!r} must be < 1 for mask corruption")
    core = {k: merged[k] for k in CORE}
    extra = {k: merged[k] for k in spec.defaults if k not in CORE}
    if spec.term is not None:
        return spec.cls(in_dim, hidden, term=spec.term, hyper=extra, **core)
    return spec.cls(in_dim, hidden, **extra, **core)
