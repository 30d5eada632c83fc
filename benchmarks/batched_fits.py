"""G fits trained as one batch (a leading model axis) against the same G fits one after another.

    python benchmarks/batched_fits.py                      # 12 003-sweep fits, 784 -> 100, batch 50, CPU
    python benchmarks/batched_fits.py --device cuda --hidden 1000

The 12 fits are the coefficient grid of one (activation, constraint) of 003's sweep (model cae,
ReLU, unit-length rows), every one from the same seed, on random standardised data of MNIST's
shape; both ways run the one training loop (sae.train.fit), in alternating rounds so that drift
hits both alike, and the median ratio is printed. Each batched model ends with the weights of
its sequential fit (tests/test_sweep.py checks it).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from sae.base.device import resolve_device
from sae.models import build
from sae.base.rng import init_generators
from sae.sweep import PAPER_GRID, model_options
from sae.train import fit


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_batched(x, xp, coefficients, hidden, epochs, batch):
    model = build("cae", x.shape[1], hidden, n_models=len(coefficients), generators=init_generators([0] * len(coefficients)),
                  per_model={"lam": list(coefficients)}, **model_options("cae", "relu", True)).to(x.device)
    fit(model, x, xp, epochs=epochs, batch=batch, lr=0.002, seeds=[0] * len(coefficients), progress=False)


def run_sequential(x, xp, coefficients, hidden, epochs, batch):
    for c in coefficients:
        model = build("cae", x.shape[1], hidden, generators=init_generators([0]), lam=c,
                      **model_options("cae", "relu", True)).to(x.device)
        fit(model, x, xp, epochs=epochs, batch=batch, lr=0.002, seeds=[0], progress=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fits", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=100)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.rows, 784, generator=g).to(device)
    xp = torch.randn(200, 784, generator=g).to(device)
    coefficients = (list(PAPER_GRID) * (args.fits // len(PAPER_GRID) + 1))[:args.fits]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"device {device} ({name}); {args.fits} fits of cae 784 -> {args.hidden}, {args.rows} rows, "
          f"batch {args.batch}, {args.epochs} epochs")
    work = {"batched": run_batched, "sequential": run_sequential}
    for fn in work.values():  # warm-up
        fn(x[: 5 * args.batch], xp, coefficients, args.hidden, 1, args.batch)
    times = {k: [] for k in work}
    for _ in range(args.rounds):
        for key, fn in work.items():
            _sync(device)
            start = time.perf_counter()
            fn(x, xp, coefficients, args.hidden, args.epochs, args.batch)
            _sync(device)
            times[key].append(time.perf_counter() - start)
    for key, t in times.items():
        print(f"{key:10s} median {statistics.median(t):7.2f} s  (min {min(t):.2f}, max {max(t):.2f})")
    ratios = [s / b for s, b in zip(times["sequential"], times["batched"])]
    print(f"sequential / batched: {statistics.median(ratios):.2f}x (median of {args.rounds} paired rounds)")


if __name__ == "__main__":
    main()
