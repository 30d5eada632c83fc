"""Whole-pipeline timings: per-stage overhead and the default `dvc repro` from scratch.

    python benchmarks/pipeline.py            # stage overhead + no-op repro (seconds)
    python benchmarks/pipeline.py --full     # also the whole default dvc repro in a fresh copy (minutes)
    python benchmarks/pipeline.py --lock     # DVC's rewrite of this checkout's dvc.lock files after a stage

Stage overhead is a process that starts Python, imports the stage helpers and validates
params.yaml, then does nothing: the floor under every one of the pipeline's stages. The torch
stage's floor is timed in a process of its own (SAE_WARM=0) and as a fork of the warm server
(sae.base.warm), alternated, after one run that starts the server. After a
full run, the dvc.lock lines estimate DVC's own bookkeeping: after each stage DVC loads the
stage's whole lock file (its kind's: sae.lockfile) round-trip and dumps it again, so that cost
grows with the stages of that file run so far.
"""
from __future__ import annotations

import argparse
import collections
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from sae.lockfile import lock_files  # noqa: E402
from tests.fresh_copy import fresh_copy  # noqa: E402
EMPTY_STAGE = "from sae.base.cli import run_stage; run_stage(lambda params, args: None, [])"
IMPORT_STAGE = ("from sae.base.cli import run_stage, stage_device; "
                "run_stage(lambda params, args: stage_device(params), [])")  # + torch, as every model stage
# the same as a script, which run_stage may hand to the warm server (a fork has no -c to rerun)
WARM_STAGE = ("from sae.base.cli import run_stage, stage_device\n"
              "run_stage(lambda params, args: stage_device(params), warm=True)\n")


def wall(cmd, cwd, repeats=1, env=None) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env=None if env is None else {**os.environ, **env})
        out.append(time.perf_counter() - start)
    return out


