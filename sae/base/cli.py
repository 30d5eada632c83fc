"""What every stage script shares: logging, the validated params, and one-line errors (exit code 2)."""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Callable

from sae.base.errors import SaeError

# The number of stage processes sharing the machine, when set; otherwise the running DVC queue
# workers are counted (README: Scaling out), so `dvc queue start -j N` never oversubscribes.
WORKERS_ENV = "SAE_WORKERS"


def queue_workers() -> int:
    """DVC experiment-queue workers running on this machine (`dvc exp queue-worker` processes);
    0 where /proc cannot tell."""
    proc = "/proc"
    if not os.path.isdir(proc):
        return 0
    count = 0
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            with open(os.path.join(proc, pid, "cmdline"), "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if b"queue-worker" in args and any(a.startswith(b"dvc-exp-") for a in args):
            count += 1
    return count


def _parent_cmdlines(pid: int | None = None):
    """The command lines (lists of bytes) of this process's ancestors, nearest first (Linux); in a
    warm fork, those of the stage process that handed it off."""
    from sae.base.warm import stage_parent
    pid = stage_parent() if pid is None else pid
    while pid > 1:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                yield f.read().split(b"\0")
            with open(f"/proc/{pid}/stat", "rb") as f:
                pid = int(f.read().rsplit(b")", 1)[1].split()[1])  # the field after the state
        except (OSError, ValueError, IndexError):
            return


def queue_worker_number() -> int | None:
    """N of the DVC queue worker (`dvc exp queue-worker dvc-exp-<hash>-N@localhost`) this stage
    runs under, None outside a queue (or where /proc cannot tell)."""
    for args in _parent_cmdlines():
        for a in args:
            if a.startswith(b"dvc-exp-") and b"queue-worker" in args:
                try:
                    return int(a.split(b"@")[0].rsplit(b"-", 1)[1])
                except ValueError:
                    return None
    return None


def worker_device(device: str, n_gpus: int, worker: int | None) -> str:
    """`auto` with several GPUs under DVC queue worker N: GPU (N - 1) mod n_gpus, one GPU a worker."""
    if device == "auto" and n_gpus > 1 and worker:
        return f"cuda:{(worker - 1) % n_gpus}"
    return device


def cpu_threads(threads: int) -> int:
    """Torch CPU threads for this stage: `threads` when set, else the cores this process may use
    (its CPU affinity: `taskset` pins a worker) divided among the concurrent workers."""
    if threads:
        return threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = int(os.environ.get(WORKERS_ENV) or 0) or queue_workers() or 1
    return max(1, cores // workers)


def stage_device(params):
    """params.device as a torch.device: under DVC queue worker N with several GPUs, `auto` is
    GPU N-1 (worker_device); on the CPU torch gets its share of the cores (cpu_threads)."""
    import torch
    from sae.base.device import resolve_device
    worker = queue_worker_number()
    n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device = resolve_device(worker_device(params.device, n_gpus, worker))
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(params.threads))
    where = f"{torch.get_num_threads()} CPU thread(s)" if device.type == "cpu" else f"{n_gpus} GPU(s) here"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    logging.getLogger("stage").info("device %s (%s)%s%s", device, where,
                                    f", queue worker {worker}" if worker else "",
                                    f", CUDA_VISIBLE_DEVICES={visible}" if visible is not None else "")
    return device


# `--seconds PATH` after a stage's arguments: where it writes its body's wall time (dvc.yaml
# gives every compute stage one under timings/; the report's provenance lists them).
SECONDS_FLAG = "--seconds"


def split_seconds(args: list[str]) -> tuple[list[str], str | None]:
    """(the stage's own arguments, the --seconds PATH or None)."""
    if SECONDS_FLAG not in args:
        return args, None
    i = args.index(SECONDS_FLAG)
    if i + 1 >= len(args):
        from sae.base.errors import ParamError
        raise ParamError(f"{SECONDS_FLAG} needs a file path")
    return args[:i] + args[i + 2:], args[i + 1]


def write_seconds(path: str, stage: str, seconds: float, threads: int | None) -> None:
    """{"stage", "seconds", "threads"} as JSON at path, written atomically (threads: torch's, None
    for a stage that ran without torch)."""
    import json
    from pathlib import Path
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"stage": stage, "seconds": round(seconds, 1), "threads": threads}) + "\n")
    os.replace(tmp, out)


def run_stage(main: Callable, argv: list[str] | None = None, *, params_path: str = "params.yaml",
              warm: bool = False) -> None:
    """Validate params.yaml, then call main(params, args); SaeError -> one line on stderr, exit 2.
    With `--seconds PATH`, the body's wall time is written there once main succeeds. warm: a
    torch stage, run in a fork of the server that has torch imported (sae.base.warm) when it can."""
    if warm and argv is None:
        from sae.base.warm import hand_off
        hand_off()  # exits with the fork's status, or returns: the stage runs here
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args = sys.argv[1:] if argv is None else argv
    start = time.perf_counter()
    try:
        args, seconds_path = split_seconds(args)
        from sae.config import load
        main(load(params_path), args)
        # the stage body's wall time (start-up before this function excluded): what a slow run spends
        seconds = time.perf_counter() - start
        stage = f"{os.path.basename(sys.argv[0])} {' '.join(args[:3])}"
        logging.getLogger("stage").info("%s: %.1f s", stage, seconds)
        if seconds_path:  # a stage that never loaded torch (download) does not pay its import for this
            torch = sys.modules.get("torch")
            write_seconds(seconds_path, stage, seconds, torch.get_num_threads() if torch else None)
    except SaeError as exc:
        sys.stderr.write(f"\nerror: {exc}\n")  # on a line of its own, whatever a progress bar left
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("\nerror: interrupted\n")
        sys.exit(130)


def expect_args(args: list[str], names: str) -> list[str]:
    """The stage's argv (from dvc.yaml) as named; a usage error otherwise."""
    from sae.base.errors import ParamError
    wanted = names.split()
    if len(args) != len(wanted):
        raise ParamError(f"usage: {os.path.basename(sys.argv[0])} {names} (got {len(args)} arguments)")
    return args
