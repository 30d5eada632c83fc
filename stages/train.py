"""train-<paper>@D-M: model M of a paper's protocol on prepared dataset D, every seed (and k)
as one batch -> model.pt, hparams.json, stages.pt and per-epoch curves (dvclive) in OUT_DIR."""
import dataclasses
import hashlib
import json
import logging
from pathlib import Path

from sae.base.cli import expect_args, run_stage

VAL_PROBE = 1000  # size of the fixed validation batch behind the per-epoch curves


def main(params, args):
    paper, dataset, name, data_dir, out_dir, checkpoint = expect_args(
        args, "PAPER DATASET MODEL DATA_DIR OUT_DIR CHECKPOINT")
    from sae.config.protocol import run_config
    cfg = run_config(params, paper, dataset, name)
    from dvclive import Live
    from sae.base.cli import stage_device
    from sae.data import prepared
    from sae.models import build, store
    from sae.models.batch import layout
    from sae.provenance import code_fingerprint
    from sae.base.rng import init_generators
    from sae.train import fit_loop, stop_rule

    store.check_writable(Path(out_dir))  # one line now, not a traceback after hours of training
    device = stage_device(params)
    data, meta = prepared.read_tensors(Path(data_dir), cfg.loop.input, device)
    check_batch(cfg, data["x_train"].shape[-2])
    lay = layout(cfg.id, cfg.options, params.seeds)
    rule = stop_rule(cfg.loop, params.statistics)  # epochs is a cap when set (a declared reduction)
    hparams = {**cfg.hparams(params.seeds, meta["dim"]), "variants": list(lay.variants),
               "stop_rule": None if rule is None else dataclasses.asdict(rule)}
    opts = {k: v for k, v in cfg.options.items() if k != "k_sweep"}
    model = build(cfg.id, meta["dim"], cfg.loop.hidden, n_models=lay.n_models, per_model=lay.per_model(),
                  generators=init_generators(lay.model_seeds), **opts).to(device)
    # a checkpoint is resumed only by the same hyper-parameters, data and code
    code = code_fingerprint(__file__, Path(__file__).resolve().parent.parent)
    fingerprint = hashlib.sha256(json.dumps([hparams, meta["sha256"], code], sort_keys=True).encode()).hexdigest()

    out = Path(out_dir)
    live = Live(str(out / "live"), save_dvc_exp=False, dvcyaml=False)
    (out / "live/plots/metrics").mkdir(parents=True, exist_ok=True)  # `raw` trains no epoch
    labels = [lay.model_label(g) for g in range(lay.n_models)]

    def log_epoch(row):
        for key, value in row.items():
            if key == "epoch":
                continue
            for label, v in zip(labels, value) if isinstance(value, list) else [(None, value)]:
                live.log_metric(key if label is None else f"{key}/{label}", v)
        live.next_step()

    result = fit_loop(model, cfg.loop, data["x_train"], data["x_val"][:VAL_PROBE], seeds=lay.model_seeds,
                      checkpoint=Path(checkpoint), fingerprint=fingerprint, on_epoch=log_epoch,
                      name=f"{paper}/{dataset}/{name}", stop_at=rule)
    live.end()
    hparams["epochs_trained"] = len(result.history)  # below the cap when training stopped at convergence
    # weights at the end of each schedule stage (l1prox: 000 Fig. 1c); empty for other models
    store.save(out, model, hparams, snapshots=getattr(model, "snapshots", []))
    Path(checkpoint).unlink(missing_ok=True)  # only once the outputs are safely written
    if result.history:
        last = result.history[-1]
        logging.getLogger("train").info("%s/%s/%s: %d models, final loss %s, val recon %s", paper, dataset, name,
                                        lay.n_models, _short(last["loss"]), _short(last["val_recon"]))


def check_batch(cfg, n_train: int) -> None:
    """A warning naming the key when a batch exceeds the training split: each epoch is then one
    short batch (allowed: the tests run the papers' batches on small generated sets)."""
    if cfg.loop.batch > n_train:
        where = cfg.source.get("batch", f"{cfg.paper}.train.{cfg.dataset}.batch")
        logging.getLogger("train").warning("%s=%d exceeds the %d training rows of %s: every epoch is one batch "
                                           "of %d rows", where, cfg.loop.batch, n_train, cfg.dataset, n_train)


def _short(values):
    return "[" + ", ".join(f"{v:.4g}" for v in values[:6]) + (", ..." if len(values) > 6 else "") + "]"


if __name__ == "__main__":
    run_stage(main, warm=True)  # torch stage: a fork of the warm server (sae.base.warm)
