"""finetune@D-M: shallow / deep / none fine-tuning, the layer-wise schedule, the stage's JSON."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sae import finetune
from sae.data import prepared
from sae.data.prepared import Splits
from sae.errors import ParamError
from sae.evaluate import rebuild
from sae.params import model_config
from sae.train import train_model
from tests.test_classify import prepared_dir, tensors

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
FAST = dict(finetune.check_config(PARAMS["finetune"]), epochs=3, deep_epochs=[1, 1, 2])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pretrained(d: dict, model_id: str, epochs: int = 3) -> tuple[dict, dict]:
    """(hparams, state_dict) of a model trained on optdigits as stages/train.py would."""
    cfg = dict(model_config(PARAMS, "optdigits", model_id), epochs=epochs)
    model, _ = train_model(model_id, cfg, d["x_train"], d["x_val"], seed=0, progress=False)
    hparams = {"dataset": "optdigits", "model": model_id, "seed": 0, "in_dim": d["x_train"].shape[1], **cfg}
    return hparams, model.state_dict()


@pytest.fixture(scope="module")
def optdigits(tmp_path_factory):
    return tensors(prepared_dir(tmp_path_factory, "optdigits"))


def _data(d):
    return {k: v for k, v in d.items() if k != "n_classes"}


def test_ksparse_shallow_deep_none_over_seeds(optdigits):
    """Accuracies in [0, 1], mean and std over seeds, the 000 architecture string; the pretrained
    networks are well above chance after a few epochs (random k-sparse weights of std 0.01 are not)."""
    hp, state = _pretrained(optdigits, "ksparse")
    cfg = dict(FAST, seeds=[0, 1])
    r = finetune.finetune(hp, state, _data(optdigits), n_classes=10, cfg=cfg, deep_hidden=25)
    assert r["n_seeds"] == 2 and "std_note" not in r
    for kind in ("shallow", "deep", "none"):
        assert 0.0 <= r[kind]["mean"] <= 1.0 and 0.0 <= r[kind]["val_mean"] <= 1.0
        assert r[kind]["std"] is not None and 0.0 <= r[kind]["std"] <= 0.5
    assert r["shallow"]["mean"] > 0.7 and r["deep"]["mean"] > 0.5  # ten classes: chance is 0.1
    assert r["shallow"]["arch"] == "64-100-10" and r["deep"]["arch"] == "64-100-25-10"
    json.dumps(r, allow_nan=False)


def test_deterministic_for_a_seed(optdigits):
    hp, state = _pretrained(optdigits, "ae", epochs=2)
    cfg = dict(FAST, seeds=[3])
    a = finetune.finetune(hp, state, _data(optdigits), n_classes=10, cfg=cfg, deep_hidden=8)
    b = finetune.finetune(hp, state, _data(optdigits), n_classes=10, cfg=cfg, deep_hidden=8)
    assert a == b
    assert a["shallow"]["std"] is None and "one seed" in a["std_note"]  # no fake std of 0


def test_raw_shallow_is_softmax_on_pixels_and_deep_is_skipped(optdigits):
    hp = {"dataset": "optdigits", "model": "raw", "seed": 0, "in_dim": 64,
          **model_config(PARAMS, "optdigits", "raw")}
    r = finetune.finetune(hp, {}, _data(optdigits), n_classes=10, cfg=FAST, deep_hidden=25)
    assert r["shallow"]["arch"] == "64-10" and r["shallow"]["mean"] > 0.8
    assert r["deep"]["mean"] is None and "raw" in r["deep"]["skipped"]
    assert r["none"]["mean"] == r["shallow"]["mean"] and "no pretraining" in r["none"]["note"]


def test_frozen_layers_stay_put_in_the_layer_wise_schedule(optdigits):
    """002 sec. 4.6: phase 1 trains the softmax alone, phase 2 the second layer too."""
    hp, state = _pretrained(optdigits, "ae", epochs=1)
    layer1, layer2 = rebuild(hp, state), rebuild(finetune.second_layer_hparams(hp, 100, 20))
    net = finetune.Network([layer1, layer2], 10)
    w1, w2, head = layer1.W.clone(), layer2.W.clone(), net.head.weight.clone()
    kw = dict(epochs=1, batch=100, lr=0.1, final_lr=0.1, momentum=0.9, weight_decay=1e-4,
              generator=torch.Generator().manual_seed(0))
    x, y = optdigits["x_train"], optdigits["y_train"]
    finetune.train(net, list(net.head.parameters()), x, y, **kw)
    assert torch.equal(layer1.W, w1) and torch.equal(layer2.W, w2) and not torch.equal(net.head.weight, head)
    finetune.train(net, [*finetune.encoder_parameters(layer2), *net.head.parameters()], x, y, **kw)
    assert torch.equal(layer1.W, w1) and not torch.equal(layer2.W, w2)
    assert all(p.requires_grad for p in net.parameters())  # freezing is undone afterwards


def test_weight_decay_equals_the_penalty_in_the_loss(optdigits):
    """train() hands weight_decay * ||W||^2 to the optimiser as its gradient; one epoch equals
    SGD on cross-entropy + weight_decay * sum ||W||^2 written into the loss (biases undecayed)."""
    hp, state = _pretrained(optdigits, "ae", epochs=1)
    x, y = optdigits["x_train"][:200], optdigits["y_train"][:200]
    nets = [finetune.Network([rebuild(hp, state)], 10) for _ in range(2)]
    finetune.train(nets[0], list(nets[0].parameters()), x, y, epochs=1, batch=50, lr=0.1, final_lr=0.1,
                   momentum=0.9, weight_decay=0.01, generator=torch.Generator().manual_seed(0))
    net = nets[1]
    params = [*finetune.encoder_parameters(net.layers[0]), *net.head.parameters()]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    net.train()
    for rows in perm.split(50):
        loss = torch.nn.functional.cross_entropy(net(x[rows]), y[rows])
        loss = loss + 0.01 * sum(p.pow(2).sum() for p in params if p.dim() == 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for a, b in zip(nets[0].parameters(), net.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_pretraining_regularisers_carry_into_fine_tuning():
    """002 sec. 4.5: dropout / denoising perturb in training mode only; k-sparse keeps alpha*k units."""
    from sae.models import build
    torch.manual_seed(0)
    x = torch.rand(8, 16)
    gen = torch.Generator().manual_seed(0)
    drop = build("dropout", 16, 32, p_hidden=0.5, activation="relu", decoder="linear").train()
    h = finetune.layer_forward(drop, x, gen)
    assert (h == 0).float().mean() > (drop.encode(x) == 0).float().mean()
    drop.eval()
    assert torch.equal(finetune.layer_forward(drop, x, gen), drop.encode(x))
    ks = build("ksparse", 16, 32, k=4, k_start=8, alpha=2.0).train()
    assert int((finetune.layer_forward(ks, x, gen) != 0).sum(1).max()) == 8


def test_second_layer_keeps_the_ksparse_fraction():
    hp = {"model": "ksparse", "hidden": 256, "k": 25, "k_start": 100, "in_dim": 784}
    hp2 = finetune.second_layer_hparams(hp, 256, 49)
    assert (hp2["in_dim"], hp2["hidden"], hp2["k"], hp2["k_start"]) == (256, 49, 5, 19)
    tiny = finetune.second_layer_hparams(hp, 256, 2)
    assert 1 <= tiny["k"] <= tiny["k_start"] <= 2


def test_divergence_is_reported_not_nan(optdigits):
    hp, state = _pretrained(optdigits, "ksparse", epochs=1)
    cfg = dict(FAST, lr=[1e6], final_lr=1e6, deep_epochs=[0, 0, 1], epochs=1)
    r = finetune.finetune(hp, state, _data(optdigits), n_classes=10, cfg=cfg, deep_hidden=25)
    assert r["shallow"]["mean"] is None and "loss became" in r["shallow"]["diverged"]
    ok = finetune.finetune(hp, state, _data(optdigits), n_classes=10, cfg=dict(cfg, lr=[1e6, 0.1]),
                           deep_hidden=25)
    assert ok["shallow"]["lr"] == 0.1 and ok["shallow"]["mean"] > 0.2  # the diverged rate loses (chance 0.1)
    json.dumps(r, allow_nan=False)


@pytest.mark.parametrize("key,value", [
    ("seeds", []), ("seeds", [0, 0]), ("seeds", [-1]), ("epochs", 0), ("deep_epochs", [1, 1]),
    ("deep_epochs", [1, 1, 0]), ("lr", 0), ("lr", []), ("lr", [0.1, -1]), ("optimizer", "rmsprop"), ("momentum", 1), ("weight_decay", -1),
    ("deep_hidden", {"mnist5k": 0}), ("threads", -1), ("nope", 1),
])
def test_bad_config_names_the_key(key, value):
    with pytest.raises(ParamError, match=f"finetune.{key}"):
        finetune.check_config({**PARAMS["finetune"], key: value})


def _stage():
    spec = importlib.util.spec_from_file_location("stage_finetune", REPO / "stages" / "finetune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _save(root: Path, dataset: str, model_id: str, hp: dict, state: dict) -> None:
    out = root / "models" / dataset / model_id
    out.mkdir(parents=True, exist_ok=True)
    torch.save(state, out / "model.pt")
    (out / "hparams.json").write_text(json.dumps(hp))


def test_stage_writes_json_and_skips_unlabelled(tmp_path, tmp_path_factory, optdigits, monkeypatch):
    shutil.copytree(prepared_dir(tmp_path_factory, "optdigits"), tmp_path / "data" / "prepared" / "optdigits")
    hp, state = _pretrained(optdigits, "ae", epochs=1)
    _save(tmp_path, "optdigits", "ae", hp, state)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 16)).astype(np.float32)
    prepared.write(Splits(x[:40], None, x[40:50], None, x[50:], None, (1, 4, 4)),
                   tmp_path / "data" / "prepared" / "patches", dataset="patches", std_eps=0.0)
    _save(tmp_path, "patches", "ae", {**hp, "dataset": "patches", "in_dim": 16}, {})
    monkeypatch.chdir(tmp_path)
    params = {**PARAMS, "device": "cpu", "finetune": dict(PARAMS["finetune"], epochs=2, deep_epochs=[1, 1, 1])}
    stage = _stage()
    stage.main(params, ["optdigits", "ae"])
    r = json.loads((tmp_path / "metrics" / "optdigits" / "ae_finetune.json").read_text())
    assert 0 <= r["shallow"]["mean"] <= 1 and 0 <= r["deep"]["mean"] <= 1
    stage.main(params, ["patches", "ae"])
    r = json.loads((tmp_path / "metrics" / "patches" / "ae_finetune.json").read_text())
    assert r["skipped"] == "unlabelled dataset"
    bad = {**params, "finetune": {**params["finetune"], "deep_hidden": {}}}
    with pytest.raises(ParamError, match="finetune.deep_hidden.optdigits"):
        stage.main(bad, ["optdigits", "ae"])


def test_without_pretraining_only_for_the_listed_models(optdigits):
    """The "none" network (002 Tables 3-4) is trained only for finetune.without_pretraining."""
    hp, state = _pretrained(optdigits, "ae", epochs=1)
    r = finetune.finetune(hp, state, _data(optdigits), n_classes=10, cfg=dict(FAST, without_pretraining=[]),
                          deep_hidden=8)
    assert r["none"]["mean"] is None and "without_pretraining" in r["none"]["skipped"]
    assert r["shallow"]["mean"] is not None
    r = finetune.finetune(hp, state, _data(optdigits), n_classes=10, cfg=dict(FAST, without_pretraining=["ae"]),
                          deep_hidden=8)
    assert 0.0 <= r["none"]["mean"] <= 1.0
    with pytest.raises(ParamError, match="without_pretraining"):
        finetune.check_config(dict(PARAMS["finetune"], without_pretraining="ksparse"))
