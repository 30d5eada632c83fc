"""finetune-<paper>@D-M: shallow / deep / no-pretraining fine-tuning of model M on D, every seed
-> OUT_JSON (mean +- std of test accuracy over seeds, per-seed values)."""
import json
import logging
import time
from pathlib import Path

from sae.base.cli import expect_args, run_stage


def main(params, args):
    paper, dataset, name, data_dir, model_dir, out_json = expect_args(
        args, "PAPER DATASET MODEL DATA_DIR MODEL_DIR OUT_JSON")
    from sae.config.protocol import finetune_settings
    protocol = params.protocol(paper).finetune
    cfg = finetune_settings(params, paper, dataset)
    from sae import finetune
    from sae.base.cli import stage_device
    from sae.data import prepared
    from sae.models import store

    out = Path(out_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger("finetune")
    meta = prepared.read_meta(Path(data_dir))
    if not meta["labelled"]:
        out.write_text(json.dumps({"skipped": "unlabelled dataset"}, indent=2) + "\n")
        log.info("%s/%s: unlabelled dataset, nothing to fine-tune", dataset, name)
        return
    start = time.perf_counter()
    device = stage_device(params)
    model, hparams = store.load(Path(model_dir), device)
    lay = store.layout_of(hparams)
    tensors, _ = prepared.read_tensors(Path(data_dir), hparams["loop"]["input"], device)
    result = finetune.finetune(model.select(lay.models_of(0)), hparams, tensors, n_classes=meta["n_classes"],
                               cfg=cfg, kinds=protocol.kinds, baseline=name in protocol.without_pretraining,
                               deep=name in protocol.deep_models)
    out.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    log.info("%s/%s/%s: %s (%d seeds, %.1f s)", paper, dataset, name,
             ", ".join(f"{k} {_fmt(result.get(k))}" for k in protocol.kinds), result["n_seeds"],
             time.perf_counter() - start)


def _fmt(r):
    s = (r or {}).get("test_accuracy") or {}
    return "n/a" if s.get("mean") is None else f"{s['mean']:.4f}" + (f" +- {s['std']:.4f}" if s.get("std") else "")


if __name__ == "__main__":
    run_stage(main, warm=True)  # torch stage: a fork of the warm server (sae.base.warm)
