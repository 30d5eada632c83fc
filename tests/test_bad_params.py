"""A bad value in params.yaml, through the real `dvc repro` of the tiny configuration: a non-zero
exit, one line naming the key, no stage ran but the check, and no output changed."""

import pytest
import yaml

from sae.lockfile import address
from tests.conftest import compose_params, copy_repo, dvc, git
from tests.test_config import edited
from tests.test_pipeline import digest, ran

pytestmark = pytest.mark.slow

OUTPUTS = ("models", "metrics", "sweeps", "reports", "data/prepared", "checks")

CASES = [  # (params path, value, a part of the one line)
    ("amini2018.optim.lr", 0, "amini2018.optim.lr=0: must be > 0"),                          # out of range
    ("amini2018.optim.momentum", 1.5, "amini2018.optim.momentum=1.5: must be < 1"),
    ("amini2018.optim.schedule", "cosine", "allowed: constant, linear"),                        # unknown name
    ("amini2018.optim.optimizer", "lbfgs", "allowed: sgd, adam"),
    ("classify.lr", -1, "classify.lr=-1: must be > 0"),
    ("amini2018.model.ae.bogus", 1, "amini2018.model.ae.bogus: unknown key"),                   # unknown key
    ("amini2018.optim.learning_rate", 0.1, "did you mean 'lr'?"),                               # typo
    ("amini2018.model.ae.epochs", 0, "amini2018.model.ae.epochs=0: must be >= 1"),
    ("makhzani2014.train.optdigits.epochs", -3, "makhzani2014.train.optdigits.epochs=-3: must be >= 1"),
    ("amini2018.datasets", ["optdigits", "norb"], "'norb' is not in datasets"),                 # not prepared
    ("amini2018.models", ["ae", "bogus"], "'bogus' is not defined in amini2018.model"),         # unknown id
    ("learning_rate", 0.1, "learning_rate: unknown key"),                                       # top-level typo
    ("amini2018.models", [], "amini2018.models=[]: expected at least 1"),
    ("seeds", [0, 0], "seeds=[0, 0]: repeated value 0"),
    ("seeds", "0", "seeds='0': expected a list"),                                               # wrong type
    ("device", "tpu", "device='tpu'"),
    ("datasets", ["optdigits", "nosuchset"], "datasets[1]='nosuchset': unknown value"),
    ("makhzani2014.model.ksparse.datasets.optdigits.k", 100, "k=100: exceeds hidden=32"),       # cross-reference
    ("makhzani2014.model.ksparse.k", "25", "makhzani2014.model.ksparse.k='25': expected an integer"),
    ("seyyedsalehi2017.model.sl0sq.sigmas", [0.1, 1.0], "must be non-increasing"),
    ("data.optdigits.val", -1, "data.optdigits.val=-1: must be >= 0"),
    ("arpit2016.grid.activations", ["tanh"], "arpit2016.grid.activations[0]='tanh'"),
    ("statistics.level", 2, "statistics.level=2: must be < 1"),
    ("evaluate.alphas", [0.5], "evaluate.alphas[0]=0.5: must be >= 1"),
    ("amini2018.finetune.models", ["ae2"], "'ae2' is not in amini2018.models"),
    ("makhzani2014.model.ksparse.id", "ksprse", "did you mean 'ksparse'?"),
    ("scale", "huge", "scale='huge': unknown value"),
    ("threads", -1, "threads=-1: must be >= 0"),
    ("amini2018.model.kl.rho", 1.0, "amini2018.model.kl.rho=1.0: must be < 1"),
    ("arpit2016.train.optdigits.hidden", 0, "arpit2016.train.optdigits.hidden=0: must be >= 1"),
]


# A few stages of every kind: outputs a late validation would let DVC remove, without the whole
# tiny run (this module then runs beside the tests that share it).
REPRODUCED = ("evaluate-makhzani2014@optdigits-ksparse", "finetune-amini2018@optdigits-l1prox",
              "sweep-arpit2016@optdigits")


@pytest.fixture(scope="module")
def checked_repo(tmp_path_factory):
    dest = copy_repo(tmp_path_factory.mktemp("checked"))
    (dest / "params.yaml").write_text(compose_params(dest, "scale=tiny"))
    git("add", "-A", cwd=dest)
    git("commit", "-qm", "tiny", cwd=dest)
    dvc("repro", *map(address, REPRODUCED), cwd=dest)
    text = (dest / "params.yaml").read_text()
    before = digest(dest, *OUTPUTS)
    assert all((dest / d).is_dir() for d in ("models", "metrics", "sweeps", "data/prepared", "checks"))
    yield dest, yaml.safe_load(text), before


