"""params.yaml's `device` as a torch.device."""
from __future__ import annotations

import torch

from sae.base.errors import ParamError


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else CPU; `cuda:N` a given GPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ParamError(f"device={name}: no CUDA device is available (use auto or cpu)")
    return torch.device(name)
