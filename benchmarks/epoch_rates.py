"""One epoch of each model family at the default scale's shapes, against a matmul roofline.

    python benchmarks/epoch_rates.py [--rows 5000] [--threads 2] [--device auto]

Each family is built from params.yaml (the default scale: real MNIST shapes) exactly as its
stage builds it: every seed (and k, or coefficient) as one batch of G models. One epoch over
`--rows` rows of MNIST-shaped data (random pixels; the speed does not depend on the content)
is timed with sae.train.fit, again over twice as many rows, and the line through the two gives
the epoch over the 50,000 training rows: the costs paid once an epoch (the validation probe of the
train stage's size, the RBM's monitor) count once, not 50,000 / rows times. The roofline is the same
epoch's GEMMs (the encoder and decoder matmuls, forward and backward, as batched bmm of the
same shapes) timed alone in the same run: "share" is that time over the epoch's. k-sparse
counts its decoder-side GEMMs at k/M of dense (the work a sparse kernel would do).
The evaluate stage's classifier fit (every l2 of the grid at once, logistic regression on 1000
features) and one shallow fine-tuning epoch are timed the same way.
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
from sae.config.protocol import run_config, sweep_settings  # noqa: E402
from sae.base.device import resolve_device  # noqa: E402
from sae.models import build  # noqa: E402
from sae.models.core import batched_mm  # noqa: E402
from sae.models.batch import layout  # noqa: E402
from sae.base.rng import init_generators  # noqa: E402
from sae.train import fit  # noqa: E402
from stages.sweep import PROBE_ROWS  # noqa: E402  (the sweep stage's probe batch)
from stages.train import VAL_PROBE  # noqa: E402  (the train stage's probe batch)

N_TRAIN = 50_000


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_seconds(fn, device, repeats=3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_seconds(G, B, D, M, steps, device, decoder_share=1.0) -> float:
    """The epoch's matmuls alone: per step, encoder forward (B,D)x(D,M) and its weight gradient,
    decoder forward (B,M)x(M,D) and its two gradients (decoder_share of dense for k-sparse)."""
    x, w = torch.randn(G, B, D, device=device), torch.randn(G, D, M, device=device)
    h, wt = torch.randn(G, B, M, device=device), torch.randn(G, M, D, device=device)
    m = max(1, round(M * decoder_share))
    hs, wts = h[..., :m].contiguous(), wt[:, :m].contiguous()
    xt = x.transpose(1, 2).contiguous()

    def epoch():  # batched_mm: bmm, or its products one by one where that is faster (sae.models.core)
        for _ in range(steps):
            batched_mm(x, w)          # encoder forward
            batched_mm(xt, h)         # encoder weight gradient
            batched_mm(hs, wts)       # decoder forward
            batched_mm(hs.transpose(1, 2), x)  # decoder weight gradient
            batched_mm(x, wts.transpose(1, 2))  # gradient of the codes
    return _median_seconds(epoch, device, repeats=2)


def _line(seconds_for, rows: int) -> tuple[float, float]:
    """(seconds paid once, seconds per row) of the line through seconds_for(rows) and
    seconds_for(2 * rows)."""
    one, two = seconds_for(rows), seconds_for(2 * rows)
    per_row = max(two - one, 0.0) / rows
    return max(one - per_row * rows, 0.0), per_row


def families(params):
    """(label, paper, dataset, model) of the families the default run trains on MNIST."""
    return [("000 sigmoid 784-196 (l1prox)", "amini2018", "mnist", "l1prox"),
            ("000 sigmoid 784-196 (ae)", "amini2018", "mnist", "ae"),
            ("000 sigmoid 784-196 (ncae)", "amini2018", "mnist", "ncae"),
            ("001 PSAE 784-196 (sl0sq)", "seyyedsalehi2017", "mnist", "sl0sq"),
            ("002 dropout 784-1000", "makhzani2014", "mnist", "dropout"),
            ("002 denoising 784-1000", "makhzani2014", "mnist", "dae"),
            ("002 k-sparse 784-1000 (k sweep)", "makhzani2014", "mnist", "ksparse"),
            ("002 k-sparse 784-1000 (k = 25)", "makhzani2014", "mnist", "ksparse_fixed_k"),
            ("002 RBM CD-1 784-1000", "makhzani2014", "mnist", "rbm")]


def time_family(params, paper, dataset, name, rows, device):
    cfg = run_config(params, paper, dataset, name)
    lay = layout(cfg.id, cfg.options, params.seeds)
    opts = {k: v for k, v in cfg.options.items() if k != "k_sweep"}
    D, M, B = 784, cfg.loop.hidden, cfg.loop.batch
    model = build(cfg.id, D, M, n_models=lay.n_models, per_model=lay.per_model(),
                  generators=init_generators(lay.model_seeds), **opts).to(device)
    x = torch.rand(2 * rows, D, device=device)
    run = dict(epochs=1, batch=B, lr=cfg.loop.lr * 0.01, momentum=cfg.loop.momentum, seeds=lay.model_seeds,
               progress=False)
    model.on_epoch_start(10**6, 2 * 10**6)  # the final k / alpha / sigma
    x_val = torch.rand(VAL_PROBE, D, device=device)
    once, per_row = _line(lambda n: _median_seconds(lambda: fit(model, x[:n], x_val, **run), device), rows)
    sec = once + per_row * N_TRAIN
    share = 1.0
    if cfg.id == "ksparse":
        k = model.k if isinstance(model.k, int) else float(model.k.float().mean())
        share = k / M
    gemm = gemm_seconds(lay.n_models, B, D, M, rows // B, device, share) * N_TRAIN / rows
    return lay.n_models, B, sec, gemm


def time_sweep(params, rows, device):
    from sae import sweep as SW
    st = sweep_settings(params, "arpit2016", "mnist")
    coefs = params.arpit2016.grid.coefficients
    G = len(coefs) * len(params.seeds)
    M, B = st.hidden, st.batch
    model = build("cae", 784, M, n_models=G, per_model={"lam": [c for c in coefs for _ in params.seeds]},
                  generators=init_generators([s for _ in coefs for s in params.seeds]),
                  **SW.model_options("cae", "relu", True)).to(device)
    n = min(rows, st.train_rows or rows)
    x = torch.randn(n, 784, device=device)
    seeds = [s for _ in coefs for s in params.seeds]
    x_probe = torch.randn(PROBE_ROWS, 784, device=device)
    sec = _median_seconds(lambda: fit(model, x, x_probe, epochs=1, batch=B, lr=0.001, seeds=seeds,
                                      progress=False), device)
    gemm = gemm_seconds(G, B, 784, M, n // B, device)
    return G, B, n, sec, gemm


def time_classifier(params, device, features=1000, rows=10_000):
    from sae.classify import fit_softmax
    x = torch.rand(rows, features, device=device)
    y = torch.randint(0, 10, (rows,), device=device)
    cl = params.classify
    sec = _median_seconds(lambda: fit_softmax(x, y, 10, cl.l2, epochs=cl.epochs, batch=cl.batch, lr=cl.lr,
                                              optimizer=cl.optimizer, momentum=cl.momentum), device, repeats=1)
    return sec * N_TRAIN / rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5000, help="rows timed per epoch (scaled to 50,000)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    params = load(Path(args.params))
    torch.manual_seed(0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device {device} ({name}), torch {torch.__version__}, scale {params.scale}, seeds {params.seeds}")
    print(f"{'family':34s} {'G':>3s} {'batch':>5s} {'s/epoch':>8s} {'samples/s':>10s} {'GEMMs alone':>11s} "
          f"{'share':>6s}")
    for label, paper, dataset, model in families(params):
        G, B, sec, gemm = time_family(params, paper, dataset, model, args.rows, device)
        print(f"{label:34s} {G:3d} {B:5d} {sec:8.2f} {G * N_TRAIN / sec:10.0f} {gemm:11.2f} {gemm / sec:6.1%}")
    G, B, n, sec, gemm = time_sweep(params, args.rows, device)
    print(f"{'003 CAE grid (one activation)':34s} {G:3d} {B:5d} {sec:8.2f} {G * n / sec:10.0f} {gemm:11.2f} "
          f"{gemm / sec:6.1%}   ({n} rows an epoch)")
    sec = time_classifier(params, device)
    print(f"{'classifier fit (l2 grid, 1000 feats)':34s} {len(params.classify.l2):3d} {params.classify.batch:5d} "
          f"{sec:8.2f}   (all {params.classify.epochs} epochs over 50,000 rows, one fit of evaluate's many)")


if __name__ == "__main__":
    main()
