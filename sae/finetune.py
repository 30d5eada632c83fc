"""Supervised fine-tuning of pretrained encoders (002 sec. 4.5-4.6; 000 sec. III, Table II).

- shallow: the pretrained encoder + a softmax layer, all layers trained (002 sec. 4.5);
- deep: greedy layer-wise pretraining of a second autoencoder of the same kind on the
  codes of the first (sae.train.fit, the one training loop), then fine-tuning in phases
  (002 sec. 4.6: softmax alone, second layer + softmax, everything);
- none: the shallow network from the model's random initialisation ("without pre-training").

The G seeds of a trained batch are fine-tuned as one batch (every layer keeps its model
axis); each run is trained at every learning rate of the settings' `lr` and each seed keeps
the one with its best validation accuracy. The regularisation of pretraining carries over
(002 sec. 4.5): a denoising layer corrupts its input, a dropout layer drops input and hidden
units, a k-sparse layer keeps its alpha*k largest units.
"""
from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

from sae.base import catalog, metrics, stats
from sae.base.errors import TrainingError
from sae.models.core import Autoencoder, Raw
from sae.models.corruption import Denoising, Dropout, inverted_dropout
from sae.base.optim import make_optimizer
from sae.base.rng import Streams, init_generators
from sae.train import batches, learning_rate

log = logging.getLogger(__name__)

PHASES = ("softmax", "second layer + softmax", "all layers")  # 002 sec. 4.6


def layer_forward(layer: Autoencoder, x: torch.Tensor, streams, keep_regulariser: bool = True) -> torch.Tensor:
    """One pretrained layer (G models) as a classifier layer, with its pretraining regulariser in
    training mode when keep_regulariser (002 sec. 4.5); x (G,B,D) or shared (B,D) -> (G,B,M)."""
    train = layer.training and keep_regulariser
    if train and isinstance(layer, Denoising):
        x = layer.corrupt(x if x.dim() == 3 else x.expand(layer.n_models, *x.shape), streams)
    if train and isinstance(layer, Dropout) and layer.p_input:
        x = inverted_dropout(x if x.dim() == 3 else x.expand(layer.n_models, *x.shape), layer.p_input, streams)
    h = layer.features(x)
    if train and isinstance(layer, Dropout):
        h = inverted_dropout(h, layer.p_hidden, streams)
    return h


def encoder_parameters(layer: Autoencoder) -> list[torch.nn.Parameter]:
    """The parameters a layer uses to encode (W, b); the decoder is not part of the network."""
    return [p for p in (getattr(layer, "W", None), getattr(layer, "b", None)) if p is not None]


class Network(torch.nn.Module):
    """G networks x -> layer_1 -> ... -> layer_L -> softmax layer (logits (G,B,C)). Layers are
    autoencoder batches of G models."""

    def __init__(self, layers: list[Autoencoder], n_classes: int, keep_regulariser: bool = True):
        super().__init__()
        self.layers = torch.nn.ModuleList(layers)
        self.keep_regulariser = keep_regulariser
        G, width = layers[0].n_models, layers[-1].hidden
        self.head_W = torch.nn.Parameter(torch.zeros(G, width, n_classes))  # the softmax starts at zero
        self.head_b = torch.nn.Parameter(torch.zeros(G, n_classes))

    def forward(self, x, streams=None):
        for layer in self.layers:
            x = layer_forward(layer, x, streams, self.keep_regulariser)
        return torch.baddbmm(self.head_b.unsqueeze(1), x, self.head_W)

    def head(self) -> list[torch.nn.Parameter]:
        return [self.head_W, self.head_b]

    def arch(self) -> str:
        """Layer sizes, e.g. '784-196-49-10' (000 sec. III notation)."""
        hidden = [layer.hidden for layer in self.layers if layer.trainable]
        return "-".join(str(s) for s in [self.layers[0].in_dim, *hidden, self.head_W.shape[-1]])


