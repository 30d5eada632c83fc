"""Training-step speed against the machine's own dense matmul throughput.

    python benchmarks/train_step.py [--device auto] [--threads 2] [--batch 256]
    python benchmarks/train_step.py --device cuda --size mnist norb --batch 100 256 --epoch

Prints ms per step and samples/s for `ae` (sigmoid D-M-D) and `ksparse` (D-M, k) at each
size (mnist: 784-1000, k=25; norb: 2048-4000, k=150, the sizes of 002 sec. 4), and each
step's FLOP rate as a fraction of a large torch.mm measured in the same run. A step is one
call of the training loop's body: objective, backward, optimiser step, constraints. On CUDA
each step is also timed as sae.train.fit runs it there, replayed from a CUDA graph.
--epoch also times one epoch of sae.train.fit over an MNIST-sized set (50,000 x 784 train,
10,000 validation, batch 100, as the paper-scale `mnist` config), random pixels in [0, 1);
on CUDA with and without graph replay.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from sae.base.device import resolve_device
from sae.models import build
from sae.base.optim import make_optimizer
from sae.base.rng import Streams


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


def matmul_gflops(device) -> float:
    n = 8192 if device.type == "cuda" else 2048  # large enough to fill the device
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    return 2 * n**3 / timed(lambda: torch.mm(a, b), device, 5, 5) / 1e9


def step_fn(model, x, device, graph: bool = False):
    """One training step on the batch x; graph: captured once and replayed, as fit() does on CUDA."""
    opt = make_optimizer(model.param_groups(), "sgd", 0.001, 0.9)
    noise = Streams([0], device, "noise")

    def body(xb):
        loss, _ = model.objective(xb, noise)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        model.after_step()
    x = x[None]  # a batch of one model
    if not graph:
        return lambda: body(x)
    from sae.cuda_graph import WARMUP_STEPS, StepGraph, warm_up
    for _ in range(WARMUP_STEPS):
        warm_up(body, x)
    captured = StepGraph(body, x, noise)
    return lambda: captured.replay(x)


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


SIZES = {"mnist": (784, 1000, 25), "norb": (2048, 4000, 150)}  # D, M, k (002 sec. 4.2-4.4)
MODELS = {"ae": lambda k: dict(activation="sigmoid", decoder="sigmoid"),
          "ksparse": lambda k: dict(k=k, k_start=k, alpha=3)}


def time_steps(device, sizes, batches, repeats, peak):
    for size in sizes:
        dim, hidden, k = SIZES[size]
        for batch in batches:
            torch.manual_seed(0)
            x = torch.rand(batch, dim, device=device)
            for model_id, kw in MODELS.items():
                for graph in (False, True) if device.type == "cuda" else (False,):
                    model = build(model_id, dim, hidden, **kw(k)).to(device)
                    model.on_epoch_start(0, 1)
                    sec = timed(step_fn(model, x, device, graph), device, repeats, 10)
                    gflops = step_flops(model_id, batch, dim, hidden, k) / sec / 1e9
                    shape = f"{dim}-{hidden}-{dim}" if model_id == "ae" else f"{dim}-{hidden} k={k}"
                    print(f"{size:5s} {model_id:8s} {shape:14s} batch {batch:4d}{' graph' if graph else ''}: "
                          f"{sec * 1e3:7.2f} ms/step  {batch / sec:9.0f} samples/s  "
                          f"{gflops:8.1f} GFLOP/s = {gflops / peak:5.1%} of matmul")


def time_epoch(device, n_train=50_000, n_val=10_000, batch=100):
    """Seconds of one fit() epoch (shuffle, steps, the epoch's one host read, validation probe)."""
    from sae.train import fit
    dim, hidden, k = SIZES["mnist"]
    gen = torch.Generator(device=device).manual_seed(0)
    x_train = torch.rand(n_train, dim, device=device, generator=gen)
    x_val = torch.rand(n_val, dim, device=device, generator=gen)
    for model_id, kw in MODELS.items():
        for graph in (True, False) if device.type == "cuda" else (False,):
            model = build(model_id, dim, hidden, **kw(k)).to(device)
            run = dict(epochs=1, batch=batch, lr=0.001, seeds=[0], progress=False, cuda_graph=graph)
            fit(model, x_train[:10 * batch], x_val, **run)  # warm-up
            times = []
            for _ in range(3):
                _sync(device)
                start = time.perf_counter()
                fit(model, x_train, x_val, **run)
                _sync(device)
                times.append(time.perf_counter() - start)
            sec = statistics.median(times)
            print(f"one MNIST epoch ({n_train} x {dim}, batch {batch}, {model_id}"
                  f"{', graph replay' if graph else ', eager' if device.type == 'cuda' else ''}): "
                  f"{sec:.3f} s (median of 3; {n_train / sec:.0f} samples/s)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", nargs="+", choices=sorted(SIZES), default=["mnist"])
    ap.add_argument("--batch", type=int, nargs="+", default=[256])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--epoch", action="store_true", help="also time one MNIST-sized fit() epoch")
    ap.add_argument("--public", action="store_true",
                    help="without torch's private kernels (k-sparse's per-sample-weight backward, the fused SGD "
                         "update): their public fallbacks")
    args = ap.parse_args(argv)
    if args.public:
        import sae.models.ksparse
        import sae.base.optim
        sae.models.ksparse._private_dots = lambda: None
        sae.base.optim.fused_sgd_ = lambda *a, **k: False
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    peak = matmul_gflops(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device {device} ({name}), torch {torch.__version__}")
    print(f"dense float32 matmul: {peak:.1f} GFLOP/s")
    time_steps(device, args.size, args.batch, args.repeats, peak)
    if args.epoch:
        time_epoch(device)


if __name__ == "__main__":
    main()
