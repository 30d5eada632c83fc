"""train@D-M: train autoencoder M on prepared dataset D; write weights, hyper-parameters, curves."""
import hashlib
import json
import logging
from pathlib import Path

from sae.cli import run_stage
from sae.params import model_config

VAL_PROBE = 1000  # size of the fixed validation batch behind the per-epoch curves


def main(params, args):
    dataset, model_id = args
    cfg = model_config(params, dataset, model_id)
    import torch
    from dvclive import Live
    from sae.data import prepared
    from sae.train import resolve_device, train_model

    device = resolve_device(params["device"])
    data = prepared.read(Path("data/prepared") / dataset, cfg["input"])
    x_train = torch.from_numpy(data["x_train"]).to(device)
    x_val = torch.from_numpy(data["x_val"][:VAL_PROBE]).to(device)
    out = Path("models") / dataset / model_id
    out.mkdir(parents=True, exist_ok=True)
    hparams = {"dataset": dataset, "model": model_id, "seed": params["seed"], "in_dim": x_train.shape[1], **cfg}
    # a checkpoint is resumed only by the same hyper-parameters on the same data
    fingerprint = hashlib.sha256(json.dumps([hparams, data["meta"]["sha256"]], sort_keys=True).encode()).hexdigest()
    ckpt = Path("checkpoints") / dataset / f"{model_id}.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)

    live = Live(str(out / "live"), save_dvc_exp=False, dvcyaml=False)
    (out / "live/plots/metrics").mkdir(parents=True, exist_ok=True)  # `raw` trains no epoch

    def log_epoch(row):
        for key, value in row.items():
            if key != "epoch":
                live.log_metric(key, value)
        live.next_step()

    model, history = train_model(model_id, cfg, x_train, x_val, seed=params["seed"], checkpoint=ckpt,
                                 fingerprint=fingerprint, on_epoch=log_epoch, name=f"{dataset}/{model_id}")
    live.end()
    torch.save(model.state_dict(), out / "model.pt")
    # weights at the end of each schedule stage (l1prox: 000 Fig. 1c); empty for other models
    torch.save(getattr(model, "snapshots", []), out / "stages.pt")
    (out / "hparams.json").write_text(json.dumps(hparams, indent=2) + "\n")
    if history:
        logging.getLogger("train").info("%s/%s: final loss %.4g, val recon %.4g", dataset, model_id,
                                        history[-1]["loss"], history[-1]["val_recon"])


if __name__ == "__main__":
    run_stage(main)
