"""Past one machine with SkyPilot (cluster/*.yaml): the task files, and the pattern they run, tested
locally. Each job clones the repository, runs its papers' stages as an experiment
(`python -m sae.jobs targets`), pushes it and its run-cache to one shared git and DVC remote; a
fresh clone pulls the experiments, gathers them (`python -m sae.jobs gather`) and builds one
report, with every number what a single full run gives."""
import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import compose_params, copy_repo, dvc, git, run
from tests.test_pipeline import ran

ROOT = Path(__file__).resolve().parents[1]
TASKS = sorted((ROOT / "cluster").glob("*.yaml"))
SHARED_ENVS = {"REPO", "COMMIT", "DVC_REMOTE", "SCALE"}


def test_the_task_files_take_their_machine_remote_and_paper_from_envs():
    assert [t.name for t in TASKS] == ["paper.yaml", "prepare.yaml"]
    for path in TASKS:
        task = yaml.safe_load(path.read_text())
        assert SHARED_ENVS <= set(task["envs"]) and task["envs"]["REPO"] is None and task["envs"]["DVC_REMOTE"] is None
        assert "pip install -r requirements.lock" in task["setup"] and task["resources"]["disk_size"] >= 100
        assert 'dvc remote add --local --force -d shared "$DVC_REMOTE"' in task["run"]
        assert "dvc push --run-cache" in task["run"]
    paper = yaml.safe_load((ROOT / "cluster/paper.yaml").read_text())
    assert "PAPER" in paper["envs"] and paper["resources"]["accelerators"]
    assert '$(python -m sae.jobs targets "$PAPER")' in paper["run"] and 'dvc exp push origin "$PAPER-$SCALE"' in paper["run"]


# SkyPilot's own loader on each task file, with a placeholder for every env left to the user
LOAD_TASKS = """
import sys, yaml, sky
assert hasattr(sky, "Task"), "a folder named sky/ shadows skypilot"
for path in sys.argv[1:]:
    config = yaml.safe_load(open(path).read())
    envs = [(k, "x") for k, v in config["envs"].items() if v is None]
    task = sky.Task.from_yaml_config(config, env_overrides=envs)
    assert task.run and task.setup, path
    print(path, ",".join(sorted(task.envs)), len(task.resources))
"""


def test_skypilot_loads_every_task(tmp_path):
    """Each cluster/*.yaml loads as a SkyPilot Task. skypilot is an optional extra (`[cloud]`), not
    in the test environment: where it is not importable, pip installs it with its dependencies into a
    folder of its own (`--target`, which never touches this environment: `--prefix` once uninstalled
    this environment's click to put skypilot's older one there, and every later `dvc exp run` of
    the suite failed), which the loader alone sees through PYTHONPATH; the test skips only when pip
    cannot install it."""
    env = dict(os.environ)
    try:
        import sky  # noqa: F401
    except ImportError:
        target = tmp_path / "skypilot-target"
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target), "skypilot",
                              "pyyaml"], capture_output=True, text=True, timeout=900)
        if pip.returncode != 0:
            pytest.skip(f"skypilot cannot be installed here: {pip.stderr.strip().splitlines()[-1:]}")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(target), env.get("PYTHONPATH")) if p)
    loaded = subprocess.run([sys.executable, "-c", LOAD_TASKS, *map(str, TASKS)], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    rows = {Path(line.split()[0]).name: line.split()[1:] for line in loaded.stdout.splitlines()}
    assert set(rows) == {"paper.yaml", "prepare.yaml"}
    assert set(rows["paper.yaml"][0].split(",")) == SHARED_ENVS | {"PAPER"} and int(rows["paper.yaml"][1]) >= 1


def _clone(origin: Path, dest: Path) -> Path:
    run(["git", "clone", "-q", "-b", "main", str(origin), str(dest)], dest.parent)
    return dest


@pytest.mark.tiny_repo_late
def test_two_jobs_gather_into_the_report_of_one_full_run(request, tmp_path):
    origin, storage = tmp_path / "origin.git", tmp_path / "storage"
    base = copy_repo(tmp_path / "base")
    (base / "params.yaml").write_text(compose_params(base, "scale=tiny"))
    dvc("remote", "add", "-d", "shared", str(storage), cwd=base)
    git("add", "-A", cwd=base)
    git("commit", "-qm", "tiny, shared remote", cwd=base)
    run(["git", "init", "-q", "--bare", str(origin)], tmp_path)
    git("push", "-q", str(origin), "HEAD:refs/heads/main", cwd=base)
    warm = _clone(origin, tmp_path / "warm")           # cluster/prepare.yaml
    dvc("repro", "prepare", cwd=warm)
    dvc("push", "--run-cache", cwd=warm)
    jobs = {"ae-papers": ["amini2018", "seyyedsalehi2017", "makhzani2014"], "sweeps": ["arpit2016"]}
    for name, papers in jobs.items():                  # cluster/paper.yaml, one machine each
        job = _clone(origin, tmp_path / name)
        targets = run([sys.executable, "-m", "sae.jobs", "targets", *papers], job).stdout.split()
        out = dvc("exp", "run", "--pull", "--allow-missing", "-n", name, "-S", "scale=tiny", *targets, cwd=job)
        # prepared data came from the warm-up's run-cache (downloads are persistent outputs, which
        # DVC never run-caches: a job fetches its raw files again)
        assert not [s for s in ran(out.stdout) if s.startswith("prepare")]
        assert "report" not in ran(out.stdout)
        dvc("push", "--run-cache", cwd=job)
        dvc("exp", "push", "origin", name, cwd=job)
    final = _clone(origin, tmp_path / "final")
    dvc("exp", "pull", "origin", *jobs, cwd=final)
    gathered = run([sys.executable, "-m", "sae.jobs", "gather", *jobs], final).stdout
    assert "gathered amini2018, makhzani2014, seyyedsalehi2017, arpit2016" in gathered
    dvc("pull", cwd=final)
    assert ran(dvc("repro", cwd=final).stdout) == ["report"]      # every paper's stages came from the jobs
    assert ran(dvc("repro", cwd=final).stdout) == []
    full, _ = request.getfixturevalue("tiny_repo")  # the single full run, asked for only now
    for folder in ("metrics", "sweeps"):
        cmp = filecmp.dircmp(full / folder, final / folder)
        assert _same(cmp), f"{folder} differs from the single full run"
    assert (final / "reports/claims.csv").read_bytes() == (full / "reports/claims.csv").read_bytes()


def _same(cmp: filecmp.dircmp) -> bool:
    """Every file of both trees present in both and byte-identical."""
    _, mismatch, errors = filecmp.cmpfiles(cmp.left, cmp.right, cmp.common_files, shallow=False)
    return not (cmp.left_only or cmp.right_only or mismatch or errors) and all(_same(c) for c in cmp.subdirs.values())
