"""Model registry: each penalty against hand arithmetic, schedules, constraints, build(), and the
batched kernels (k-sparse sparse step, per-model k) against their plain formulations."""

import math

import pytest
import torch

from sae.base import catalog
from sae.config import schema
from sae.base.errors import ParamError
from sae.models import MODEL_IDS, REGISTRY, Autoencoder, activation_derivative, build
from sae.models import core
from sae.models.core import affine, batched_mm
from sae.models.corruption import inverted_dropout
from sae.models.l1prox import soft_threshold
from sae.base.rng import Streams, init_generators

T = torch.tensor


def close(a, b, tol=1e-6):
    a, b = float(torch.as_tensor(a).detach().reshape(-1)[0]), float(torch.as_tensor(b).detach())
    return abs(a - b) <= tol * max(1.0, abs(b))


def set_weights(m, W, b=None, W_dec=None):
    """Weights of a one-model batch from nested lists (W (M,D), W_dec (D,M))."""
    with torch.no_grad():
        m.W.copy_(T(W)[None])
        if b is not None:
            m.b.copy_(T(b)[None])
        if W_dec is not None:
            m.W_dec.copy_(T(W_dec)[None])


def streams(seed, device="cpu", n=1):
    return Streams([seed] * n, device, "noise")


# --- penalties against hand computations --------------------------------------------


def test_kl_penalty_by_hand():
    m = build("kl", 2, 2, beta=2.0, rho=0.1)
    h = T([[[0.1, 0.5], [0.3, 0.1]]])  # column means rho_hat = 0.2, 0.3
    kl = (0.1 * math.log(0.1 / 0.2) + 0.9 * math.log(0.9 / 0.8)
          + 0.1 * math.log(0.1 / 0.3) + 0.9 * math.log(0.9 / 0.7))
    assert close(m.penalty(None, h), 2.0 * kl)


def test_student_t_penalty_by_hand():
    m = build("studentt", 2, 2, beta=3.0)
    h = T([[[1.0, 0.0], [2.0, -1.0]]])
    per_sample = [math.log(2) + math.log(1), math.log(5) + math.log(2)]
    assert close(m.penalty(None, h), 3.0 * sum(per_sample) / 2)


def test_l1_penalty_by_hand():
    m = build("l1", 2, 2, lam=0.5)
    h = T([[[1.0, -2.0], [0.0, 3.0]]])  # |.| sums 3 and 3 -> batch mean 3
    assert close(m.penalty(None, h), 0.5 * 3.0)


@pytest.mark.parametrize("epoch, sigma", [(0, 1.0), (1, 0.5)])
def test_sl0sq_penalty_by_hand_at_two_sigmas(epoch, sigma):
    m = build("sl0sq", 4, 3, sigmas=[1.0, 0.5], lam=10.0)
    assert m.on_epoch_start(epoch, 2) == {"sigma": sigma}
    h = T([[[0.0, 1.0, 2.0], [1.0, 1.0, 0.0]]])
    c = [(3 - sum(math.exp(-v * v / (2 * sigma * sigma)) for v in row)) ** 2 for row in h[0].tolist()]
    assert close(m.penalty(None, h), sum(c) / (2 * 2))  # (1/(2N)) sum_j C_s, N = 2
    x = torch.randn(1, 2, 4)
    loss, recon = m.objective(x)
    assert close(loss, m.penalty(x, m.encode(x)) + 10.0 / 2 * recon, 1e-5)  # lambda on reconstruction


def test_ncae_negative_weight_term_by_hand():
    m = build("ncae", 2, 2, beta=0.0, alpha=0.1, weight_decay=0.0)
    set_weights(m, [[1.0, -2.0], [-0.5, 3.0]], W_dec=[[-1.0, 0.0], [2.0, -3.0]])
    negatives_sq = 4.0 + 0.25 + 1.0 + 9.0
    assert close(m.penalty(None, torch.rand(1, 3, 2)), 0.1 / 2 * negatives_sq)



