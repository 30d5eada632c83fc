"""Supervised fine-tuning of pretrained encoders (002 sec. 4.5-4.6; 000 sec. III, Table II).

- shallow: the pretrained encoder + a softmax layer, all layers trained (002 sec. 4.5);
- deep: greedy layer-wise pretraining of a second autoencoder of the same kind on the
  codes of the first (sae.train.fit, the one training loop), then 002 sec. 4.6's
  layer-wise schedule: softmax alone, then second layer + softmax, then everything;
- none: the shallow network from a random initialisation ("without pre-training").

Each run is trained at every learning rate of `finetune.lr` and keeps the one with the
best validation accuracy (sigmoid networks want larger steps than ReLU / linear ones).

The regularisation of pretraining carries over into fine-tuning (002 sec. 4.5): a
denoising layer corrupts its input, a dropout layer drops input and hidden units, a
k-sparse layer keeps its alpha*k largest units. Everything is seeded per run.
"""
from __future__ import annotations

import logging
import math
import statistics

import torch
import torch.nn.functional as F

from sae import metrics
from sae.errors import ParamError
from sae.params import check_keys
from sae.models.core import Autoencoder
from sae.models.corruption import Denoising, Dropout, inverted_dropout
from sae.train import make_optimizer

log = logging.getLogger(__name__)

