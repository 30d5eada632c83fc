"""One paper per machine: the stages a fan-out job runs, and the gathering of the jobs' results.

    python -m sae.jobs targets PAPER [...]  the stage groups of the papers (for dvc exp run)
    python -m sae.jobs gather NAME [NAME]   bring pushed experiments' results into this workspace

A job (cluster/paper.yaml, or any machine) runs `dvc exp run --pull --allow-missing -n NAME
-S scale=SCALE $(python -m sae.jobs targets PAPER)`, then `dvc push --run-cache` and `dvc exp
push origin NAME`. In one clone, `dvc exp pull origin NAME...`, then `gather` takes from each
experiment its paper's entries of the dvc.lock files, its git-tracked results (metrics/, sweeps/) and
params.yaml (the same in every job); `dvc pull` then brings the models, and `dvc repro` builds
only the report, from every paper's results.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

USAGE = __doc__.split("\n\n")[1]
COMMITTED = ("metrics/", "sweeps/")  # the cache: false outputs of the job stages (in git)


def targets(paper: str, root: Path = Path(".")) -> list[str]:
    """The stage groups that belong to `paper` (train-P, evaluate-P, ..., sweep-P), as DVC addresses
    them (`pipelines/train/dvc.yaml:train-P`); the upstream check, download and prepare stages come
    with them."""
    from sae.base import catalog as C
    from sae.config import unknown
    from sae.base.errors import ParamError
    from sae.lockfile import lock_files, stage_address
    if paper not in C.PAPER_IDS:
        raise ParamError(unknown("paper", paper, C.PAPER_IDS))
    return [stage_address(lock, name, root) for lock in lock_files(root)
            for name in yaml.safe_load(lock.with_name("dvc.yaml").read_text())["stages"] if _paper_of(name) == paper]


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        from sae.base.errors import DataError
        raise DataError(f"git {' '.join(args)}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'}")
    return done.stdout


def experiment_ref(root: Path, name: str) -> str:
    """The git ref of a pulled experiment `name` (DataError when none, or several, match)."""
    from sae.base.errors import DataError
    refs = [r for r in _git(root, "for-each-ref", "--format=%(refname)", "refs/exps").split()
            if r.rsplit("/", 1)[-1] == name]
    if len(refs) != 1:
        raise DataError(f"experiment {name!r}: {'no' if not refs else len(refs)} matching refs/exps "
                        f"(dvc exp pull origin {name} first)")
    return refs[0]


def _paper_of(stage: str) -> str | None:
    """The paper a dvc.yaml stage (group or expanded name) belongs to; None for shared stages."""
    from sae.base import catalog as C
    group = stage.split("@")[0]
    return next((p for p in C.PAPER_IDS if group.endswith(f"-{p}") or f"-{p}-" in group), None)


def gather(names: list[str], root: Path = Path(".")) -> list[str]:
    """Merge the experiments `names` (one paper's stages each) into the workspace: their papers'
    entries of the dvc.lock files, git-tracked results and the params.yaml they share. Returns the
    papers."""
    from sae.base.errors import DataError
    from sae.lockfile import lock_files
    paths = {lock: lock.relative_to(root).as_posix() for lock in lock_files(root)}
    locks = {lock: yaml.safe_load(lock.read_text()) if lock.is_file() else {"schema": "2.0", "stages": {}}
             for lock in paths}
    params_text, papers = None, []
    for name in names:
        ref = experiment_ref(root, name)
        text = _git(root, "show", f"{ref}:params.yaml")
        if params_text is not None and text != params_text:
            raise DataError(f"experiment {name!r}: its params.yaml differs from {names[0]!r}'s; gather jobs run "
                            "with the same overrides")
        params_text = text
        theirs = {lock: _stages_at(root, f"{ref}:{path}") for lock, path in paths.items()}
        try:  # what the job ran: the entries its experiment changed against its baseline commit
            base = {lock: _stages_at(root, f"{ref}^:{path}") for lock, path in paths.items()}
        except DataError:
            base = {lock: {} for lock in paths}
        ran = sorted({_paper_of(s) for lock in paths for s, e in theirs[lock].items()
                      if _paper_of(s) and base[lock].get(s) != e} - set(papers))
        for lock in paths:
            for stage, entry in theirs[lock].items():
                paper = _paper_of(stage)
                if paper is None or paper in ran:   # check, download, prepare: the same in every job
                    locks[lock]["stages"][stage] = entry
        for paper in ran:
            found = [p for p in (f"{folder}{paper}" for folder in COMMITTED)
                     if _git(root, "ls-tree", "--name-only", ref, p).strip()]
            if found:
                _git(root, "checkout", ref, "--", *found)
        papers += ran
    (root / "params.yaml").write_text(params_text)
    for lock, data in locks.items():
        if data["stages"]:
            lock.write_text(yaml.safe_dump(data, sort_keys=False))
    return papers


def _stages_at(root: Path, spec: str) -> dict:
    """The stages of the lock file `REF:PATH` in git; {} when that commit has no such file."""
    if not _git(root, "ls-tree", "--name-only", *spec.split(":", 1)).strip():
        return {}
    return yaml.safe_load(_git(root, "show", spec))["stages"] or {}


def main(argv: list[str]) -> None:
    from sae.base.errors import SaeError
    if len(argv) < 2 or argv[0] not in ("targets", "gather"):
        print(USAGE)
        sys.exit(0 if argv[:1] in (["-h"], ["--help"]) else 2)
    try:
        if argv[0] == "targets":
            print(" ".join(t for paper in argv[1:] for t in targets(paper)))
        else:
            papers = gather(argv[1:])
            print(f"gathered {', '.join(papers)}: run `dvc pull` (models), then `dvc repro` (the report)")
    except SaeError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
