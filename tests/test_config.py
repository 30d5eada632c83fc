"""The typed schema of params.yaml (sae.config): every scale composes to a valid file, every error
is one line naming the key path and what is allowed, and the protocol resolution names the layer
a value came from."""
from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import yaml

from sae.base import catalog
from sae.config import load, schema, validate
from sae.config.protocol import finetune_settings, run_config, stages, sweep_settings
from sae.base.errors import ParamError

ROOT = Path(__file__).resolve().parents[1]


def compose(scale: str, *overrides: str) -> dict:
    """conf/ composed as `dvc exp run -S scale=<scale> -S ...` writes params.yaml."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from omegaconf import OmegaConf
    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        cfg = hydra_compose(config_name="config", overrides=[f"scale={scale}", *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.fixture(scope="module")
def embedded():
    return compose("quick")


def edited(raw: dict, path: str, value) -> dict:
    out = copy.deepcopy(raw)
    node = out
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return out


@pytest.mark.parametrize("scale", catalog.SCALES)
def test_every_scale_composes_to_a_valid_params_file(scale):
    params = validate(compose(scale))
    assert params.scale == scale
    for paper in catalog.AUTOENCODER_PAPERS + catalog.SWEEP_PAPERS:
        assert set(params.protocol(paper).datasets) <= set(params.datasets)


def test_committed_params_yaml_is_the_default_composition():
    """`dvc repro` reads params.yaml; `dvc exp run` recomposes conf/: the two must agree, or the
    first experiment would silently change every default."""
    assert yaml.safe_load((ROOT / "params.yaml").read_text()) == compose("default")


def test_every_dataset_has_prepare_settings_of_its_kind(embedded):
    assert set(embedded["data"]) == set(catalog.DATASET_IDS)
    every = validate(edited(embedded, "datasets", list(catalog.DATASET_IDS)))
    assert set(every.datasets) == set(catalog.DATASET_IDS)


def test_the_paper_scale_runs_the_papers_datasets():
    params = validate(compose("paper"))
    assert params.amini2018.datasets == ["mnist", "norb", "svhn"]
    assert params.makhzani2014.datasets == ["mnist", "norb"] and params.makhzani2014.filters.datasets == ["cifar10_patches"]
    assert params.arpit2016.datasets == ["mnist", "cifar10_pixel_patches"]
    assert len(params.seeds) > 3
    ks = run_config(params, "makhzani2014", "norb", "ksparse")
    assert (ks.loop.hidden, ks.options["k"], ks.options["alpha"], ks.loop.epochs) == (4000, 150, 2.0, 5000)


BAD = [  # (path, value, what the one line must say)
    ("amini2018.optim.lr", 0, "amini2018.optim.lr=0: must be > 0"),
    ("amini2018.optim.momentum", 1.5, "amini2018.optim.momentum=1.5: must be < 1"),
    ("amini2018.optim.schedule", "cosine", "amini2018.optim.schedule='cosine': unknown value; allowed: constant, linear"),
    ("amini2018.optim.optimizer", "lbfgs", "allowed: sgd, adam"),
    ("classify.lr", -1, "classify.lr=-1: must be > 0"),
    ("amini2018.model.ae.bogus", 1, "amini2018.model.ae.bogus: unknown key"),
    ("amini2018.optim.learning_rate", 0.1, "amini2018.optim.learning_rate: unknown key; did you mean 'lr'?"),
    ("amini2018.model.ae.epochs", 0, "amini2018.model.ae.epochs=0: must be >= 1"),
    ("makhzani2014.train.mnist5k.epochs", -3, "makhzani2014.train.mnist5k.epochs=-3: must be >= 1"),
    ("amini2018.datasets", ["mnist5k", "norb"], "amini2018.datasets: 'norb' is not in datasets"),
    ("amini2018.models", ["ae", "bogus"], "amini2018.models: 'bogus' is not defined in amini2018.model"),
    ("learning_rate", 0.1, "learning_rate: unknown key"),
    ("amini2018.models", [], "amini2018.models=[]: expected at least 1"),
    ("seeds", [0, 0], "seeds=[0, 0]: repeated value 0"),
    ("device", "tpu", "device='tpu': must match ^(auto|cpu|cuda(:\\d+)?)$"),
    ("datasets", ["mnist5k", "nosuchset"], "datasets[1]='nosuchset': unknown value"),
    ("makhzani2014.model.ksparse.k", 2000, "makhzani2014.model.ksparse.k=2000: exceeds hidden=1000"),
    ("makhzani2014.model.ksparse.k", "25", "makhzani2014.model.ksparse.k='25': expected an integer"),
    ("makhzani2014.model.ksparse.k_sweep", [10, 10], "repeated k 10"),
    ("makhzani2014.model.dae.level", 1.0, "makhzani2014.model.dae.level=1.0: must be < 1 for mask corruption"),
    ("data.mnist5k.val", -1, "data.mnist5k.val=-1: must be >= 0"),
    ("arpit2016.grid.activations", ["tanh"], "arpit2016.grid.activations[0]='tanh'"),
    ("seyyedsalehi2017.model.sl0sq.sigmas", [0.1, 1.0], "must be non-increasing"),
    ("statistics.level", 2, "statistics.level=2: must be < 1"),
    ("amini2018.finetune.models", ["ae2"], "amini2018.finetune.models: 'ae2' is not in amini2018.models"),
    ("makhzani2014.model.ksparse.id", "ksprse", "did you mean 'ksparse'?"),
    ("amini2018.train.mnsit", {"epochs": 3}, "amini2018.train.mnsit: unknown dataset; did you mean 'mnist'?"),
    ("amini2018.optim.lr", True, "amini2018.optim.lr=true: expected a number"),
    ("makhzani2014.model.ksparse.datasets.mnist5k.k_start", 10,
     "makhzani2014.model.ksparse.datasets.mnist5k.k_start=10: is below k=25"),
    ("amini2018.finetune.settings.deep_epochs", [1, 1], "expected 3 integers"),
]


@pytest.mark.parametrize("path, value, message", BAD, ids=[b[0] + "=" + repr(b[1]) for b in BAD])
def test_a_bad_value_gets_one_line_naming_the_key(embedded, path, value, message):
    with pytest.raises(ParamError) as err:
        validate(edited(embedded, path, value))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_value_names_the_layer_that_set_it(embedded):
    """epochs set on a model wins over the dataset's, and the error names the model's key."""
    with pytest.raises(ParamError, match=r"^makhzani2014\.model\.relu_ae\.epochs=0"):
        validate(edited(embedded, "makhzani2014.model.relu_ae.epochs", 0))
    params = validate(embedded)
    cfg = run_config(params, "makhzani2014", "mnist5k", "ksparse")
    assert cfg.source["epochs"] == "makhzani2014.train.mnist5k.epochs"
    assert cfg.source["hidden"] == "makhzani2014.train.mnist.hidden"  # the paper's value, via the stand-in
    assert cfg.source["lr"] == "makhzani2014.model.ksparse.datasets.mnist5k.lr"  # the stand-in's own rate
    assert run_config(params, "makhzani2014", "patches", "ksparse").source["lr"] == "makhzani2014.optim.lr"


def test_a_stand_in_takes_the_settings_of_the_paper_dataset_it_stands_in_for(embedded):
    raw = edited(embedded, "datasets", [*embedded["datasets"], "fashion"])
    raw = edited(raw, "makhzani2014.datasets", ["fashion"])
    params = validate(raw)
    cfg = run_config(params, "makhzani2014", "fashion", "ksparse")
    assert (cfg.loop.hidden, cfg.loop.epochs, cfg.options["k"]) == (1000, 2, 25)  # MNIST's at this scale


def test_finetune_and_sweep_settings_resolve(embedded):
    params = validate(embedded)
    ft = finetune_settings(params, "makhzani2014", "mnist5k")
    assert (ft.momentum, ft.lr, ft.final_lr, ft.epochs) == (0.25, [1.0], 0.001, 4)
    sw = sweep_settings(params, "arpit2016", "mnist5k")
    assert (sw.hidden, sw.epochs, sw.batch, sw.momentum) == (100, 4, 50, 0.9)
    kinds = {k for k, *_ in stages(params)}
    assert kinds == {"train", "evaluate", "finetune", "filters", "sweep"}


def test_load_reads_and_names_a_broken_file(tmp_path):
    with pytest.raises(ParamError, match="file not found"):
        load(tmp_path / "missing.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("seeds: [0, 1\n")
    with pytest.raises(ParamError, match=r"params\.yaml: not valid YAML"):
        load(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ParamError, match="expected a mapping at the top level"):
        load(bad)


def test_the_schema_documents_every_group():
    for name, field in schema.Params.model_fields.items():
        assert field.description or field.annotation in (schema.Classify, schema.Evaluate, schema.Statistics,
                                                         schema.AEProtocol, schema.SweepProtocol), name


@functools.cache
def scale_file(scale: str) -> dict:
    return yaml.safe_load((ROOT / "conf" / "scale" / f"{scale}.yaml").read_text()) or {}


def below_paper_scale(ours: int, theirs: int, scale: str, paper: str, dataset: str, model: str | None = None) -> bool:
    """ours < theirs, or equal where conf/scale/<scale>.yaml itself sets this budget (the model's
    training epochs on `dataset`, or with model=None the fine-tuning epochs): the scale's declared
    choice, not a paper budget inherited silently."""
    p = scale_file(scale).get(paper) or {}
    if model is None:
        f = p.get("finetune") or {}
        declared = "epochs" in (f.get("settings") or {}) or "epochs" in ((f.get("datasets") or {}).get(dataset) or {})
    else:
        declared = ("epochs" in ((p.get("train") or {}).get(dataset) or {})
                    or "epochs" in ((((p.get("model") or {}).get(model) or {}).get("datasets") or {}).get(dataset) or {}))
    return ours < theirs or (ours == theirs and declared)


@pytest.mark.parametrize("scale", ["quick", "default"])
def test_fashion_in_place_of_mnist_takes_the_scales_budget_not_the_papers(scale):
    """The README's `-S 'datasets=[...,fashion]'` recipe must not silently train for 5000 epochs."""
    from sae.config.protocol import finetune_settings, run_config
    paper_scale = validate(compose("paper"))
    raw = compose(scale)
    raw["datasets"] = [*raw["datasets"], "fashion"]
    for paper in ("amini2018", "seyyedsalehi2017", "makhzani2014"):
        raw[paper]["datasets"] = ["fashion"]
    params = validate(raw)
    for paper in ("amini2018", "seyyedsalehi2017", "makhzani2014"):
        model = params.protocol(paper).models[-1]
        run, full = run_config(params, paper, "fashion", model), run_config(paper_scale, paper, "mnist", model)
        assert below_paper_scale(run.loop.epochs, full.loop.epochs, scale, paper, "mnist", model), \
            (paper, model, run.loop.epochs)
        if params.protocol(paper).finetune is not None and params.protocol(paper).finetune.models:
            ours, theirs = (finetune_settings(params, paper, "fashion").epochs,
                            finetune_settings(paper_scale, paper, "mnist").epochs)
            assert below_paper_scale(ours, theirs, scale, paper, "mnist"), (paper, ours)


