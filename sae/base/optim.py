"""SGD with momentum and Adam, written with public tensor operations (and one fused kernel).

Why not torch.optim: constructing a torch.optim optimizer imports its dynamo compiler, and
every DVC stage is a new process, so each train/evaluate/finetune/sweep stage would pay that
import (README: Benchmarks). The updates below are torch's documented algorithms, operation for
operation: bit-identical to torch.optim.SGD and Adam with foreach=False (tests/test_optim.py).
SGD also captures into a CUDA graph (no value changes between its steps but the tensors).
In these operations, weight decay is added to p.grad in place (torch.optim allocates a new
tensor every step): the same values, and after step() p.grad holds g + wd p.

On CPU, SGD with momentum runs torch's fused kernel instead (the one behind
torch.optim.SGD(fused=True), bit for bit; p.grad is left as it was): one pass over each tensor
instead of four (README: Benchmarks). It is a
private op, so `fused_sgd_` falls back to the public operations when it is missing or refuses
its arguments (tests/test_optim.py checks both against torch.optim).

Both keep torch's interface where the loops use it: `param_groups` (dicts whose "lr" a schedule
may set), `zero_grad()`, `step()`, `state_dict()`, `load_state_dict()`.
"""
from __future__ import annotations

import torch

from sae.base.catalog import OPTIMIZERS
from sae.base.errors import ParamError


def _groups(params, defaults: dict) -> list[dict]:
    """Parameter groups: a list of tensors, or of dicts with "params" and per-group options."""
    params = list(params)
    if params and not isinstance(params[0], dict):
        params = [{"params": params}]
    return [{**defaults, **g, "params": list(g["params"])} for g in params]


class _Optimizer:
    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.param_groups = _groups(params, defaults)
        self.state: dict[torch.Tensor, dict] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    def state_dict(self) -> dict:
        """torch.optim's layout: state and groups refer to parameters by position."""
        index = {}
        groups = []
        for group in self.param_groups:
            ids = [index.setdefault(p, len(index)) for p in group["params"]]
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[p]: dict(s) for p, s in self.state.items() if p in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        params = [p for group in self.param_groups for p in group["params"]]
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups) or any(len(s["params"]) != len(g["params"])
                                                       for s, g in zip(saved, self.param_groups)):
            raise ValueError("optimizer state: parameter groups do not match this optimizer's")
        for group, s in zip(self.param_groups, saved):
            group.update({k: v for k, v in s.items() if k != "params"})
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            self.state[p] = {k: (v.to(p.device) if isinstance(v, torch.Tensor) else v) for k, v in s.items()}


class SGD(_Optimizer):
    """SGD with momentum (002 eq. 11; 003 sec. 3) in torch's form: d = g + wd p;
    v <- mu v + d (v = d at the first step); p <- p - lr v."""

    capturable = True

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            params = [p for p in group["params"] if p.grad is not None]
            if mu != 0 and params and all(p.device.type == "cpu" for p in params) and self._fused(params, lr, mu, wd):
                continue
            for p in params:
                d = p.grad if wd == 0 else p.grad.add_(p, alpha=wd)  # in place: the gradient is ours
                if mu != 0:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = torch.clone(d).detach()
                    else:
                        buf.mul_(mu).add_(d)
                    d = buf
                p.add_(d, alpha=-lr)

    def _fused(self, params, lr: float, mu: float, wd: float) -> bool:
        """One fused update of `params` (momentum buffers created at their first step, as above);
        False, with nothing changed, when the fused kernel is unavailable."""
        old = {p: self.state.get(p, {}).get("momentum_buffer") for p in params}
        new = {p: torch.empty_like(p) for p in params if old[p] is None}
        for first in (True, False):
            subset = [p for p in params if (p in new) == first]
            if subset and not fused_sgd_(subset, [p.grad for p in subset], [new.get(p, old[p]) for p in subset],
                                         lr=lr, momentum=mu, weight_decay=wd, first_step=first):
                if first or not new:
                    return False  # nothing was updated yet: the caller runs the public operations
                raise RuntimeError("the fused SGD kernel failed after updating some parameters")
        for p, buf in new.items():
            self.state.setdefault(p, {})["momentum_buffer"] = buf
        return True


def fused_sgd_(params, grads, buffers, *, lr: float, momentum: float, weight_decay: float,
               first_step: bool) -> bool:
    """SGD with momentum in place, torch's form (d = g + wd p; buf = mu buf + d, or d at the first
    step; p -= lr buf), by torch's private fused kernel; lists of CPU tensors of equal shapes per
    index. Returns False, changing nothing, where torch has no such kernel or it refuses them."""
    kernel = getattr(torch, "_fused_sgd_", None)
    if kernel is None:
        return False
    try:
        kernel(params, grads, buffers, weight_decay=weight_decay, momentum=momentum, lr=lr, dampening=0.0,
               nesterov=False, maximize=False, is_first_step=first_step)
    except (RuntimeError, NotImplementedError, TypeError):
        return False
    return True


class Adam(_Optimizer):
    """Adam (Kingma and Ba) with L2 weight decay added to the gradient, as torch.optim.Adam
    (foreach=False), operation for operation. Its step count is a Python number, so a captured
    CUDA graph would replay one step's bias corrections: sae.train never captures Adam."""

    capturable = False

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(p),
                                             "exp_avg_sq": torch.zeros_like(p)}
                grad = p.grad if wd == 0 else p.grad.add_(p, alpha=wd)
                state["step"] += 1
                step = float(state["step"])
                state["exp_avg"].lerp_(grad, 1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                bias2_sqrt = (1 - beta2 ** step) ** 0.5
                denom = (state["exp_avg_sq"].sqrt() / bias2_sqrt).add_(eps)
                p.addcdiv_(state["exp_avg"], denom, value=-lr / (1 - beta1 ** step))


def make_optimizer(params, optimizer: str, lr: float, momentum: float):
    """SGD with momentum as in the papers (002 eq. 11); Adam as an option. params: tensors or
    groups (a model's param_groups() carries its weight decay)."""
    if optimizer == "sgd":
        return SGD(params, lr=lr, momentum=momentum)
    if optimizer == "adam":
        return Adam(params, lr=lr)
    raise ParamError(f"optimizer={optimizer!r}: allowed: {', '.join(OPTIMIZERS)}")
