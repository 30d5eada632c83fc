"""sweep-<paper>@D: 003's coefficient sweep of every model of the paper on prepared dataset D, every
seed -> OUT_DIR/<model>.csv (one stage per dataset: the models share every param it reads)."""
import logging
import time
from pathlib import Path

from sae.base.cli import expect_args, run_stage

PROBE_ROWS = 200  # validation rows behind fit()'s per-epoch curves (not the reported metrics)


def main(params, args):
    paper, dataset, data_dir, out_dir = expect_args(args, "PAPER DATASET DATA_DIR OUT_DIR")
    from sae.config.protocol import sweep_settings
    cfg = sweep_settings(params, paper, dataset)
    import torch
    from sae.base.cli import stage_device
    from sae.data import prepared
    from sae.sweep import run_sweep, select_rows, table

    device = stage_device(params)
    data = prepared.read(Path(data_dir), cfg.input)
    keep = select_rows(data["x_train"].shape[0], cfg.train_rows, params.seeds[0])
    x_train = torch.from_numpy(data["x_train"][keep]).to(device)
    x_probe = torch.from_numpy(data["x_val"][:PROBE_ROWS]).to(device)
    x_eval = torch.from_numpy(data[f"x_{cfg.eval_split}"]).to(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for model_id in params.protocol(paper).models:
        start = time.perf_counter()
        rows = run_sweep(model_id, cfg, params.protocol(paper).grid, params.seeds, x_train, x_probe, x_eval)
        df = table(dataset, cfg, rows, n_train=x_train.shape[0], n_eval=x_eval.shape[0])
        path = out / f"{model_id}.csv"
        tmp = path.with_name(path.name + ".tmp")
        df.to_csv(tmp, index=False, float_format="%.6g")
        tmp.replace(path)
        logging.getLogger("sweep").info("%s/%s: %d fits in %.0f s (%d diverged) -> %s", dataset, model_id, len(df),
                                        time.perf_counter() - start, int(df["diverged"].sum()), path)


if __name__ == "__main__":
    run_stage(main, warm=True)  # torch stage: a fork of the warm server (sae.base.warm)
