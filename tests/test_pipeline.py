"""End to end: the real `dvc repro` / `dvc exp run` on a copy of the repository at scale=tiny."""
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from sae.lockfile import address
from tests.conftest import compose_params, dvc, git, run

pytestmark = pytest.mark.slow


def ran(output: str) -> list[str]:
    """The stages DVC ran, by name (without `pipelines/<kind>/dvc.yaml:`)."""
    return re.findall(r"Running stage '(?:[\w/]+/dvc\.yaml:)?([^']+)'", output)


@pytest.fixture
def repo(tiny_repo):
    """The reproduced tiny repository; whatever a test changes is put back afterwards."""
    dest, output = tiny_repo
    yield dest, output
    git("checkout", "-q", "--", ".", cwd=dest)
    dvc("checkout", "-f", cwd=dest)


def digest(root: Path, *folders: str) -> dict[str, str]:
    """sha256 of every file under the given folders."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for f in folders for p in sorted((root / f).rglob("*")) if p.is_file()}


def test_repro_builds_every_stage_offline_with_the_paper_in_its_name(repo):
    dest, output = repo
    stages = ran(output)
    for stage in ("check", "download@optdigits", "prepare@optdigits", "train-amini2018@optdigits-l1prox",
                  "evaluate-seyyedsalehi2017@optdigits-sl0sq", "finetune-makhzani2014@optdigits-ksparse",
                  "sweep-arpit2016@optdigits", "report"):
        assert stage in stages, output[-2000:]
    assert stages[0] == "check"
    # `dvc repro` runs the root dvc.yaml's stages and what they depend on: the report reads every
    # output folder, so that is every stage of every dvc.yaml
    listed = dvc("stage", "list", "--all", "--name-only", cwd=dest).stdout.split()
    assert sorted(stages) == sorted(name.split(":")[-1] for name in listed), (stages, listed)
    for paper, model in (("amini2018", "ae"), ("makhzani2014", "ksparse")):
        out = dest / "models" / paper / "optdigits" / model
        assert (out / "model.pt").is_file() and (out / "hparams.json").is_file()
        assert (out / "live" / "metrics.json").is_file()
    report = (dest / "reports/report.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert images and all((dest / "reports" / img).is_file() for img in images), images
    assert not re.search(r"\bnan\b", report, re.IGNORECASE)
    gaps = json.loads((dest / "reports/claims.json").read_text())["gaps"]  # a renamed key or path shows here
    assert gaps["missing_output"] == gaps["unreadable"] == gaps["unexpected_layout"] == 0, gaps
    # provenance: the commit the run started from (the fixture commits the outputs after it), the lock
    # without the report's own entry, the versions, scale and seeds
    ran_at = git("rev-parse", "HEAD~1", cwd=dest).stdout.strip()
    assert f"git commit `{ran_at}`, clean" in report and "dvc.lock md5 `" in report, report[-3000:]
    assert f"torch {__import__('torch').__version__}" in report and "Scale `tiny`, seeds 0, 1." in report
    # every compute stage wrote its body's wall time, and the provenance lists them all
    timings = sorted((dest / "timings").rglob("*.json"))
    computed = [s for s in stages if s.split("@")[0].split("-")[0] in ("download", "prepare", "train", "evaluate",
                                                                       "finetune", "sweep")]
    assert len(timings) == len(computed) > 20, (len(timings), len(computed))
    assert all(json.loads(t.read_text())["seconds"] >= 0 for t in timings)
    assert f"{len(timings)} stages, " in report, report[-3000:]
    assert all(re.search(rf"[:;] {kind} [0-9,]+ s \(", report) for kind in ("train", "evaluate", "sweep"))


def test_nothing_to_do_afterwards(repo):
    dest, _ = repo
    status = dvc("status", cwd=dest)
    assert "up to date" in status.stdout, status.stdout
    assert ran(dvc("repro", cwd=dest).stdout) == []


def test_a_knob_of_one_papers_model_reruns_only_that_models_stages(repo):
    dest, _ = repo
    out = dvc("exp", "run", "-S", "scale=tiny", "-S", "makhzani2014.model.ksparse.datasets.optdigits.k=4", cwd=dest)
    stages = set(ran(out.stdout))
    assert {"train-makhzani2014@optdigits-ksparse", "evaluate-makhzani2014@optdigits-ksparse",
            "finetune-makhzani2014@optdigits-ksparse", "report"} <= stages, out.stdout
    assert stages <= {"check", "train-makhzani2014@optdigits-ksparse", "evaluate-makhzani2014@optdigits-ksparse",
                      "finetune-makhzani2014@optdigits-ksparse", "report"}, stages


def test_a_model_knob_changes_that_models_numbers_and_nothing_elses(repo):
    dest, _ = repo
    before = digest(dest, "metrics")
    out = dvc("exp", "run", "-S", "scale=tiny", "-S", "amini2018.model.ae.weight_decay=0.003", cwd=dest)
    assert sorted(ran(out.stdout)) == ["check", "evaluate-amini2018@optdigits-ae", "report",
                                       "train-amini2018@optdigits-ae"], out.stdout
    after = digest(dest, "metrics")
    changed = sorted(k for k in before if before[k] != after.get(k))
    assert changed and all(k.startswith("metrics/amini2018/optdigits/ae") for k in changed), changed


def test_a_classifier_knob_retrains_no_autoencoder_and_metrics_diff_lists_changes(repo):
    dest, _ = repo
    out = dvc("exp", "run", "-S", "scale=tiny", "-S", "classify.epochs=5", cwd=dest)
    stages = ran(out.stdout)
    assert any(s.startswith("evaluate-") for s in stages), out.stdout
    assert not any(s.startswith(("train-", "sweep-", "finetune-")) for s in stages), stages
    diff = dvc("metrics", "diff", cwd=dest).stdout  # the experiment's workspace against HEAD
    assert "metrics/amini2018/optdigits/ae.json" in diff and "test_error" in diff, diff


def test_same_params_and_seeds_give_byte_identical_metrics(repo):
    """The fixture's run forked its torch stages from the warm server (sae.base.warm); rerun in
    processes of their own, they write the same bytes."""
    dest, _ = repo
    before = digest(dest, "metrics", "models/makhzani2014/optdigits/ksparse")
    cold = {"SAE_WARM": "0"}
    dvc("repro", "-f", "-s", address("train-makhzani2014@optdigits-ksparse"), cwd=dest, env=cold)
    dvc("repro", "-f", "-s", address("evaluate-makhzani2014@optdigits-ksparse"), cwd=dest, env=cold)
    after = digest(dest, "metrics", "models/makhzani2014/optdigits/ksparse")
    assert {k: v for k, v in after.items() if "ksparse" in k} == {k: v for k, v in before.items() if "ksparse" in k}


def test_dvclive_files_are_outputs_that_checkout_restores(repo):
    """After an undone experiment the training curves come back from the cache (they are outputs)."""
    dest, _ = repo
    live = dest / "models/amini2018/optdigits/ae/live"
    (live / "metrics.json").unlink()
    shutil.rmtree(live / "plots")
    dvc("checkout", "-f", cwd=dest)
    assert (live / "metrics.json").is_file() and (live / "plots/metrics/loss/seed0.tsv").is_file()
    assert "up to date" in dvc("status", cwd=dest).stdout


@pytest.mark.parametrize("name", ["model.pt", "hparams.json", "meta.json"])
def test_a_truncated_file_stops_the_stage_with_one_line_naming_it(repo, name):
    dest, _ = repo
    path = (dest / "data/prepared/optdigits" / name) if name == "meta.json" else (
        dest / "models/amini2018/optdigits/ae" / name)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])
    proc = run([sys.executable, "stages/evaluate.py", "amini2018", "optdigits", "ae", "data/prepared/optdigits",
                "models/amini2018/optdigits/ae", "/tmp/ae.json", "/tmp/ae.csv"], dest, check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and name in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_a_flipped_byte_in_model_pt_is_refused_not_evaluated(repo, tmp_path):
    """The weights would load (a byte inside a float): only their sha256 in hparams.json catches it."""
    dest, _ = repo
    path = dest / "models/amini2018/optdigits/ae/model.pt"
    good = path.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01
    path.write_bytes(bytes(bad))
    try:
        proc = run([sys.executable, "stages/evaluate.py", "amini2018", "optdigits", "ae", "data/prepared/optdigits",
                    "models/amini2018/optdigits/ae", str(tmp_path / "ae.json"), str(tmp_path / "ae.csv")], dest,
                   check=False)
    finally:
        path.write_bytes(good)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "model.pt: damaged" in errors[0], proc.stderr[-2000:]
    assert not (tmp_path / "ae.json").exists()


def test_an_unwritable_output_path_is_refused_before_training(repo):
    dest, _ = repo
    proc = run([sys.executable, "stages/train.py", "amini2018", "optdigits", "ae", "data/prepared/optdigits",
                "params.yaml/ae", "checkpoints/unwritable.pt"], dest, check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "params.yaml/ae: cannot write" in errors[0], proc.stderr
    assert "epoch" not in proc.stderr and not (dest / "checkpoints/unwritable.pt").exists()


def test_a_diverging_run_ends_with_an_error_line_of_its_own(repo):
    """The error starts a line (the progress bar is closed first) and names model, seed and epoch."""
    dest, _ = repo
    params = dest / "params.yaml"
    params.write_text(compose_params(dest, "scale=tiny", "++amini2018.model.ae.lr=1e6", "amini2018.model.ae.decoder=linear",
                                     "amini2018.model.ae.activation=linear"))
    proc = dvc("repro", "-s", address("train-amini2018@optdigits-ae"), cwd=dest, check=False)
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and len(errors) == 1, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert re.search(r"amini2018/optdigits/ae: loss became (nan|inf) at epoch \d+ \(model \d, seed \d\)", errors[0])


def test_the_paper_scale_lists_the_papers_datasets_and_stages(repo):
    dest, _ = repo
    (dest / "params.yaml").write_text(compose_params(dest, "scale=paper"))
    out = dvc("status", cwd=dest).stdout  # every stage whose inputs are not there yet
    stages = set(re.findall(r"^(?:[\w/]+/dvc\.yaml:)?([\w@-]+):$", out, re.MULTILINE))
    for stage in ("download@norb", "prepare@svhn", "prepare@cifar10_patches", "prepare@cifar10_pixel_patches",
                  "train-amini2018@svhn-l1prox", "train-makhzani2014@norb-ksparse",
                  "train-makhzani2014-filters@cifar10_patches-ksparse", "finetune-makhzani2014@mnist-dropout",
                  "evaluate-seyyedsalehi2017@cifar10-sl0sq", "sweep-arpit2016@cifar10_pixel_patches"):
        assert stage in stages, stage
    assert not any("mnist5k" in s or "optdigits@" in s for s in stages)


def test_a_truncated_dvc_lock_is_recovered_without_retraining(repo):
    """A kill -9 while DVC rewrites a dvc.lock (here the train stages') can truncate it; the README's
    two recoveries."""
    dest, _ = repo
    lock = dest / "pipelines/train/dvc.lock"
    good = lock.read_bytes()
    lock.write_bytes(good[:len(good) // 5])
    assert "up to date" not in dvc("status", cwd=dest, check=False).stdout
    git("checkout", "-q", "--", "pipelines/train/dvc.lock", cwd=dest)   # 1: the committed lock
    assert "up to date" in dvc("status", cwd=dest).stdout
    before = digest(dest, "models", "metrics", "reports")
    lock.unlink()                                                # 2: no such lock at all
    out = dvc("repro", cwd=dest).stdout
    assert not any(s.startswith("train-") for s in ran(out)), ran(out)   # restored from the run-cache
    assert digest(dest, "models", "metrics") == {k: v for k, v in before.items() if not k.startswith("reports")}
