"""The RBM of 002's baseline rows: the free-energy surrogate is contrastive divergence, it learns
on mnist5k, its features beat raw pixels, its Gibbs chains are seeded, and Gaussian visible
units model standardised inputs."""
import pytest
import torch

from sae import evaluate
from sae.base import metrics
from sae.models import build
from sae.models.rbm import free_energy
from sae.base.rng import Streams, init_generators
from sae.train import fit
from tests.test_classify import CLASSIFY, prepared_dir, raw_metrics, tensors

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_free_energy_surrogate_gives_the_textbook_cd1_update():
    """d/dtheta [mean F(v0) - mean F(v1)] with v1 held fixed = -(<v h>_data - <v h>_model)."""
    torch.manual_seed(0)
    rbm = build("rbm", 6, 4, generators=init_generators([0]))
    with torch.no_grad():
        rbm.b.normal_()
        rbm.c.normal_()
    v0 = (torch.rand(1, 5, 6) > 0.5).float()
    v1 = rbm.gibbs(v0, Streams([1], "cpu", "noise"))  # the negative particles
    loss = free_energy(v0, rbm.W, rbm.b, rbm.c, "bernoulli").mean() - free_energy(v1, rbm.W, rbm.b, rbm.c,
                                                                                   "bernoulli").mean()
    gW, gb, gc = torch.autograd.grad(loss, [rbm.W, rbm.b, rbm.c])
    with torch.no_grad():
        h0, h1 = rbm.encode(v0)[0], rbm.encode(v1)[0]
        dW = (h0.T @ v0[0] - h1.T @ v1[0]) / 5  # <h v^T>_data - <h v^T>_model
        db, dc = (h0 - h1).mean(0), (v0[0] - v1[0]).mean(0)
    torch.testing.assert_close(gW[0], -dW)
    torch.testing.assert_close(gb[0], -db)
    torch.testing.assert_close(gc[0], -dc)


def test_softplus_matches_torch_in_value_and_gradient():
    import torch.nn.functional as F
    from sae.models.rbm import softplus
    a = torch.cat([torch.randn(3, 50, 40) * 6, torch.tensor([-200.0, -30.0, 0.0, 30.0, 200.0]).expand(3, 50, 5)],
                  dim=-1).requires_grad_()
    ref = a.detach().clone().requires_grad_()
    torch.testing.assert_close(softplus(a), F.softplus(ref), atol=1e-6, rtol=1e-6)
    w = torch.randn(a.shape)
    (softplus(a) * w).sum().backward()
    (F.softplus(ref) * w).sum().backward()
    torch.testing.assert_close(a.grad, ref.grad, atol=1e-6, rtol=1e-6)
    assert torch.isfinite(softplus(torch.tensor([1e30, -1e30]))).all()


def test_gibbs_sampling_is_reproducible_under_the_seed():
    rbm = build("rbm", 12, 5, generators=init_generators([0]))
    v = torch.rand(1, 8, 12)
    a, b = rbm.gibbs(v, Streams([3], "cpu", "noise")), rbm.gibbs(v, Streams([3], "cpu", "noise"))
    c = rbm.gibbs(v, Streams([4], "cpu", "noise"))
    assert torch.equal(a, b) and not torch.equal(a, c)


@torch.no_grad()
def val_recon(rbm, val) -> float:
    """Mean reconstruction error of the first model's mean-field reconstruction of val (N,D)."""
    return float(metrics.reconstruction_error(val, rbm.decode(rbm.encode(val))[0]).mean())


@pytest.fixture(scope="module")
def trained_on_mnist5k(tmp_path_factory):
    d = tensors(prepared_dir(tmp_path_factory, "mnist5k"))
    rbm = build("rbm", 784, 500, n_models=1, generators=init_generators([0]))
    val = d["x_val"][:500]
    before = val_recon(rbm, val)
    result = fit(rbm, d["x_train"], val, epochs=5, batch=50, lr=0.1, momentum=0.5, seeds=[0], progress=False)
    after = val_recon(rbm, val)
    return d, rbm, result, before, after


