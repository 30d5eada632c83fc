"""finetune@D-M: shallow / deep / no-pretraining fine-tuning of model M on D -> metrics/D/M_finetune.json."""
import json
import logging
import time
from pathlib import Path

from sae.cli import run_stage
from sae.errors import DataError, ParamError


def main(params, args):
    dataset, model_id = args
    from sae import finetune
    cfg = finetune.check_config(params.get("finetune"))
    from sae.data import prepared
    model_dir = Path("models") / dataset / model_id
    for name in ("model.pt", "hparams.json"):
        if not (model_dir / name).is_file():
            raise DataError(f"{model_dir / name}: missing; run `dvc repro train@{dataset}-{model_id}` first")
    meta = prepared.read_meta(Path("data/prepared") / dataset)
    out = Path("metrics") / dataset / f"{model_id}_finetune.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger("finetune")
    if not meta["labelled"]:
        out.write_text(json.dumps({"skipped": "unlabelled dataset"}, indent=2) + "\n")
        log.info("%s/%s: unlabelled dataset, nothing to fine-tune", dataset, model_id)
        return
    deep_hidden = cfg["deep_hidden"].get(dataset)
    if deep_hidden is None and model_id != "raw":
        raise ParamError(f"finetune.deep_hidden.{dataset}: missing (width of the second layer)")

    import torch
    from sae.train import resolve_device
    start = time.perf_counter()
    device = resolve_device(params["device"])
    if device.type == "cpu" and cfg["threads"]:
        torch.set_num_threads(cfg["threads"])  # small ops: extra threads mostly wait on a busy machine
    hparams = json.loads((model_dir / "hparams.json").read_text())
    state = torch.load(model_dir / "model.pt", map_location=device, weights_only=True)
    data = prepared.read(Path("data/prepared") / dataset, hparams["input"])
    tensors = {k: torch.from_numpy(v).to(device) for k, v in data.items() if k != "meta"}
    result = finetune.finetune(hparams, state, tensors, n_classes=meta["n_classes"], cfg=cfg,
                               deep_hidden=deep_hidden)
    out.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    fmt = lambda r: "n/a" if r.get("mean") is None else f"{r['mean']:.4f}"  # noqa: E731
    log.info("%s/%s: test accuracy shallow %s, deep %s, none %s (%d seed(s), %.1f s)", dataset, model_id,
             fmt(result["shallow"]), fmt(result["deep"]), fmt(result["none"]), result["n_seeds"],
             time.perf_counter() - start)


if __name__ == "__main__":
    run_stage(main)
