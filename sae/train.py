"""The one training loop for every autoencoder (models plug in through sae.models.core.Autoencoder).

A model holds G stacked copies (seeds, or a coefficient grid); the loop trains them as one
batched computation: each model draws its own batch order and noise from the streams of its
seed (sae.base.rng), so model g ends with exactly the weights of a run that trains it alone.
Data stays on the device as one tensor; batches are index slices of seeded permutations; the
loss is accumulated on the device and read once per epoch (no per-step host sync). The
generator states are checkpointed, so a resumed run ends with the weights of an
uninterrupted one.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from sae.base import catalog, metrics, stats
from sae.base.errors import DataError, ParamError, TrainingError
from sae.base.optim import make_optimizer
from sae.base.rng import Streams

log = logging.getLogger(__name__)


def learning_rate(epoch: int, epochs: int, lr: float, schedule: str, final_lr: float,
                  hold: float | None = None) -> float:
    """Per-epoch rate: constant, or linear from lr down to final_lr over the run (002 sec. 4.2.2);
    with `hold`, linear over the first epochs and final_lr over the last ceil(hold * epochs), so a
    convergence window of that length judges one rate, not the schedule's decline."""
    if schedule == "constant" or epochs <= 1:
        return lr
    if hold:
        ramp = epochs - math.ceil(hold * epochs)  # epochs of the decay; it ends at final_lr exactly
        return final_lr if epoch >= ramp - 1 else lr + (final_lr - lr) * epoch / (ramp - 1)
    return lr + (final_lr - lr) * epoch / (epochs - 1)


