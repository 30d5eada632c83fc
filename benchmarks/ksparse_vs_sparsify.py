"""Our k-sparse training step against EleutherAI sparsify's SparseCoder step, in one run.

    pip install -e '.[bench]'
    SPARSIFY_DISABLE_TRITON=1 python benchmarks/ksparse_vs_sparsify.py   # on CPU

Same shapes (784 -> 1000, k=25, batch 256), same optimiser (SGD, momentum 0.9), same
threads; the two steps are timed in alternating rounds so drift hits both alike, and the
median ratio is printed. A step is forward, loss, backward and the optimiser update.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from sae.base.device import resolve_device
from sae.models import build
from sae.base.optim import make_optimizer


def sparsify_step(dim, hidden, k, x, device):
    os.environ.setdefault("SPARSIFY_DISABLE_TRITON", "1" if device.type == "cpu" else "0")
    from sparsify import SparseCoder, SparseCoderConfig
    coder = SparseCoder(dim, SparseCoderConfig(num_latents=hidden, k=k), device=device)
    opt = make_optimizer(coder.parameters(), "sgd", 0.001, 0.9)

    def step():
        loss = coder(x).fvu
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def our_step(dim, hidden, k, x, device):
    model = build("ksparse", dim, hidden, k=k, k_start=k, alpha=3).to(device)
    opt = make_optimizer(model.param_groups(), "sgd", 0.001, 0.9)

    xb = x[None]  # a batch of one model

    def step():
        loss, _ = model.objective(xb)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--dim", type=int, default=784)
    ap.add_argument("--hidden", type=int, default=1000)
    ap.add_argument("-k", type=int, default=25)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    x = torch.rand(args.batch, args.dim, device=device)
    steps = {"sae-repro ksparse": our_step(args.dim, args.hidden, args.k, x, device),
             "sparsify SparseCoder": sparsify_step(args.dim, args.hidden, args.k, x, device)}
    times = {name: [] for name in steps}
    for step in steps.values():  # warm-up
        for _ in range(3):
            step()
    for _ in range(args.rounds):
        for name, step in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(10):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append((time.perf_counter() - start) / 10)
    print(f"device {device}, {torch.get_num_threads()} threads, {args.dim}->{args.hidden}, k={args.k}, "
          f"batch {args.batch}, {args.rounds} rounds of 10 steps")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:22s} {med * 1e3:8.2f} ms/step (min {min(ts) * 1e3:.2f}, max {max(ts) * 1e3:.2f})"
              f"  {args.batch / med:9.0f} samples/s")
    ours, peer = times["sae-repro ksparse"], times["sparsify SparseCoder"]
    ratios = [p / o for o, p in zip(ours, peer)]
    print(f"speed-up over sparsify: median {statistics.median(ratios):.2f}x "
          f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x, per round)")


if __name__ == "__main__":
    main()
