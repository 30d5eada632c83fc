"""sae.optim: the fused kernels without torch.optim give torch.optim's updates, bit for bit."""
import pytest
import torch

from sae.optim import FusedAdam, FusedSGD


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(6, 5, generator=g).requires_grad_()
    b = torch.randn(6, generator=g).requires_grad_()
    x = torch.randn(32, 5, generator=g)
    return [w, b], x


def _loss(params, x):
    w, b = params
    return torch.tanh(x @ w.t() + b).pow(3).sum()


def _groups(params):
    return [{"params": [params[0]], "weight_decay": 0.01}, {"params": [params[1]], "weight_decay": 0.0}]


def _resume(opt_from, make, params, steps):
    """A fresh optimiser from make(), loaded with opt_from's state, `steps` more steps on params."""
    opt = make(_groups(params))
    opt.load_state_dict(opt_from.state_dict())
    x = _problem()[1]
    for _ in range(steps):
        opt.zero_grad()
        _loss(params, x).backward()
        opt.step()
    return params


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


@pytest.mark.parametrize("ours, theirs", [
    (lambda p: FusedSGD(p, lr=0.05, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, fused=True)),
    (lambda p: FusedSGD(p, lr=0.05), lambda p: torch.optim.SGD(p, lr=0.05, fused=True)),
    (lambda p: FusedAdam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01, fused=True)),
])
def test_updates_equal_torch_optim_fused(ours, theirs):
    lrs = [0.05 * (1 - i / 7) + 1e-3 for i in range(7)]  # a schedule set through param_groups
    a, _ = _run(ours, 7, lrs=lrs)
    b, _ = _run(theirs, 7, lrs=lrs)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


@pytest.mark.parametrize("make", [lambda p: FusedSGD(p, lr=0.05, momentum=0.9), lambda p: FusedAdam(p, lr=0.01)])
def test_state_dict_resumes_exactly(make):
    """Stop after 3 steps, rebuild from state_dict (as a checkpoint does), go on: same as 6 straight steps."""
    straight, _ = _run(make, 6)
    params, opt = _run(make, 3)
    copies = [p.detach().clone().requires_grad_() for p in params]
    for x_, y in zip(_resume(opt, make, copies, 3), straight):
        assert torch.equal(x_, y)


def test_loads_a_torch_optim_checkpoint():
    """Checkpoints written before sae.optim (by torch.optim.SGD) resume to the same weights."""
    straight, _ = _run(lambda p: FusedSGD(p, lr=0.05, momentum=0.9), 4)
    params, opt = _run(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, fused=True), 2)
    resumed = _resume(opt, lambda g: FusedSGD(g, lr=0.05, momentum=0.9), params, 2)
    for x_, y in zip(resumed, straight):
        assert torch.equal(x_, y)


def test_no_dynamo_import():
    """The point of sae.optim: a training step never imports torch._dynamo (1.3 s per stage)."""
    import subprocess
    import sys
    code = ("import sys, torch; from sae.optim import FusedSGD; p = torch.zeros(3, requires_grad=True); "
            "o = FusedSGD([p], lr=0.1, momentum=0.9); p.sum().backward(); o.step(); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
