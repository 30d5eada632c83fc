"""Logistic regression on fixed features (sae.classify): the accuracy bar, and model selection
that never sees test labels."""
from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sae import classify
from sae.config import data_config as check_data, schema, validate_group
from sae.data import prepared, sources
from sae.base.errors import ParamError

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
CLASSIFY = validate_group(schema.Classify, PARAMS["classify"], "classify")
FIT = {k: getattr(CLASSIFY, k) for k in ("epochs", "batch", "lr", "optimizer", "momentum")}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def prepared_dir(tmp_path_factory, dataset: str) -> Path:
    """Prepared folder of an embedded dataset, built once per test session from the installed
    package with params.yaml's split settings (the workspace's data/ is never read)."""
    root = tmp_path_factory.getbasetemp() / "sae_prepared"
    out = root / "prepared" / dataset
    if not (out / "meta.json").is_file():
        cfg = check_data(dataset, PARAMS["data"][dataset])
        raw = root / "raw" / dataset
        sources.fetch(dataset, raw)
        prepared.write(sources.load(dataset, raw, cfg), out, dataset=dataset, std_eps=cfg["std_eps"])
    return out


def tensors(folder: Path, view: str = "pixels") -> dict:
    data = prepared.read(folder, view)
    out = {k: torch.from_numpy(v) for k, v in data.items() if k != "meta"}
    out["n_classes"] = data["meta"]["n_classes"]
    return out


@pytest.fixture(scope="module")
def optdigits(tmp_path_factory):
    return tensors(prepared_dir(tmp_path_factory, "optdigits"))


_RAW: dict = {}


def raw_metrics(tmp_path_factory, dataset: str) -> dict:
    """sae.evaluate's metrics of raw pixels on an embedded set with params.yaml's classifier
    (computed once per session: test_evaluate compares k-sparse features against it)."""
    if dataset not in _RAW:
        from sae import evaluate
        from sae.models import build
        d = tensors(prepared_dir(tmp_path_factory, dataset))
        n_classes = d.pop("n_classes")
        dim = d["x_train"].shape[1]
        _RAW[dataset] = evaluate.evaluate_one(build("raw", dim, dim), d, n_classes=n_classes,
                                              classify_cfg=CLASSIFY)[0]
    return _RAW[dataset]


@pytest.mark.parametrize("name", ["mnist5k", "optdigits"])
def test_raw_pixels_reach_85_percent(name, tmp_path_factory):
    """params.yaml's classifier on raw pixels: >= 85% test accuracy (real MNIST / optdigits digits)."""
    result = raw_metrics(tmp_path_factory, name)["logreg"]
    print(f"{name}: raw-pixel logistic regression test error {result['test_error']:.4f} "
          f"(l2 {result['l2']:g}, validation error {result['val_error']:.4f})")
    assert result["l2"] in CLASSIFY.l2
    assert 1 - result["test_error"] >= 0.85


def test_test_labels_never_reach_model_selection(optdigits, tmp_path_factory):
    """Permuting the test labels leaves the chosen L2 (and the classifier) unchanged; only the
    test error moves. select_l2 has no parameter through which test data could enter."""
    from sae import evaluate
    from sae.models import build
    d = dict(optdigits)
    n_classes = d.pop("n_classes")
    raw = build("raw", d["x_train"].shape[1], d["x_train"].shape[1])
    kwargs = dict(n_classes=n_classes, classify_cfg=CLASSIFY)
    base = raw_metrics(tmp_path_factory, "optdigits")
    perm = torch.randperm(len(d["y_test"]), generator=torch.Generator().manual_seed(1))
    shuffled, _ = evaluate.evaluate_one(raw, {**d, "y_test": d["y_test"][perm]}, **kwargs)
    constant, _ = evaluate.evaluate_one(raw, {**d, "y_test": torch.zeros_like(d["y_test"])}, **kwargs)
    for other in (shuffled, constant):
        assert other["logreg"]["l2"] == base["logreg"]["l2"]
        assert other["logreg"]["val_error"] == base["logreg"]["val_error"]
    assert shuffled["logreg"]["test_error"] > base["logreg"]["test_error"] + 0.3  # labels were read for the error
    params = inspect.signature(classify.select_l2).parameters
    assert not any("test" in p for p in params)


