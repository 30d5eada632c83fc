"""finetune: shallow / deep / none fine-tuning of every seed as one batch, the layer-wise schedule."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sae import finetune
from sae.config.schema import FinetuneSettings
from sae.models import build
from sae.base.rng import Streams, init_generators
from sae.train import fit
from tests.test_classify import prepared_dir, tensors

FAST = FinetuneSettings(keep_regulariser=True, epochs=3, deep_epochs=[2, 2, 6], batch=100, optimizer="sgd", lr=[0.1, 0.5], final_lr=0.001,
                        momentum=0.9, weight_decay=0.0001, deep_hidden=25)
LOOP = {"hidden": 100, "epochs": 3, "batch": 50, "input": "pixels", "optimizer": "sgd", "lr": 0.003,
        "momentum": 0.9, "schedule": "constant", "final_lr": 0.001, "checkpoint_every": 0,
        "stop_at_convergence": False}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pretrained(d: dict, model_id: str, seeds=(0, 1), epochs: int = 3, **options):
    """(model batch, hparams) of a model trained on optdigits as the train stage would."""
    model = build(model_id, 64, 100, n_models=len(seeds), generators=init_generators(seeds), **options)
    fit(model, d["x_train"], d["x_val"], epochs=epochs, batch=50, lr=0.003 if model_id == "ksparse" else 0.1,
        seeds=list(seeds), progress=False)
    hparams = {"dataset": "optdigits", "model": model_id, "id": model_id, "seeds": list(seeds), "in_dim": 64,
               "loop": dict(LOOP, epochs=epochs), "options": options}
    return model, hparams


@pytest.fixture(scope="module")
def optdigits(tmp_path_factory):
    d = tensors(prepared_dir(tmp_path_factory, "optdigits"))
    d.pop("n_classes")
    return d


KSPARSE = {"k": 10, "k_start": 40, "alpha": 2}


def test_ksparse_shallow_deep_none_over_seeds(optdigits):
    """Accuracies in [0, 1], mean and std over seeds with the per-seed values, the architecture;
    the pretrained networks are well above chance after a few epochs."""
    model, hp = _pretrained(optdigits, "ksparse", **KSPARSE)
    r = finetune.finetune(model, hp, optdigits, n_classes=10, cfg=FAST, kinds=["shallow", "deep", "none"],
                          baseline=True, deep=True)
    assert r["n_seeds"] == 2 and r["seeds"] == [0, 1]
    for kind in ("shallow", "deep", "none"):
        acc = r[kind]["test_accuracy"]
        assert acc["n"] == 2 and len(acc["per_seed"]) == 2 and all(0 <= a <= 1 for a in acc["per_seed"])
        assert acc["std"] is not None and acc["std"] <= 0.5
    assert r["shallow"]["test_accuracy"]["mean"] > 0.7 and r["deep"]["test_accuracy"]["mean"] > 0.5  # chance: 0.1
    assert r["shallow"]["arch"] == "64-100-10" and r["deep"]["arch"] == "64-100-25-10"
    json.dumps(r, allow_nan=False)


def test_each_seed_is_fine_tuned_as_it_would_be_alone(optdigits):
    model, hp = _pretrained(optdigits, "ae", seeds=(0, 1), epochs=2)
    both = finetune.finetune(model, hp, optdigits, n_classes=10, cfg=FAST, kinds=["shallow"], baseline=False,
                             deep=False)
    one, hp1 = model.select(1), dict(hp, seeds=[1])
    alone = finetune.finetune(one, hp1, optdigits, n_classes=10, cfg=FAST, kinds=["shallow"], baseline=False,
                              deep=False)
    assert both["shallow"]["test_accuracy"]["per_seed"][1] == pytest.approx(
        alone["shallow"]["test_accuracy"]["per_seed"][0], abs=2e-3)
    again = finetune.finetune(model, hp, optdigits, n_classes=10, cfg=FAST, kinds=["shallow"], baseline=False,
                              deep=False)
    assert again == both  # deterministic for the seeds


def test_raw_shallow_is_softmax_on_pixels_and_deep_is_skipped(optdigits):
    raw = build("raw", 64, n_models=2)
    hp = {"dataset": "optdigits", "model": "raw", "id": "raw", "seeds": [0, 1], "in_dim": 64, "loop": LOOP,
          "options": {}}
    r = finetune.finetune(raw, hp, optdigits, n_classes=10, cfg=FAST, kinds=["shallow", "deep", "none"],
                          baseline=False, deep=True)
    assert r["shallow"]["arch"] == "64-10" and r["shallow"]["test_accuracy"]["mean"] > 0.8
    assert "raw" in r["deep"]["skipped"] and "no pretraining" in r["none"]["skipped"]


def test_frozen_layers_stay_put_in_the_layer_wise_schedule(optdigits):
    """002 sec. 4.6: phase 1 trains the softmax alone, phase 2 the second layer too."""
    layer1 = build("ae", 64, 100, n_models=2, generators=init_generators([0, 1]))
    layer2 = build("ae", 100, 20, n_models=2, generators=init_generators([2, 3]))
    net = finetune.Network([layer1, layer2], 10)
    w1, w2, head = layer1.W.clone(), layer2.W.clone(), net.head_W.clone()
    kw = dict(seeds=[0, 1], epochs=1, batch=100, lr=0.1, final_lr=0.1, momentum=0.9, weight_decay=1e-4)
    x, y = optdigits["x_train"], optdigits["y_train"]
    finetune.train(net, net.head(), x, y, **kw)
    assert torch.equal(layer1.W, w1) and torch.equal(layer2.W, w2) and not torch.equal(net.head_W, head)
    finetune.train(net, [*finetune.encoder_parameters(layer2), *net.head()], x, y, **kw)
    assert torch.equal(layer1.W, w1) and not torch.equal(layer2.W, w2)
    assert all(p.requires_grad for p in net.parameters())  # freezing is undone afterwards


def test_weight_decay_equals_the_penalty_in_the_loss(optdigits):
    """train() hands weight_decay * ||W||^2 to the optimiser as its gradient; one epoch equals
    SGD on cross-entropy + weight_decay * sum ||W||^2 written into the loss (biases undecayed)."""
    x, y = optdigits["x_train"][:200], optdigits["y_train"][:200]
    nets = [finetune.Network([build("ae", 64, 16, generators=init_generators([0]))], 10) for _ in range(2)]
    finetune.train(nets[0], list(nets[0].parameters()), x, y, seeds=[0], epochs=1, batch=50, lr=0.1, final_lr=0.1,
                   momentum=0.9, weight_decay=0.01)
    net = nets[1]
    params = [*finetune.encoder_parameters(net.layers[0]), *net.head()]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    perm = Streams([0], "cpu", "finetune").permutations(200)[0]
    net.train()
    for rows in perm.split(50):
        loss = torch.nn.functional.cross_entropy(net(x[rows])[0], y[rows])
        loss = loss + 0.01 * sum(p.pow(2).sum() for p in params if p.dim() == 3)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for a, b in zip(nets[0].parameters(), net.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_pretraining_regularisers_carry_into_fine_tuning():
    """002 sec. 4.5: dropout / denoising perturb in training mode only; k-sparse keeps alpha*k units."""
    x = torch.rand(8, 16)
    noise = Streams([0], "cpu", "noise")
    drop = build("dropout", 16, 32, p_hidden=0.5, activation="relu", decoder="linear",
                 generators=init_generators([0])).train()
    h = finetune.layer_forward(drop, x, noise)
    assert (h == 0).float().mean() > (drop.encode(x) == 0).float().mean()
    drop.eval()
    assert torch.equal(finetune.layer_forward(drop, x, noise), drop.encode(x))
    ks = build("ksparse", 16, 32, k=4, k_start=8, alpha=2.0).train()
    assert int((finetune.layer_forward(ks, x, noise) != 0).sum(-1).max()) == 8


def test_the_second_ksparse_layer_keeps_the_same_k(optdigits):
    """002 sec. 4.6: k = 25, alpha = 3 (MNIST) in both hidden layers of equal width."""
    model, hp = _pretrained(optdigits, "ksparse", epochs=1, **KSPARSE)
    layer2 = finetune.second_layer(model, hp, optdigits, 100, [0, 1])
    assert (layer2.in_dim, layer2.hidden, layer2.k, layer2.alpha) == (100, 100, 10, 2.0)


def test_divergence_is_reported_not_nan(optdigits):
    model, hp = _pretrained(optdigits, "ksparse", epochs=1, **KSPARSE)
    cfg = FAST.model_copy(update={"lr": [1e6], "final_lr": 1e6, "epochs": 1})
    r = finetune.finetune(model, hp, optdigits, n_classes=10, cfg=cfg, kinds=["shallow"], baseline=False, deep=False)
    assert "diverged" in r["shallow"]
    ok = finetune.finetune(model, hp, optdigits, n_classes=10, cfg=cfg.model_copy(update={"lr": [1e6, 0.5]}),
                           kinds=["shallow"], baseline=False, deep=False)
    assert ok["shallow"]["lr"] == [0.5, 0.5] and ok["shallow"]["test_accuracy"]["mean"] > 0.2  # chance: 0.1
    json.dumps(r, allow_nan=False)


def test_without_pretraining_only_for_the_listed_models(optdigits):
    model, hp = _pretrained(optdigits, "ae", epochs=1)
    r = finetune.finetune(model, hp, optdigits, n_classes=10, cfg=FAST, kinds=["shallow", "none"], baseline=False,
                          deep=False)
    assert "without_pretraining" in r["none"]["skipped"] and r["shallow"]["test_accuracy"]["mean"] is not None
    r = finetune.finetune(model, hp, optdigits, n_classes=10, cfg=FAST, kinds=["none"], baseline=True, deep=False)
    assert 0.0 <= r["none"]["test_accuracy"]["mean"] <= 1.0


def test_the_pretraining_noise_stays_on_in_fine_tuning_for_002_and_off_for_000():
    """002 sec. 4.5 carries the regulariser into fine-tuning; 000 compares networks that "differ only in
    pretraining method": its DenAE network fine-tunes on clean inputs."""
    from sae.config import load
    from sae.config.protocol import finetune_settings
    from sae.base.rng import Streams
    params = load(Path(__file__).resolve().parent.parent / "params.yaml")
    assert finetune_settings(params, "makhzani2014", "mnist").keep_regulariser is True
    assert finetune_settings(params, "amini2018", "mnist").keep_regulariser is False
    dae = build("dae", 64, 16, n_models=2, generators=init_generators([0, 1]), corruption="gaussian", level=0.25)
    x = torch.rand(8, 64)
    streams = Streams([0, 1], x.device, "noise")
    with torch.no_grad():
        clean_codes = dae.eval().features(x.expand(2, 8, 64))
        dae.train()
        assert not torch.allclose(finetune.layer_forward(dae, x, streams, True), clean_codes)
        assert torch.equal(finetune.layer_forward(dae, x, streams, False), clean_codes)
        for keep in (True, False):
            net = finetune.Network([dae], 10, keep_regulariser=keep)
            net.head_W.normal_()
            same = torch.equal(net.train()(x, streams), net.eval()(x))
            assert same is not keep
