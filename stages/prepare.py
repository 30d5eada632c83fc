"""prepare@D: raw files -> train/val/test arrays, training statistics, meta.json."""
import json
import logging
from pathlib import Path

from sae.cli import run_stage


def main(params, args):
    (dataset,) = args
    from sae.data import prepared, sources
    cfg = params["data"][dataset]
    splits = sources.load(dataset, Path("data/raw") / dataset, cfg)
    meta = prepared.write(splits, Path("data/prepared") / dataset, dataset=dataset, std_eps=cfg["std_eps"])
    logging.getLogger("prepare").info("%s: %s", dataset, json.dumps(meta["n"]))


if __name__ == "__main__":
    run_stage(main)
