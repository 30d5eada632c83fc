"""prepare@D: raw files -> train/val/test arrays, training statistics, meta.json."""
import json
import logging
from pathlib import Path

from sae.base.cli import expect_args, run_stage


def main(params, args):
    dataset, raw_dir, out_dir = expect_args(args, "DATASET RAW_DIR OUT_DIR")
    from sae.config import data_config
    from sae.data import prepared, sources
    cfg = data_config(dataset, params.data[dataset])
    splits = sources.load(dataset, Path(raw_dir), cfg)
    meta = prepared.write(splits, Path(out_dir), dataset=dataset, std_eps=cfg["std_eps"])
    logging.getLogger("prepare").info("%s: %s", dataset, json.dumps(meta["n"]))


if __name__ == "__main__":
    run_stage(main)
