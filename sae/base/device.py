"""params.yaml's `device` as a torch.device."""
from __future__ import annotations

from typing import TYPE_CHECKING

from sae.base.errors import ParamError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else CPU; `cuda:N` a given GPU."""
    import torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ParamError(f"device={name}: no CUDA device is available (use auto or cpu)")
    return torch.device(name)


def check_device(name: str) -> None:
    """Refuse a device this machine lacks (ParamError). `auto` and `cpu` always resolve, so only
    `cuda[:N]` imports torch, which takes seconds (README: Benchmarks)."""
    if name.startswith("cuda"):
        resolve_device(name)
