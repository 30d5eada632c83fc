"""SGD with momentum and Adam on torch's fused update kernels, without torch.optim.

Why not torch.optim: its first optimiser step imports torch._dynamo (1.3 s here), and every
DVC stage is a new process, so each train/evaluate/finetune/sweep stage paid that second
(about 165 s of the default `dvc repro`). These classes call the kernels that
torch.optim.SGD / Adam(fused=True) call (torch._fused_sgd_, torch._fused_adam_), with the
same state layout, so updates and checkpoints are bit-identical (tests/test_optim.py).

Both keep torch's interface where the loops use it: `param_groups` (dicts whose "lr" a
schedule may set), `zero_grad()`, `step()`, `state_dict()`, `load_state_dict()`.
"""
from __future__ import annotations

from collections import defaultdict

import torch


def _groups(params, defaults: dict) -> list[dict]:
    """Parameter groups: a list of tensors, or of dicts with "params" and per-group options."""
    params = list(params)
    if params and not isinstance(params[0], dict):
        params = [{"params": params}]
    return [{**defaults, **g, "params": list(g["params"])} for g in params]


def _by_device_and_dtype(*lists):
    """Split parallel tensor lists by (device, dtype) of the first: the fused kernels take one of each."""
    out = defaultdict(lambda: tuple([] for _ in lists))
    for items in zip(*lists):
        for bucket, item in zip(out[(items[0].device, items[0].dtype)], items):
            bucket.append(item)
    return out.values()


class _Fused:
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


class FusedSGD(_Fused):
    """SGD with momentum (002 eq. 11; 003 sec. 3) in torch's form: v <- mu v + (g + wd p),
    p <- p - lr v; the first step sets v = g + wd p."""

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                                  "dampening": 0.0, "nesterov": False})

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            momentum = group["momentum"]
            if momentum == 0:
                self._update(group, params, [], first=False)
                continue
            new = [p for p in params if "momentum_buffer" not in self.state.get(p, {})]
            old = [p for p in params if "momentum_buffer" in self.state.get(p, {})]
            for p in new:
                self.state.setdefault(p, {})["momentum_buffer"] = torch.empty_like(p.grad)
            for subset, first in ((new, True), (old, False)):
                self._update(group, subset, [self.state[p]["momentum_buffer"] for p in subset], first)

    def _update(self, group, params, buffers, first: bool) -> None:
        if not params:
            return
        lists = (params, [p.grad for p in params]) + ((buffers,) if buffers else ())
        for bucket in _by_device_and_dtype(*lists):
            torch._fused_sgd_(bucket[0], bucket[1], bucket[2] if buffers else [],
                              weight_decay=group["weight_decay"], momentum=group["momentum"], lr=group["lr"],
                              dampening=group["dampening"], nesterov=group["nesterov"], maximize=False,
                              is_first_step=first)


class FusedAdam(_Fused):
    """Adam (Kingma and Ba) with L2 weight decay added to the gradient, as torch.optim.Adam."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if not self.state.get(p):
                    self.state[p] = {"step": torch.tensor(0.0, dtype=torch.float32, device=p.device),
                                     "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                     "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
            if not params:
                continue
            s = [self.state[p] for p in params]
            beta1, beta2 = group["betas"]
            for ps, gs, m1, m2, steps in _by_device_and_dtype(params, [p.grad for p in params],
                                                             [x["exp_avg"] for x in s], [x["exp_avg_sq"] for x in s],
                                                             [x["step"] for x in s]):
                torch._foreach_add_(steps, 1)
                torch._fused_adam_(ps, gs, m1, m2, [], steps, amsgrad=False, lr=group["lr"], beta1=beta1,
                                   beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                                   maximize=False)
