"""Two experiments through `dvc queue start -j 2` against the same two run one after the other.

    python benchmarks/dvc_queue.py [--knob makhzani2014.model.ksparse.datasets.optdigits.k] [--values 4 6]
    python benchmarks/dvc_queue.py --queue-threads 2     # each queued stage takes every core: oversubscribed

In a fresh copy of the repository at scale=tiny (reproduced once first), each experiment
changes one knob; in the queue each of the two workers' stages takes half the cores (sae.base.cli
counts the running queue workers), in sequence each stage takes them all.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.fresh_copy import fresh_copy  # noqa: E402


def sh(args, cwd, env=None):
    full = dict(os.environ, DVC_NO_ANALYTICS="1", PYTHONPATH=str(cwd), **(env or {}))
    return subprocess.run(args, cwd=cwd, env=full, check=True, capture_output=True, text=True)


def dvc(*args, cwd, env=None):
    return sh([sys.executable, "-m", "dvc", *args], cwd, env)


def prepare(dest: Path) -> None:
    fresh_copy(dest)
    sh([sys.executable, "-m", "sae.config", "scale=tiny"], dest)
    sh(["git", "add", "-A"], dest)
    sh(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "tiny"], dest)
    dvc("repro", cwd=dest)
    sh(["git", "add", "-A"], dest)
    sh(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "repro"], dest)


def reset(dest: Path) -> None:
    """Workspace back at the commit, and the run-cache emptied: the second timing must train the
    same experiments again rather than restore the first one's stages."""
    sh(["git", "checkout", "-q", "--", "."], dest)
    dvc("checkout", "-f", cwd=dest)
    shutil.rmtree(dest / ".dvc" / "cache" / "runs", ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--knob", default="makhzani2014.model.ksparse.datasets.optdigits.k")
    ap.add_argument("--values", nargs=2, default=["4", "6"])
    ap.add_argument("--queue-threads", type=int, default=0,
                    help="force this many torch threads per queued stage (0: the cores divided among workers)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "repo"
        dest.mkdir()
        prepare(dest)
        reset(dest)
        start = time.perf_counter()
        for v in args.values:
            dvc("exp", "run", "-S", "scale=tiny", "-S", f"{args.knob}={v}", cwd=dest)
        sequential = time.perf_counter() - start
        reset(dest)
        for v in args.values:
            dvc("exp", "run", "--queue", "-S", "scale=tiny", "-S", f"{args.knob}={v}",
                "-S", f"threads={args.queue_threads}", cwd=dest)
        start = time.perf_counter()
        dvc("queue", "start", "-j", "2", cwd=dest)
        while any(w in dvc("queue", "status", cwd=dest).stdout for w in ("Queued", "Running")):
            time.sleep(1)
        queued = time.perf_counter() - start
        dvc("queue", "stop", cwd=dest)
    print(f"two experiments ({args.knob} = {' and '.join(args.values)}), tiny scale, {os.cpu_count()} cores")
    print(f"in sequence:                {sequential:6.1f} s")
    threads = f"{args.queue_threads} threads a stage" if args.queue_threads else "cores divided among the workers"
    print(f"dvc queue start -j 2:       {queued:6.1f} s  ({threads})")
    print(f"sequence / queue:           {sequential / queued:6.2f}x")


if __name__ == "__main__":
    main()