@torch.no_grad()
def probe(model, x_val: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-model curves (each (G,)) on a fixed validation batch (n, D): reconstruction error,
    Hoyer sparseness, Gini index (000's measure) and activation fraction of the codes."""
    was_training = model.training
    model.eval()
    h = model.encode(x_val)
    x_hat = model.decode(h)
    model.train(was_training)
    threshold = catalog.activation_threshold(getattr(model, "activation", "linear"))
    return {"val_recon": metrics.reconstruction_error(x_val, x_hat).mean(dim=-1),
            "val_hoyer": metrics.hoyer(h).mean(dim=-1) if h.shape[-1] > 1 else torch.zeros(h.shape[0]),
            "val_gini": metrics.gini(h).mean(dim=-1),
            "val_activation_fraction": metrics.activation_fraction(h, threshold)}


def _save_checkpoint(path: Path, state: dict) -> None:
    """torch.save(state) behind a line with the sha256 of those bytes, written atomically."""
    import hashlib
    import io
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
    os.replace(tmp, path)  # a kill mid-write never leaves a broken checkpoint


def _load_checkpoint(path: Path, device) -> dict:
    """The state _save_checkpoint wrote; DataError (one line) when its bytes fail their sha256."""
    import hashlib
    import io
    data = path.read_bytes()
    digest, _, payload = data.partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise DataError(f"{path}: damaged checkpoint (sha256 mismatch); delete it to train from the start")
    return torch.load(io.BytesIO(payload), map_location=device, weights_only=False)


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)   # one row per epoch; per-model values are lists
    diverged: list[bool] = field(default_factory=list)  # per model (on_divergence="mask")
    stopped_early: bool = False  # every model met the convergence rule before the epoch cap


@dataclass(frozen=True)
class ConvergenceRule:
    """When a model has converged (sae.base.stats.converged on its val_recon curve): the relative change
    over the last `window` of its epochs, and at least `min_epochs`, stays under `tolerance`.
    A stop by it comes after at least `not_before` of the epoch cap."""
    window: float
    tolerance: float
    min_epochs: int
    not_before: float = 0.0

    def met(self, history: list[dict], schedule_end: int, diverged: list[bool], cap: int) -> bool:
        """True when every model that has not diverged has converged, judged on epochs after
        schedule_end only (a stop never cuts a k, alpha or sigma schedule short), once
        `not_before` of the `cap` epochs have run (a curve that falls slowly from the start is
        flat over a short window: 0.3% an epoch met the rule after 6 of 190 epochs)."""
        n = len(history)
        if n < self.not_before * cap or all(diverged) or \
                n - schedule_end < stats.convergence_span(n, self.window, self.min_epochs) + 1:
            return False
        return all(d or stats.converged([row["val_recon"][g] for row in history], self.window, self.tolerance,
                                        self.min_epochs) for g, d in enumerate(diverged))


def batches(x: torch.Tensor, streams: Streams, rows: torch.Tensor) -> torch.Tensor:
    """The batch of every model: rows (U,B) of each distinct seed's permutation, from a shared x
    (N,D) or per-model inputs x (G,N,D) -> (G,B,D); when every model has the same seed (a 003
    sweep) the one batch they share, (B,D)."""
    if x.dim() == 2:  # index_select: the same rows as x[rows], without advanced indexing's overhead
        picked = x.index_select(0, rows.reshape(-1)).view(*rows.shape, x.shape[-1])
        return picked[0] if rows.shape[0] == 1 else streams.expand(picked)
    model_rows = streams.expand(rows)  # (G,B)
    return x[torch.arange(x.shape[0], device=x.device)[:, None], model_rows]


def fit(model, x_train: torch.Tensor, x_val: torch.Tensor, *, epochs: int, batch: int, seeds,
        optimizer: str = "sgd", lr: float = 0.01, momentum: float = 0.9, schedule: str = "constant",
        final_lr: float = 0.001, hold: float | None = None, checkpoint: Path | None = None, checkpoint_every: int = 0,
        fingerprint: str = "", on_epoch: Callable[[dict], None] | None = None, name: str = "model",
        progress: bool = True, cuda_graph: bool = True, on_divergence: str = "raise",
        stop_at: ConvergenceRule | None = None) -> FitResult:
    """Train the G models of `model` in place on x_train ((N,D) shared, or (G,N,D) one per model).

    seeds: the seed of each model (sae.models.batch.Layout.model_seeds). x_val (n,D): the fixed
    batch behind the per-epoch curves. The logged loss is the objective without weight decay
    (the optimiser applies that). checkpoint: written every `checkpoint_every` epochs and
    resumed from when its `fingerprint` (hyper-parameters, data AND code) matches, verified by
    its sha256; also written after the last epoch, and left for the caller to remove once the
    outputs are saved (a failed save never costs the training). on_epoch: called with each epoch's row (also rows replayed from a checkpoint).
    on_divergence: "raise" a TrainingError naming `name`, the model and the epoch when a loss
    becomes NaN/inf, or "mask": record it in FitResult.diverged and train the others on.
    cuda_graph: on CUDA, replay each epoch's full batches from one captured graph.
    stop_at: end training before `epochs` once every model meets this convergence rule (a
    declared reduction of a scale; `epochs` is then a cap).
    """
    if schedule not in catalog.SCHEDULES:
        raise ParamError(f"schedule={schedule!r}: allowed: {', '.join(catalog.SCHEDULES)}")
    G = model.n_models
    if len(seeds) != G:
        raise ValueError(f"{len(seeds)} seeds for {G} models")
    result = FitResult(diverged=[False] * G)
    if not getattr(model, "trainable", True):
        return result
    device = x_train.device
    order, noise = Streams(seeds, device, "train"), Streams(seeds, device, "noise")
    opt = make_optimizer(model.param_groups(), optimizer, lr, momentum)
    start = 0
    if checkpoint is not None and checkpoint.is_file():
        state = _load_checkpoint(checkpoint, device)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            model.load_extra_state(state.get("extra", {}))
            opt.load_state_dict(state["optimizer"])
            order.set_state(state["order"])
            noise.set_state(state["noise"])
            result.history, start = state["history"], state["epoch"] + 1
            result.diverged = state.get("diverged", result.diverged)
            result.stopped_early = state.get("stopped_early", False)
            if result.stopped_early or start >= epochs:
                start = epochs  # the run had ended; only its outputs were not written
            log.info("%s: resuming from the checkpoint of epoch %d", name, state["epoch"] + 1)
        else:
            log.info("%s: ignoring a checkpoint of other hyper-parameters, data or code", name)
    for row in result.history:
        if on_epoch:
            on_epoch(row)

    n = x_train.shape[-2]
    steps = math.ceil(n / batch)
    graphs = cuda_graph and device.type == "cuda" and opt.capturable
    if graphs:
        from sae.cuda_graph import EpochGraphs
        replayer = EpochGraphs(name)
    alive = torch.tensor([not d for d in result.diverged], device=device)
    bar = None
    if progress and start < epochs:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, initial=start, desc=name, unit="epoch", leave=False)
    model.train()
    try:
        for epoch in range(start, epochs):
            scheduled = model.on_epoch_start(epoch, epochs) or {}
            rate = learning_rate(epoch, epochs, lr, schedule, final_lr, hold)
            for group in opt.param_groups:
                group["lr"] = rate
            perm = order.permutations(n)
            loss_sum = torch.zeros(G, device=device)
            recon_sum = torch.zeros(G, device=device)

            def step(xb):
                loss, recon = model.objective(xb, noise)
                keep = torch.where(alive, loss, torch.zeros_like(loss))  # a diverged model stops learning
                opt.zero_grad(set_to_none=True)
                keep.sum().backward()  # independent models: each gradient is its own model's
                opt.step()
                model.after_step()
                loss_sum.add_(loss.detach() * xb.shape[1])
                recon_sum.add_(recon.detach() * xb.shape[1])

            for i in range(steps):
                rows = perm[:, i * batch:(i + 1) * batch]
                if graphs and rows.shape[1] == batch and replayer.run(epoch, step, lambda r: batches(x_train, order, r),
                                                                      rows, noise):
                    continue
                step(batches(x_train, order, rows))
            model.on_epoch_end(epoch, epochs)
            curves = {**probe(model, x_val), **model.monitor(x_val, x_train[..., :x_val.shape[-2], :])}
            row = {"epoch": epoch, "lr": rate, "loss": (loss_sum / n).tolist(), "recon": (recon_sum / n).tolist(),
                   **{k: v.tolist() for k, v in curves.items()}, **scheduled}
            bad = [g for g, v in enumerate(row["loss"]) if not math.isfinite(v) and not result.diverged[g]]
            if bad:  # the epoch's one host read happened just above
                if on_divergence == "raise":
                    raise TrainingError(f"{name}: loss became {row['loss'][bad[0]]} at epoch {epoch} "
                                        f"(model {bad[0]}, seed {seeds[bad[0]]}); no model written")
                for g in bad:
                    result.diverged[g] = True
                    log.warning("%s: model %d (seed %s) diverged at epoch %d", name, g, seeds[g], epoch)
                alive = torch.tensor([not d for d in result.diverged], device=device)
            result.history.append(row)
            if on_epoch:
                on_epoch(row)
            if bar is not None:
                bar.set_postfix(loss=f"{sum(row['loss']) / G:.4g}")
                bar.update(1)
            if stop_at is not None and epoch + 1 < epochs and \
                    stop_at.met(result.history, model.schedule_end(epochs), result.diverged, epochs):
                result.stopped_early = True
                log.info("%s: every model converged after %d of %d epochs; stopping", name, epoch + 1, epochs)
            last = result.stopped_early or epoch + 1 == epochs
            # the last state too: a run whose outputs fail to save resumes at its end, not at epoch 0
            if checkpoint is not None and (last or (checkpoint_every and (epoch + 1) % checkpoint_every == 0)):
                _save_checkpoint(checkpoint, {"model": model.state_dict(), "extra": model.extra_state(),
                                              "optimizer": opt.state_dict(), "order": order.get_state(),
                                              "noise": noise.get_state(), "epoch": epoch,
                                              "history": result.history, "diverged": result.diverged,
                                              "stopped_early": result.stopped_early, "fingerprint": fingerprint})
            if result.stopped_early:
                break
    finally:
        if bar is not None:
            bar.close()  # a bar left open would glue the next line (an error message) to itself
    if result.history:
        model.on_train_end(len(result.history) - 1, epochs)
    model.eval()
    return result  # the caller removes the checkpoint once its outputs are saved


def stop_rule(loop, statistics) -> ConvergenceRule | None:
    """The rule a loop (sae.config.schema.Loop) stops by: statistics' convergence rule when
    loop.stop_at_convergence, else None (train every epoch)."""
    if not loop.stop_at_convergence:
        return None
    return ConvergenceRule(statistics.convergence_window, statistics.convergence_tolerance,
                           statistics.convergence_min_epochs, statistics.stop_not_before)


def fit_loop(model, loop, x_train: torch.Tensor, x_val: torch.Tensor, *, seeds,
             stop_at: ConvergenceRule | None = None, **fit_kwargs) -> FitResult:
    """fit() with the settings of a resolved sae.config.schema.Loop."""
    return fit(model, x_train, x_val, epochs=loop.epochs, batch=loop.batch, seeds=seeds,
               optimizer=loop.optimizer, lr=loop.lr, momentum=loop.momentum, schedule=loop.schedule,
               final_lr=loop.final_lr, hold=loop.hold, checkpoint_every=loop.checkpoint_every, stop_at=stop_at,
               **fit_kwargs)
