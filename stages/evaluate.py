"""evaluate-<paper>@D-M: features of trained model batch M on D, every seed (and k)
-> METRICS_JSON (mean +- std over seeds, per-seed values) and HIST_CSV."""
import json
from pathlib import Path

from sae.base.cli import expect_args, run_stage


def main(params, args):
    paper, dataset, name, data_dir, model_dir, metrics_json, hist_csv = expect_args(
        args, "PAPER DATASET MODEL DATA_DIR MODEL_DIR METRICS_JSON HIST_CSV")
    from sae import evaluate
    from sae.base.cli import stage_device
    from sae.data import prepared
    from sae.models import store

    for path in (metrics_json, hist_csv):  # one line now, not a traceback after the fits
        store.check_writable(Path(path).parent)
    device = stage_device(params)
    model, hparams = store.load(Path(model_dir), device)
    tensors, meta = prepared.read_tensors(Path(data_dir), hparams["loop"]["input"], device)
    result, hist = evaluate.evaluate_batch(model, store.layout_of(hparams), tensors, n_classes=meta["n_classes"],
                                           classify_cfg=params.classify, evaluate_cfg=params.evaluate)
    result = {"input": hparams["loop"]["input"], **result}
    out = Path(metrics_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    evaluate.write_hist_csv(Path(hist_csv), hist)
    evaluate.log.info("%s/%s/%s: %d model(s) evaluated", paper, dataset, name, model.n_models)  # time: sae.base.cli


if __name__ == "__main__":
    run_stage(main, warm=True)  # torch stage: a fork of the warm server (sae.base.warm)