def train(net: Network, params: list[torch.nn.Parameter], x: torch.Tensor, y: torch.Tensor, *, seeds, epochs: int,
          batch: int, lr: float, final_lr: float, momentum: float, weight_decay: float, optimizer: str = "sgd",
          alive: torch.Tensor | None = None) -> torch.Tensor:
    """SGD with momentum (or Adam) on `params` only (the rest stay fixed): batch-mean
    cross-entropy + weight_decay * sum ||W||^2 of the trained weight matrices, per model; the
    rate goes linearly from lr to final_lr (002 sec. 4.2.2). Returns the (G,) bool mask of the
    models still finite (a diverged model stops learning; TrainingError if none is left)."""
    G = net.head_W.shape[0]
    alive = torch.ones(G, dtype=torch.bool, device=x.device) if alive is None else alive.clone()
    if epochs == 0 or not params:
        return alive
    # weight_decay * ||W||^2 reaches the optimiser as its gradient 2 weight_decay W
    weights = [p for p in params if p.dim() == 3]
    groups = [{"params": weights, "weight_decay": 2 * weight_decay},
              {"params": [p for p in params if p.dim() != 3], "weight_decay": 0.0}]
    opt = make_optimizer(groups, optimizer, lr, momentum)
    trained = {id(p) for p in params}
    frozen = [p for p in net.parameters() if id(p) not in trained]
    for p in frozen:
        p.requires_grad_(False)
    order, noise = Streams(seeds, x.device, "finetune"), Streams(seeds, x.device, "noise")
    n = x.shape[-2]
    steps = math.ceil(n / batch)
    net.train()
    try:
        for epoch in range(epochs):
            for group in opt.param_groups:
                group["lr"] = learning_rate(epoch, epochs, lr, "linear", final_lr)
            perm = order.permutations(n)
            loss_sum = torch.zeros(G, device=x.device)
            for i in range(steps):
                rows = perm[:, i * batch:(i + 1) * batch]
                logits = net(batches(x, order, rows), noise)  # (G,B,C)
                target = y[order.expand(rows)]  # (G,B)
                loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none")
                loss = loss.view(G, -1).mean(dim=1)
                opt.zero_grad(set_to_none=True)
                torch.where(alive, loss, torch.zeros_like(loss)).sum().backward()
                opt.step()
                loss_sum += loss.detach()
            alive &= torch.isfinite(loss_sum)  # one host read per epoch, below
            if not bool(alive.any()):
                raise TrainingError(f"loss became non-finite at epoch {epoch} for every seed")
    finally:
        for p in frozen:
            p.requires_grad_(True)
        net.eval()
    return alive


