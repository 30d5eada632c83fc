"""The committed reproduction: the report, claims and metrics in git are the outputs the dvc.lock files
records (DVC's cache: false outputs), the README shows its results table, and the report has no
data gaps."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sae.lockfile import lock_files, stage_address
from tests.test_pipeline import ran

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ("metrics/", "reports/", "sweeps/")
# DVC's repository lock admits one command at a time: the tests that run dvc in this checkout share a worker
ON_THE_CHECKOUT = pytest.mark.xdist_group("checkout_dvc")


def _lock_entries() -> dict[str, dict]:
    """Every entry of the committed dvc.lock files, by the stage's address (`dvc stage list --all`)."""
    return {stage_address(lock, name, ROOT): entry for lock in lock_files(ROOT)
            for name, entry in yaml.safe_load(lock.read_text())["stages"].items()}


def _committed_outs() -> dict[str, dict]:
    stages = _lock_entries()
    return {out["path"]: out for entry in stages.values() for out in entry.get("outs", [])
            if out["path"].startswith(COMMITTED)}


def test_every_committed_output_is_in_git_and_in_dvc_lock():
    outs = _committed_outs()
    assert "reports/report.md" in outs and "reports/claims.json" in outs and len(outs) > 50
    tracked = set(subprocess.run(["git", "ls-files", *COMMITTED], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.split())
    for path, out in outs.items():
        if out.get("md5", "").endswith(".dir"):
            assert any(t.startswith(path + "/") for t in tracked), path
        else:
            assert path in tracked, path


@ON_THE_CHECKOUT
def test_the_committed_outputs_are_what_dvc_lock_records():
    """`dvc status` (which checks the cache: false outputs against dvc.lock without the cache) lists
    none of them as changed."""
    out = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    status = json.loads(out or "{}")
    changed = [(stage, path, what) for stage, entries in status.items() for entry in entries
               if isinstance(entry, dict) for path, what in (entry.get("changed outs") or {}).items()
               if path.startswith(COMMITTED)]
    assert changed == []
    # and nothing the committed results depend on changed after they were made
    deps = [(stage, path) for stage, entries in status.items() for entry in entries if isinstance(entry, dict)
            for path in (entry.get("changed deps") or {}) if path.split("/")[0] not in ("data", "models", "checks", "timings")]
    assert deps == [], deps


def test_dvc_lock_records_only_the_pipelines_stages():
    """DVC never removes the entry of a stage that left dvc.yaml (`python -m sae.lockfile prune` does); a
    stale one would still count in the checks above and cost every stage's lock rewrite its size."""
    listed = subprocess.run([sys.executable, "-m", "dvc", "stage", "list", "--all", "--name-only"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout.split()
    assert sorted(_lock_entries()) == sorted(listed) and len(listed) > 50


@ON_THE_CHECKOUT
def test_a_fresh_clone_would_rerun_no_stage():
    """`dvc repro --allow-missing --dry`: every stage unchanged but for outputs that live only in
    DVC's cache (prepared data, models, timings), which a fresh clone lacks."""
    out = subprocess.run([sys.executable, "-m", "dvc", "repro", "--allow-missing", "--dry"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert ran(out.stdout) == [] and "Data and pipelines are up to date." in out.stdout, out.stdout[-500:]


def test_the_committed_report_is_the_default_scale_without_data_gaps():
    counts = json.loads((ROOT / "reports/claims.json").read_text())
    gaps = counts.pop("gaps")
    assert gaps["missing_output"] == gaps["unreadable"] == gaps["unexpected_layout"] == 0, gaps
    assert "Scale: `default`" in (ROOT / "reports/report.md").read_text()


def test_the_readme_opens_with_the_committed_results():
    out = subprocess.run([sys.executable, "-m", "sae.report.readme", "--check"], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr


def test_every_committed_metrics_file_is_whole():
    """A truncated metrics file shows as '-' in `dvc metrics show` without a warning: each committed
    JSON must parse to an object, each CSV have its header and at least one row."""
    tracked = subprocess.run(["git", "ls-files", *COMMITTED], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    for path in tracked:
        text = (ROOT / path).read_text() if path.endswith((".json", ".csv")) else None
        if path.endswith(".json"):
            assert isinstance(json.loads(text), dict), path
        elif path.endswith(".csv"):
            assert len(text.strip().splitlines()) >= 2, path
