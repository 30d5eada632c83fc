"""The project as it stands in this working tree (tracked files, and untracked ones git does not
ignore), copied into a fresh git repository without its dvc.lock files: where tests and benchmarks run
the real `dvc repro`. Imports nothing of the project, so benchmarks can use it too."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMITTED_RESULTS = ("metrics", "reports", "sweeps")  # dvc.yaml's cache: false outputs


def fresh_copy(dest: Path, message: str | None = None) -> Path:
    """Copy the project to dest (created), `git init` there, and commit everything as `message`
    when given (dvclive needs a commit to start). Returns dest."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if name.split("/")[0] in COMMITTED_RESULTS:
            continue  # the default run's results: a copy makes its own
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    for lock in [dest / "dvc.lock", *dest.glob("pipelines/*/dvc.lock")]:  # the pipeline's lock files
        lock.unlink(missing_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    if message is not None:
        subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
        subprocess.run(["git", "-c", "user.name=sae-repro", "-c", "user.email=sae-repro@localhost",
                        "commit", "-qm", message], cwd=dest, check=True)
    return dest
