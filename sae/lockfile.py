"""Drop the dvc.lock entries of stages that are no longer in the pipeline.

    python -m sae.lockfile prune [--dry-run]

DVC adds an entry to dvc.lock for every stage it runs and never removes one (treeverse/dvc#5293).
After a run at another scale (whose stages have other names: `mnist5k`, not `mnist`) or a renamed
stage, the old entries stay, and DVC loads and rewrites the whole file after every stage, so each
stage pays for them (README: Benchmarks). The pipeline's stages are those dvc.yaml expands for the
current params.yaml (`dvc stage list`); DVC's own YAML round trip rewrites the file, so the kept
entries are unchanged byte for byte. It prunes against the current params.yaml, so run it at the
scale whose entries you keep; a pruned stage that comes back is looked up in DVC's run-cache and
reruns only if no run of it is there (the committed dvc.lock keeps the default run's entries).
"""
from __future__ import annotations

import sys
from pathlib import Path

USAGE = __doc__.split("\n\n")[1]


def stale_stages(root: Path = Path(".")) -> list[str]:
    """Names of dvc.lock entries that no stage of dvc.yaml (as params.yaml expands it) has."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.utils.serialize import load_yaml
    from sae.base.errors import DataError
    lock = Path(root) / "dvc.lock"
    if not lock.is_file():
        raise DataError(f"{lock}: not found (run this in the repository's root)")
    try:
        with Repo(str(root)) as repo:
            live = {stage.name for stage in repo.index.stages}
    except DvcException as exc:  # a dvc.yaml or params.yaml DVC cannot expand: never guess what is stale
        raise DataError(f"dvc.yaml: DVC cannot list the pipeline's stages ({exc})") from None
    return [name for name in (load_yaml(str(lock)).get("stages") or {}) if name not in live]


def prune(root: Path = Path("."), *, dry_run: bool = False) -> list[str]:
    """Remove the stale entries from root/dvc.lock; the names removed (or that would be)."""
    from dvc.utils.serialize import modify_yaml
    stale = stale_stages(root)
    if stale and not dry_run:
        with modify_yaml(str(Path(root) / "dvc.lock")) as lock:
            for name in stale:
                del lock["stages"][name]
    return stale


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
    print(f"dvc.lock: {verb} {len(stale)} entries of stages no longer in dvc.yaml"
          + (f": {', '.join(stale)}" if stale else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
