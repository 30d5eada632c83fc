"""sweep@D-M: 003's coefficient sweep of model M on prepared dataset D -> sweeps/D/M.csv."""
import logging
import time
from pathlib import Path

from sae.cli import run_stage
from sae.sweep import sweep_config

PROBE_ROWS = 200  # validation rows behind fit()'s per-epoch curves (not the reported metrics)


def main(params, args):
    dataset, model_id = args
    cfg = sweep_config(params, dataset, model_id)
    import torch
    from sae.data import prepared
    from sae.sweep import run_sweep, select_rows, table
    from sae.train import resolve_device

    device = resolve_device(params["device"])
    data = prepared.read(Path("data/prepared") / dataset, cfg["input"])
    keep = select_rows(data["x_train"].shape[0], cfg["train_rows"], params["seed"])
    x_train = torch.from_numpy(data["x_train"][keep]).to(device)
    x_probe = torch.from_numpy(data["x_val"][:PROBE_ROWS]).to(device)
    x_eval = torch.from_numpy(data[f"x_{cfg['eval_split']}"]).to(device)
    out = Path("sweeps") / dataset / f"{model_id}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = run_sweep(model_id, cfg, x_train, x_probe, x_eval, seed=params["seed"], desc=f"sweep {dataset}/{model_id}")
    df = table(dataset, cfg, rows, n_train=x_train.shape[0], n_eval=x_eval.shape[0])
    tmp = out.with_suffix(".tmp")
    df.to_csv(tmp, index=False, float_format="%.6g")
    tmp.replace(out)
    logging.getLogger("sweep").info("%s/%s: %d fits in %.0f s (%d diverged) -> %s", dataset, model_id, len(df),
                                    time.perf_counter() - start, int(df["diverged"].sum()), out)


if __name__ == "__main__":
    run_stage(main)
