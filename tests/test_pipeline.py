"""End to end: the real `dvc repro` on a copy of the repository with a tiny params.yaml."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _run(args, cwd, check=True):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1", PYTHONPATH=str(cwd))
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _dvc(*args, cwd, check=True):
    return _run([sys.executable, "-m", "dvc", *args], cwd, check)


def _git(*args, cwd):
    return _run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args], cwd)


def _ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def tiny_params() -> dict:
    """The repository's params.yaml cut down to one embedded dataset, three models, few epochs."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["datasets"] = params["train_datasets"] = ["optdigits"]
    params["models"] = ["raw", "ae", "ksparse"]
    params["train"]["optdigits"].update(hidden=32, epochs=2)
    params["model"]["ksparse"]["datasets"]["optdigits"].update(k=5, k_start=10)
    params["sweep"].update(datasets=["optdigits"], models=["cae"],
                           grid={"coefficients": [0, 0.25], "activations": ["relu"], "unit_norm": [True]})
    params["sweep"]["optdigits"] = {"hidden": 8, "epochs": 1, "workers": 1}
    params["ksweep"].update(datasets=["optdigits"], k=[3])
    return params


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git + DVC repository holding the tracked files of this one, with tiny params, reproduced once."""
    dest = tmp_path_factory.mktemp("pipeline")
    files = _run(["git", "ls-files"], ROOT).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    (dest / "dvc.lock").unlink(missing_ok=True)
    (dest / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    _git("init", "-q", cwd=dest)
    _git("add", "-A", cwd=dest)
    _git("commit", "-qm", "tiny", cwd=dest)
    first = _dvc("repro", cwd=dest)
    _git("add", "-A", cwd=dest)
    _git("commit", "-qm", "reproduced", cwd=dest)
    return dest, first.stdout + first.stderr


def test_repro_builds_every_stage_offline(repo):
    dest, output = repo
    ran = _ran(output)
    for stage in ("download@optdigits", "prepare@optdigits", "train@optdigits-ae", "train@optdigits-ksparse"):
        assert stage in ran, output[-2000:]
    for model in ("raw", "ae", "ksparse"):
        assert (dest / "models/optdigits" / model / "model.pt").is_file()
        assert (dest / "models/optdigits" / model / "hparams.json").is_file()
    assert (dest / "models/optdigits/ae/live/plots/metrics/loss.tsv").is_file()
    report = (dest / "reports/report.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert images and all((dest / "reports" / img).is_file() for img in images), images
    assert not re.search(r"\bnan\b", report, re.IGNORECASE)


def test_nothing_to_do_afterwards(repo):
    dest, _ = repo
    status = _dvc("status", cwd=dest)
    assert "up to date" in status.stdout, status.stdout
    again = _dvc("repro", cwd=dest)
    assert _ran(again.stdout) == [], again.stdout


def test_changing_k_reruns_only_ksparse_stages(repo):
    dest, _ = repo
    # optdigits takes k from its per-dataset override (tiny_params), which wins over model.ksparse.k
    out = _dvc("exp", "run", "-S", "model.ksparse.datasets.optdigits.k=4", cwd=dest)
    ran = _ran(out.stdout)
    assert "report" in ran
    published = "sae/report/published.csv"
    assert (dest / published).read_bytes() == (ROOT / published).read_bytes()
    assert "train@optdigits-ksparse" in ran, out.stdout
    assert all("ksparse" in s or s.startswith(("report", "ksweep@")) for s in ran), ran
    table = (dest / "reports/ksweep/ksweep_optdigits.csv").read_text().splitlines()
    assert any(line.startswith("optdigits,ksparse,4,") for line in table), table  # the model at its new k


def _rows(markdown: str, first_cell: str) -> list[list[str]]:
    """Cells of the markdown table rows whose first cell is `first_cell`."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in markdown.splitlines()
            if line.startswith("|")]
    return [r for r in rows if r[0] == first_cell]


def test_model_knob_changes_the_report_numbers(repo):
    dest, _ = repo
    before = (dest / "reports/report.md").read_text()
    out = _dvc("exp", "run", "-S", "model.ae.weight_decay=0.003", cwd=dest)
    ran = _ran(out.stdout)
    assert sorted(ran) == ["evaluate@optdigits-ae", "finetune@optdigits-ae", "report", "train@optdigits-ae"], ran
    after = (dest / "reports/report.md").read_text()
    # 000 Table I reports the weight decay the model was trained with
    decay = [r for r in _rows(after, "AE (ae)") if r[1].startswith("λ1")]
    assert decay and decay[0][-1] == "0.003", decay
    # 001 Fig. 2 table on optdigits: ae's measured numbers move, nothing else's
    old, new = _rows(before, "RAE (ae)"), _rows(after, "RAE (ae)")
    assert old and len(old) == len(new) and any(o[-1] != n[-1] for o, n in zip(old, new)), (old, new)
    assert _rows(before, "SAE+L1 (l1)") == _rows(after, "SAE+L1 (l1)")
    published = "sae/report/published.csv"
    assert (dest / published).read_bytes() == (ROOT / published).read_bytes()


def test_finetune_seeds_rerun_only_finetune_stages(repo):
    dest, _ = repo
    out = _dvc("exp", "run", "-S", "finetune.seeds=[0,1]", cwd=dest)
    ran = _ran(out.stdout)
    assert any(s.startswith("finetune@") for s in ran), out.stdout
    assert all(s.startswith(("finetune@", "report")) for s in ran), ran


def test_classifier_knob_retrains_no_autoencoder_and_metrics_diff_lists_changes(repo):
    dest, _ = repo
    out = _dvc("exp", "run", "-S", "classify.epochs=5", cwd=dest)
    ran = _ran(out.stdout)
    assert any(s.startswith("evaluate@") for s in ran), out.stdout
    assert not any(s.startswith(("train@", "sweep@")) for s in ran), ran
    diff = _dvc("metrics", "diff", cwd=dest).stdout  # workspace (this experiment) against HEAD
    assert "metrics/optdigits/ae.json" in diff and "test_error" in diff, diff


def test_unknown_dataset_fails_with_one_line_naming_it(repo):
    dest, _ = repo
    out = _dvc("exp", "run", "-S", "datasets=[optdigits,nosuchset]", cwd=dest, check=False)
    assert out.returncode != 0
    ours = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("error:")]
    assert len(ours) == 1 and "nosuchset" in ours[0], out.stdout + out.stderr
