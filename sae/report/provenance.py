"""Which code, data and environment made a report: git commit, dvc.lock files, package versions,
device, threads, scale and seeds.

Read at report time from the run's own checkout: the report stage runs last, in the
repository root, so its view is the run's (the dvc.lock files then hold every stage but this one).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path

from sae.lockfile import lock_files

PACKAGES = ("torch", "numpy", "dvc", "pandas", "scipy", "zarr")
COMMITTED_OUTPUTS = ("metrics", "reports", "sweeps")  # written by the run itself, as are the dvc.lock files


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_line() -> str:
    """'2 CPU cores (model name)' or 'CUDA: <device name>'."""
    import torch
    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)}"
    return f"{os.cpu_count()} CPU cores ({_cpu_name()})"


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def stage_seconds(timings_dir: Path | None) -> tuple[dict[str, dict], list[str]]:
    """({file path under timings_dir, no suffix: {"stage", "seconds", "threads"}}, the files that
    could not be read) from what the stages wrote (`--seconds`, sae.base.cli)."""
    rows, unreadable = {}, []
    for path in sorted(Path(timings_dir).rglob("*.json")) if timings_dir else []:
        name = path.relative_to(timings_dir).with_suffix("").as_posix()
        try:
            row = json.loads(path.read_text())
            rows[name] = {"stage": str(row["stage"]), "seconds": float(row["seconds"]),
                          "threads": None if row.get("threads") is None else int(row["threads"])}
        except (OSError, ValueError, KeyError, TypeError):
            unreadable.append(name)
    return rows, unreadable


def time_lines(timings_dir: Path | None, slowest: int = 10) -> list[str]:
    """Markdown: the stage bodies' wall times per stage kind, and the slowest stages."""
    rows, unreadable = stage_seconds(timings_dir)
    skipped = ([f"- Unreadable timing files, left out of the sums: {', '.join(unreadable)}."]
               if unreadable else [])
    if not rows:
        return ["No stage recorded its wall time (`--seconds`, dvc.yaml) in this run's timings/.", *skipped, ""]
    total = sum(r["seconds"] for r in rows.values())
    kinds: dict[str, list[float]] = {}
    for stem, r in rows.items():
        kinds.setdefault(stem.rsplit("/", 1)[-1].split("-", 1)[0], []).append(r["seconds"])
    by_kind = sorted(kinds.items(), key=lambda kv: -sum(kv[1]))
    out = [f"- Stage bodies' wall times (each stage's own clock from its parameters to its outputs; start-up and "
           f"DVC's bookkeeping excluded; a stage restored from the run-cache shows the run that made it): "
           f"{len(rows)} stages, {total:,.0f} s ({total / 60:.1f} min) in all: "
           + "; ".join(f"{kind} {sum(secs):,.0f} s ({len(secs)} stages, {sum(secs) / total:.0%})"
                       for kind, secs in by_kind) + ".",
           f"- The {min(slowest, len(rows))} slowest: "
           + "; ".join(f"`{r['stage']}` {r['seconds']:,.1f} s"
                       for _, r in sorted(rows.items(), key=lambda kv: -kv[1]["seconds"])[:slowest])
           + f" (torch threads: {', '.join(sorted({str(r['threads']) for r in rows.values() if r['threads']}))})."]
    return out + skipped + [""]


def lines(params, root: Path, timings_dir: Path | None = None) -> list[str]:
    """The report's provenance section (markdown lines)."""
    root = Path(root)
    sha = _git(root, "rev-parse", "HEAD")
    locks = lock_files(root)
    dirty = _git(root, "status", "--porcelain", "--", ".",
                 *(f":!{p}" for p in (*COMMITTED_OUTPUTS, *(lock.relative_to(root).as_posix() for lock in locks))))
    found = [lock.read_bytes() for lock in locks if lock.is_file()]  # the files concatenated, root's first
    lock_md5 = hashlib.md5(b"".join(found), usedforsecurity=False).hexdigest() if found else "none"
    import torch
    out = ["## Provenance", "",
           f"- Code: git commit `{sha or 'unknown (not a git checkout)'}`"
           + ("" if sha is None else ", with uncommitted changes" if dirty else ", clean")
           + " when this report was built; a stage DVC skipped keeps the outputs of the code its dvc.lock "
             "entry hashes.",
           f"- dvc.lock md5 `{lock_md5}` (every stage of this run but the report itself).",
           f"- Python {platform.python_version()}; torch {torch.__version__} (its build); "
           + ", ".join(f"{p} {_version(p)}" for p in PACKAGES if p != "torch") + ".",
           f"- Device: {device_line()}; params `device: {params.device}`, `threads: {params.threads}` "
           f"(0: this process's cores divided among DVC queue workers); the report stage ran with "
           f"{torch.get_num_threads()} torch thread(s).",
           f"- Scale `{params.scale}`, seeds {', '.join(map(str, params.seeds))}.", ""]
    return out + time_lines(timings_dir)
