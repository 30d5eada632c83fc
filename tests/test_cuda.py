"""The CUDA path (`device: auto` picks it when a GPU is present) computes what the CPU path does.

CI has no GPU, so these run only where torch sees one (`python -m pytest tests/test_cuda.py`
on a GPU machine); every function they exercise is also tested on the CPU elsewhere.
"""
from __future__ import annotations

import copy

import pytest
import torch

from sae.models import MODEL_IDS, build
from sae.models.core import Autoencoder
from sae.train import fit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")

NOISY = ("dae", "dropout", "edae")  # draw from the device's generator, so CUDA and CPU streams differ
TRAINABLE = [m for m in MODEL_IDS if m != "raw"]


def _fit(model, x, **kw):
    return fit(model, x, x[:50], epochs=3, batch=x.shape[0], lr=0.01, progress=False, **kw)


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
