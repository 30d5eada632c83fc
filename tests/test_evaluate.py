"""evaluate: the metrics of every seed (and k) of a trained batch, summarised over seeds, and
k-sparse features against raw pixels."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sae import evaluate
from sae.base import stats
from sae.config import schema, validate_group
from sae.data.prepared import Splits
from sae.models import build
from sae.models.batch import layout
from sae.base.rng import init_generators
from sae.train import fit
from tests.test_classify import CLASSIFY, PARAMS, prepared_dir, raw_metrics, tensors

EVALUATE = validate_group(schema.Evaluate, PARAMS["evaluate"], "evaluate")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "n_classes"}


def _trained(model_id, d, seeds, epochs, hidden, per_model=None, **options):
    model = build(model_id, d["x_train"].shape[1], hidden, n_models=len(seeds), generators=init_generators(seeds),
                  per_model=per_model, **options)
    fit(model, d["x_train"], d["x_val"][:500], epochs=epochs, batch=50, lr=0.003, seeds=seeds, progress=False)
    return model


def test_ksparse_features_beat_raw_pixels_on_mnist5k(tmp_path_factory):
    """002 Table 1 in small: a k-sparse AE (002's MNIST settings: 1000 units, k = 25, a few
    epochs) gives features on which the same logistic regression errs less than on raw pixels."""
    d = tensors(prepared_dir(tmp_path_factory, "mnist5k"))
    model = _trained("ksparse", d, [0], 3, 1000, k=25, k_start=100, alpha=3, init="gaussian", init_std=0.01)
    ks, codes = evaluate.evaluate_one(model, _data(d), n_classes=10, classify_cfg=CLASSIFY, alphas=EVALUATE.alphas)
    raw = raw_metrics(tmp_path_factory, "mnist5k")  # the same classifier on raw pixels
    print(f"mnist5k test error: ksparse {ks['logreg']['test_error']:.4f} (alpha {ks['logreg']['alpha']:g}), "
          f"raw {raw['logreg']['test_error']:.4f}")
    assert ks["logreg"]["test_error"] < raw["logreg"]["test_error"]
    assert ks["logreg"]["alpha"] in EVALUATE.alphas
    assert ks["units"] == round(ks["logreg"]["alpha"] * 25) and codes.shape == (1000, 1000)
    assert 0 < ks["activation_fraction"] <= ks["units"] / 1000 + 1e-6
    assert raw["recon_error"] == {"mean": 0.0, "sample_std": 0.0}


def test_ksparse_alpha_is_chosen_on_validation(tmp_path_factory):
    """Every alpha is tried; the chosen one has the lowest validation error."""
    d = tensors(prepared_dir(tmp_path_factory, "optdigits"))
    model = _trained("ksparse", d, [0], 4, 100, k=10, k_start=40, alpha=2)
    errors, k_only = {}, None
    for a in (1.0, 3.0):
        r, _ = evaluate.evaluate_one(model, _data(d), n_classes=10, classify_cfg=CLASSIFY, alphas=[a])
        errors[a] = r["logreg"]["val_error"]
        assert r["units"] == round(a * 10)
        k_only = r["logreg"]["test_error"] if a == 1.0 else k_only
        assert ("k_test_error" in r["logreg"]) == (a == 1.0)
    both, _ = evaluate.evaluate_one(model, _data(d), n_classes=10, classify_cfg=CLASSIFY, alphas=[1.0, 3.0])
    assert both["logreg"]["val_error"] == min(errors.values())
    assert both["logreg"]["alpha"] == min(errors, key=lambda a: (errors[a], a))
    # the k units of training (alpha = 1) keep their own test error beside the chosen alpha's (002 sec. 2.2)
    assert both["logreg"]["k_test_error"] == k_only


def test_a_batch_is_evaluated_per_seed_and_per_k_and_summarised_over_seeds(tmp_path_factory):
    d = tensors(prepared_dir(tmp_path_factory, "optdigits"))
    lay = layout("ksparse", {"k": 10, "k_start": 40, "k_sweep": [5]}, [0, 1])
    model = _trained("ksparse", d, lay.model_seeds, 2, 100, per_model=lay.per_model(), alpha=2)
    cfg = EVALUATE.model_copy(update={"alphas": [1.0, 2.0]})
    out, hist = evaluate.evaluate_batch(model, lay, _data(d), n_classes=10, classify_cfg=CLASSIFY, evaluate_cfg=cfg)
    assert out["n_seeds"] == 2 and out["seeds"] == [0, 1] and set(out["variants"]) == {"k=5"}
    one = evaluate.evaluate_one(model.select(1), _data(d), n_classes=10, classify_cfg=CLASSIFY, alphas=[1.0, 2.0],
                                seed=1)[0]
    assert out["gini"]["per_seed"][1] == one["gini"]["mean"]  # the per-seed values are the models' own
    assert out["gini"] == stats.summary(out["gini"]["per_seed"], sample_std=out["gini"]["sample_std"])
    assert out["gini"]["std"] > 0 and out["logreg"]["test_error"]["n"] == 2
    assert out["variants"]["k=5"]["k"] == 5 and out["variants"]["k=5"]["units"] <= 10
    assert {v for v, *_ in hist} == {"", "k=5"}
    assert sum(c for v, _, _, c in hist if v == "") == out["n_test"] * 100  # every code entry of one seed
    json.dumps(out, allow_nan=False)


def test_measures_of_known_codes():
    h = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]])
    m = evaluate.measures(h, 0.1)
    assert m["hoyer"]["mean"] == pytest.approx(0.5)
    assert m["hoyer"]["sample_std"] == pytest.approx(0.5) == m["ssd"]
    assert m["activation_fraction"] == pytest.approx(5 / 8)
    assert m["dead_fraction"] == 0.0
    one = evaluate.measures(torch.ones(3, 1), 0.0)
    assert one["hoyer"]["mean"] is None and one["ssd"] is None  # undefined, not NaN


def test_histogram_counts_every_entry():
    h = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    hist = evaluate.histogram(h, 3)
    assert sum(hist["count"]) == 4 and hist["left"][0] == 0.0 and hist["right"][-1] == 3.0
    flat = evaluate.histogram(torch.zeros(2, 2), 4)  # constant codes: no zero-width range
    assert sum(flat["count"]) == 4


def _unlabelled(n=200, dim=16, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    s = Splits(x[:120], None, x[120:160], None, x[160:], None, (1, 4, 4))
    return {k: (None if v is None else torch.from_numpy(v)) for k, v in vars(s).items() if k != "image_shape"}


def test_unlabelled_set_gets_measures_and_no_classifier():
    model = build("ksparse", 16, 32, k=4, k_start=8, alpha=2.0, generators=init_generators([0]))
    r, _ = evaluate.evaluate_one(model, _unlabelled(), n_classes=0, classify_cfg=CLASSIFY, alphas=[1, 2])
    assert r["logreg"]["test_error"] is None and "unlabelled" in r["logreg"]["skipped"]
    assert r["logreg"]["alpha"] == 2.0 and r["units"] == 8


def test_nonfinite_values_become_null_with_a_reason():
    model = build("ae", 16, 8)
    with torch.no_grad():
        model.W[0, 0, 0] = float("nan")  # a broken model: NaN codes
    lay = layout("ae", {}, [0])
    out, hist = evaluate.evaluate_batch(model, lay, _unlabelled(), n_classes=0, classify_cfg=CLASSIFY,
                                        evaluate_cfg=EVALUATE)
    text = json.dumps(out, allow_nan=False)  # raises on NaN
    assert "recon_error" in out["nonfinite"] and "NaN" not in text
    assert all(math.isfinite(c) for *_, c in hist)
