"""The model registry (one line a model): id -> class, the keys that may differ per model, and
its sparsity term. Options and their defaults are typed in sae.config.schema.OPTIONS.

A new penalty is one function in penalties.py, one options class in sae/config/schema.py
and one line here:
    "id": Spec(Penalised, ("coef",), lambda m, x, h, a: m.coef * my_penalty(h)),
"""

from collections import namedtuple

from sae.base.catalog import MODEL_IDS
from sae.config import schema, validate_group
from sae.base.errors import ParamError

from .core import Autoencoder, Penalised, Raw
from .corruption import Denoising, Dropout, ExplicitDAE
from .ksparse import KSparse
from .l1prox import L1Prox
from .rbm import RBM
from .penalties import (contractive_penalty, kl_sparsity, l1_penalty, marginalized_dae_penalty,
                        negative_weight_penalty, student_t_penalty, zero_rho_sparsity)
from .sl0sq import SL0Sq

# cls: the model class; per_model: options that may take one value per model of a batch;
# term(model, x, h, a) -> (G,): the sparsity term of a Penalised model (a: the pre-activation of
# h, None when the caller does not have it).
Spec = namedtuple("Spec", "cls per_model term", defaults=((), None))

REGISTRY = {
    "raw": Spec(Raw),  # raw-pixel baseline rows (000-002 tables)
    "ae": Spec(Autoencoder),  # 000 Table I AE (lambda1); 001 RAE
    "kl": Spec(Penalised, ("beta", "rho"), lambda m, x, h, a: m.beta * kl_sparsity(h, m.rho)),  # 000 KLDSAE; 001 SAE+Ber
    "l1": Spec(Penalised, ("lam",), lambda m, x, h, a: m.lam * l1_penalty(h)),  # 004; 001 SAE+L1
    "studentt": Spec(Penalised, ("beta",), lambda m, x, h, a: m.beta * student_t_penalty(h)),  # 000 AL1SAE
    "dae": Spec(Denoising, ("level",)),  # 000 DenAE; 002 Table 1; 003 Thm. 3 (gaussian)
    "dropout": Spec(Dropout),  # 002 Table 1
    "ncae": Spec(Penalised, ("beta", "rho", "alpha"),  # 000 NCAE (Hosseini-Asl et al.)
                 lambda m, x, h, a: m.beta * kl_sparsity(h, m.rho)
                 + m.alpha / 2 * negative_weight_penalty(m.W, m.decoder_weight)),
    "l1prox": Spec(L1Prox),  # 000 Alg. 1, Table I
    "sl0sq": Spec(SL0Sq, ("lam",)),  # 001 eqs. (3), (7), (9)
    "ksparse": Spec(KSparse, ("k", "k_start")),  # 002 sec. 2.2, 4.2
    "cae": Spec(Penalised, ("lam",),  # 003 eq. (9); Rifai et al.
                lambda m, x, h, a: m.lam * contractive_penalty(m.dh_da(x, h, a), m.W.pow(2).sum(-1))),
    "mdae": Spec(Penalised, ("lam",),  # 003 eq. (11)
                 lambda m, x, h, a: m.lam * marginalized_dae_penalty(m.dh_da(x, h, a), m.W.pow(2).sum(-1))),
    "sae0": Spec(Penalised, ("lam",), lambda m, x, h, a: m.lam * zero_rho_sparsity(h)),  # 003 eq. (13)
    "edae": Spec(ExplicitDAE, ("level",)),  # 003 sec. 3.1.1, Fig. 3
    "rbm": Spec(RBM),  # 002 Tables 1-3 baselines; Hinton 2002 (CD)
}
assert tuple(REGISTRY) == MODEL_IDS, "the registry and sae.base.catalog.MODEL_IDS list different models"

CORE_KEYS = ("activation", "decoder", "tied", "weight_decay", "unit_norm", "init", "init_std")
# build() keywords that are not model options: options() leaves them out
NOT_OPTIONS = frozenset(schema.LOOP_KEYS) | {"k_sweep"}


def options(model_id: str, given: dict | None = None, *, where: str | None = None):
    """The validated options of `model_id` (defaults of sae.config.schema.OPTIONS overridden by
    `given`), as build() keywords; ParamError names `where`.<key>."""
    if model_id not in REGISTRY:
        from sae.config import unknown
        raise ParamError(unknown(where or "model", model_id, MODEL_IDS, what="model id"))
    cls = schema.OPTIONS[model_id]
    opts = validate_group(cls, given or {}, where or f"model.{model_id}")
    return {k: getattr(opts, k) for k in cls.model_fields if k not in NOT_OPTIONS}


def build(model_id, in_dim, hidden=None, /, *, n_models=1, generators=None, per_model=None, **given):
    """G = n_models fresh models of `model_id` (options validated; ParamError if bad).

    per_model: {option: [one value per model]} for the options the registry lets differ within
    a batch (the coefficient of a 003 sweep, the k of a k sweep); generators: one CPU
    torch.Generator per model for the initial weights (sae.base.rng.init_generators).
    """
    opts = options(model_id, given)
    spec = REGISTRY[model_id]
    per_model = dict(per_model or {})
    for key, values in per_model.items():
        if key not in spec.per_model:
            raise ParamError(f"model.{model_id}.{key}: cannot differ within a batch "
                             f"(allowed: {', '.join(spec.per_model) or 'none'})")
        if len(values) != n_models:
            raise ParamError(f"model.{model_id}.{key}: {len(values)} values for {n_models} models")
        for v in values:
            options(model_id, {**given, key: v})  # each model's value checked like a single one
        opts[key] = list(values)
    for name, value in (("in_dim", in_dim), ("hidden", hidden)):
        if spec.cls is not Raw and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ParamError(f"model.{model_id}.{name}={value!r}: must be an integer >= 1")
    if spec.cls is Raw:
        return Raw(in_dim, n_models=n_models)
    if spec.cls is RBM:
        return RBM(in_dim, hidden, n_models=n_models, generators=generators, **opts)
    core = {k: opts[k] for k in CORE_KEYS if k in opts}
    extra = {k: v for k, v in opts.items() if k not in CORE_KEYS}
    if spec.term is not None:
        return spec.cls(in_dim, hidden, term=spec.term, hyper=extra, n_models=n_models, generators=generators,
                        **core)
    return spec.cls(in_dim, hidden, n_models=n_models, generators=generators, **extra, **core)
