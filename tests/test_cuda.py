"""The CUDA path (`device: auto` picks it when a GPU is present) computes what the CPU path does.

CI has no GPU, so these run only where torch sees one (`python -m pytest tests/test_cuda.py`
on a GPU machine); every function they exercise is also tested on the CPU elsewhere.
"""
from __future__ import annotations

import copy

import pytest
import torch

import sae.train
from sae.cuda_graph import StepGraph
from sae.models import MODEL_IDS, build
from sae.models.core import Autoencoder
from sae.train import fit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")

NOISY = ("dae", "dropout", "edae")  # draw from the device's generator, so CUDA and CPU streams differ
TRAINABLE = [m for m in MODEL_IDS if m != "raw"]


def _fit(model, x, **kw):  # one batch per epoch; epochs past sae.cuda_graph.WARMUP_STEPS replay a graph
    return fit(model, x, x[:50], epochs=6, batch=x.shape[0], lr=0.01, progress=False, **kw)


@pytest.mark.parametrize("model_id", [m for m in TRAINABLE if m not in NOISY])
def test_full_batch_training_on_cuda_matches_the_cpu(model_id):
    torch.manual_seed(0)
    x = torch.rand(200, 64)
    cpu = build(model_id, 64, 32)
    gpu = copy.deepcopy(cpu).cuda()
    history_cpu, history_gpu = _fit(cpu, x), _fit(gpu, x.cuda())  # one batch: the shuffle order cannot matter
    for row_cpu, row_gpu in zip(history_cpu, history_gpu, strict=True):
        assert row_gpu["loss"] == pytest.approx(row_cpu["loss"], rel=1e-4, abs=1e-6)
    for name, p in cpu.state_dict().items():
        torch.testing.assert_close(gpu.state_dict()[name].cpu(), p, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model_id", NOISY)
def test_noisy_models_train_on_cuda(model_id):
    torch.manual_seed(0)
    x = torch.rand(200, 64, device="cuda")
    model = build(model_id, 64, 32).cuda()
    history = fit(model, x, x[:50], epochs=5, batch=20, lr=0.01, progress=False)
    assert all(p.is_cuda for p in model.parameters())
    assert history[-1]["recon"] < history[0]["recon"]


def test_ksparse_sparse_step_equals_the_dense_formulation_on_cuda():
    torch.manual_seed(0)
    model = build("ksparse", 784, 1000, k=25, k_start=25, alpha=2).cuda()
    x = torch.randn(256, 784, device="cuda", requires_grad=True)
    loss, _ = model.objective(x)
    grads = torch.autograd.grad(loss, [x, *model.parameters()])
    dense_loss, _ = Autoencoder.objective(model, x)  # the masked dense product
    dense_grads = torch.autograd.grad(dense_loss, [x, *model.parameters()])
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
    monkeypatch.setattr(sae.train, "StepGraph", Counted)
    return seen


@pytest.mark.parametrize("model_id", sorted(SCHEDULED))
def test_graph_replays_train_as_the_eager_steps(model_id, captures):
    torch.manual_seed(0)
    x = torch.rand(530, 64, device="cuda")  # 10 full batches of 50 and a partial one (eager) per epoch
    kw = dict(k=4, k_start=16) if model_id == "ksparse" else {}
    eager = build(model_id, 64, 32, **kw).cuda()
    graphed = copy.deepcopy(eager)
    runs = [fit(m, x, x[:50], epochs=8, batch=50, lr=0.001, seed=3, progress=False, cuda_graph=g,
                **SCHEDULED[model_id]) for m, g in ((eager, False), (graphed, True))]
    assert len(captures) == 8  # one per epoch, after 3 eager warm-up steps in the first
    for row_eager, row_graphed in zip(*runs, strict=True):
        assert row_graphed["loss"] == pytest.approx(row_eager["loss"], rel=1e-4)
    for name, p in eager.state_dict().items():
        torch.testing.assert_close(graphed.state_dict()[name], p, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model_id", NOISY)
def test_graph_replays_draw_the_noise_of_the_eager_steps(model_id, captures):
    torch.manual_seed(0)
    x = torch.rand(500, 64, device="cuda")
    eager = build(model_id, 64, 32).cuda()
    graphed = copy.deepcopy(eager)
    runs = [fit(m, x, x[:50], epochs=6, batch=50, lr=0.01, seed=3, progress=False, cuda_graph=g)
            for m, g in ((eager, False), (graphed, True))]
    assert len(captures) == 6
    assert runs[1][-1]["recon"] < runs[1][0]["recon"]
    # the replays consume the generator as the eager steps do, so the noise, and the run, is the same
    assert runs[1][-1]["loss"] == pytest.approx(runs[0][-1]["loss"], rel=1e-3)
