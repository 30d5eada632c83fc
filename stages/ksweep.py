"""ksweep@D-K: the ksparse model of dataset D retrained at k=K (002 Figs. 1-3, Table 1 rows)
-> ksweep/D/kK/{model.pt, hparams.json, metrics.json, hist.csv}."""
import hashlib
import json
import logging
import time
from pathlib import Path

from sae.cli import run_stage
from sae.errors import ParamError

VAL_PROBE = 1000  # as stages/train.py: the fixed validation batch behind the per-epoch curves


def main(params, args):
    if len(args) != 2 or not args[1].isdigit():
        raise ParamError("usage: python stages/ksweep.py <dataset> <k>")
    dataset, k = args[0], int(args[1])
    from sae import classify, evaluate, ksweep
    cfg_sweep = ksweep.check_config(params)
    if dataset not in cfg_sweep["datasets"]:
        raise ParamError(f"ksweep.datasets={cfg_sweep['datasets']!r}: does not list {dataset!r}")
    if k not in cfg_sweep["k"]:
        raise ParamError(f"ksweep.k={cfg_sweep['k']!r}: does not list {k}")
    cfg = ksweep.sweep_model_config(params, dataset, k)
    classify_cfg = classify.check_config(params.get("classify"))
    eval_cfg = evaluate.check_config(params.get("evaluate"))

    from sae.train import train_model

    start = time.perf_counter()
    device = evaluate.stage_device(params["device"], 0)
    tensors, meta = evaluate.prepared_tensors(dataset, cfg["input"], device)
    hparams = {"dataset": dataset, "model": "ksparse", "seed": params["seed"], "in_dim": int(tensors["x_train"].shape[1]),
               **cfg}
    fingerprint = hashlib.sha256(json.dumps([hparams, meta["sha256"]], sort_keys=True).encode()).hexdigest()
    ckpt = Path("checkpoints") / "ksweep" / dataset / f"k{k}.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    model, history = train_model("ksparse", cfg, tensors["x_train"], tensors["x_val"][:VAL_PROBE], seed=params["seed"],
                                 checkpoint=ckpt, fingerprint=fingerprint, name=f"{dataset}/ksparse@k={k}")
    result, hist = evaluate.evaluate(model, tensors, n_classes=meta["n_classes"], classify_cfg=classify_cfg,
                                     alphas=eval_cfg["alphas"], hist_bins=eval_cfg["hist_bins"],
                                     batch=eval_cfg["batch"], seed=params["seed"])
    result = {"input": hparams["input"], "k": k, **result}
    ksweep.write_outputs(Path("ksweep") / dataset / f"k{k}", hparams, model.state_dict(), result, hist)
    lr = result["logreg"]
    logging.getLogger("ksweep").info(
        "%s k=%d: test error %s, hoyer %.3f, %.1f s", dataset, k,
        "n/a" if lr["test_error"] is None else f"{lr['test_error']:.4f}", result["hoyer"]["mean"] or 0.0,
        time.perf_counter() - start)


if __name__ == "__main__":
    run_stage(main)