CLI_REFUSALS = [
    (["nosuchkey=1"], "nosuchkey: unknown key; allowed:"),
    (["makhzani2014.model.ksparse.kk=3"], "did you mean 'k'?"),
    (["tiny"], "'tiny': an override is KEY=VALUE (for example scale=tiny)"),
    (["scale=huge"], "scale='huge': unknown value; allowed: default, paper, quick, tiny"),
]


@pytest.mark.parametrize("argv, message", CLI_REFUSALS)
def test_the_compose_command_refuses_a_bad_override_in_one_line(tmp_path, argv, message):
    """python -m sae.config explains what `dvc exp run -S` refuses: one line, no traceback, and
    params.yaml untouched."""
    import shutil
    import subprocess
    import sys
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "conf", repo / "conf")
    (repo / "params.yaml").write_text("untouched\n")
    done = subprocess.run([sys.executable, "-m", "sae.config", *argv], cwd=repo, capture_output=True, text=True)
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr, done.stderr
    assert message in done.stderr
    assert (repo / "params.yaml").read_text() == "untouched\n"


def test_the_compose_command_helps_and_runs_from_a_subdirectory(tmp_path):
    import shutil
    import subprocess
    import sys
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "conf", repo / "conf")
    (repo / "sub").mkdir()
    done = subprocess.run([sys.executable, "-m", "sae.config", "--help"], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m sae.config")
    done = subprocess.run([sys.executable, "-m", "sae.config", "scale=tiny"], cwd=repo / "sub", capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load((repo / "params.yaml").read_text())["scale"] == "tiny"


@pytest.mark.parametrize("scale", ["quick", "default", "tiny"])
def test_every_dataset_a_paper_can_run_takes_this_scales_budget(scale):
    """Naming any of a paper's datasets (or a stand-in for one) in a reduced scale never silently
    trains for the paper's budget: every model, fine-tuning and sweep stays below paper scale."""
    paper_scale = validate(compose("paper"))
    raw = compose(scale)
    for paper in catalog.PAPER_IDS:
        for dataset in (d for d, info in catalog.DATASETS.items()
                        if info.stands_in_for in catalog.PAPERS[paper].datasets):
            run = copy.deepcopy(raw)
            run["datasets"] = list(dict.fromkeys([*run["datasets"], dataset]))
            run[paper]["datasets"] = [dataset]
            if paper == "makhzani2014":
                run[paper]["filters"]["datasets"] = [dataset]
            params = validate(run)
            paper_ds = catalog.stands_in_for(dataset)
            protocol = params.protocol(paper)
            if paper == "arpit2016":
                assert sweep_settings(params, paper, dataset).epochs < \
                    sweep_settings(paper_scale, paper, paper_ds).epochs, (scale, paper, dataset)
                continue
            for model in protocol.models:
                epochs = run_config(params, paper, dataset, model).loop.epochs
                full = run_config(paper_scale, paper, paper_ds, model).loop.epochs
                assert below_paper_scale(epochs, full, scale, paper, paper_ds, model), (scale, paper, dataset, model, epochs)
            labelled = catalog.DATASETS[dataset].kind not in ("patches", "pixel_patches")  # fine-tuning needs labels
            if labelled and protocol.finetune is not None and protocol.finetune.models:
                ours = finetune_settings(params, paper, dataset).epochs
                theirs = finetune_settings(paper_scale, paper, paper_ds).epochs
                assert below_paper_scale(ours, theirs, scale, paper, paper_ds), (scale, paper, dataset, ours)


def test_the_stage_enumeration_is_what_dvc_expands():
    """sae.config.protocol.stages (what the checks and the report enumerate) names exactly the model
    stages `dvc stage list --all` expands from the dvc.yaml files' matrices for the committed params.yaml,
    each in its kind's dvc.yaml."""
    import subprocess
    import sys
    from sae.lockfile import address
    listed = [name.split(":")[-1] for name in subprocess.run(
        [sys.executable, "-m", "dvc", "stage", "list", "--all", "--name-only"], cwd=ROOT, check=True,
        capture_output=True, text=True).stdout.split() if address(name.split(":")[-1]) == name]
    kinds = {"train", "evaluate", "finetune", "sweep"}
    dvc_names = {n for n in listed if "@" in n and n.split("-")[0] in kinds}
    ours = {(f"train-{p}-filters" if k == "filters" else f"{k}-{p}") + (f"@{d}-{m}" if m else f"@{d}")
            for k, p, d, m in stages(load(ROOT / "params.yaml"))}
    assert ours == dvc_names


def test_the_compose_command_names_a_yaml_error_in_conf(tmp_path):
    """DVC words a broken conf/ file as an 'unexpected error'; python -m sae.config names the file."""
    import shutil
    import subprocess
    import sys
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "conf", repo / "conf")
    with open(repo / "conf" / "amini2018.yaml", "a") as f:
        f.write("  broken: [1, 2\n")
    done = subprocess.run([sys.executable, "-m", "sae.config"], cwd=repo, capture_output=True, text=True)
    assert done.returncode != 0 and done.stderr.strip().count("\n") == 0, done.stderr
    assert done.stderr.startswith("error: conf/: YAML error") and "amini2018.yaml" in done.stderr
