"""What every stage script shares: logging, the validated params, and one-line errors (exit code 2)."""
from __future__ import annotations

import logging
import os
import sys
from typing import Callable

from sae.errors import SaeError

# DVC queue workers (and other parallel runners) set this to the number of stage processes
# sharing the machine, so each one takes its share of the cores (README: Scaling out)
WORKERS_ENV = "SAE_WORKERS"


def cpu_threads(threads: int) -> int:
    """Torch CPU threads for this stage: `threads` when set, else the cores this process may use
    divided among SAE_WORKERS concurrent workers (at least 1)."""
    if threads:
        return threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, int(os.environ.get(WORKERS_ENV, "1") or 1))
    return max(1, cores // workers)


def stage_device(params):
    """params.device as a torch.device; on the CPU torch gets its share of the cores (cpu_threads)."""
    import torch
    from sae.device import resolve_device
    device = resolve_device(params.device)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(params.threads))
    return device


def run_stage(main: Callable, argv: list[str] | None = None, *, params_path: str = "params.yaml") -> None:
    """Validate params.yaml, then call main(params, args); SaeError -> one line on stderr, exit 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args = sys.argv[1:] if argv is None else argv
    try:
        from sae.config import load
        main(load(params_path), args)
    except SaeError as exc:
        sys.stderr.write(f"\nerror: {exc}\n")  # on a line of its own, whatever a progress bar left
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("\nerror: interrupted\n")
        sys.exit(130)


def expect_args(args: list[str], names: str) -> list[str]:
    """The stage's argv (from dvc.yaml) as named; a usage error otherwise."""
    from sae.errors import ParamError
    wanted = names.split()
    if len(args) != len(wanted):
        raise ParamError(f"usage: {os.path.basename(sys.argv[0])} {names} (got {len(args)} arguments)")
    return args