@pytest.mark.parametrize("tied", [False, True])
def test_negative_weight_penalty_is_autograds_clamp_pow_sum_with_its_gradient(tied):
    """The one-pass penalty against the plain autograd computation: values and gradients, with a
    tied decoder (W transposed, counted twice) and a per-model batch of 3."""
    from sae.models.penalties import negative_weight_penalty
    g = torch.Generator().manual_seed(0)
    W = torch.randn(3, 7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    W_dec = torch.randn(3, 5, 7, generator=g, dtype=torch.float64, requires_grad=True)
    weights = (W, W.transpose(1, 2)) if tied else (W, W_dec)
    coef = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    ours = negative_weight_penalty(*weights)
    plain = sum(w.clamp(max=0).pow(2).sum(dim=(-2, -1)) for w in weights)
    torch.testing.assert_close(ours, plain)
    grads = torch.autograd.grad((coef * ours).sum(), [W, W_dec], allow_unused=True)
    expected = torch.autograd.grad((coef * plain).sum(), [W, W_dec], allow_unused=True)
    for a, b in zip(grads, expected):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)

def test_sae0_penalty_by_hand_and_clamp():
    m = build("sae0", 2, 2, lam=0.5)
    h = T([[[0.2, 0.9], [0.4, 1.0]]])  # rho_hat = 0.3, 0.95
    assert close(m.penalty(None, h), -0.5 * (math.log(0.7) + math.log(0.05)), 1e-5)
    saturated = T([[[1.0], [1.0]]])  # 1 - rho_hat = 0, clamped to 1e-6
    assert close(build("sae0", 2, 1, lam=1.0).penalty(None, saturated), -math.log(1e-6), 1e-4)


def test_mdae_penalty_by_hand():
    m = build("mdae", 3, 2, lam=0.5, activation="sigmoid")
    W, b = [[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]], [0.1, -0.2]
    set_weights(m, W, b)
    xs = [[1.0, 2.0, -1.0], [0.0, -1.0, 0.5]]
    total = 0.0
    for x in xs:
        for j in range(2):
            a = sum(W[j][i] * x[i] for i in range(3)) + b[j]
            s = 1 / (1 + math.exp(-a))
            total += (s * (1 - s)) ** 2 * sum(w * w for w in W[j]) ** 2
    x = T(xs)[None]
    assert close(m.penalty(x, m.encode(x)), 0.5 * total / 2, 1e-5)


@pytest.mark.parametrize("activation", ["sigmoid", "softplus"])
def test_cae_penalty_is_jacobian_frobenius(activation):
    torch.manual_seed(0)
    m = build("cae", 5, 4, lam=1.0, activation=activation)
    with torch.no_grad():
        m.b.normal_()
    x = torch.randn(3, 5)
    jac = [torch.autograd.functional.jacobian(lambda v: m.encode(v[None, None])[0, 0], xi) for xi in x]
    expected = sum(j.pow(2).sum() for j in jac) / len(jac)
    assert close(m.penalty(x[None], m.encode(x[None])), expected, 1e-5)


def test_a_coefficient_per_model_scales_each_models_penalty():
    h = torch.rand(3, 5, 4)
    batch = build("l1", 6, 4, n_models=3, per_model={"lam": [0.0, 0.1, 0.5]})
    expected = torch.stack([0.0 * h[0].abs().sum(1).mean(), 0.1 * h[1].abs().sum(1).mean(),
                            0.5 * h[2].abs().sum(1).mean()])
    torch.testing.assert_close(batch.penalty(None, h), expected)
    with pytest.raises(ParamError, match="cannot differ within a batch"):
        build("l1prox", 6, 4, n_models=2, per_model={"T": [1, 5]})
    with pytest.raises(ParamError, match="model.l1.lam"):
        build("l1", 6, 4, n_models=2, per_model={"lam": [0.1, -1.0]})


