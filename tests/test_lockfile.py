"""python -m sae.lockfile prune: dvc.lock keeps only the pipeline's stages, the others unchanged."""
from __future__ import annotations

import subprocess
import sys

import yaml

LOCK = """schema: '2.0'
stages:
  make@a:
    cmd: echo a > a.txt
    outs:
    - path: a.txt
      hash: md5
      md5: 60b725f10c9c85c70d97880dfe8191b3
      size: 2
  make@old:
    cmd: echo old > old.txt
    outs:
    - path: old.txt
      hash: md5
      md5: 0f2a0bbd1b5fc6bf3c5ae2b2f2c7e5f4
      size: 4
"""


def _repo(tmp_path):
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text("names: [a]\n")
    (tmp_path / "dvc.yaml").write_text("stages:\n  make:\n    foreach: ${names}\n    do:\n"
                                       "      cmd: echo ${item} > ${item}.txt\n      outs: [\"${item}.txt\"]\n")
    (tmp_path / "dvc.lock").write_text(LOCK)
    return tmp_path


def _prune(cwd, *args):
    return subprocess.run([sys.executable, "-m", "sae.lockfile", "prune", *args], cwd=cwd, capture_output=True,
                          text=True)


def test_prune_drops_only_the_stages_dvc_yaml_no_longer_has(tmp_path):
    repo = _repo(tmp_path)
    dry = _prune(repo, "--dry-run")
    assert dry.returncode == 0 and "would remove 1 entries" in dry.stdout and "make@old" in dry.stdout, dry
    assert (repo / "dvc.lock").read_text() == LOCK
    done = _prune(repo)
    assert done.returncode == 0 and "removed 1 entries" in done.stdout, done
    text = (repo / "dvc.lock").read_text()
    assert list(yaml.safe_load(text)["stages"]) == ["make@a"]
    assert text == LOCK[:LOCK.index("  make@old:")]   # the kept entry byte for byte
    assert "removed 0 entries" in _prune(repo).stdout


def test_prune_without_a_lock_file_names_it(tmp_path):
    repo = _repo(tmp_path)
    (repo / "dvc.lock").unlink()
    out = _prune(repo)
    assert out.returncode != 0 and "dvc.lock: not found" in out.stderr and "Traceback" not in out.stderr, out


def test_prune_with_a_pipeline_dvc_cannot_expand_touches_nothing(tmp_path):
    repo = _repo(tmp_path)
    (repo / "params.yaml").write_text("other: [a]\n")   # ${names} no longer resolves
    out = _prune(repo)
    assert out.returncode != 0 and "DVC cannot list the pipeline's stages" in out.stderr, out
    assert "Traceback" not in out.stderr and (repo / "dvc.lock").read_text() == LOCK


def test_prune_reads_each_kinds_lock_against_its_own_dvc_yaml(tmp_path):
    """pipelines/<kind>/dvc.lock is pruned against pipelines/<kind>/dvc.yaml: an entry named like a
    stage of another file is still stale there, and it is named by its DVC address."""
    repo = _repo(tmp_path)
    train = repo / "pipelines" / "train"
    train.mkdir(parents=True)
    (train / "dvc.yaml").write_text("vars: [../../params.yaml]\nstages:\n  train:\n    foreach: ${names}\n    do:\n"
                                    "      wdir: ../..\n      cmd: echo ${item} > t-${item}.txt\n"
                                    "      outs: [\"t-${item}.txt\"]\n")
    (train / "dvc.lock").write_text(LOCK.replace("make@a", "train@a"))   # make@old is stale there
    (repo / "dvc.lock").write_text(LOCK[:LOCK.index("  make@old:")])
    done = _prune(repo)
    assert done.returncode == 0, done
    assert "removed 1 entries of stages no longer in the pipeline: pipelines/train/dvc.yaml:make@old" in done.stdout
    assert list(yaml.safe_load((train / "dvc.lock").read_text())["stages"]) == ["train@a"]
    assert (repo / "dvc.lock").read_text() == LOCK[:LOCK.index("  make@old:")]


def test_a_papers_targets_are_dvc_addresses_of_its_stage_groups():
    from pathlib import Path
    from sae.jobs import targets
    from sae.lockfile import address
    root = Path(__file__).resolve().parent.parent
    found = targets("makhzani2014", root)
    assert "pipelines/train/dvc.yaml:train-makhzani2014" in found and address("evaluate-makhzani2014") in found
    assert all(t.split(":")[-1].endswith(("makhzani2014", "makhzani2014-filters")) for t in found), found
    assert all(address(t.split(":")[-1]) == t for t in found), found
