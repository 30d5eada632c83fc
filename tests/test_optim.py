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


def _run(make, steps, seed=0, lrs=None):
    params, x = _problem(seed)
    opt = make([{"params": [params[0]], "weight_decay": 0.01}, {"params": [params[1]], "weight_decay": 0.0}])
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
    state = opt.state_dict()
    x = _problem()[1]
    copies = [p.detach().clone().requires_grad_() for p in params]
    opt2 = make([{"params": [copies[0]], "weight_decay": 0.01}, {"params": [copies[1]], "weight_decay": 0.0}])
    opt2.load_state_dict(state)
    for _ in range(3):
        opt2.zero_grad()
        _loss(copies, x).backward()
        opt2.step()
    for x_, y in zip(copies, straight):
        assert torch.equal(x_, y)


def test_loads_a_torch_optim_checkpoint():
    """Checkpoints written before sae.optim (by torch.optim.SGD) resume to the same weights."""
    straight, _ = _run(lambda p: FusedSGD(p, lr=0.05, momentum=0.9), 4)
    params, opt = _run(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, fused=True), 2)
    ours = FusedSGD([{"params": [params[0]], "weight_decay": 0.01}, {"params": [params[1]], "weight_decay": 0.0}],
                    lr=0.05, momentum=0.9)
    ours.load_state_dict(opt.state_dict())
    x = _problem()[1]
    for _ in range(2):
        ours.zero_grad()
        _loss(params, x).backward()
        ours.step()
    for x_, y in zip(params, straight):
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
