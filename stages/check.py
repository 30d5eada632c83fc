"""check: validate params.yaml before any other stage runs (every stage depends on its output).

Its output never changes (so nothing reruns because of it); a bad value makes this stage,
the first of every `dvc repro`, fail with one line before DVC touches any other output.
"""
from pathlib import Path

from sae.base.cli import expect_args, run_stage


def main(params, args):
    (out,) = expect_args(args, "OUT")
    from sae.base.device import check_device
    check_device(params.device)  # device=cuda without CUDA: refused here, not recorded as a CUDA run
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("params.yaml passed sae.config\n")


if __name__ == "__main__":
    run_stage(main)
