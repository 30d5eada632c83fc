"""Past one machine, with real DVC: a shared remote cache (run-cache included) and experiments
that a second clone pulls instead of recomputing, and a queue of experiments run by two workers
that divide the cores (README: Scaling out)."""
import json
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import dvc, git, run
from tests.test_pipeline import digest, ran

pytestmark = pytest.mark.slow

KNOB = "amini2018.model.ae.weight_decay"  # retrains one model: a cheap experiment


@pytest.fixture
def machine_a(tiny_repo, tmp_path):
    """A copy of the reproduced tiny repository (its cache too), with a bare git repository and a
    local directory as the shared remotes every machine sees."""
    src, _ = tiny_repo
    a = tmp_path / "a"
    shutil.copytree(src, a, symlinks=True)
    origin, storage = tmp_path / "origin.git", tmp_path / "dvc-storage"
    run(["git", "init", "-q", "--bare", str(origin)], tmp_path)
    git("remote", "add", "origin", str(origin), cwd=a)
    dvc("remote", "add", "-d", "shared", str(storage), cwd=a)
    git("commit", "-qam", "shared DVC remote", cwd=a)
    return a, origin, storage


def test_a_second_clone_pulls_every_stage_and_the_experiments(machine_a, tmp_path):
    a, origin, _ = machine_a
    dvc("push", "--run-cache", cwd=a)
    git("push", "-q", "origin", "HEAD:main", cwd=a)
    dvc("exp", "run", "-n", "wd-exp", "-S", "scale=tiny", "-S", f"{KNOB}=0.003", cwd=a)
    dvc("push", "--run-cache", cwd=a)
    dvc("exp", "push", "origin", "wd-exp", cwd=a)
    git("checkout", "-q", "--", ".", cwd=a)
    dvc("checkout", "-f", cwd=a)  # A's workspace back at main

    b = tmp_path / "b"
    run(["git", "clone", "-q", "-b", "main", str(origin), str(b)], tmp_path)
    dvc("pull", "--run-cache", cwd=b)
    assert "up to date" in dvc("status", cwd=b).stdout
    assert ran(dvc("repro", cwd=b).stdout) == []
    folders = ("metrics", "models", "sweeps", "reports")
    assert digest(b, *folders) == digest(a, *folders)  # byte for byte
    dvc("exp", "pull", "origin", "wd-exp", cwd=b)
    shown = json.loads(dvc("exp", "show", "--json", cwd=b).stdout)
    names = [e.get("name") for rev in shown for exps in (rev.get("experiments") or [])
             for e in exps.get("revs", [])]
    assert "wd-exp" in names, names
    diff = dvc("metrics", "diff", "main", "wd-exp", cwd=b).stdout
    assert "metrics/amini2018/optdigits/ae.json" in diff, diff


def _wait_for_queue(cwd: Path, timeout: float = 150.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = dvc("queue", "status", cwd=cwd).stdout
        if not any(word in status for word in ("Queued", "Running")):
            return status
        if time.monotonic() > deadline:
            dvc("queue", "kill", "--all", cwd=cwd, check=False)
            raise AssertionError(f"the queue did not finish:\n{status}")
        time.sleep(2)


def test_two_queued_experiments_run_on_two_workers_that_divide_the_cores(machine_a):
    q, _, _ = machine_a
    for name, value in (("q1", 0.0007), ("q2", 0.0009)):  # values no other test ran (no run-cache hit)
        dvc("exp", "run", "--queue", "-n", name, "-S", "scale=tiny", "-S", f"{KNOB}={value}", cwd=q)
    try:
        # without the SAE_WORKERS that xdist sets, so the stages must count the queue workers themselves
        dvc("queue", "start", "-j", "2", cwd=q, env={"SAE_WORKERS": None})
        status = _wait_for_queue(q)
    finally:
        dvc("queue", "stop", cwd=q, check=False)
    assert status.count("Success") == 2, status
    shown = dvc("exp", "show", "--csv", cwd=q).stdout
    assert "q1" in shown and "q2" in shown, shown
    threads, workers = [], set()
    for name in ("q1", "q2"):
        log = dvc("queue", "logs", name, cwd=q).stdout
        assert "Running stage 'pipelines/train/dvc.yaml:train-amini2018@optdigits-ae'" in log, log[-3000:]
        threads += [int(n) for n in re.findall(r"stage: device cpu \((\d+) CPU thread", log)]
        workers |= set(re.findall(r"queue worker (\d+)", log))
    assert workers == {"1", "2"}, workers  # each stage knows its worker: with N GPUs, worker n takes GPU n-1
    assert threads and max(threads) <= 2 and 1 in threads, threads  # 2 cores shared by 2 workers


def test_cpu_threads_divide_the_cores_among_running_queue_workers(monkeypatch):
    """What a stage does without being told: cores // (DVC queue workers running here)."""
    import subprocess
    import sys

    from sae.base import cli
    monkeypatch.delenv(cli.WORKERS_ENV, raising=False)
    cores = len(__import__("os").sched_getaffinity(0))
    assert cli.cpu_threads(0) == max(1, cores // max(1, cli.queue_workers()))
    # processes that look like `dvc exp queue-worker dvc-exp-<hash>-<n>@localhost`
    fake = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "queue-worker",
                              f"dvc-exp-abc123-{n}@localhost"]) for n in (1, 2)]
    try:
        deadline = time.monotonic() + 10
        while cli.queue_workers() < 2 and time.monotonic() < deadline:  # the children may not have exec'd yet
            time.sleep(0.1)
        assert cli.queue_workers() >= 2
        assert cli.cpu_threads(0) == max(1, cores // cli.queue_workers())
        monkeypatch.setenv(cli.WORKERS_ENV, "1")
        assert cli.cpu_threads(0) == cores  # SAE_WORKERS overrides the count
        assert cli.cpu_threads(3) == 3  # `threads` in params.yaml overrides both
    finally:
        for p in fake:
            p.kill()


def test_each_queue_worker_takes_its_own_gpu():
    from sae.base.cli import worker_device
    assert [worker_device("auto", 4, n) for n in (1, 2, 3, 4, 5)] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0"]
    assert worker_device("auto", 1, 2) == "auto" and worker_device("auto", 4, None) == "auto"
    assert worker_device("cpu", 4, 2) == "cpu" and worker_device("cuda:3", 4, 1) == "cuda:3"


def test_a_stage_writes_its_wall_time_only_when_it_succeeds(tmp_path, monkeypatch):
    """`--seconds PATH` (dvc.yaml, every compute stage): the body's time for the report's provenance;
    the stage's own arguments never see the flag, and a failed stage writes nothing."""
    import json

    from sae.base.cli import run_stage
    from sae.base.errors import DataError
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)  # params.yaml of the repository
    seen = []
    out = tmp_path / "t" / "train-x.json"
    run_stage(lambda params, args: seen.append(args), ["a", "b", "--seconds", str(out)])
    assert seen == [["a", "b"]]
    row = json.loads(out.read_text())
    assert row["seconds"] >= 0 and row["stage"].endswith("a b") and row["threads"] >= 1

    def fails(params, args):
        raise DataError("broken input")
    bad = tmp_path / "t" / "bad.json"
    with pytest.raises(SystemExit) as exit_:
        run_stage(fails, ["a", "--seconds", str(bad)])
    assert exit_.value.code == 2 and not bad.exists()