@pytest.mark.parametrize("name", catalog.ACTIVATIONS)
def test_activation_derivative_matches_autograd(name):
    m = build("ae", 4, 3, activation=name)
    a = torch.randn(6, 3, requires_grad=True)
    h = torch.nn.functional.softplus(a) if name == "softplus" else {
        "sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh, "linear": lambda v: v}[name](a)
    (grad,) = torch.autograd.grad(h.sum(), a)
    assert torch.allclose(activation_derivative(a, h, m.activation), grad, atol=1e-6)


@pytest.fixture
def split_products(monkeypatch):
    """batched_mm's split path at any size: 2 threads, G = 3 (does not divide), no size floor."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setattr(core, "SPLIT_MIN_MACS", 0)
    yield
    torch.set_num_threads(threads)


def test_batched_mm_is_bmm_bit_for_bit_when_it_splits_the_products(split_products):
    """G products one after another (each on every thread) give torch.bmm's and baddbmm's bits:
    weights of the same layout, a transposed view, a shared (expanded) input, float32."""
    g = torch.Generator().manual_seed(0)
    a, w, bias = torch.rand(3, 50, 70, generator=g), torch.randn(3, 60, 70, generator=g), torch.randn(3, 60, generator=g)
    for left in (a, a[:1].expand(3, 50, 70)):
        assert torch.equal(batched_mm(left, w.transpose(1, 2)), torch.bmm(left, w.transpose(1, 2)))
        assert torch.equal(batched_mm(left, w.transpose(1, 2), bias),
                           torch.baddbmm(bias.unsqueeze(1), left, w.transpose(1, 2)))
    h = torch.rand(3, 50, 60, generator=g)
    assert torch.equal(batched_mm(h.transpose(1, 2), a), torch.bmm(h.transpose(1, 2), a))  # a weight gradient
    # autograd records a graph through it: the differentiable bmm, not out= writes
    leaf = w.clone().requires_grad_()
    assert batched_mm(a, leaf.transpose(1, 2)).grad_fn is not None


@pytest.mark.parametrize("split", [False, True])
def test_affine_equals_the_autograd_product_gradients_and_second_derivatives_included(split, request):
    """The weight-layout fast path (sae.models.core.affine) against plain baddbmm autograd, with
    and without batched_mm's split of the G products."""
    if split:
        request.getfixturevalue("split_products")
    g = torch.Generator().manual_seed(0)
    # above 400 multiply-adds a product: below, torch's bmm and baddbmm skip BLAS (another rounding)
    x, W, b = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((3, 12, 9), (3, 8, 9), (3, 8)))
    out = torch.randn(3, 12, 8, generator=g, dtype=torch.float64)

    def grads(f, create_graph=False):
        leaves = [t.clone().requires_grad_() for t in (x, W, b)]
        y = f(*leaves)
        return y, leaves, torch.autograd.grad((torch.sigmoid(y) * out).sum(), leaves, create_graph=create_graph)

    plain = lambda x, W, b: torch.baddbmm(b.unsqueeze(1), x, W.transpose(1, 2))  # noqa: E731
    y0, _, g0 = grads(plain)
    y1, _, g1 = grads(affine)
    assert torch.equal(y0, y1)
    for a, c in zip(g0, g1):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)
    assert g1[1].is_contiguous() and g1[1].shape == W.shape  # no transposed copy for the optimiser
    # the DAE gradient term differentiates through a gradient: second derivatives agree too
    second = []
    for f in (plain, affine):
        _, leaves, (gx, _, _) = grads(f, create_graph=True)
        second.append(torch.autograd.grad(gx.pow(2).sum(), leaves[1:]))
    for a, c in zip(*second):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)