def test_cd_lowers_the_reconstruction_error_on_mnist5k(trained_on_mnist5k):
    _, _, result, before, after = trained_on_mnist5k
    print(f"mnist5k RBM (500 units, CD-1, 5 epochs): validation reconstruction error {before:.4f} -> {after:.4f}")
    assert after < 0.5 * before
    rows = result.history
    assert "free_energy_gap" in rows[-1] and "val_pseudo_likelihood" in rows[-1]
    assert rows[-1]["val_pseudo_likelihood"][0] > rows[0]["val_pseudo_likelihood"][0]  # the model got likelier


def test_rbm_features_beat_raw_pixels_under_the_same_logistic_regression(trained_on_mnist5k, tmp_path_factory):
    d, rbm, *_ = trained_on_mnist5k
    data = {k: v for k, v in d.items() if k != "n_classes"}
    r, codes = evaluate.evaluate_one(rbm, data, n_classes=10, classify_cfg=CLASSIFY)
    raw = raw_metrics(tmp_path_factory, "mnist5k")
    print(f"mnist5k logistic regression test error: RBM p(h|v) features {r['logreg']['test_error']:.4f}, "
          f"raw pixels {raw['logreg']['test_error']:.4f}")
    assert r["logreg"]["test_error"] < raw["logreg"]["test_error"]
    assert codes.min() >= 0 and codes.max() <= 1  # hidden probabilities


def test_gaussian_visible_units_reconstruct_standardised_inputs(tmp_path_factory):
    d = tensors(prepared_dir(tmp_path_factory, "optdigits"), "standardize")
    rbm = build("rbm", 64, 100, visible="gaussian", generators=init_generators([0]))
    val = d["x_val"]
    err = lambda: val_recon(rbm, val)  # noqa: E731
    before = err()
    fit(rbm, d["x_train"], val, epochs=20, batch=20, lr=0.005, momentum=0.9, seeds=[0], progress=False)
    assert err() < 0.6 * before and err() < 0.7  # the inputs have unit variance per dimension


def test_persistent_chains_carry_over_and_are_checkpointed(tmp_path):
    x = (torch.rand(100, 10) > 0.5).float()
    rbm = build("rbm", 10, 6, persistent=True, generators=init_generators([0]))
    fit(rbm, x, x[:20], epochs=2, batch=25, lr=0.05, seeds=[0], progress=False)
    assert rbm.chains is not None and rbm.chains.shape == (1, 25, 10)
    assert set(rbm.extra_state()) == {"chains"}


def test_an_rbm_fine_tunes_shallow_and_as_a_dbn(tmp_path_factory):
    """002 Table 3 "RBM + F.T." and the DBN-style deep network: a second RBM (Bernoulli visible units
    over the first one's hidden probabilities), then the layer-wise fine-tuning."""
    from sae import finetune
    from sae.config.schema import FinetuneSettings
    d = tensors(prepared_dir(tmp_path_factory, "optdigits"))
    d.pop("n_classes")
    rbm = build("rbm", 64, 50, n_models=2, generators=init_generators([0, 1]))
    fit(rbm, d["x_train"], d["x_val"], epochs=5, batch=20, lr=0.1, momentum=0.5, seeds=[0, 1], progress=False)
    loop = {"hidden": 50, "epochs": 3, "batch": 20, "input": "pixels", "optimizer": "sgd", "lr": 0.1,
            "momentum": 0.5, "schedule": "constant", "final_lr": 0.001, "checkpoint_every": 0,
        "stop_at_convergence": False}
    hp = {"dataset": "optdigits", "model": "rbm", "id": "rbm", "seeds": [0, 1], "in_dim": 64, "loop": loop,
          "options": {"visible": "bernoulli"}}
    cfg = FinetuneSettings(keep_regulariser=True, epochs=5, deep_epochs=[2, 2, 5], batch=50, optimizer="sgd", lr=[0.5], final_lr=0.01,
                           momentum=0.9, weight_decay=0.0)
    r = finetune.finetune(rbm, hp, d, n_classes=10, cfg=cfg, kinds=["shallow", "deep"], baseline=False, deep=True)
    assert r["shallow"]["test_accuracy"]["mean"] > 0.8 and r["deep"]["test_accuracy"]["mean"] > 0.5
    assert r["deep"]["arch"] == "64-50-50-10"
