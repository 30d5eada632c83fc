"""batched_mm's split of G products against one torch.bmm, paired in one process.

    python benchmarks/batched_mm.py [--rows 3000] [--rounds 4] [--threads 2]

Part 1 times the five GEMMs of a 784-1000 step (batch 100) for G = 1..4 and 12 both ways.
Part 2 times one epoch of the default scale's G = 3 families at 784-1000 (dropout, DAE,
k-sparse at one k, RBM) with sae.train.fit, alternating the two ways `--rounds` times on the
same model so that the machine's drift hits both alike; the median of each is scaled to
50,000 rows. Both ways compute the same bits (tests/test_models.py), so only the time differs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sae.config import load  # noqa: E402
from sae.config.protocol import run_config  # noqa: E402
from sae.models import build, core  # noqa: E402
from sae.models.batch import layout  # noqa: E402
from sae.base.rng import init_generators  # noqa: E402
from sae.train import fit  # noqa: E402

N_TRAIN = 50_000
NEVER = 1 << 62  # SPLIT_MIN_MACS that keeps every product in one bmm


def paired(fn, rounds: int) -> tuple[float, float]:
    """Median seconds of fn() with bmm and with the split, alternated `rounds` times."""
    split = core.SPLIT_MIN_MACS
    times = {NEVER: [], split: []}
    for _ in range(rounds):
        for floor in times:
            core.SPLIT_MIN_MACS = floor
            start = time.perf_counter()
            fn()
            times[floor].append(time.perf_counter() - start)
    core.SPLIT_MIN_MACS = split
    return statistics.median(times[NEVER]), statistics.median(times[split])


def gemm_rows(rounds: int):
    B, D, M = 100, 784, 1000
    for G in (1, 2, 3, 4, 12):
        x, w, h = torch.rand(G, B, D), torch.randn(G, M, D), torch.rand(G, B, M)

        def step():
            for _ in range(10):
                core.batched_mm(x, w.transpose(1, 2))   # encoder forward
                core.batched_mm(h, w)                   # decoder forward (tied) / code gradient
                core.batched_mm(h.transpose(1, 2), x)   # weight gradient
                core.batched_mm(x, w.transpose(1, 2))
                core.batched_mm(h.transpose(1, 2), x)
        step()
        a, b = paired(step, rounds)
        print(f"five GEMMs 784-1000 x 100, G={G:2d}: bmm {a * 100:6.2f} ms  split {b * 100:6.2f} ms  "
              f"x{a / b:.2f}")


def epoch_rows(params, rows: int, rounds: int):
    for model_id in ("dropout", "dae", "ksparse_fixed_k", "rbm"):
        cfg = run_config(params, "makhzani2014", "mnist", model_id)
        lay = layout(cfg.id, cfg.options, params.seeds)
        opts = {k: v for k, v in cfg.options.items() if k != "k_sweep"}
        model = build(cfg.id, 784, cfg.loop.hidden, n_models=lay.n_models, per_model=lay.per_model(),
                      generators=init_generators(lay.model_seeds), **opts)
        x = torch.rand(rows, 784)
        model.on_epoch_start(10 ** 6, 2 * 10 ** 6)  # past any k schedule: the final k

        def epoch():
            fit(model, x, x[:200], epochs=1, batch=cfg.loop.batch, lr=cfg.loop.lr * 0.01,
                momentum=cfg.loop.momentum, seeds=lay.model_seeds, progress=False)
        epoch()
        a, b = paired(epoch, rounds)
        scale = N_TRAIN / rows
        print(f"epoch of {model_id:16s} G={lay.n_models}: bmm {a * scale:6.2f} s  split {b * scale:6.2f} s  "
              f"x{a / b:.2f}  (50,000 rows)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=3000, help="rows timed per epoch (scaled to 50,000)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, split from "
          f"{core.SPLIT_MIN_MACS} multiply-adds a product")
    gemm_rows(args.rounds)
    epoch_rows(load(Path(args.params)), args.rows, args.rounds)


if __name__ == "__main__":
    main()
