"""sae.base.optim: torch's SGD and Adam written with public tensor operations give torch.optim's updates."""
import subprocess
import sys

import pytest
import torch

from sae.base.optim import SGD, Adam


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(3, 6, 5, generator=g).requires_grad_()  # a batch of 3 models' weights
    b = torch.randn(3, 6, generator=g).requires_grad_()
    x = torch.randn(32, 5, generator=g)
    return [w, b], x


def _loss(params, x):
    w, b = params
    return torch.tanh(x @ w.transpose(1, 2) + b[:, None]).pow(3).sum()


def _groups(params):
    return [{"params": [params[0]], "weight_decay": 0.01}, {"params": [params[1]], "weight_decay": 0.0}]


def _run(make, steps, seed=0, lrs=None):
    params, x = _problem(seed)
    opt = make(_groups(params))
    for i in range(steps):
        if lrs:
            for group in opt.param_groups:
                group["lr"] = lrs[i]
        opt.zero_grad(set_to_none=True)
        _loss(params, x).backward()
        opt.step()
    return params, opt


LRS = [0.05 * (1 - i / 7) + 1e-3 for i in range(7)]  # a schedule set through param_groups


@pytest.mark.parametrize("ours, theirs", [
    # on CPU, momentum SGD runs torch's fused kernel: torch.optim's fused SGD, bit for bit
    (lambda p: SGD(p, lr=0.05, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, fused=True)),
    (lambda p: SGD(p, lr=0.05), lambda p: torch.optim.SGD(p, lr=0.05, foreach=False)),
])
def test_sgd_is_torch_optim_sgd_bit_for_bit(ours, theirs):
    a, _ = _run(ours, 7, lrs=LRS)
    b, _ = _run(theirs, 7, lrs=LRS)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_sgd_without_the_fused_kernel_is_the_public_loop_bit_for_bit(monkeypatch):
    """Where torch has no fused SGD kernel (a private op), the public operations run: torch.optim's
    per-tensor SGD, bit for bit; and the fused kernel agrees with them to float rounding."""
    fused, _ = _run(lambda p: SGD(p, lr=0.05, momentum=0.9), 7, lrs=LRS)
    monkeypatch.delattr(torch, "_fused_sgd_", raising=False)
    public, _ = _run(lambda p: SGD(p, lr=0.05, momentum=0.9), 7, lrs=LRS)
    reference, _ = _run(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, foreach=False), 7, lrs=LRS)
    for x, y, z in zip(public, reference, fused):
        assert torch.equal(x, y)
        torch.testing.assert_close(z, x, rtol=1e-5, atol=1e-6)


def test_fused_sgd_refusal_falls_back_with_nothing_changed(monkeypatch):
    """A kernel that refuses its arguments (as a later torch might) changes nothing: the public
    operations then make the whole update."""
    import sae.base.optim

    def refuse(*args, **kwargs):
        raise RuntimeError("refused")
    monkeypatch.setattr(torch, "_fused_sgd_", refuse, raising=False)
    assert not sae.base.optim.fused_sgd_([torch.zeros(2)], [torch.ones(2)], [torch.zeros(2)], lr=0.1, momentum=0.9,
                                    weight_decay=0.0, first_step=True)
    ours, _ = _run(lambda p: SGD(p, lr=0.05, momentum=0.9), 7, lrs=LRS)
    reference, _ = _run(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, foreach=False), 7, lrs=LRS)
    for x, y in zip(ours, reference):
        assert torch.equal(x, y)


def test_adam_is_torch_optim_adam_bit_for_bit():
    a, _ = _run(lambda p: Adam(p, lr=0.01), 7, lrs=[lr / 5 for lr in LRS])
    b, _ = _run(lambda p: torch.optim.Adam(p, lr=0.01, foreach=False), 7, lrs=[lr / 5 for lr in LRS])
    for x, y in zip(a, b):
        assert torch.equal(x, y)


@pytest.mark.parametrize("make", [lambda p: SGD(p, lr=0.05, momentum=0.9), lambda p: Adam(p, lr=0.01)])
def test_state_dict_resumes_exactly(make):
    """Stop after 3 steps, rebuild from state_dict (as a checkpoint does), go on: same as 6 straight steps."""
    straight, _ = _run(make, 6)
    params, opt = _run(make, 3)
    copies = [p.detach().clone().requires_grad_() for p in params]
    resumed = make(_groups(copies))
    resumed.load_state_dict(opt.state_dict())
    x = _problem()[1]
    for _ in range(3):
        resumed.zero_grad()
        _loss(copies, x).backward()
        resumed.step()
    for a, b in zip(copies, straight):
        assert torch.equal(a, b)


def test_no_dynamo_import():
    """Why not torch.optim: a training step here never imports torch._dynamo (about 1 s per stage)."""
    code = ("import sys, torch; from sae.base.optim import SGD; p = torch.zeros(3, requires_grad=True); "
            "o = SGD([p], lr=0.1, momentum=0.9); p.sum().backward(); o.step(); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
