"""evaluate@D-M: features of trained model M on dataset D -> metrics/D/M.json and metrics/D/M_hist.csv."""
import json
import logging
import time
from pathlib import Path

from sae.cli import run_stage


def main(params, args):
    dataset, model_id = args
    from sae import classify, evaluate
    classify_cfg = classify.check_config(params.get("classify"))
    eval_cfg = evaluate.check_config(params.get("evaluate"))
    model_dir = evaluate.trained_model_dir(dataset, model_id)
    start = time.perf_counter()
    device = evaluate.stage_device(params["device"], eval_cfg["threads"])
    hparams, state = evaluate.load_trained(model_dir, device)
    model = evaluate.rebuild(hparams, state).to(device)
    tensors, meta = evaluate.prepared_tensors(dataset, hparams["input"], device)
    result, hist = evaluate.evaluate(model, tensors, n_classes=meta["n_classes"],
                                     classify_cfg=classify_cfg, alphas=eval_cfg["alphas"],
                                     hist_bins=eval_cfg["hist_bins"], batch=eval_cfg["batch"],
                                     seed=params["seed"])
    result = {"input": hparams["input"], **result}  # the path names dataset and model

    out = Path("metrics") / dataset
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{model_id}.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    evaluate.write_hist_csv(out / f"{model_id}_hist.csv", hist)
    lr = result["logreg"]
    logging.getLogger("evaluate").info(
        "%s/%s: test error %s (l2 %s%s), hoyer %.3f, %.1f s", dataset, model_id,
        "n/a" if lr["test_error"] is None else f"{lr['test_error']:.4f}", lr["l2"],
        f", alpha {lr['alpha']:g}" if "alpha" in lr else "",
        result["hoyer"]["mean"] or 0.0, time.perf_counter() - start)


if __name__ == "__main__":
    run_stage(main)