def warm_and_cold(py, repeats) -> None:
    """The torch stage's floor in a process of its own and as a fork of the warm server, alternated."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "empty_torch_stage.py"
        script.write_text(WARM_STAGE)
        env = {"PYTHONPATH": str(ROOT)}
        show("  warm: first run (starts the server if none is up)", wall([py, str(script)], ROOT, 1, env))
        cold, warm = [], []
        for _ in range(repeats):
            cold += wall([py, str(script)], ROOT, 1, {**env, "SAE_WARM": "0"})
            warm += wall([py, str(script)], ROOT, 1, env)
        show("  the same, a process of its own (SAE_WARM=0)", cold)
        show("  the same, a fork of the warm server", warm)


def repro_by_stage(cwd) -> tuple[float, dict[str, float]]:
    """Wall time of `dvc repro` and the seconds of each stage it ran, from the times its
    "Running stage" lines appear."""
    env = dict(os.environ, PYTHONPATH=str(cwd))  # the copy's code, not an editable install's
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    marks, lines = [], []
    for line in proc.stdout:
        lines.append(line)
        m = re.match(r"Running stage '(?:[\w/]+/dvc\.yaml:)?([^']+)'", line)
        if m:
            now = time.perf_counter()
            if marks:
                print(f"  {marks[-1][0]:40s} {now - marks[-1][1]:6.1f} s", flush=True)
            marks.append((m.group(1), now))
    if proc.wait():
        raise SystemExit(f"dvc repro failed (exit {proc.returncode}):\n{''.join(lines[-30:])}")
    total = time.perf_counter() - start
    ends = [t for _, t in marks[1:]] + [start + total]
    return total, {name: end - t for (name, t), end in zip(marks, ends)}


def show_stages(stages: dict[str, float]):
    kinds = collections.defaultdict(list)
    for name, sec in stages.items():
        kinds[name.split("@")[0].split("-")[0]].append(sec)  # train-amini2018@... -> train
    print(f"{'stage kind':16s} {'stages':>6s} {'total s':>8s} {'median s':>9s} {'max s':>7s}")
    for kind, secs in sorted(kinds.items(), key=lambda kv: -sum(kv[1])):
        print(f"{kind:16s} {len(secs):6d} {sum(secs):8.1f} {statistics.median(secs):9.2f} {max(secs):7.2f}")
    print("slowest:", ", ".join(f"{n} {s:.1f}s" for n, s in sorted(stages.items(), key=lambda kv: -kv[1])[:8]))


def lock_rewrite_seconds(lock: Path) -> tuple[int, float, float]:
    """(lines, seconds, summed seconds) of the round-trip load + dump that DVC does to dvc.lock
    after every stage: once for the final file, and summed over the run as the file grows
    one stage at a time (timed on every 5th prefix of its stages)."""
    from ruamel.yaml import YAML
    yaml = YAML()  # round-trip, as DVC's modify_yaml
    text = lock.read_text()
    full = yaml.load(text)
    names = list(full["stages"])

    def rewrite(n):
        buf = io.StringIO()
        yaml.dump({"schema": full["schema"], "stages": {k: full["stages"][k] for k in names[:n]}}, buf)
        start = time.perf_counter()
        out = io.StringIO()
        yaml.dump(yaml.load(buf.getvalue()), out)
        return time.perf_counter() - start

    summed = sum(5 * rewrite(n) for n in range(3, len(names) + 1, 5))
    return len(text.splitlines()), rewrite(len(names)), summed


def show_locks(root: Path):
    """Each of the pipeline's lock files: its size and DVC's rewrite of it, alone and summed."""
    total = 0.0
    for lock in lock_files(root):
        if lock.is_file():
            lines, last, summed = lock_rewrite_seconds(lock)
            total += summed
            print(f"{lock.relative_to(root)}: {lines} lines; DVC's rewrite after a stage takes {last:.2f} s at "
                  f"the end, about {summed:.0f} s summed over a run that writes it stage by stage")
    print(f"the lock files' rewrites summed over a run: about {total:.0f} s")


def show(label, times):
    print(f"{label:42s} median {statistics.median(times):7.2f} s  (min {min(times):.2f}, max {max(times):.2f}, n={len(times)})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="time the whole default dvc repro in a fresh copy")
    ap.add_argument("--lock", action="store_true", help="only time DVC's round-trip rewrite of this checkout's "
                                                        "dvc.lock (what every stage pays once it ends)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    if args.lock:
        show_locks(ROOT)
        return
    py = sys.executable
    show("python -c pass", wall([py, "-c", "pass"], ROOT, args.repeats))
    show("empty stage (imports + params validation)", wall([py, "-c", EMPTY_STAGE], ROOT, args.repeats))
    show("empty stage + torch and its device", wall([py, "-c", IMPORT_STAGE], ROOT, args.repeats))
    warm_and_cold(py, args.repeats)
    show("import torch", wall([py, "-c", "import torch"], ROOT, args.repeats))
    show("import dvclive", wall([py, "-c", "import dvclive"], ROOT, args.repeats))
    if args.full:
        with tempfile.TemporaryDirectory() as tmp:
            dest = Path(tmp) / "repo"
            fresh_copy(dest, "bench")  # dvclive needs a commit to start
            total, stages = repro_by_stage(dest)
            show("dvc repro, default params, from scratch", [total])
            show_stages(stages)
            show_locks(dest)
            show("dvc repro, nothing to do", wall([py, "-m", "dvc", "repro"], dest, args.repeats))
    else:
        dry = subprocess.run([py, "-m", "dvc", "repro", "--dry"], cwd=ROOT, capture_output=True, text=True)
        pending = [line for line in dry.stdout.splitlines() if line.startswith("Running stage")]
        if dry.returncode or pending:  # a fresh clone lacks the cached outputs: its "no-op" is the whole run
            raise SystemExit("not timing the no-op dvc repro: here it would run stages (first: "
                             f"{pending[0][len('Running stage '):].rstrip(':') if pending else dry.stderr.strip()}); "
                             "run dvc repro first, or use --full")
        show("dvc repro, nothing to do (this checkout)", wall([py, "-m", "dvc", "repro"], ROOT, args.repeats))


if __name__ == "__main__":
    main()
