"""Whole-pipeline timings: per-stage overhead and the default `dvc repro` from scratch.

    python benchmarks/pipeline.py            # stage overhead + no-op repro (seconds)
    python benchmarks/pipeline.py --full     # also the whole default dvc repro in a fresh copy (minutes)

Stage overhead is a process that starts Python, imports the stage helpers and validates
params.yaml, then does nothing: the floor under every one of the pipeline's stages.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EMPTY_STAGE = "from sae.cli import run_stage; run_stage(lambda params, args: None, [])"


def wall(cmd, cwd, repeats=1) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
        out.append(time.perf_counter() - start)
    return out


def show(label, times):
    print(f"{label:42s} median {statistics.median(times):7.2f} s  (min {min(times):.2f}, max {max(times):.2f}, n={len(times)})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="time the whole default dvc repro in a fresh copy")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    py = sys.executable
    show("python -c pass", wall([py, "-c", "pass"], ROOT, args.repeats))
    show("empty stage (imports + params validation)", wall([py, "-c", EMPTY_STAGE], ROOT, args.repeats))
    show("import torch", wall([py, "-c", "import torch"], ROOT, args.repeats))
    show("import dvclive", wall([py, "-c", "import dvclive"], ROOT, args.repeats))
    if args.full:
        with tempfile.TemporaryDirectory() as tmp:
            dest = Path(tmp) / "repo"
            files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
            for name in files.stdout.split():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, dest / name)
            (dest / "dvc.lock").unlink(missing_ok=True)
            subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
            show("dvc repro, default params, from scratch", wall([py, "-m", "dvc", "repro"], dest))
            show("dvc repro, nothing to do", wall([py, "-m", "dvc", "repro"], dest, args.repeats))
    else:
        show("dvc repro, nothing to do (this checkout)", wall([py, "-m", "dvc", "repro"], ROOT, args.repeats))


if __name__ == "__main__":
    main()