PHASES = ("softmax", "second layer + softmax", "all layers")  # 002 sec. 4.6


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_config(cfg) -> dict:
    """Validate the `finetune` group of params.yaml; return it with typed values."""
    schema = ("seeds", "epochs", "deep_epochs", "batch", "optimizer", "lr", "final_lr", "momentum",
              "weight_decay", "deep_hidden", "without_pretraining", "threads")
    check_keys("finetune", cfg, schema)
    seeds = cfg["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) and s >= 0 for s in seeds) \
            or len(set(seeds)) != len(seeds):
        raise ParamError(f"finetune.seeds={seeds!r}: expected a non-empty list of distinct integers >= 0")
    for key, low in (("epochs", 1), ("batch", 1), ("threads", 0)):
        if not _is_int(cfg[key]) or cfg[key] < low:
            raise ParamError(f"finetune.{key}={cfg[key]!r}: expected an integer >= {low}")
    de = cfg["deep_epochs"]
    if not isinstance(de, list) or len(de) != 3 or not all(_is_int(e) and e >= 0 for e in de) or de[2] < 1:
        raise ParamError(f"finetune.deep_epochs={de!r}: expected 3 integers >= 0 (epochs of: "
                         f"{'; '.join(PHASES)}), the last >= 1")
    if cfg["optimizer"] not in ("sgd", "adam"):
        raise ParamError(f"finetune.optimizer={cfg['optimizer']!r}: allowed: sgd, adam")
    lrs = cfg["lr"] if isinstance(cfg["lr"], list) else [cfg["lr"]]
    if not lrs or not all(_is_number(v) and v > 0 for v in lrs):
        raise ParamError(f"finetune.lr={cfg['lr']!r}: expected a number > 0 or a non-empty list of them")
    if not _is_number(cfg["final_lr"]) or cfg["final_lr"] <= 0:
        raise ParamError(f"finetune.final_lr={cfg['final_lr']!r}: expected a number > 0")
    if not _is_number(cfg["momentum"]) or not 0 <= cfg["momentum"] < 1:
        raise ParamError(f"finetune.momentum={cfg['momentum']!r}: expected a number in [0, 1)")
    if not _is_number(cfg["weight_decay"]) or cfg["weight_decay"] < 0:
        raise ParamError(f"finetune.weight_decay={cfg['weight_decay']!r}: expected a number >= 0")
    dh = cfg["deep_hidden"]
    if not isinstance(dh, dict) or not all(_is_int(v) and v >= 1 for v in dh.values()):
        raise ParamError(f"finetune.deep_hidden={dh!r}: expected a mapping dataset -> integer >= 1")
    wp = cfg["without_pretraining"]
    if not isinstance(wp, list) or not all(isinstance(m, str) for m in wp):
        raise ParamError(f"finetune.without_pretraining={wp!r}: expected a list of model ids")
    out = dict(cfg, lr=[float(v) for v in lrs])
    for key in ("final_lr", "momentum", "weight_decay"):
        out[key] = float(cfg[key])
    return out


# ---- the discriminative network -------------------------------------------------------------

def layer_forward(layer: Autoencoder, x: torch.Tensor, generator=None) -> torch.Tensor:
    """One pretrained layer as a classifier layer, with its pretraining regulariser in training
    mode (002 sec. 4.5): denoising corrupts the input, dropout drops input and hidden units,
    k-sparse keeps the alpha*k largest units (its features())."""
    train = layer.training
    if train and isinstance(layer, Denoising):
        x = layer.corrupt(x, generator)
    if train and isinstance(layer, Dropout):
        x = inverted_dropout(x, layer.p_input, generator)
    h = layer.features(x)
    if train and isinstance(layer, Dropout):
        h = inverted_dropout(h, layer.p_hidden, generator)
    return h


def encoder_parameters(layer: Autoencoder) -> list[torch.nn.Parameter]:
    """The parameters a layer uses to encode (W, b); the decoder is not part of the network."""
    return [p for p in (getattr(layer, "W", None), getattr(layer, "b", None)) if p is not None]


class Network(torch.nn.Module):
    """x -> layer_1 -> ... -> layer_L -> softmax layer (logits). Layers are autoencoders."""

    def __init__(self, layers: list[Autoencoder], n_classes: int):
        super().__init__()
        self.layers = torch.nn.ModuleList(layers)
        width = layers[-1].hidden
        self.head = torch.nn.Linear(width, n_classes)
        torch.nn.init.zeros_(self.head.weight)  # the softmax starts at zero (a convex start)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, x, generator=None):
        for layer in self.layers:
            x = layer_forward(layer, x, generator)
        return self.head(x)

    def arch(self) -> str:
        """Layer sizes, e.g. '784-256-49-10' (000 sec. III notation)."""
        hidden = [layer.hidden for layer in self.layers if getattr(layer, "trainable", True)]
        return "-".join(str(s) for s in [self.layers[0].in_dim, *hidden, self.head.out_features])


class Diverged(Exception):
    """Fine-tuning loss became NaN or inf."""


def train(net: Network, params: list[torch.nn.Parameter], x: torch.Tensor, y: torch.Tensor, *,
          epochs: int, batch: int, lr: float, final_lr: float, momentum: float, weight_decay: float,
          generator: torch.Generator, optimizer: str = "sgd") -> None:
    """SGD with momentum (or Adam) on `params` only (the rest stay fixed): mean cross-entropy +
    weight_decay * sum ||W||^2 over the trained weight matrices; the rate goes linearly
    from lr to final_lr over the epochs (002 sec. 4.2.2). Raises Diverged."""
    if epochs == 0 or not params:
        return
    # weight_decay * ||W||^2 reaches the optimiser as its gradient 2 weight_decay W (the fused
    # update adds it): the same step without a pow/sum/mul over every weight in each step
    groups = [{"params": [p for p in params if p.dim() == 2], "weight_decay": 2 * weight_decay},
              {"params": [p for p in params if p.dim() != 2], "weight_decay": 0.0}]
    opt = make_optimizer(groups, optimizer, lr, momentum)
    trained = {id(p) for p in params}
    frozen = [p for p in net.parameters() if id(p) not in trained]
    for p in frozen:
        p.requires_grad_(False)
    n = x.shape[0]
    steps = math.ceil(n / batch)
    net.train()
    try:
        for epoch in range(epochs):
            rate = lr if epochs == 1 else lr + (final_lr - lr) * epoch / (epochs - 1)
            for group in opt.param_groups:
                group["lr"] = rate
            perm = torch.randperm(n, generator=generator, device=x.device)
            loss_sum = torch.zeros((), device=x.device)
            for i in range(steps):
                idx = perm[i * batch:(i + 1) * batch]
                loss = F.cross_entropy(net(x[idx], generator), y[idx])
                loss_sum += loss.detach()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if not math.isfinite(float(loss_sum)):  # one host read per epoch
                raise Diverged(f"loss became {float(loss_sum)} at epoch {epoch}")
    finally:
        for p in frozen:
            p.requires_grad_(True)
        net.eval()


@torch.no_grad()
def accuracy(net: Network, x: torch.Tensor, y: torch.Tensor, batch: int = 4096) -> float:
    """Fraction of correct predictions of net (eval mode, no perturbation) on (x, y)."""
    net.eval()
    correct = sum(int((net(xb).argmax(dim=1) == yb).sum()) for xb, yb in zip(x.split(batch), y.split(batch)))
    return correct / x.shape[0]


# ---- the three runs --------------------------------------------------------------------------

def second_layer_hparams(hparams: dict, in_dim: int, hidden: int) -> dict:
    """hparams of the second autoencoder: same kind and settings, sizes in_dim -> hidden.

    k-sparse keeps the first layer's fraction of active units: k and k_start scaled by
    hidden / first hidden (002 sec. 4.6 uses equal widths, so equal k)."""
    hp = dict(hparams, in_dim=in_dim, hidden=hidden)
    if hparams["model"] == "ksparse":
        ratio = hidden / hparams["hidden"]
        hp["k"] = max(1, min(hidden, round(hparams["k"] * ratio)))
        hp["k_start"] = max(hp["k"], min(hidden, round(hparams["k_start"] * ratio)))
    return hp


def _fit_kwargs(cfg: dict, lr: float) -> dict:
    return {"lr": lr, **{k: cfg[k] for k in ("batch", "optimizer", "final_lr", "momentum", "weight_decay")}}


def run_shallow(layer: Autoencoder, data: dict, n_classes: int, cfg: dict, seed: int, lr: float) -> dict:
    """Encoder `layer` (pretrained or random) + softmax, all layers trained (002 sec. 4.5)."""
    gen = torch.Generator(device=data["x_train"].device).manual_seed(seed)
    net = Network([layer], n_classes).to(data["x_train"].device)
    train(net, [*encoder_parameters(layer), *net.head.parameters()],
          data["x_train"], data["y_train"], epochs=cfg["epochs"], generator=gen, **_fit_kwargs(cfg, lr))
    return {"test": accuracy(net, data["x_test"], data["y_test"]),
            "val": accuracy(net, data["x_val"], data["y_val"]), "arch": net.arch(), "lr": lr}


def pretrain_second_layer(layer1: Autoencoder, hparams: dict, data: dict, hidden2: int, seed: int):
    """Greedy layer-wise pretraining (002 sec. 4.6): a second autoencoder of the same kind,
    trained with the first one's loop settings on the first one's codes.
    Returns (hparams, weights, fraction of its units dead on validation codes)."""
    from sae.evaluate import batched, rebuild
    from sae.train import fit
    layer1.eval()
    codes_tr = batched(layer1.features, data["x_train"])
    codes_va = batched(layer1.features, data["x_val"][:1000])
    hp2 = second_layer_hparams(hparams, layer1.hidden, hidden2)
    torch.manual_seed(seed)
    layer2 = rebuild(hp2).to(codes_tr.device)
    fit(layer2, codes_tr, codes_va, epochs=hp2["epochs"], batch=hp2["batch"], optimizer=hp2["optimizer"],
        lr=hp2["lr"], momentum=hp2["momentum"], schedule=hp2["schedule"], final_lr=hp2["final_lr"],
        seed=seed, progress=False, name=f"{hparams['dataset']}/{hparams['model']}/layer2")
    with torch.no_grad():  # a diagnostic: a collapsed second layer (e.g. every unit at rho) shows here
        threshold = metrics.ACTIVATION_THRESHOLD.get(layer2.activation, 0.0)
        dead = float(metrics.dead_fraction(layer2.features(codes_va), threshold))
    return hp2, {k: v.clone() for k, v in layer2.state_dict().items()}, dead


def run_deep(layer1: Autoencoder, layer2: Autoencoder, data: dict, n_classes: int, cfg: dict, seed: int,
             lr: float) -> dict:
    """The layer-wise fine-tuning of 002 sec. 4.6 on two pretrained layers: softmax alone;
    second layer + softmax; all layers."""
    device = data["x_train"].device
    net = Network([layer1, layer2], n_classes).to(device)
    head = list(net.head.parameters())
    groups = (head, [*encoder_parameters(layer2), *head],
              [*encoder_parameters(layer1), *encoder_parameters(layer2), *head])
    gen = torch.Generator(device=device).manual_seed(seed)
    for phase, params, epochs in zip(PHASES, groups, cfg["deep_epochs"]):
        log.debug("deep fine-tuning, %s: %d epochs", phase, epochs)
        train(net, params, data["x_train"], data["y_train"], epochs=epochs, generator=gen,
              **_fit_kwargs(cfg, lr))
    return {"test": accuracy(net, data["x_test"], data["y_test"]),
            "val": accuracy(net, data["x_val"], data["y_val"]), "arch": net.arch(), "lr": lr}


def best_on_validation(run, lrs: list[float], what: str) -> dict:
    """run(lr) for every learning rate; keep the run with the highest VALIDATION accuracy
    (ties: the first listed). Diverged runs lose; if all diverge, the first one's reason."""
    results = []
    for lr in lrs:
        try:
            results.append(run(lr))
        except Diverged as exc:
            log.info("%s, lr %g: %s", what, lr, exc)
            results.append({"diverged": f"lr {lr:g}: {exc}", "lr": lr})
    ok = [r for r in results if "diverged" not in r]
    if not ok:
        log.warning("%s: diverged at every learning rate", what)
        return results[0]
    return max(ok, key=lambda r: r["val"])  # max keeps the first of equals


def _summary(runs: list[dict]) -> dict:
    """Mean and sample std (over seeds) of test accuracy (std null for one seed), mean validation
    accuracy, the architecture and the learning rate chosen on validation."""
    test = [r["test"] for r in runs]
    lrs = [r["lr"] for r in runs]
    return {"mean": statistics.fmean(test), "std": statistics.stdev(test) if len(test) > 1 else None,
            "val_mean": statistics.fmean(r["val"] for r in runs), "arch": runs[0]["arch"],
            "lr": lrs[0] if len(set(lrs)) == 1 else ",".join(f"{v:g}" for v in lrs)}


def finetune(hparams: dict, state_dict: dict, data: dict, *, n_classes: int, cfg: dict,
             deep_hidden: int | None) -> dict:
    """Shallow, deep and no-pretraining test accuracy (mean, std over cfg['seeds']); for each
    seed and kind, the learning rate of cfg['lr'] with the best validation accuracy.

    hparams/state_dict: the trained model (stages/train.py's hparams.json and model.pt);
    data: tensors x_/y_ train/val/test on one device, inputs in the model's input view.
    """
    from sae.evaluate import rebuild
    device = data["x_train"].device
    model_id = hparams["model"]
    lrs = cfg["lr"]
    runs = {"shallow": [], "deep": [], "none": []}
    notes = {}
    if model_id == "raw":
        notes["none"] = "raw pixels have no pretraining: the none row is the shallow one"
        notes["deep"] = "raw pixels have no encoder to stack a second autoencoder on"
    baseline = model_id in cfg["without_pretraining"]
    if not baseline and model_id != "raw":
        notes["none"] = f"{model_id} is not in finetune.without_pretraining"

    def pretrained():
        return rebuild(hparams, state_dict).to(device)

    for seed in cfg["seeds"]:
        def fresh():  # the model's own random initialisation, the same for every lr
            torch.manual_seed(seed)
            return rebuild(hparams).to(device)

        runs["shallow"].append(best_on_validation(
            lambda lr: run_shallow(pretrained(), data, n_classes, cfg, seed, lr), lrs,
            f"{model_id} shallow seed {seed}"))
        if model_id != "raw" and baseline:
            runs["none"].append(best_on_validation(
                lambda lr: run_shallow(fresh(), data, n_classes, cfg, seed, lr), lrs,
                f"{model_id} none seed {seed}"))
        if model_id != "raw":
            hp2, state2, dead2 = pretrain_second_layer(pretrained(), hparams, data, deep_hidden, seed)
            runs["deep"].append(dict(best_on_validation(
                lambda lr: run_deep(pretrained(), rebuild(hp2, state2).to(device), data, n_classes, cfg,
                                    seed, lr), lrs, f"{model_id} deep seed {seed}"), layer2_dead=dead2))
        log.info("%s seed %d: %s", model_id, seed, ", ".join(
            f"{k} {v[-1]['test']:.4f} (lr {v[-1]['lr']:g})" for k, v in runs.items() if v and "test" in v[-1]))
    if model_id == "raw":
        runs["none"] = runs["shallow"]
    out = {"n_seeds": len(cfg["seeds"])}
    for kind, rs in runs.items():
        failed = [r for r in rs if "diverged" in r]
        if not rs:
            out[kind] = {"mean": None, "std": None, "skipped": notes[kind]}
        elif failed:
            out[kind] = {"mean": None, "std": None, "diverged": failed[0]["diverged"]}
        else:
            out[kind] = _summary(rs)
            if kind == "deep":  # units of the pretrained second layer never active (003 threshold)
                out[kind]["layer2_dead"] = statistics.fmean(r["layer2_dead"] for r in rs)
            if kind in notes:
                out[kind]["note"] = notes[kind]
    if len(cfg["seeds"]) == 1:
        out["std_note"] = "one seed: no std (null)"
    return out
