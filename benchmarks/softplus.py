"""The RBM's softplus (sae.models.rbm.softplus) against torch's F.softplus, paired in one process.

    python benchmarks/softplus.py [--threads 2] [--repeats 200] [--rounds 4]

Times both on the pre-activations of one CD-1 step of the default scale's RBM batch (G = 3
seeds, batch 100, 1000 hidden units), forward alone and forward + backward, alternating the
two `--rounds` times so that the machine's drift hits both alike; prints the median ms of
each and their largest difference in value.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sae.models.rbm import softplus  # noqa: E402


def _ms(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    a = (torch.randn(3, 100, 1000, generator=torch.Generator().manual_seed(0)) * 4).requires_grad_()
    ways = {"torch F.softplus": F.softplus, "sae.models.rbm.softplus": softplus}
    times = {(name, kind): [] for name in ways for kind in ("forward", "forward+backward")}
    for _ in range(args.rounds):
        for name, fn in ways.items():
            with torch.no_grad():
                times[name, "forward"].append(_ms(lambda: fn(a), args.repeats))
            times[name, "forward+backward"].append(_ms(lambda: fn(a).sum().backward(), args.repeats))
    print(f"(3, 100, 1000) float32, {torch.get_num_threads()} threads, median of {args.rounds} rounds, ms:")
    for (name, kind), ts in times.items():
        print(f"  {name:24s} {kind:17s} {statistics.median(ts):6.3f}")
    with torch.no_grad():
        print(f"largest |difference|: {(softplus(a) - F.softplus(a)).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
