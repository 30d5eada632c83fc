"""evaluate@D-M: the metrics dict, the stage's files, and ksparse features versus raw pixels."""
from __future__ import annotations

import csv
import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sae import classify, evaluate
from sae.data import prepared
from sae.data.prepared import Splits
from sae.errors import ParamError
from sae.models import build
from sae.params import model_config
from sae.train import train_model
from tests.test_classify import prepared_dir, raw_metrics, tensors

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
CLASSIFY = classify.check_config(PARAMS["classify"])
EVALUATE = evaluate.check_config(PARAMS["evaluate"])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _stage(name: str):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(model, d, **kw):
    args = dict(n_classes=d["n_classes"], classify_cfg=CLASSIFY, alphas=EVALUATE["alphas"], hist_bins=20)
    args.update(kw)
    return evaluate.evaluate(model, {k: v for k, v in d.items() if k != "n_classes"}, **args)


def _check_keys(result: dict, *, ksparse: bool = False) -> None:
    for key in evaluate.MEASURE_KEYS + ("logreg",):
        assert key in result, key
    for key in ("recon_error", "gini", "hoyer"):
        assert set(result[key]) >= {"mean", "std"}, key
    assert set(result["logreg"]) >= set(evaluate.LOGREG_KEYS)
    assert ("alpha" in result["logreg"]) == ksparse
    assert not evaluate.has_nan(result)
    json.dumps(result, allow_nan=False)


def test_ksparse_features_beat_raw_pixels_on_mnist5k(tmp_path_factory):
    """002 Table 1 in small: a k-sparse AE (params.yaml's mnist5k config, a few epochs) gives
    features on which the same logistic regression errs less than on raw pixels."""
    folder = prepared_dir(tmp_path_factory, "mnist5k")
    cfg = dict(model_config(PARAMS, "mnist5k", "ksparse"), epochs=3)
    d = tensors(folder, cfg["input"])
    model, _ = train_model("ksparse", cfg, d["x_train"], d["x_val"][:500], seed=0, progress=False)
    ks, hist = _run(model, d)
    raw = raw_metrics(tmp_path_factory, "mnist5k")  # the same classifier on raw pixels
    _check_keys(ks, ksparse=True)
    _check_keys(raw)
    print(f"mnist5k test error: ksparse {ks['logreg']['test_error']:.4f} (alpha {ks['logreg']['alpha']:g}), "
          f"raw {raw['logreg']['test_error']:.4f}")
    assert ks["logreg"]["test_error"] < raw["logreg"]["test_error"]
    assert ks["logreg"]["alpha"] in EVALUATE["alphas"]
    assert ks["units"] == min(round(ks["logreg"]["alpha"] * cfg["k"]), cfg["hidden"])
    assert ks["dead_fraction"] < 0.5 and 0 < ks["activation_fraction"] <= ks["units"] / cfg["hidden"]
    assert raw["recon_error"] == {"mean": 0.0, "std": 0.0}
    assert sum(hist["count"]) == 1000 * cfg["hidden"]


def test_ksparse_alpha_is_chosen_on_validation(tmp_path_factory):
    """Every alpha is tried; the chosen one has the lowest validation error."""
    d = tensors(prepared_dir(tmp_path_factory, "optdigits"))
    cfg = dict(model_config(PARAMS, "optdigits", "ksparse"), epochs=4)
    model, _ = train_model("ksparse", cfg, d["x_train"], d["x_val"], seed=0, progress=False)
    errors = {}
    for a in (1.0, 3.0):
        r, _ = _run(model, d, alphas=[a])
        errors[a] = r["logreg"]["val_error"]
        assert r["units"] == min(round(a * cfg["k"]), cfg["hidden"])
    both, _ = _run(model, d, alphas=[1.0, 3.0])
    assert both["logreg"]["val_error"] == min(errors.values())
    assert both["logreg"]["alpha"] == min(errors, key=lambda a: (errors[a], a))


def test_measures_of_known_codes():
    h = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]])
    m = evaluate.measures(h, 0.1)
    assert m["hoyer"]["mean"] == pytest.approx(0.5)
    assert m["hoyer"]["std"] == pytest.approx(0.5) == m["ssd"]
    assert m["activation_fraction"] == pytest.approx(5 / 8)
    assert m["dead_fraction"] == 0.0 and m["units"] == 4 and m["threshold"] == 0.1
    one = evaluate.measures(torch.ones(3, 1), 0.0)
    assert one["hoyer"]["mean"] is None and one["ssd"] is None  # undefined, not NaN


def test_histogram_counts_every_entry():
    h = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    hist = evaluate.histogram(h, 3)
    assert sum(hist["count"]) == 4 and hist["left"][0] == 0.0 and hist["right"][-1] == 3.0
    flat = evaluate.histogram(torch.zeros(2, 2), 4)  # constant codes: no zero-width range
    assert sum(flat["count"]) == 4


def _unlabelled(n=200, dim=16, seed=0) -> Splits:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return Splits(x[:120], None, x[120:160], None, x[160:], None, (1, 4, 4))