@torch.no_grad()
def accuracy(net: Network, x: torch.Tensor, y: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    """Per-model fraction of correct predictions (G,) of net (eval mode, no perturbation) on (x, y)."""
    net.eval()
    correct = sum((net(xb).argmax(dim=-1) == yb).sum(dim=-1) for xb, yb in zip(x.split(batch), y.split(batch)))
    return correct.to(torch.float64) / x.shape[0]


def _fit_kwargs(cfg, lr: float) -> dict:
    return {"lr": lr, "batch": cfg.batch, "optimizer": cfg.optimizer, "final_lr": cfg.final_lr,
            "momentum": cfg.momentum, "weight_decay": cfg.weight_decay}


def best_on_validation(run, lrs, seeds, what: str) -> dict:
    """run(lr) -> (test (G,), val (G,), arch) for every learning rate; each model keeps the rate
    with its highest VALIDATION accuracy (ties: the first listed); diverged runs lose."""
    G = len(seeds)
    best_val = [-math.inf] * G
    test, val, chosen, arch = [None] * G, [None] * G, [None] * G, None
    for lr in lrs:
        try:
            t, v, arch = run(lr)
        except TrainingError as exc:  # this rate diverged for every seed: try the next
            log.info("%s, lr %g: %s", what, lr, exc)
            continue
        for g in range(G):
            if math.isfinite(v[g]) and v[g] > best_val[g]:
                best_val[g], test[g], val[g], chosen[g] = v[g], t[g], v[g], lr
    if all(c is None for c in chosen):
        return {"diverged": f"diverged at every learning rate ({', '.join(f'{lr:g}' for lr in lrs)})"}
    return {"test_accuracy": stats.summary(test), "val_accuracy": stats.summary(val), "lr": chosen, "arch": arch}


def _nan_to_dead(values: torch.Tensor, alive: torch.Tensor) -> list[float]:
    return [float(v) if a else math.nan for v, a in zip(values.tolist(), alive.tolist())]


def run_network(layers, trained, data, n_classes, cfg, seeds, lr, epochs_by_phase) -> tuple:
    """Train Network(layers) in phases (each: the params to train, epochs); (test, val, arch)."""
    device = data["x_train"].device
    net = Network(layers, n_classes, cfg.keep_regulariser).to(device)
    alive = None
    for params, epochs in zip(trained(net), epochs_by_phase):
        alive = train(net, params, data["x_train"], data["y_train"], seeds=seeds, epochs=epochs, alive=alive,
                      **_fit_kwargs(cfg, lr))
    return (_nan_to_dead(accuracy(net, data["x_test"], data["y_test"]), alive),
            _nan_to_dead(accuracy(net, data["x_val"], data["y_val"]), alive), net.arch())


def second_layer(layer1: Autoencoder, hparams: dict, data: dict, hidden2: int, seeds,
                 epochs: int | None = None) -> Autoencoder:
    """Greedy layer-wise pretraining (002 sec. 4.6): G autoencoders of the same kind, trained with
    the first layer's loop settings (`epochs` when given) on the first layer's codes (each model
    on its own)."""
    from sae.models import build
    from sae.train import ConvergenceRule, fit_loop
    from sae.config.schema import Loop
    layer1.eval()
    with torch.no_grad():
        codes_tr = torch.cat([layer1.features(xb) for xb in data["x_train"].split(4096)], dim=1)
        codes_va = layer1.features(data["x_val"][:1000])  # (G,n,M): each model's own probe codes
    opts = {k: v for k, v in hparams["options"].items() if k != "k_sweep"}
    if hparams["id"] == "rbm":  # a DBN's second RBM models the first one's hidden probabilities
        opts["visible"] = "bernoulli"
    if hparams["id"] == "ksparse":  # 002 sec. 4.6: the same k in both layers
        opts["k"] = min(opts["k"], hidden2)
        opts["k_start"] = max(opts["k"], min(opts["k_start"], hidden2))
    layer2 = build(hparams["id"], layer1.hidden, hidden2, n_models=len(seeds),
                   generators=init_generators(seeds, "finetune"), **opts).to(codes_tr.device)
    loop = Loop.model_validate(hparams["loop"])
    if epochs:
        loop = loop.model_copy(update={"epochs": epochs})
    rule = hparams.get("stop_rule")  # the second layer stops as the first one did
    fit_loop(layer2, loop, codes_tr, codes_va, seeds=seeds, progress=False,
             name=f"{hparams['dataset']}/{hparams['model']}/layer2",
             stop_at=None if rule is None else ConvergenceRule(**rule))
    with torch.no_grad():  # a diagnostic: a collapsed second layer (e.g. every unit at rho) shows here
        threshold = catalog.activation_threshold(layer2.activation)
        dead = metrics.dead_fraction(layer2.features(codes_va), threshold)
    log.info("second layer: dead units per seed %s", [round(float(d), 3) for d in dead])
    return layer2


def finetune(model: Autoencoder, hparams: dict, data: dict, *, n_classes: int, cfg, kinds, baseline: bool,
             deep: bool) -> dict:
    """Shallow / deep / none test accuracy of the G seeds of `model` (the configuration's models of
    a trained batch), mean and std over seeds and every per-seed value.

    cfg: resolved sae.config.schema.FinetuneSettings; kinds: which of shallow, deep, none to
    run; baseline: also train the network from random weights (none); deep: stack a second
    layer. data: tensors x_/y_ train/val/test on one device in the model's input view.
    """
    from sae.models import build
    seeds = list(hparams["seeds"])
    raw = isinstance(model, Raw)
    out: dict = {"n_seeds": len(seeds), "seeds": seeds}
    device = data["x_train"].device
    model = model.to(device)

    def copy_of(layer):
        return layer.select(range(layer.n_models))  # fresh parameters: every run starts from pretraining

    if "shallow" in kinds:
        out["shallow"] = best_on_validation(
            lambda lr: run_network([copy_of(model)], lambda net: [[*encoder_parameters(net.layers[0]), *net.head()]],
                                   data, n_classes, cfg, seeds, lr, [cfg.epochs]), cfg.lr, seeds, "shallow")
    if "none" in kinds:
        if raw:
            out["none"] = {"skipped": "raw pixels have no pretraining: the none row is the shallow one"}
        elif baseline:
            opts = {k: v for k, v in hparams["options"].items() if k != "k_sweep"}

            def fresh():
                return build(hparams["id"], hparams["in_dim"], model.hidden, n_models=len(seeds),
                             generators=init_generators(seeds), **opts)
            out["none"] = best_on_validation(
                lambda lr: run_network([fresh()], lambda net: [[*encoder_parameters(net.layers[0]), *net.head()]],
                                       data, n_classes, cfg, seeds, lr, [cfg.epochs]), cfg.lr, seeds, "none")
        else:
            out["none"] = {"skipped": f"{hparams['model']} is not in finetune.without_pretraining"}
    if "deep" in kinds:
        if raw:
            out["deep"] = {"skipped": "raw pixels have no encoder to stack a second autoencoder on"}
        elif not deep:
            out["deep"] = {"skipped": f"{hparams['model']} is not in finetune.deep_models"}
        else:
            layer2 = second_layer(model, hparams, data, cfg.deep_hidden or model.hidden, seeds, cfg.layer2_epochs)

            def phases(net):
                l1, l2 = net.layers
                return [net.head(), [*encoder_parameters(l2), *net.head()],
                        [*encoder_parameters(l1), *encoder_parameters(l2), *net.head()]]
            out["deep"] = best_on_validation(
                lambda lr: run_network([copy_of(model), copy_of(layer2)], phases, data, n_classes, cfg, seeds, lr,
                                       cfg.deep_epochs), cfg.deep_lr or cfg.lr, seeds, "deep")
    return out
