"""finetune@D-M: shallow / deep / no-pretraining fine-tuning of model M on D -> metrics/D/M_finetune.json."""
import json
import logging
import time
from pathlib import Path

from sae.cli import run_stage
from sae.errors import ParamError


def main(params, args):
    dataset, model_id = args
    from sae import evaluate, finetune
    cfg = finetune.check_config(params.get("finetune"))
    from sae.data import prepared
    model_dir = evaluate.trained_model_dir(dataset, model_id)
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

    start = time.perf_counter()
    device = evaluate.stage_device(params["device"], cfg["threads"])
    hparams, state = evaluate.load_trained(model_dir, device)
    tensors, _ = evaluate.prepared_tensors(dataset, hparams["input"], device)
    result = finetune.finetune(hparams, state, tensors, n_classes=meta["n_classes"], cfg=cfg,
                               deep_hidden=deep_hidden)
    out.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    fmt = lambda r: "n/a" if r.get("mean") is None else f"{r['mean']:.4f}"  # noqa: E731
    log.info("%s/%s: test accuracy shallow %s, deep %s, none %s (%d seed(s), %.1f s)", dataset, model_id,
             fmt(result["shallow"]), fmt(result["deep"]), fmt(result["none"]), result["n_seeds"],
             time.perf_counter() - start)


if __name__ == "__main__":
    run_stage(main)