def test_soft_threshold_is_prox_of_abs():
    t = 0.5
    u = torch.linspace(-5, 5, 100001, dtype=torch.float64)
    for z in [-2.0, -0.3, 0.0, 0.2, 0.7, 3.0]:
        objective = t * u.abs() + 0.5 * (z - u) ** 2
        argmin = u[objective.argmin()]
        assert close(soft_threshold(T(z, dtype=torch.float64), t), argmin, 2e-4)


def test_l1prox_penalty_by_hand():
    m = build("l1prox", 2, 2, alpha0=1.0, beta=0.1)
    m.on_epoch_start(0, 10)  # alpha = alpha0 = 1
    h = T([[[0.5, -0.05], [0.02, 0.3]]])  # threshold alpha*beta/N = 1 * 0.1 / 2 = 0.05
    # Y = [[0.45, 0], [0, 0.25]]; ||Y - Z||^2 summed = 0.0025 + 0.0025 + 0.0004 + 0.0025
    assert close(m.penalty(None, h), 0.0079 / (2 * 1.0))


def test_l1prox_alpha_schedule():
    m = build("l1prox", 2, 2, alpha0=1.0, f=0.6, T=5)
    alphas = [m.on_epoch_start(e, 10)["alpha"] for e in range(10)]
    expected = [1.0, 1.0, 0.6, 0.6, 0.36, 0.36, 0.216, 0.216, 0.1296, 0.1296]
    assert all(close(a, b) for a, b in zip(alphas, expected))
    assert close(m.on_epoch_start(11, 12)["alpha"], 0.6**4)  # last stage holds after T stages
    assert close(m.alpha, 0.6**4)


def test_l1prox_first_stage_is_nearly_unpenalised_with_the_protocols_alpha0():
    """alpha0 * beta / N = 1 (conf/amini2018.yaml): every logistic code is below the first
    threshold (a weak quadratic pull, Z/alpha), above the last one's (the l1 pull, beta/N)."""
    m = build("l1prox", 4, 3, alpha0=100.0, beta=0.5, f=0.6, T=5)
    h = torch.full((1, 50, 3), 0.5, requires_grad=True)
    first = []
    for epoch in (0, 9):
        m.on_epoch_start(epoch, 10)
        (grad,) = torch.autograd.grad(m.penalty(None, h).sum(), h)
        first.append(float(grad[0, 0, 0]))
    assert close(first[0], 0.5 / 100.0)  # Z / alpha0: below the threshold alpha0 beta / N = 1
    assert close(first[1], 0.5 / 50)  # beta / N: above the last threshold 0.6^4 = 0.13


# --- k-sparse ------------------------------------------------------------------------


def test_ksparse_keeps_k_in_training_and_alpha_k_in_features():
    torch.manual_seed(0)
    m = build("ksparse", 20, 30, k=5, k_start=5, alpha=2.5)
    m.on_epoch_start(0, 10)
    x = torch.randn(7, 20)
    assert ((m.encode(x) != 0).sum(dim=-1) == 5).all()
    assert ((m.features(x) != 0).sum(dim=-1) == round(2.5 * 5)).all()
    capped = build("ksparse", 20, 30, k=20, k_start=20, alpha=3.0)
    assert ((capped.features(x) != 0).sum(dim=-1) == 30).all()


def test_ksparse_per_model_k_keeps_each_models_k():
    torch.manual_seed(0)
    m = build("ksparse", 20, 30, n_models=3, per_model={"k": [2, 5, 9], "k_start": [9, 9, 9]}, alpha=2)
    m.on_epoch_start(9, 10)
    x = torch.randn(7, 20)
    assert (m.encode(x) != 0).sum(dim=-1).tolist() == [[2] * 7, [5] * 7, [9] * 7]
    assert (m.features(x) != 0).sum(dim=-1)[:, 0].tolist() == [4, 10, 18]
    assert m.on_epoch_start(0, 10) == {"k": [9, 9, 9]}


