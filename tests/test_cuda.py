"""The CUDA path (`device: auto` picks it when a GPU is present) computes what the CPU path does.

CI has no GPU, so these run only where torch sees one (`python -m pytest tests/test_cuda.py`
on a GPU machine); every function they exercise is also tested on the CPU elsewhere.
"""
from __future__ import annotations

import copy

import pytest
import torch

import sae.cuda_graph
from sae.cuda_graph import StepGraph
from sae.models import MODEL_IDS, build
from sae.models.core import Autoencoder
from sae.base.rng import init_generators
from sae.train import fit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")

NOISY = ("dae", "dropout", "edae")  # draw from the device's generators, so CUDA and CPU streams differ
TRAINABLE = [m for m in MODEL_IDS if m != "raw"]
SEEDS = [0, 1, 2]


def _build(model_id, **kw):
    extra = dict(k=4, k_start=16) if model_id == "ksparse" else {}
    return build(model_id, 64, 32, n_models=len(SEEDS), generators=init_generators(SEEDS), **extra, **kw)


@pytest.mark.parametrize("model_id", [m for m in TRAINABLE if m not in NOISY])
def test_full_batch_training_on_cuda_matches_the_cpu(model_id):
    torch.manual_seed(0)
    x = torch.rand(200, 64)
    cpu = _build(model_id)
    gpu = copy.deepcopy(cpu).cuda()
    runs = [fit(m, xx, xx[:50], epochs=6, batch=200, lr=0.01, seeds=SEEDS, progress=False)  # one batch an epoch
            for m, xx in ((cpu, x), (gpu, x.cuda()))]
    for row_cpu, row_gpu in zip(runs[0].history, runs[1].history, strict=True):
        assert row_gpu["loss"] == pytest.approx(row_cpu["loss"], rel=1e-4, abs=1e-6)
    for name, p in cpu.state_dict().items():
        torch.testing.assert_close(gpu.state_dict()[name].cpu(), p, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model_id", NOISY)
def test_noisy_models_train_on_cuda(model_id):
    x = torch.rand(200, 64, device="cuda")
    model = _build(model_id).cuda()
    result = fit(model, x, x[:50], epochs=5, batch=20, lr=0.01, seeds=SEEDS, progress=False)
    assert all(p.is_cuda for p in model.parameters())
    assert sum(result.history[-1]["recon"]) < sum(result.history[0]["recon"])


def test_ksparse_sparse_step_equals_the_dense_formulation_on_cuda():
    torch.manual_seed(0)
    model = build("ksparse", 784, 1000, n_models=3, per_model={"k": [25, 40, 70], "k_start": [70] * 3},
                  alpha=2).cuda()
    model.on_epoch_start(9, 10)
    x = torch.randn(3, 256, 784, device="cuda", requires_grad=True)
    loss, _ = model.objective(x)
    grads = torch.autograd.grad(loss.sum(), [x, *model.parameters()])
    dense_loss, _ = Autoencoder.objective(model, x)  # the masked dense product
    dense_grads = torch.autograd.grad(dense_loss.sum(), [x, *model.parameters()])
    torch.testing.assert_close(loss, dense_loss)
    for g, d in zip(grads, dense_grads):
        torch.testing.assert_close(g, d, rtol=1e-4, atol=1e-6)


SCHEDULED = {"ae": dict(schedule="linear", final_lr=0.001),  # lr changes every epoch
             "ksparse": dict(),  # k goes from k_start to k over the first half
             "l1prox": dict(),  # alpha stages
             "sl0sq": dict()}  # sigma stages


@pytest.fixture
def captures(monkeypatch):
    """The epochs fit() captured a CUDA graph in (so a silent fallback to eager steps fails the tests)."""
    seen = []

    class Counted(StepGraph):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(len(seen))
    monkeypatch.setattr(sae.cuda_graph, "StepGraph", Counted)
    return seen


@pytest.mark.parametrize("model_id", sorted(SCHEDULED))
def test_graph_replays_train_as_the_eager_steps(model_id, captures):
    x = torch.rand(530, 64, device="cuda")  # 10 full batches of 50 and a partial one (eager) per epoch
    eager = _build(model_id).cuda()
    graphed = copy.deepcopy(eager)
    runs = [fit(m, x, x[:50], epochs=8, batch=50, lr=0.001, seeds=SEEDS, progress=False, cuda_graph=g,
                **SCHEDULED[model_id]) for m, g in ((eager, False), (graphed, True))]
    assert len(captures) == 8  # one per epoch, after 3 eager warm-up steps in the first
    for row_eager, row_graphed in zip(runs[0].history, runs[1].history, strict=True):
        assert row_graphed["loss"] == pytest.approx(row_eager["loss"], rel=1e-4)
    for name, p in eager.state_dict().items():
        torch.testing.assert_close(graphed.state_dict()[name], p, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model_id", NOISY)
def test_graph_replays_draw_the_noise_of_the_eager_steps(model_id, captures):
    x = torch.rand(500, 64, device="cuda")
    eager = _build(model_id).cuda()
    graphed = copy.deepcopy(eager)
    runs = [fit(m, x, x[:50], epochs=6, batch=50, lr=0.01, seeds=SEEDS, progress=False, cuda_graph=g)
            for m, g in ((eager, False), (graphed, True))]
    assert len(captures) == 6
    # the replays consume the generators as the eager steps do, so the noise, and the run, is the same
    assert runs[1].history[-1]["loss"] == pytest.approx(runs[0].history[-1]["loss"], rel=1e-3)
