"""003's coefficient sweep (sae.sweep) on tiny data: every coefficient and seed of one
(activation, constraint) trained as one batch, each point as it would be alone."""
import math

import pandas as pd
import pytest
import torch

from sae.config.schema import SweepGrid, SweepSettings
from sae.models import REGISTRY, build
from sae.base.rng import init_generators
from sae.sweep import COEFFICIENT_KEY, COLUMNS, PAPER_GRID, PROTOCOL_MODEL, model_options, run_sweep, table, train_grid
from sae.train import fit

CFG = SweepSettings(hidden=6, epochs=3, batch=50, lr=0.002, momentum=0.9, train_rows=0, eval_split="test",
                    input="standardize")


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data(n=150, dim=10, seed=0):
    """Standardised-looking toy rows: train, probe, eval."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g), torch.randn(20, dim, generator=g), torch.randn(60, dim, generator=g)


def test_paper_grid():
    assert PAPER_GRID == (0, 0.001, 0.01, 0.04, 0.09, 0.16, 0.25, 0.36, 0.49, 0.64, 0.81, 1.0)


def test_sweep_models_are_tied_with_the_protocols_options():
    for model_id in COEFFICIENT_KEY:
        m = build(model_id, 10, 4, **model_options(model_id, "relu", True))
        assert m.tied and m.decoder == "linear" and m.weight_decay == 0 and m.unit_norm
        assert COEFFICIENT_KEY[model_id] in REGISTRY[model_id].per_model
    assert PROTOCOL_MODEL["init"] == "glorot"


@pytest.mark.parametrize("model_id", list(COEFFICIENT_KEY))
def test_each_point_of_a_batch_is_the_fit_it_would_be_alone(model_id):
    x, xp, xe = _data()
    coefficients, seeds = [0.0, 0.04, 0.25], [0, 1]
    rows = train_grid(model_id, CFG, coefficients, seeds, "sigmoid", True, x, xp, xe, progress=False)
    assert [(r["coefficient"], r["seed"]) for r in rows] == [(c, s) for c in coefficients for s in seeds]
    for r in rows:
        options = {**model_options(model_id, "sigmoid", True), COEFFICIENT_KEY[model_id]: r["coefficient"]}
        alone = build(model_id, 10, 6, generators=init_generators([r["seed"]]), **options)
        fit(alone, x, xp, epochs=3, batch=50, lr=0.002, momentum=0.9, seeds=[r["seed"]], progress=False)
        h = alone.eval().encode(xe)
        frac = float((h > 0.1).float().mean())  # sigmoid threshold, 003 sec. 3
        assert r["activation_fraction"] == pytest.approx(frac, abs=1e-6), r


def test_coefficient_zero_is_a_plain_tied_autoencoder():
    x, xp, xe = _data()
    rows = {m: train_grid(m, CFG, [0.0], [0], "relu", False, x, xp, xe, progress=False)[0] for m in ("cae", "sae0")}
    assert rows["cae"]["recon_error"] == rows["sae0"]["recon_error"]


def test_table_has_one_finite_row_per_point_and_seed():
    x, xp, xe = _data()
    grid = SweepGrid(coefficients=[0, 0.25], activations=["relu", "softplus"], unit_norm=[True, False])
    rows = run_sweep("dae", CFG, grid, [0, 1], x, xp, xe, progress=False)
    df = table("toy", CFG, rows, n_train=150, n_eval=60)
    assert list(df.columns) == list(COLUMNS) and len(df) == 2 * 2 * 2 * 2
    assert df["diverged"].sum() == 0 and df["activation_fraction"].between(0, 1).all()


def test_divergence_is_recorded_not_raised():
    x, xp, xe = _data()
    big = CFG.model_copy(update={"lr": 1e3})
    rows = train_grid("sae0", big, [0.0, 1.0], [0], "relu", False, x * 100, xp, xe, progress=False)
    assert any(r["diverged"] for r in rows)
    for r in rows:
        if r["diverged"]:
            assert math.isnan(r["activation_fraction"])
    assert len(pd.DataFrame(rows)) == 2
