"""Training-step speed against the machine's own dense matmul throughput.

    python benchmarks/train_step.py [--device auto] [--threads 2] [--batch 256]

Prints ms per step and samples/s for `ae` (sigmoid 784-1000-784) and `ksparse`
(784-1000, k=25), and each step's FLOP rate as a fraction of a large torch.mm measured
in the same run. A step is one call of the training loop's body: objective, backward,
optimiser step, constraints.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from sae.models import build
from sae.train import make_optimizer, resolve_device


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats: int, inner: int) -> float:
    """Median seconds per call of fn over `repeats` rounds of `inner` calls (after warm-up)."""
    for _ in range(3):
        fn()
    _sync(device)
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        _sync(device)
        rounds.append((time.perf_counter() - start) / inner)
    return statistics.median(rounds)


def matmul_gflops(device, n: int = 2048) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    return 2 * n**3 / timed(lambda: torch.mm(a, b), device, 5, 5) / 1e9


def step_fn(model, x, device):
    opt = make_optimizer(model.param_groups(), "sgd", 0.001, 0.9)
    gen = torch.Generator(device=device).manual_seed(0)

    def step():
        loss, _ = model.objective(x, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.after_step()
    return step


def step_flops(model_id: str, batch: int, dim: int, hidden: int, k: int) -> float:
    """Dense-equivalent FLOPs of one step: encoder and decoder matmuls, forward and backward.

    Forward: 2 matmuls of 2*B*D*M. Backward: grad of the decoder weight, of the codes and of
    the encoder weight (the input needs no grad): 3 more. ksparse decodes from k of M units,
    so its decoder-side work is counted at k/M of dense.
    """
    mm = 2 * batch * dim * hidden
    if model_id == "ksparse":
        return mm * (1 + 1) + mm * (k / hidden) * 3  # encoder fwd + enc-weight grad; sparse decoder side
    return 5 * mm


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dim, hidden, k = 784, 1000, 25
    peak = matmul_gflops(device)
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"dense matmul (2048^3): {peak:.1f} GFLOP/s")
    torch.manual_seed(0)
    x = torch.rand(args.batch, dim, device=device)
    for model_id, kw in (("ae", dict(activation="sigmoid", decoder="sigmoid")),
                         ("ksparse", dict(k=k, k_start=k, alpha=3))):
        model = build(model_id, dim, hidden, **kw).to(device)
        model.on_epoch_start(0, 1)
        sec = timed(step_fn(model, x, device), device, args.repeats, 10)
        gflops = step_flops(model_id, args.batch, dim, hidden, k) / sec / 1e9
        print(f"{model_id:8s} {dim}-{hidden}{'-' + str(dim) if model_id == 'ae' else f' k={k}'} "
              f"batch {args.batch}: {sec * 1e3:7.2f} ms/step  {args.batch / sec:9.0f} samples/s  "
              f"{gflops:6.1f} GFLOP/s = {gflops / peak:5.1%} of matmul")


if __name__ == "__main__":
    main()
