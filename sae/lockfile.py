"""Where the pipeline's dvc.yaml files and their dvc.locks are, and the pruning of lock entries of
stages that are no longer in the pipeline.

    python -m sae.lockfile prune [--dry-run]

The pipeline is one dvc.yaml in the root (check, download, prepare, report) and one per model stage
kind under pipelines/ (PIPELINES), each with its dvc.lock beside it. After every stage it runs, DVC
loads and rewrites that stage's whole dvc.lock, so each stage pays for the size of its own file
(README: Benchmarks), not for the whole pipeline's.

DVC adds a lock entry for every stage it runs and never removes one (treeverse/dvc#5293). After a
run at another scale (whose stages have other names: `mnist5k`, not `mnist`) or a renamed stage,
the old entries stay and every later stage of their file pays for them. `prune` removes the entries
that no stage of their dvc.yaml has, as the current params.yaml expands it (`dvc stage list`);
DVC's own YAML round trip rewrites each file, so the kept entries are unchanged byte for byte. It
prunes against the current params.yaml, so run it at the scale whose entries you keep; a pruned
stage that comes back is looked up in DVC's run-cache and reruns only if no run of it is there (the
committed locks keep the default run's entries).
"""
from __future__ import annotations

import sys
from pathlib import Path

USAGE = __doc__.split("\n\n")[1]
PIPELINES = (".", "pipelines/train", "pipelines/evaluate", "pipelines/finetune", "pipelines/sweep")


def lock_files(root: Path = Path(".")) -> list[Path]:
    """The dvc.lock of each of the pipeline's dvc.yaml files, root first (whether it exists or not)."""
    return [Path(root) / d / "dvc.lock" for d in PIPELINES]


def stage_address(lock: Path, name: str, root: Path = Path(".")) -> str:
    """How DVC names stage `name` of `lock`'s dvc.yaml on the command line: `name` in the root,
    `pipelines/<kind>/dvc.yaml:name` elsewhere."""
    where = lock.parent.resolve().relative_to(Path(root).resolve())
    return name if where == Path(".") else f"{where.as_posix()}/dvc.yaml:{name}"


def address(name: str) -> str:
    """The address `dvc repro` takes for the stage (or stage group) `name`: its kind's dvc.yaml
    and the name (`train-P@D-M` -> `pipelines/train/dvc.yaml:train-P@D-M`), or the bare name for
    a stage of the root dvc.yaml."""
    where = f"pipelines/{name.split('@')[0].split('-')[0]}"
    return f"{where}/dvc.yaml:{name}" if where in PIPELINES else name


def stale_stages(root: Path = Path(".")) -> dict[Path, list[str]]:
    """For each lock file, the names of its entries that no stage of its dvc.yaml (as params.yaml
    expands it) has."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.utils.serialize import load_yaml
    from sae.base.errors import DataError
    locks = [lock for lock in lock_files(root) if lock.is_file()]
    if not locks:
        raise DataError(f"{lock_files(root)[0]}: not found (run this in the repository's root)")
    try:
        with Repo(str(root)) as repo:
            live = {(Path(stage.dvcfile.path).parent.resolve(), stage.name) for stage in repo.index.stages}
    except DvcException as exc:  # a dvc.yaml or params.yaml DVC cannot expand: never guess what is stale
        raise DataError(f"dvc.yaml: DVC cannot list the pipeline's stages ({exc})") from None
    return {lock: [name for name in (load_yaml(str(lock)).get("stages") or {})
                   if (lock.parent.resolve(), name) not in live] for lock in locks}


def prune(root: Path = Path("."), *, dry_run: bool = False) -> list[str]:
    """Remove the stale entries from every lock file; their stage addresses (removed or would be)."""
    from dvc.utils.serialize import modify_yaml
    stale = stale_stages(root)
    for lock, names in stale.items():
        if names and not dry_run:
            with modify_yaml(str(lock)) as data:
                for name in names:
                    del data["stages"][name]
    return [stage_address(lock, name, root) for lock, names in stale.items() for name in names]


def main(argv: list[str]) -> None:
    from sae.base.errors import SaeError
    if argv[:1] != ["prune"] or set(argv[1:]) - {"--dry-run"}:
        print(USAGE)
        sys.exit(0 if argv[:1] in (["-h"], ["--help"]) else 2)
    dry_run = "--dry-run" in argv
    try:
        stale = prune(dry_run=dry_run)
    except SaeError as exc:
        sys.exit(f"error: {exc}")
    verb = "would remove" if dry_run else "removed"
    print(f"dvc.lock: {verb} {len(stale)} entries of stages no longer in the pipeline"
          + (f": {', '.join(stale)}" if stale else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
