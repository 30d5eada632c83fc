"""The expected wall time of each paper's paper-scale protocol on this machine's device.

    python benchmarks/paper_scale.py [--device auto] [--steps 5]

Composes conf/ at scale=paper, and for every stage the protocols define times a few real
training steps of its batch (every seed, and every k of a k sweep, at the paper's sizes, on
random data of the dataset's shape), then extrapolates: train = steps per epoch x epochs;
evaluate = the logistic-regression grid of each seed (the classifier's steps, timed the same
way) for each alpha; finetune = the network's steps x its epochs, phases and rates, plus the
second layer's pre-training for the deep network; sweep = every batch of the coefficient grid.
Stage start-up (a few seconds each) and data preparation are left out. Printed per stage kind
and per paper.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch

from sae.base import catalog
from sae.config import validate
from sae.config.__main__ import compose
from sae.config.protocol import finetune_settings, run_config, sweep_settings
from sae.base.device import resolve_device
from sae.models import build
from sae.models.batch import layout
from sae.base.optim import make_optimizer
from sae.base.rng import Streams, init_generators
from sae.sweep import COEFFICIENT_KEY, model_options

ROOT = Path(__file__).resolve().parent.parent
# (training rows, input dim) of each dataset at its default prepare settings (README: Paper scale)
SHAPES = {"mnist": (50_000, 784), "fashion": (50_000, 784), "norb": (20_000, 2048), "svhn": (68_257, 1024),
          "cifar10": (45_000, 3072), "cifar10_patches": (1_000_000, 192), "cifar10_pixel_patches": (50_000, 192),
          "optdigits_uci": (3_323, 64), "mnist5k": (3_500, 784), "optdigits": (1_000, 64),
          "patches": (20_000, 192), "pixel_patches": (20_000, 192)}
# all rows of the prepared splits (train + val + test)
ROWS = {"mnist": 70_000, "fashion": 70_000, "norb": 48_600, "svhn": 99_289, "cifar10": 60_000,
        "cifar10_patches": 1_020_000, "cifar10_pixel_patches": 70_000, "optdigits_uci": 5_620, "mnist5k": 5_000,
        "optdigits": 1_797, "patches": 24_000, "pixel_patches": 24_000}


def cache_bytes(params) -> dict[str, float]:
    """Bytes of the cached outputs the protocol writes, from the shapes: prepared float32 arrays
    (and int64 labels), the stacked weights of every trained batch (float32: W, the untied
    decoder, both biases). Raw downloads and the small JSON/CSV/PNG files are left out."""
    out = defaultdict(float)
    for d in params.datasets:
        out["data/prepared"] += ROWS[d] * (SHAPES[d][1] * 4 + 8)
    for paper in catalog.AUTOENCODER_PAPERS:
        p = params.protocol(paper)
        pairs = [(d, m) for d in p.datasets for m in p.models]
        pairs += [(d, m) for d in (p.filters.datasets if p.filters else []) for m in p.filters.models]
        for dataset, name in pairs:
            cfg = run_config(params, paper, dataset, name)
            if cfg.id == "raw":
                continue
            dim, hidden = SHAPES[dataset][1], cfg.loop.hidden
            tied = cfg.id in ("ksparse", "rbm") or cfg.options.get("tied")
            per_model = hidden * dim * (1 if tied else 2) + hidden + dim
            out["models"] += layout(cfg.id, cfg.options, params.seeds).n_models * per_model * 4
    return out


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_seconds(model, dim: int, batch: int, device, steps: int, shared: bool = False) -> float:
    """Median seconds of one training step of the batch `model` (objective, backward, update)."""
    opt = make_optimizer(model.param_groups(), "sgd", 1e-4, 0.9)
    noise = Streams(list(range(model.n_models)), device, "noise")
    shape = (batch, dim) if shared else (model.n_models, batch, dim)
    x = torch.randn(*shape, device=device) * 0.1 + 0.5
    model.train()
    model.on_epoch_start(10**6, 10**6 + 1)  # the end of every schedule: the final k, alpha, sigma
    times = []
    for i in range(steps + 2):
        _sync(device)
        start = time.perf_counter()
        loss, _ = model.objective(x, noise)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        model.after_step()
        _sync(device)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def classifier_seconds(width: int, rows: int, cfg, device, steps: int) -> float:
    """Seconds of one logistic-regression grid fit (every l2 at once) on `rows` codes of `width`."""
    n_out = len(cfg.l2) * 10
    w = torch.zeros(width, n_out, device=device, requires_grad=True)
    x = torch.randn(cfg.batch, width, device=device)
    opt = make_optimizer([w], cfg.optimizer, cfg.lr, cfg.momentum)
    times = []
    for i in range(steps + 2):
        _sync(device)
        start = time.perf_counter()
        loss = torch.log_softmax(x @ w, dim=1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * cfg.epochs * -(-rows // cfg.batch)


def estimate(params, device, steps: int) -> dict:
    """{(paper, kind): seconds} of the paper-scale protocol."""
    out = defaultdict(float)
    seeds = params.seeds
    for paper in catalog.AUTOENCODER_PAPERS:
        p = params.protocol(paper)
        pairs = [(d, m, "train") for d in p.datasets for m in p.models]
        pairs += [(d, m, "filters") for d in (p.filters.datasets if p.filters else []) for m in p.filters.models]
        for dataset, name, kind in pairs:
            rows, dim = SHAPES[dataset]
            cfg = run_config(params, paper, dataset, name)
            lay = layout(cfg.id, cfg.options, seeds)
            opts = {k: v for k, v in cfg.options.items() if k != "k_sweep"}
            if cfg.id == "raw":
                continue
            model = build(cfg.id, dim, cfg.loop.hidden, n_models=lay.n_models, per_model=lay.per_model(),
                          generators=init_generators(lay.model_seeds), **opts).to(device)
            step = step_seconds(model, dim, cfg.loop.batch, device, steps)
            epoch = step * -(-rows // cfg.loop.batch)
            out[(paper, kind)] += epoch * cfg.loop.epochs
            print(f"  {paper:17s} {kind:8s} {dataset:22s} {name:12s} {lay.n_models:3d} models: "
                  f"{step * 1e3:8.1f} ms/step, {epoch:8.1f} s/epoch x {cfg.loop.epochs}", flush=True)
            if kind != "train":
                continue
            width = cfg.loop.hidden
            alphas = len(params.evaluate.alphas) if cfg.id == "ksparse" else 1
            out[(paper, "evaluate")] += lay.n_models * alphas * classifier_seconds(width, rows, params.classify,
                                                                                   device, steps)
            ft = p.finetune
            if ft and name in ft.models:
                s = finetune_settings(params, paper, dataset)
                one = step * len(seeds) / lay.n_models  # the configuration's seeds alone
                per_epoch = one * -(-rows // s.batch)
                runs = len(s.lr) * (("shallow" in ft.kinds) * s.epochs + ("none" in ft.kinds
                                                                         and name in ft.without_pretraining) * s.epochs) \
                    + len(s.deep_lr or s.lr) * ("deep" in ft.kinds and name in ft.deep_models) * 2 * sum(s.deep_epochs)
                layer2 = ("deep" in ft.kinds and name in ft.deep_models) * one * -(-rows // cfg.loop.batch) \
                    * cfg.loop.epochs
                out[(paper, "finetune")] += per_epoch * runs + layer2
    for paper in catalog.SWEEP_PAPERS:
        p = params.protocol(paper)
        points = len(p.grid.coefficients) * len(seeds)
        for dataset in p.datasets:
            rows, dim = SHAPES[dataset]
            s = sweep_settings(params, paper, dataset)
            rows = s.train_rows or rows
            for model_id in p.models:
                model = build(model_id, dim, s.hidden, n_models=points, generators=init_generators([0] * points),
                              per_model={COEFFICIENT_KEY[model_id]: [0.1] * points},
                              **model_options(model_id, "relu", True)).to(device)
                step = step_seconds(model, dim, s.batch, device, steps, shared=True)
                total = step * -(-rows // s.batch) * s.epochs * len(p.grid.activations) * len(p.grid.unit_norm)
                out[(paper, "sweep")] += total
                print(f"  {paper:17s} sweep    {dataset:22s} {model_id:12s} {points:3d} models: "
                      f"{step * 1e3:8.1f} ms/step", flush=True)
    return out


def _hours(s: float) -> str:
    return f"{s / 3600:8.1f} h" if s >= 3600 else f"{s / 60:8.1f} min"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per stage")
    ap.add_argument("--scale", default="paper")
    ap.add_argument("--cache", action="store_true", help="print the computed cache size of the protocol and stop")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    import yaml
    params = validate(yaml.safe_load(compose(ROOT / "conf", [f"scale={args.scale}"])))
    if args.cache:
        sizes = cache_bytes(params)
        for what, b in sizes.items():
            print(f"{what:14s} {b / 1e9:7.2f} GB")
        print(f"{'total':14s} {sum(sizes.values()) / 1e9:7.2f} GB (scale={args.scale}, {len(params.seeds)} seeds; "
              "raw downloads come on top)")
        return
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"scale={args.scale} on {device} ({name}), {len(params.seeds)} seeds")
    out = estimate(params, device, args.steps)
    print(f"\n{'paper':18s} {'kind':9s} {'expected':>11s}")
    for paper in catalog.PAPER_IDS:
        rows = {k: v for (p, k), v in out.items() if p == paper}
        for kind, sec in sorted(rows.items(), key=lambda kv: -kv[1]):
            print(f"{paper:18s} {kind:9s} {_hours(sec)}")
        print(f"{paper:18s} {'total':9s} {_hours(sum(rows.values()))}")


if __name__ == "__main__":
    main()