def test_choice_follows_validation_labels(optdigits):
    """The chosen L2 is the grid value with the lowest validation error; a huge L2 underfits
    and is not chosen."""
    d = optdigits
    grid = [0.0, 1e-3, 1.0]
    l2, val_errors, _ = classify.select_l2(d["x_train"], d["y_train"], d["x_val"], d["y_val"], grid,
                                           d["n_classes"], **FIT)
    assert val_errors[grid.index(l2)] == min(val_errors)
    assert val_errors[2] > val_errors[1]  # l2 = 1 underfits badly
    assert l2 != 1.0


def test_grid_fits_are_independent(optdigits):
    """Training the grid together gives each L2 the classifier it gets alone."""
    d = optdigits
    fit = dict(FIT, epochs=5)
    together = classify.fit_softmax(d["x_train"], d["y_train"], 10, [0.0, 0.01], **fit)
    alone = classify.fit_softmax(d["x_train"], d["y_train"], 10, 0.01, **fit)
    torch.testing.assert_close(together.W[:, 1], alone.W[:, 0], atol=1e-4, rtol=1e-3)
    assert not torch.allclose(together.W[:, 0], together.W[:, 1])


def test_fit_is_deterministic_and_standardises_with_training_stats(optdigits):
    d = optdigits
    fit = dict(FIT, epochs=3)
    a = classify.fit_softmax(d["x_train"], d["y_train"], 10, [0.001], **fit)
    b = classify.fit_softmax(d["x_train"], d["y_train"], 10, [0.001], **fit)
    assert torch.equal(a.W, b.W) and torch.equal(a.b, b.b)
    torch.testing.assert_close(a.mean, d["x_train"].mean(0))
    const = d["x_train"].std(0, correction=0) == 0  # optdigits has always-blank pixels: std 1, no NaN
    assert const.any() and torch.all(a.std[const] == 1)
    assert torch.isfinite(a.W).all()


def test_error_rate_counts_mistakes():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1, 0, 1])
    clf = classify.fit_softmax(x, y, 2, 0.0, epochs=50, batch=4, lr=0.1)
    assert classify.error_rate(clf, x, y) == 0.0
    assert classify.error_rate(clf, x, 1 - y) == 1.0
    assert classify.error_rate(clf, x, torch.tensor([0, 0, 0, 0])) == 0.5


@pytest.mark.parametrize("key,value,match", [
    ("l2", [], "classify.l2"),
    ("l2", [-1.0], r"classify.l2\[0\]"),
    ("epochs", 0, "classify.epochs"),
    ("lr", 0, "classify.lr"),
    ("optimizer", "lbfgs", "classify.optimizer"),
    ("momentum", 1.0, "classify.momentum"),
    ("bogus", 1, "classify.bogus"),
])
def test_bad_config_names_the_key(key, value, match):
    with pytest.raises(ParamError, match=match):
        validate_group(schema.Classify, {**PARAMS["classify"], key: value}, "classify")
    cfg = dict(PARAMS["classify"])
    del cfg["lr"]
    with pytest.raises(ParamError, match="classify.lr: missing"):
        validate_group(schema.Classify, cfg, "classify")


def test_labels_as_numpy_int_are_fine():
    x = torch.from_numpy(np.eye(3, dtype=np.float32))
    y = torch.from_numpy(np.array([0, 1, 2], dtype=np.int64))
    clf = classify.fit_softmax(x, y, 3, [0.0], epochs=30, batch=3, lr=0.1)
    assert classify.error_rate(clf, x, y) == 0.0