def _repro_fails(dest, before):
    proc = dvc("repro", cwd=dest, check=False)
    output = proc.stdout + proc.stderr
    ours = [line for line in output.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0, output[-2000:]
    assert ran(proc.stdout) in ([], ["check"]), ran(proc.stdout)
    assert digest(dest, *OUTPUTS) == before, "an output changed"
    return ours, output


@pytest.mark.parametrize("path, value, message", CASES, ids=[f"{p}={v!r}" for p, v, _ in CASES])
def test_a_bad_value_stops_dvc_repro_before_any_stage(checked_repo, path, value, message):
    dest, raw, before = checked_repo
    (dest / "params.yaml").write_text(yaml.safe_dump(edited(raw, path, value), sort_keys=False))
    ours, output = _repro_fails(dest, before)
    assert len(ours) == 1 and message in ours[0], output[-2000:]


def test_a_yaml_syntax_error_names_the_file(checked_repo):
    dest, raw, before = checked_repo
    (dest / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False) + "seeds: [0, 1\n")
    ours, output = _repro_fails(dest, before)
    assert "params.yaml" in output and len([l for l in output.splitlines() if "ERROR" in l or l.startswith("error:")]) == 1


LIST_CASES = [  # list-valued overrides that drop stages: plain `dvc exp run` checks out the new pipeline first
    ("amini2018.models=[ae,nosuchmodel]", "nosuchmodel"),
    ("amini2018.datasets=[nosuchds]", "nosuchds"),
    ("makhzani2014.datasets=[norb]", "norb"),
]


@pytest.mark.parametrize("override, named", LIST_CASES, ids=[o for o, _ in LIST_CASES])
def test_a_refused_experiment_the_readme_way_leaves_every_output_and_params_yaml(checked_repo, override, named):
    """The README's experiment path for list-valued overrides, `dvc exp run --temp`, never touches the
    workspace: the refusal leaves every output byte-identical and params.yaml as it was."""
    dest, raw, before = checked_repo
    (dest / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params_before = (dest / "params.yaml").read_bytes()
    proc = dvc("exp", "run", "--temp", "-S", "scale=tiny", "-S", override, cwd=dest, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and named in output, output[-2000:]
    assert digest(dest, *OUTPUTS) == before, "an output changed"
    assert (dest / "params.yaml").read_bytes() == params_before


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="refusing CUDA needs a machine without it")
def test_device_cuda_without_cuda_is_refused_by_check(checked_repo):
    """-S device=cuda on a CPU machine: one line from `check`, never a run recorded as CUDA."""
    dest, raw, before = checked_repo
    (dest / "params.yaml").write_text(yaml.safe_dump(edited(raw, "device", "cuda"), sort_keys=False))
    ours, output = _repro_fails(dest, before)
    assert len(ours) == 1 and "device=cuda: no CUDA device is available" in ours[0], output[-2000:]


def _stage(dest, raw, *argv, edits=()):
    import subprocess
    import sys
    params = raw
    for path, value in edits:
        params = edited(params, path, value)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        return subprocess.run([sys.executable, *argv], cwd=dest, capture_output=True, text=True)
    finally:
        (dest / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def _one_line(done, message):
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], done.stderr[-2000:]


def test_a_stage_named_with_an_unknown_paper_says_so_in_one_line(checked_repo):
    dest, raw, _ = checked_repo
    done = _stage(dest, raw, "stages/train.py", "nopaper", "optdigits", "ae", "data/prepared/optdigits",
                  "models/x", "checkpoints/x.pt")
    _one_line(done, "paper='nopaper': unknown value; allowed: amini2018")


def test_a_batch_larger_than_the_training_split_is_named_in_a_warning(checked_repo):
    import shutil
    dest, raw, before = checked_repo
    try:  # it trains: its outputs go to a folder the other tests of this repository do not digest
        done = _stage(dest, raw, "stages/train.py", "makhzani2014", "optdigits", "ksparse", "data/prepared/optdigits",
                      "scratch/batch-test", "scratch/batch-test.pt",
                      edits=[("makhzani2014.train.optdigits.batch", 100000)])
    finally:
        shutil.rmtree(dest / "scratch", ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    warned = [line for line in done.stderr.splitlines() if "exceeds the" in line]
    assert len(warned) == 1 and "makhzani2014.train.optdigits.batch=100000 exceeds the" in warned[0], done.stderr


def test_an_unwritable_metrics_path_is_refused_before_the_fits(checked_repo):
    dest, raw, before = checked_repo
    blocked = dest / "blocked"
    blocked.write_text("a file where a folder should be\n")
    try:
        done = _stage(dest, raw, "stages/evaluate.py", "makhzani2014", "optdigits", "ksparse", "data/prepared/optdigits",
                      "models/makhzani2014/optdigits/ksparse", "blocked/m.json", "blocked/h.csv")
    finally:
        blocked.unlink()
    _one_line(done, "blocked: cannot write the outputs here")
    assert digest(dest, *OUTPUTS) == before
