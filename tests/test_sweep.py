"""003's coefficient sweep (sae.sweep) and its figures (sae.report.sweep_figures), on tiny data."""
import copy
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sae.errors import ParamError
from sae.models import REGISTRY
from sae.params import load
from sae.report import sweep_figures as sf
from sae.sweep import (COLUMNS, PAPER_GRID, PROTOCOL_MODEL, SWEEP_MODELS, configurations, model_options,
                       run_sweep, sweep_config, table, train_config, train_point)
from sae.train import train_model

ROOT = Path(__file__).parent.parent
CFG = {"hidden": 6, "epochs": 3, "batch": 50, "lr": 0.002, "momentum": 0.9, "train_rows": 0,
       "eval_split": "test", "input": "standardize", "workers": 1}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny fits run on one thread, as the sweep itself does (and fast on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data(n=150, dim=10, seed=0):
    """Standardised-looking toy rows: train, probe, eval."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g), torch.randn(20, dim, generator=g), torch.randn(60, dim, generator=g)


def _params(**sweep_over):
    sweep = {"datasets": ["mnist5k"], "models": list(SWEEP_MODELS),
             "grid": {"coefficients": [0, 0.01, 0.25], "activations": ["relu", "sigmoid", "softplus"],
                      "unit_norm": [True, False]},
             "protocol": {**CFG}, "mnist5k": {"hidden": 4}}
    sweep.update(sweep_over)
    return {"datasets": ["mnist5k", "patches"], "seed": 0, "device": "cpu", "sweep": sweep}


# --- coefficient 0 is a plain autoencoder --------------------------------------------


def test_sweep_models_are_tied_like_the_registry():
    # 003 models are tied in the registry; the sweep (and its plain-AE reference) must match
    for m in ("cae", "mdae", "sae0", "edae"):
        assert REGISTRY[m].defaults["tied"] is True
    assert PROTOCOL_MODEL["tied"] is True and PROTOCOL_MODEL["weight_decay"] == 0.0


@pytest.mark.parametrize("model_id", SWEEP_MODELS)
@pytest.mark.parametrize("activation, unit_norm", [("relu", True), ("sigmoid", False), ("softplus", True)])
def test_coefficient_zero_trains_exactly_a_plain_autoencoder(model_id, activation, unit_norm):
    x, xp, xe = _data()
    _, model = train_point(model_id, CFG, (0.0, activation, unit_norm), x, xp, xe, seed=3, return_model=True)
    ae_opts = {**PROTOCOL_MODEL, "activation": activation, "unit_norm": unit_norm}
    ae, _ = train_model("ae", train_config(CFG, ae_opts), x, xp, seed=3, progress=False)
    state, ref = model.state_dict(), ae.state_dict()
    assert state.keys() == ref.keys()
    for k in ref:
        assert torch.equal(state[k], ref[k]), k
    # and the coefficient does act when it is not zero
    _, other = train_point(model_id, CFG, (0.25, activation, unit_norm), x, xp, xe, seed=3, return_model=True)
    assert not torch.equal(other.W, ae.W)


def test_coefficient_maps_to_the_papers_meaning():
    assert model_options("dae", 0.36, "relu", True)["level"] == 0.36  # noise variance sigma^2
    assert model_options("dae", 0.36, "relu", True)["corruption"] == "gaussian"
    assert model_options("edae", 0.36, "relu", True)["level"] == 0.36
    for m in ("cae", "mdae", "sae0"):
        assert model_options(m, 0.36, "sigmoid", False)["lam"] == 0.36
    with pytest.raises(ParamError, match="ae"):
        model_options("ae", 0.1, "relu", True)


# --- unit-length constraint ----------------------------------------------------------


@pytest.mark.parametrize("model_id", SWEEP_MODELS)
def test_unit_length_holds_for_every_encoder_row_after_training(model_id):
    x, xp, xe = _data()
    _, model = train_point(model_id, CFG, (0.25, "softplus", True), x, xp, xe, seed=0, return_model=True)
    norms = model.W.detach().norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    _, free = train_point(model_id, CFG, (0.25, "softplus", False), x, xp, xe, seed=0, return_model=True)
    assert not torch.allclose(free.W.detach().norm(dim=1), torch.ones(free.hidden), atol=1e-3)


# --- the table -----------------------------------------------------------------------


@pytest.mark.parametrize("model_id", ["dae", "sae0"])
def test_table_has_one_finite_row_per_grid_point(model_id):
    cfg = sweep_config(_params(), "mnist5k", model_id)
    x, xp, xe = _data()
    rows = run_sweep(model_id, cfg, x, xp, xe, seed=0, progress=False)
    df = table("mnist5k", cfg, rows, n_train=x.shape[0], n_eval=xe.shape[0])
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 3 * 3 * 2
    keys = df[["coefficient", "activation", "unit_norm"]]
    assert not keys.duplicated().any()
    assert set(map(tuple, keys.itertuples(index=False))) == set(configurations(cfg))
    assert (df["diverged"] == 0).all()
    for col in ("activation_fraction", "dead_fraction"):
        assert np.isfinite(df[col]).all() and df[col].between(0, 1).all(), col
    assert np.isfinite(df["recon_error"]).all() and (df["recon_error"] >= 0).all()
    assert (df["model"] == model_id).all() and (df["hidden"] == 4).all()


def test_two_workers_give_the_same_table_as_one():
    params = _params(grid={"coefficients": [0, 0.25], "activations": ["relu"], "unit_norm": [True, False]})
    x, xp, xe = _data()
    one = run_sweep("cae", sweep_config(params, "mnist5k"), x, xp, xe, seed=0, progress=False)
    params["sweep"]["protocol"]["workers"] = 2
    two = run_sweep("cae", sweep_config(params, "mnist5k"), x, xp, xe, seed=0, progress=False)
    assert one == two


def test_divergence_is_recorded_not_raised():
    x, xp, xe = _data()
    cfg = {**CFG, "lr": 1e6}
    row = train_point("cae", cfg, (0.25, "relu", False), 100 * x, xp, xe, seed=0)
    assert row["diverged"] == 1 and math.isnan(row["activation_fraction"])


# --- params --------------------------------------------------------------------------


def test_sweep_config_resolves_dataset_overrides():
    cfg = sweep_config(_params(), "mnist5k", "cae")
    assert cfg["hidden"] == 4 and cfg["epochs"] == 3 and cfg["coefficients"] == [0.0, 0.01, 0.25]


@pytest.mark.parametrize("change, key", [
    (lambda s: s.pop("mnist5k"), "sweep.mnist5k"),
    (lambda s: s["mnist5k"].update(hiden=3), "sweep.mnist5k.hiden"),
    (lambda s: s["protocol"].update(epochs=0), "sweep.protocol.epochs"),
    (lambda s: s["protocol"].pop("lr"), "sweep.protocol.lr"),
    (lambda s: s["grid"].update(activations=["tanh"]), "sweep.grid.activations"),
    (lambda s: s["grid"].update(coefficients=[0, -1]), "sweep.grid.coefficients"),
    (lambda s: s["grid"].update(unit_norm=[True, True]), "sweep.grid.unit_norm"),
    (lambda s: s.update(models=["ae"]), "sweep.models"),
    (lambda s: s.update(datasets=["patches"]), "sweep.datasets"),
    (lambda s: s["protocol"].update(eval_split="train"), "sweep.protocol.eval_split"),
])
def test_bad_sweep_params_name_the_key(change, key):
    params = copy.deepcopy(_params())
    change(params["sweep"])
    with pytest.raises(ParamError, match=key.replace(".", r"\.")):
        sweep_config(params, "mnist5k", "cae")


def test_a_sweep_dataset_needs_its_prepare_stage():
    params = _params(datasets=["mnist"], mnist={})
    with pytest.raises(ParamError, match="not in datasets"):
        sweep_config(params, "mnist", "cae")


def test_params_yaml_sweep_group_is_valid_and_uses_the_papers_grid():
    params = load(ROOT / "params.yaml")
    if "sweep" not in params:
        pytest.skip("params.yaml has no sweep group yet (issue 5)")
    assert tuple(params["sweep"]["grid"]["coefficients"]) == PAPER_GRID
    for d in params["sweep"]["datasets"]:
        for m in params["sweep"]["models"]:
            sweep_config(params, d, m)
    for d in ("mnist", "cifar10_patches"):  # the paper's sets run the paper's protocol
        cfg = sweep_config({**params, "datasets": [d], "sweep": {**params["sweep"], "datasets": [d]}}, d)
        assert (cfg["hidden"], cfg["epochs"], cfg["batch"], cfg["momentum"]) == (1000, 50, 50, 0.9)


def test_paper_grid():
    assert PAPER_GRID == (0, 0.001, 0.01, 0.04, 0.09, 0.16, 0.25, 0.36, 0.49, 0.64, 0.81, 1.0)


# --- figures and prediction checks ---------------------------------------------------


def _fake_table():
    rows = []
    for m in SWEEP_MODELS:
        for a in ("relu", "sigmoid", "softplus"):
            for u in (True, False):
                for c in PAPER_GRID:
                    falls = m in ("dae", "sae0", "edae")
                    af = 0.5 - 0.4 * c if falls else 0.5
                    rows.append({"dataset": "mnist5k", "model": m, "activation": a, "unit_norm": u, "coefficient": c,
                                 "activation_fraction": af, "dead_fraction": 0.1 * c, "recon_error": 0.1 + c,
                                 "diverged": 0, "eval_split": "test", "n_eval": 60, "hidden": 4, "epochs": 3,
                                 "train_rows": 150, "lr": 0.002})
    df = pd.DataFrame(rows)
    bad = (df["model"] == "sae0") & (df["activation"] == "relu") & (df["coefficient"] == 1.0)
    df.loc[bad, ["activation_fraction", "dead_fraction", "recon_error"]] = math.nan
    df.loc[bad, "diverged"] = 1
    return df


def test_prediction_checks_describe_the_trends():
    checks = sf.prediction_checks(_fake_table())
    assert set(checks["prediction"]) == {"a", "b", "c", "fig3"}
    assert checks["holds"].all()
    a = checks[checks["prediction"] == "a"]
    assert set(a["model"]) == {"cae", "mdae"} and (a["observed"] == "flat").all()
    assert sf.trend([0, 0.5, 1], [0.2, 0.5, 0.9])["observed"] == "rises"
    assert sf.trend([0, 0.5, 1], [0.2, 0.6, 0.1])["observed"] == "mixed"


def test_figures_and_stage_scripts_write_their_outputs(tmp_path, monkeypatch):
    """stages/sweep.py and stages/sweep_figures.py end to end on a tiny prepared set."""
    import importlib.util

    from sae.data import prepared
    rng = np.random.default_rng(0)
    splits = prepared.Splits(x_train=rng.random((120, 16), dtype=np.float32), y_train=rng.integers(0, 2, 120),
                             x_val=rng.random((30, 16), dtype=np.float32), y_val=rng.integers(0, 2, 30),
                             x_test=rng.random((40, 16), dtype=np.float32), y_test=rng.integers(0, 2, 40),
                             image_shape=(1, 4, 4))
    prepared.write(splits, tmp_path / "data/prepared/mnist5k", dataset="mnist5k", std_eps=0.1)
    params = _params(models=["cae", "sae0"], mnist5k={"hidden": 5, "train_rows": 100},
                     grid={"coefficients": [0, 0.04, 1.0], "activations": ["relu", "sigmoid"], "unit_norm": [True]})
    monkeypatch.chdir(tmp_path)

    def stage(name):
        spec = importlib.util.spec_from_file_location(name, ROOT / "stages" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    for m in ("cae", "sae0"):
        stage("sweep").main(params, ["mnist5k", m])
        df = pd.read_csv(tmp_path / "sweeps/mnist5k" / f"{m}.csv")
        assert len(df) == 6 and (df["train_rows"] == 100).all() and (df["n_eval"] == 40).all()
    stage("sweep_figures").main(params, ["mnist5k"])
    for name in ("sweep_mnist5k.png", "sweep_mnist5k_recon.png"):
        png = tmp_path / "reports/figures" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    checks = pd.read_csv(tmp_path / "reports/figures/sweep_mnist5k_predictions.csv")
    assert set(checks["prediction"]) == {"a", "b"}  # only cae/sae0 with relu/sigmoid, constrained, were swept
    with pytest.raises(ParamError, match="sweep.datasets"):
        stage("sweep_figures").main(params, ["patches"])


def test_dataset_titles_name_the_stand_in():
    assert sf.dataset_title("mnist5k") == "mnist5k (stand-in for MNIST)"
    assert sf.dataset_title("patches") == "patches (stand-in for CIFAR-10 8x8 patches)"
    assert sf.dataset_title("mnist") == "MNIST"
