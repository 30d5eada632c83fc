"""The one training loop for every autoencoder (models plug in through sae.models.core.Autoencoder).

Data stays on the device as one tensor; batches are index slices of a seeded permutation;
the loss is accumulated on the device and read once per epoch (no per-step host sync).
All randomness (shuffling, corruption, dropout) comes from one torch.Generator whose state
is checkpointed, so a resumed run ends with exactly the weights of an uninterrupted one.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Callable

import torch

from sae import metrics
from sae.cuda_graph import WARMUP_STEPS, StepGraph, clone_generator, warm_up
from sae.errors import ParamError, TrainingError

log = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "linear")


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else CPU; nothing else differs between them."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamError("device=cuda: no CUDA device is available (use auto or cpu)")
    return torch.device(name)


def learning_rate(epoch: int, epochs: int, lr: float, schedule: str, final_lr: float) -> float:
    """Per-epoch rate: constant, or linear from lr down to final_lr over the run (002 sec. 4.2.2)."""
    if schedule == "constant" or epochs <= 1:
        return lr
    return lr + (final_lr - lr) * epoch / (epochs - 1)


def make_optimizer(params, optimizer: str, lr: float, momentum: float):
    """SGD with momentum as in the papers (002 eq. 11); Adam as an option.

    params: parameters or groups (a model's param_groups() carries its weight decay). The
    fused kernels update every tensor in one pass (CPU and CUDA alike); sae.optim says why
    they are called without torch.optim.
    """
    from sae.optim import FusedAdam, FusedSGD
    if optimizer == "sgd":
        return FusedSGD(params, lr=lr, momentum=momentum)
    if optimizer == "adam":
        return FusedAdam(params, lr=lr)
    raise ParamError(f"optimizer={optimizer!r}: allowed: {', '.join(OPTIMIZERS)}")


@torch.no_grad()
def probe(model, x_val: torch.Tensor) -> dict[str, torch.Tensor]:
    """Curves on a fixed validation batch: reconstruction error, Hoyer sparseness, activation fraction."""
    was_training = model.training
    model.eval()
    h = model.encode(x_val)
    x_hat = model.decode(h)
    model.train(was_training)
    threshold = metrics.ACTIVATION_THRESHOLD.get(getattr(model, "activation", "linear"), 0.0)
    return {"val_recon": metrics.reconstruction_error(x_val, x_hat).mean(),
            "val_hoyer": metrics.hoyer(h).mean(),
            "val_activation_fraction": metrics.activation_fraction(h, threshold)}


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a kill mid-write never leaves a broken checkpoint


def fit(model, x_train: torch.Tensor, x_val: torch.Tensor, *, epochs: int, batch: int,
        optimizer: str = "sgd", lr: float = 0.01, momentum: float = 0.9,
        schedule: str = "constant", final_lr: float = 0.001, seed: int = 0,
        checkpoint: Path | None = None, checkpoint_every: int = 0, fingerprint: str = "",
        on_epoch: Callable[[dict], None] | None = None, name: str = "model",
        progress: bool = True, cuda_graph: bool = True) -> list[dict]:
    """Train `model` in place on x_train (N, D); return one dict of curves per epoch.

    The logged loss is the objective without weight decay (the optimiser applies that).
    checkpoint: file written every `checkpoint_every` epochs and resumed from when it exists
    and its `fingerprint` (a hash of the hyper-parameters) matches; removed at the end.
    on_epoch: called with each epoch's row (also for rows replayed from a checkpoint).
    cuda_graph: on CUDA, replay each epoch's full batches from one captured graph
    (sae.cuda_graph); the CPU ignores it.
    Raises TrainingError naming `name` and the epoch when the loss becomes NaN or inf.
    """
    if schedule not in SCHEDULES:
        raise ParamError(f"schedule={schedule!r}: allowed: {', '.join(SCHEDULES)}")
    if not getattr(model, "trainable", True):
        return []
    device = x_train.device
    gen = torch.Generator(device=device).manual_seed(seed)
    opt = make_optimizer(model.param_groups(), optimizer, lr, momentum)
    history: list[dict] = []
    start = 0
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            gen.set_state(state["generator"].to(gen.get_state().device))
            history, start = state["history"], state["epoch"] + 1
            log.info("%s: resuming from the checkpoint of epoch %d", name, start)
        else:
            log.info("%s: ignoring a checkpoint made with other hyper-parameters", name)
    for row in history:
        if on_epoch:
            on_epoch(row)

    n = x_train.shape[0]
    steps = math.ceil(n / batch)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, initial=start, desc=name, unit="epoch", leave=False)
    graphs = cuda_graph and device.type == "cuda"
    pool = torch.cuda.graph_pool_handle() if graphs else None  # shared: one epoch's graph is never replayed after the next is captured
    graph, graph_epoch, warm = None, None, 0
    model.train()
    for epoch in range(start, epochs):
        scheduled = model.on_epoch_start(epoch, epochs) or {}
        rate = learning_rate(epoch, epochs, lr, schedule, final_lr)
        for group in opt.param_groups:
            group["lr"] = rate
        perm = torch.randperm(n, generator=gen, device=device)
        loss_sum = torch.zeros((), device=device)
        recon_sum = torch.zeros((), device=device)

        def step(xb):
            loss, recon = model.objective(xb, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            model.after_step()
            loss_sum.add_(loss.detach() * xb.shape[0])
            recon_sum.add_(recon.detach() * xb.shape[0])

        for i in range(steps):
            rows = perm[i * batch:(i + 1) * batch]
            if graphs and rows.numel() == batch:
                if warm < WARMUP_STEPS:
                    warm_up(step, [x_train[rows]])
                    warm += 1
                    continue
                if graph_epoch != epoch:  # each epoch bakes in its own lr, schedules and accumulators
                    try:  # the last epoch's graph, holding the pool, is dropped only once this one exists
                        graph, graph_epoch = StepGraph(step, x_train, batch, gen, pool), epoch
                    except RuntimeError as err:  # an op that cannot be captured: train eagerly
                        log.warning("%s: no CUDA graph (%s); training eagerly", name, str(err).splitlines()[0])
                        graphs, graph = False, None
                        gen = clone_generator(gen)  # a failed capture can leave gen marked as capturing
                if graphs:
                    graph.replay(rows)
                    continue
            step(x_train[rows])
        model.on_epoch_end(epoch, epochs)
        row = {"epoch": epoch, "lr": rate, "loss": loss_sum / n, "recon": recon_sum / n,
               **probe(model, x_val)}
        row = {k: float(v) for k, v in row.items()} | {k: float(v) for k, v in scheduled.items()}
        row["epoch"] = epoch
        if not math.isfinite(row["loss"]):  # the one host read of the epoch happened just above
            raise TrainingError(f"{name}: loss became {row['loss']} at epoch {epoch}; no model written")
        history.append(row)
        if on_epoch:
            on_epoch(row)
        if bar is not None:
            bar.set_postfix(loss=f"{row['loss']:.4g}")
            bar.update(1)
        if checkpoint is not None and checkpoint_every and (epoch + 1) % checkpoint_every == 0 \
                and epoch + 1 < epochs:
            _save_checkpoint(checkpoint, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                          "generator": gen.get_state(), "epoch": epoch,
                                          "history": history, "fingerprint": fingerprint})
    if bar is not None:
        bar.close()
    model.eval()
    if checkpoint is not None and checkpoint.is_file():
        checkpoint.unlink()
    return history


def build_model(model_id: str, cfg: dict, in_dim: int, *, seed: int):
    """The model of a resolved config (sae.params.model_config), weights initialised from `seed`."""
    from sae.models import build
    from sae.params import LOOP_KEYS
    torch.manual_seed(seed)
    return build(model_id, in_dim, cfg["hidden"], **{k: v for k, v in cfg.items() if k not in LOOP_KEYS})


def fit_config(model, cfg: dict, x_train: torch.Tensor, x_val: torch.Tensor, *, seed: int, **fit_kwargs):
    """fit() with the training-loop keys of a resolved config."""
    return fit(model, x_train, x_val, epochs=cfg["epochs"], batch=cfg["batch"],
               optimizer=cfg["optimizer"], lr=cfg["lr"], momentum=cfg["momentum"],
               schedule=cfg["schedule"], final_lr=cfg["final_lr"], seed=seed,
               checkpoint_every=cfg["checkpoint_every"], **fit_kwargs)


def train_model(model_id: str, cfg: dict, x_train: torch.Tensor, x_val: torch.Tensor, *,
                seed: int, **fit_kwargs):
    """Build `model_id` from the resolved config `cfg` and train it; returns (model, history)."""
    model = build_model(model_id, cfg, x_train.shape[1], seed=seed).to(x_train.device)
    return model, fit_config(model, cfg, x_train, x_val, seed=seed, **fit_kwargs)
