"""evaluate@D-M: features of trained model M on dataset D -> metrics/D/M.json and metrics/D/M_hist.csv."""
import csv
import json
import logging
import time
from pathlib import Path

from sae.cli import run_stage
from sae.errors import DataError


def main(params, args):
    dataset, model_id = args
    from sae import classify, evaluate
    classify_cfg = classify.check_config(params.get("classify"))
    eval_cfg = evaluate.check_config(params.get("evaluate"))
    model_dir = Path("models") / dataset / model_id
    for name in ("model.pt", "hparams.json"):
        if not (model_dir / name).is_file():
            raise DataError(f"{model_dir / name}: missing; run `dvc repro train@{dataset}-{model_id}` first")
    import torch
    from sae.data import prepared
    from sae.train import resolve_device

    start = time.perf_counter()
    device = resolve_device(params["device"])
    if device.type == "cpu" and eval_cfg["threads"]:
        torch.set_num_threads(eval_cfg["threads"])  # small ops: extra threads mostly wait on a busy machine
    hparams = json.loads((model_dir / "hparams.json").read_text())
    model = evaluate.rebuild(hparams, torch.load(model_dir / "model.pt", map_location=device,
                                                 weights_only=True)).to(device)
    data = prepared.read(Path("data/prepared") / dataset, hparams["input"])
    tensors = {k: (None if v is None else torch.from_numpy(v).to(device))
               for k, v in data.items() if k != "meta"}
    result, hist = evaluate.evaluate(model, tensors, n_classes=data["meta"]["n_classes"],
                                     classify_cfg=classify_cfg, alphas=eval_cfg["alphas"],
                                     hist_bins=eval_cfg["hist_bins"], batch=eval_cfg["batch"],
                                     seed=params["seed"])
    result = {"input": hparams["input"], **result}  # the path names dataset and model

    out = Path("metrics") / dataset
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{model_id}.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    with open(out / f"{model_id}_hist.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["bin_left", "bin_right", "bin_center", "count"])
        for lo, hi, c in zip(hist["left"], hist["right"], hist["count"]):
            writer.writerow([f"{lo:.6g}", f"{hi:.6g}", f"{(lo + hi) / 2:.6g}", c])
    lr = result["logreg"]
    logging.getLogger("evaluate").info(
        "%s/%s: test error %s (l2 %s%s), hoyer %.3f, %.1f s", dataset, model_id,
        "n/a" if lr["test_error"] is None else f"{lr['test_error']:.4f}", lr["l2"],
        f", alpha {lr['alpha']:g}" if "alpha" in lr else "",
        result["hoyer"]["mean"] or 0.0, time.perf_counter() - start)


if __name__ == "__main__":
    run_stage(main)
