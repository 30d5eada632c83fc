"""sae.optim: torch's SGD and Adam written with public tensor operations give torch.optim's updates."""
import subprocess
import sys

import pytest
import torch

from sae.optim import SGD, Adam


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
    (lambda p: SGD(p, lr=0.05, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, foreach=False)),
    (lambda p: SGD(p, lr=0.05), lambda p: torch.optim.SGD(p, lr=0.05, foreach=False)),
])
def test_sgd_is_torch_optim_sgd_bit_for_bit(ours, theirs):
    a, _ = _run(ours, 7, lrs=LRS)
    b, _ = _run(theirs, 7, lrs=LRS)
    for x, y in zip(a, b):
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
    code = ("import sys, torch; from sae.optim import SGD; p = torch.zeros(3, requires_grad=True); "
            "o = SGD([p], lr=0.1, momentum=0.9); p.sum().backward(); o.step(); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