def test_unlabelled_set_gets_measures_and_no_classifier():
    s = _unlabelled()
    d = {k: (None if v is None else torch.from_numpy(v)) for k, v in vars(s).items() if k != "image_shape"}
    torch.manual_seed(0)
    model = build("ksparse", 16, 32, k=4, k_start=8, alpha=2.0)
    r, _ = evaluate.evaluate(model, d, n_classes=0, classify_cfg=CLASSIFY, alphas=[1, 2])
    _check_keys(r, ksparse=True)
    assert r["logreg"]["test_error"] is None and "unlabelled" in r["logreg"]["skipped"]
    assert r["logreg"]["alpha"] == 2.0 and r["units"] == 8


def test_nonfinite_values_become_null_with_a_reason():
    s = _unlabelled()
    d = {k: (None if v is None else torch.from_numpy(v)) for k, v in vars(s).items() if k != "image_shape"}
    model = build("ae", 16, 8)
    with torch.no_grad():
        model.W[0, 0] = float("nan")  # a broken model: NaN codes
    r, hist = evaluate.evaluate(model, d, n_classes=0, classify_cfg=CLASSIFY)
    assert not evaluate.has_nan(r) and not evaluate.has_nan(hist)
    assert "recon_error.mean" in r["nonfinite"]


@pytest.mark.parametrize("cfg,match", [
    ({"alphas": [0.5], "hist_bins": 10, "batch": 10, "threads": 1}, "evaluate.alphas"),
    ({"alphas": [], "hist_bins": 10, "batch": 10, "threads": 1}, "evaluate.alphas"),
    ({"alphas": [1], "hist_bins": 0, "batch": 10, "threads": 1}, "evaluate.hist_bins"),
    ({"alphas": [1], "hist_bins": 10, "batch": 10, "threads": -1}, "evaluate.threads"),
    ({"alphas": [1], "hist_bins": 10, "threads": 1}, "evaluate.batch: missing"),
    ({"alphas": [1], "hist_bins": 10, "batch": 10, "threads": 1, "x": 1}, "evaluate.x"),
])
def test_bad_config_names_the_key(cfg, match):
    with pytest.raises(ParamError, match=match):
        evaluate.check_config(cfg)


def _write_model(root: Path, dataset: str, model_id: str, x_train: np.ndarray, epochs: int = 1) -> None:
    """models/D/M/{model.pt,hparams.json} as stages/train.py writes them."""
    cfg = dict(model_config(PARAMS, dataset, model_id), epochs=epochs)
    x = torch.from_numpy(prepared.input_view(x_train, _stats(root, dataset), cfg["input"]))
    model, _ = train_model(model_id, cfg, x, x[:50], seed=0, progress=False)
    out = root / "models" / dataset / model_id
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "model.pt")
    hparams = {"dataset": dataset, "model": model_id, "seed": 0, "in_dim": x.shape[1], **cfg}
    (out / "hparams.json").write_text(json.dumps(hparams))


def _stats(root, dataset):
    return np.load(root / "data" / "prepared" / dataset / "stats.npz")


def test_stage_writes_metrics_json_and_histogram(tmp_path, tmp_path_factory, monkeypatch):
    """stages/evaluate.py end to end on optdigits: flat JSON with every key, no NaN, histogram CSV;
    same inputs give the identical file (CPU)."""
    src = prepared_dir(tmp_path_factory, "optdigits")
    dst = tmp_path / "data" / "prepared" / "optdigits"
    shutil.copytree(src, dst)
    x_train = np.load(dst / "x_train.npy")
    for model_id in ("ae", "ksparse", "raw"):
        _write_model(tmp_path, "optdigits", model_id, x_train)
    monkeypatch.chdir(tmp_path)
    params = dict(PARAMS, device="cpu", seed=0)
    stage = _stage("evaluate")
    for model_id in ("ae", "ksparse", "raw"):
        stage.main(params, ["optdigits", model_id])
        path = tmp_path / "metrics" / "optdigits" / f"{model_id}.json"
        text = path.read_text()
        assert "NaN" not in text and "Infinity" not in text
        result = json.loads(text)
        _check_keys(result, ksparse=model_id == "ksparse")
        assert result["input"] == model_config(PARAMS, "optdigits", model_id)["input"]
        assert 0 <= result["logreg"]["test_error"] <= 1 and math.isfinite(result["logreg"]["l2"])
        with open(tmp_path / "metrics" / "optdigits" / f"{model_id}_hist.csv") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == PARAMS["evaluate"]["hist_bins"]
        width = PARAMS["train"]["optdigits"]["hidden"] if model_id == "ksparse" else result["units"]
        assert sum(int(r["count"]) for r in rows) == result["n_test"] * width  # every code entry
    first = (tmp_path / "metrics" / "optdigits" / "ae.json").read_text()
    stage.main(params, ["optdigits", "ae"])
    assert (tmp_path / "metrics" / "optdigits" / "ae.json").read_text() == first


def test_stage_missing_model_names_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from sae.errors import DataError
    with pytest.raises(DataError, match="models/optdigits/ae/model.pt"):
        _stage("evaluate").main(dict(PARAMS), ["optdigits", "ae"])