def test_ksparse_gradient_flows_only_through_kept_units():
    torch.manual_seed(0)
    m = build("ksparse", 20, 30, k=4, k_start=4)
    x = torch.randn(1, 1, 20)
    kept = m.encode(x)[0, 0] != 0
    m.objective(x)[0].sum().backward()
    assert ((m.b.grad[0] != 0) == kept).all()


def test_ksparse_schedule():
    m = build("ksparse", 20, 200, k=20, k_start=100)
    n = 40
    assert m.on_epoch_start(0, n) == {"k": 100}
    assert m.on_epoch_start(n // 4, n) == {"k": 60}  # linear midpoint
    assert m.on_epoch_start(n // 2, n) == {"k": 20}
    assert m.on_epoch_start(n - 1, n) == {"k": 20}


@pytest.mark.parametrize("params, key", [({"k": 0}, "model.ksparse.k"), ({"alpha": 0.5, "k": 3}, "model.ksparse.alpha")])
def test_ksparse_bad_params(params, key):
    with pytest.raises(ParamError, match=key.replace(".", r"\.")):
        build("ksparse", 20, 30, **params)


def test_order_keys_sort_like_the_floats_and_give_them_back():
    from sae.models.ksparse import _order_keys
    z = torch.cat([torch.randn(1000) * 10.0 ** torch.randint(-30,30, (1000,)),
                   torch.tensor([float("inf"), -float("inf"), 0.0, 1e-45, -1e-45])])
    keys = _order_keys(z.clone())
    assert torch.equal(keys.argsort(), z.argsort())
    assert torch.equal(_order_keys(keys.clone()).view(torch.float32), z)


@pytest.mark.parametrize("per_model_k", [False, True])
def test_ksparse_sparse_step_equals_the_dense_formulation(per_model_k):
    torch.manual_seed(0)
    extra = {"per_model": {"k": [2, 4, 6], "k_start": [6, 6, 6]}} if per_model_k else {"k": 4, "k_start": 4}
    model = build("ksparse", 30, 20, n_models=3, alpha=2, **extra)
    model.on_epoch_start(5, 6)
    x = torch.randn(3, 16, 30, requires_grad=True)
    loss, recon = model.objective(x)
    grads = torch.autograd.grad(loss.sum(), [x, *model.parameters()])
    dense_loss, dense_recon = Autoencoder.objective(model, x)  # the masked dense product
    dense_grads = torch.autograd.grad(dense_loss.sum(), [x, *model.parameters()])
    torch.testing.assert_close(loss, dense_loss)
    torch.testing.assert_close(recon, dense_recon)
    for g, d in zip(grads, dense_grads):
        torch.testing.assert_close(g, d, rtol=1e-5, atol=1e-6)


def test_the_private_kernel_for_kept_unit_dots_equals_its_public_fallback():
    from sae.models.ksparse import _pair_indices, _private_dots, kept_unit_dots
    torch.manual_seed(0)
    rows, k, units, d = 12, 3, 40, 7
    grad, weight = torch.randn(rows, d), torch.randn(units, d)
    unit = torch.randint(0, units, (rows * k,))
    sample, offsets, _, _ = _pair_indices((k,) * 3, rows // 3, torch.device("cpu"))
    public = kept_unit_dots(grad, weight, unit, offsets, sample, private=False)
    torch.testing.assert_close(public, (grad[sample] * weight[unit]).sum(1))
    if _private_dots() is not None:  # the fallback is what runs where torch drops the kernel
        torch.testing.assert_close(kept_unit_dots(grad, weight, unit, offsets, sample), public)


# --- constraints and randomness --------------------------------------------------------


def test_unit_norm_projection():
    torch.manual_seed(0)
    for mid in ("ae", "cae"):
        m = build(mid, 20, 8, n_models=2, unit_norm=True)
        with torch.no_grad():
            m.W.mul_(T([0.1, 1, 2, 3, 4, 5, 6, 7])[None, :, None])
        m.after_step()
        assert torch.allclose(m.W.norm(dim=-1), torch.ones(2, 8), atol=1e-6)


def test_no_projection_without_unit_norm():
    m = build("ae", 20, 8)
    with torch.no_grad():
        m.W.mul_(5.0)
    before = m.W.clone()
    m.after_step()
    assert torch.equal(m.W, before)


def test_dae_mask_corruption_is_reproducible():
    m = build("dae", 50, 8, corruption="mask", level=0.2).train()
    x = torch.ones(1, 200, 50)
    a, b, c = m.corrupt(x, streams(1)), m.corrupt(x, streams(1)), m.corrupt(x, streams(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(float((a == 0).float().mean()) - 0.2) < 0.02
    assert m.objective(x, streams(1))[0] == m.objective(x, streams(1))[0]
    assert torch.equal(m.eval().corrupt(x, streams(1)), x)


def test_dae_gaussian_level_is_variance():
    m = build("dae", 50, 8, corruption="gaussian", level=0.25).train()
    x = torch.zeros(1, 400, 50)
    assert abs(float(m.corrupt(x, streams(0)).std()) - 0.5) < 0.02


def test_models_of_one_seed_share_their_noise_and_models_of_two_seeds_do_not():
    s = Streams([3, 3, 4], "cpu", "noise")
    draws = s.rand(5, 2)
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    assert torch.equal(draws[2], Streams([4], "cpu", "noise").rand(5, 2)[0])  # as if trained alone


def test_dropout_inactive_in_eval_mode():
    torch.manual_seed(0)
    m = build("dropout", 20, 8, p_hidden=0.5, p_input=0.2)
    x = torch.randn(1, 16, 20)
    assert m.objective(x, streams(1))[0] != m.objective(x, streams(2))[0]
    m.eval()
    loss1, loss2 = m.objective(x, streams(1))[0], m.objective(x, streams(2))[0]
    clean = ((m.decode(m.encode(x)) - x) ** 2).sum(-1).mean()
    assert loss1 == loss2 and close(loss1, clean)
    assert abs(float(inverted_dropout(torch.ones(1, 1000, 100), 0.5, streams(0)).mean()) - 1.0) < 0.02


def test_edae_is_first_order_dae():
    """For small noise, eDAE's loss equals the DAE loss on the same noisy input up to O(sigma^2)."""
    torch.manual_seed(0)
    m = build("edae", 6, 4, level=1e-6, activation="softplus").double().train()
    x = torch.randn(1, 5, 6, dtype=torch.float64)
    loss, recon = (t.detach() for t in m.objective(x, streams(3)))
    x_tilde = x + 1e-3 * streams(3).randn(5, 6, dtype=torch.float64)
    dae_loss = ((m.decode(m.encode(x_tilde)) - x) ** 2).sum(-1).mean().detach()
    first_order = abs(float(loss - recon))
    assert first_order > 1e-4  # the term is really there (it is O(sigma))
    assert abs(float(loss - dae_loss)) < 1e-2 * first_order  # what is left is O(sigma^2)


# --- build ---------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_every_model_builds_and_trains(model_id):
    extra = {"k": 3, "k_start": 3} if model_id == "ksparse" else {}  # default k=25 exceeds hidden=8
    m = build(model_id, 20, 8, n_models=2, generators=init_generators([0, 1]), **extra).train()
    m.on_epoch_start(0, 3)
    x = torch.randn(2, 4, 20)
    code_dim = 20 if model_id == "raw" else 8  # raw pixels: the code is the input itself
    assert m.encode(x).shape == (2, 4, code_dim) and m.features(x).shape == (2, 4, code_dim)
    assert m.decode(m.encode(x)).shape == (2, 4, 20)
    loss, recon = m.objective(x, streams(0, n=2))
    assert loss.shape == (2,) and torch.isfinite(loss).all() and torch.isfinite(recon).all()
    assert m.trainable == (model_id != "raw")
    if m.trainable:
        loss.sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
        m.after_step()
        one = m.select(1)
        assert one.n_models == 1 and torch.equal(one.W[0], m.W[1])


def test_registry_options_and_catalog_agree():
    assert MODEL_IDS == catalog.MODEL_IDS
    assert set(schema.OPTIONS) == set(MODEL_IDS)
    for model_id, spec in REGISTRY.items():
        fields = schema.OPTIONS[model_id].model_fields
        assert all(k in fields for k in spec.per_model), model_id


def test_unknown_id_and_params_raise():
    with pytest.raises(ParamError, match="unknown model id; allowed: raw, ae"):
        build("foo", 20, 8)
    with pytest.raises(ParamError, match="model.kl.bogus: unknown key"):
        build("kl", 20, 8, bogus=1)
    with pytest.raises(ParamError, match=r"model.kl.rho=1.5: must be < 1"):
        build("kl", 20, 8, rho=1.5)
    with pytest.raises(ParamError, match="model.ae.activation='gelu'"):
        build("ae", 20, 8, activation="gelu")
    with pytest.raises(ParamError, match="model.sl0sq.sigmas"):
        build("sl0sq", 20, 8, sigmas=[0.1, 1.0])


def test_tied_weights_share_the_encoder():
    m = build("ae", 20, 8, tied=True)
    assert m.W_dec is None and m.decoder_weight.data_ptr() == m.W.data_ptr()
    t = build("ae", 3, 2, tied=True, weight_decay=0.5)
    set_weights(t, [[1.0, 0.0, 2.0], [0.0, -1.0, 0.0]])
    assert close(t.weight_penalty(), 0.5 * 2 * (1 + 4 + 1))  # W counted as encoder and decoder
    w = build("ae", 3, 2, weight_decay=0.5)
    set_weights(w, [[1.0, 0.0, 2.0], [0.0, -1.0, 0.0]], W_dec=[[1.0, 1.0], [0.0, 0.0], [0.0, 3.0]])
    assert close(w.weight_penalty(), 0.5 * ((1 + 4 + 1) + (1 + 1 + 9)))


def test_gaussian_init_std_and_one_seed_per_model():
    m = build("ksparse", 400, 300, k=10, n_models=2, generators=init_generators([7, 8]))
    assert abs(float(m.W.detach().std()) - 0.01) < 5e-4 and not m.b.detach().any()
    alone = build("ksparse", 400, 300, k=10, generators=init_generators([8]))
    assert torch.equal(alone.W[0], m.W[1]) and not torch.equal(m.W[0], m.W[1])


def test_the_squared_smoothed_l0_prefers_h2_and_the_plain_l0_h1_as_in_001_sec_iii():
    """001 sec. III: of two codes of 5 samples (columns) by 4 units, sum ||h||_0 prefers H1 (9
    against 10 non-zeros) while sum ||h||_0^2 (eq. 6) prefers H2 (20 against 21), which spreads
    the sparsity evenly; the smoothed penalty (eq. 7) at a small sigma agrees with both."""
    from sae.models.penalties import smoothed_l0_squared
    H1 = torch.tensor([[0, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 0, 0, 1, 0], [1, 1, 0, 0, 1]], dtype=torch.float32)
    H2 = torch.tensor([[1, 0, 1, 0, 0], [0, 1, 1, 0, 1], [1, 1, 0, 1, 0], [0, 0, 0, 1, 1]], dtype=torch.float32)
    codes = {name: H.T[None] for name, H in (("H1", H1), ("H2", H2))}  # (G=1, B=5 samples, M=4 units)
    l0 = {name: float((h != 0).sum()) for name, h in codes.items()}
    squared = {name: float(smoothed_l0_squared(h, 0.01).sum()) for name, h in codes.items()}
    assert l0 == {"H1": 9.0, "H2": 10.0}
    assert squared == pytest.approx({"H1": 21.0, "H2": 20.0})
