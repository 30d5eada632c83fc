"""The report's figures (matplotlib, Agg): bar charts with error bars, filter grids,
receptive-field evolution, log-histograms of hidden activities.

Every function takes plain arrays and an output path and returns the path; nothing here
knows the workspace layout.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

DPI = 110


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, out_path) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    return out_path


def bar_panels(panels: list[dict], title: str, out_path) -> Path:
    """One bar chart per panel, side by side.

    panel: {"title", "ylabel", "labels": [str], "means": [float|None], "stds": [float|None],
            "better": "lower"|"higher", "note": str (optional, printed under the panel),
            "zoom": bool (optional: y axis from near the smallest bar, marked "axis cut")}.
    A missing mean is drawn as an empty slot labelled "n/a". Error bars are +-1 std.
    """
    plt = _plt()
    n = len(panels)
    width = max(3.6, 0.62 * max(len(p["labels"]) for p in panels) + 1.4)
    fig, axes = plt.subplots(1, n, figsize=(width * n, 3.9), squeeze=False, layout="constrained")
    for ax, p in zip(axes[0], panels):
        x = np.arange(len(p["labels"]))
        means = [m if m is not None and math.isfinite(m) else 0.0 for m in p["means"]]
        stds = [s if s is not None and math.isfinite(s) else 0.0 for s in p.get("stds") or [None] * len(x)]
        colors = [f"C{i % 10}" for i in range(len(x))]
        ax.bar(x, means, color=colors, edgecolor="black", linewidth=0.6)
        has = [i for i, s in enumerate(stds) if s > 0]
        if has:  # no bar where there is no std (e.g. SSD, accuracy)
            ax.errorbar([x[i] for i in has], [means[i] for i in has], yerr=[stds[i] for i in has], fmt="none",
                        capsize=4, elinewidth=1.1, ecolor="black")
        ok = [m for m in p["means"] if m is not None and math.isfinite(m)]
        tops = [m + s for m, s in zip(means, stds)]
        if p.get("zoom") and ok:  # accuracies: bars of 90-97% are unreadable from a zero baseline
            lo, hi = min(ok), max(tops)
            pad = max(hi - lo, 0.5)
            ax.set_ylim(max(0.0, lo - pad), hi + 0.35 * pad)
            p = {**p, "ylabel": p["ylabel"] + " (axis cut)"}
        else:
            ax.set_ylim(0, (max(tops) if tops else 1.0) * 1.15 or 1.0)
        for xi, m, top in zip(x, p["means"], tops):
            if m is None or not math.isfinite(m):
                ax.text(xi, ax.get_ylim()[0], "n/a", ha="center", va="bottom", fontsize=8, color="0.3")
            else:
                ax.text(xi, top, f"{m:.3g}", ha="center", va="bottom", fontsize=7.5, color="0.15")
        ax.set_xticks(x)
        ax.set_xticklabels(p["labels"], rotation=30, ha="right")
        ax.set_ylabel(p["ylabel"])
        arrow = {"lower": " (lower is better)", "higher": " (higher is better)"}.get(p.get("better"), "")
        ax.set_title(p["title"] + arrow, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        if p.get("note"):
            ax.set_xlabel(p["note"], fontsize=8)
    fig.suptitle(title, fontsize=11)
    return _save(fig, out_path)


SEPARATOR = {1: (0.55, 0.7, 0.95), 3: (1.0, 1.0, 1.0)}  # light blue between grey filters, white between colour ones


def filter_grid(weights: np.ndarray, image_shape, nrow: int, padding: int = 2) -> np.ndarray:
    """Rows of `weights` (n, C*H*W) as one (H', W', 3) image in [0, 1]: each filter min-max
    scaled on its own (ZCA / signed filters have no common scale), with SEPARATOR lines."""
    import torch
    from torchvision.utils import make_grid
    c, h, w = (int(s) for s in image_shape)
    t = torch.as_tensor(np.asarray(weights, dtype=np.float32)).reshape(-1, c, h, w)
    grid = make_grid(t, nrow=nrow, padding=padding, normalize=True, scale_each=True, pad_value=-1.0)
    pad = (grid == -1.0).all(dim=0)
    img = grid.clamp(0, 1).permute(1, 2, 0).numpy().copy()
    img[pad.numpy()] = SEPARATOR.get(c, SEPARATOR[1])
    return img


def filters_figure(panels: list[tuple[str, np.ndarray]], image_shape, title: str, out_path, *,
                   nrow: int = 8, ncols: int | None = None, caption: str | None = None) -> Path:
    """One filter grid per panel (title, weights (n, C*H*W)), in a row (or ncols per row)."""
    plt = _plt()
    n = len(panels)
    ncols = ncols or n
    nrows_fig = math.ceil(n / ncols)
    images = [filter_grid(w, image_shape, nrow) for _, w in panels]
    aspect = images[0].shape[0] / images[0].shape[1]
    side = 3.2
    fig, axes = plt.subplots(nrows_fig, ncols, figsize=(side * ncols, side * aspect * nrows_fig + 0.9),
                             squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, _), img in zip(axes.flat, panels, images):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(name, fontsize=10)
    fig.suptitle(title, fontsize=11)
    if caption:
        fig.supxlabel(caption, fontsize=8)
    return _save(fig, out_path)


def evolution_figure(stages: list[tuple[str, np.ndarray]], image_shape, title: str, out_path, *,
                     caption: str | None = None) -> Path:
    """Receptive-field evolution (000 Fig. 1c): one row per stage (label, weights (n_units, D)),
    the same units in every row; each filter min-max scaled on its own."""
    plt = _plt()
    n_units = stages[0][1].shape[0]
    fig, axes = plt.subplots(len(stages), 1, figsize=(min(1.05 * n_units + 1.6, 14), 1.15 * len(stages) + 0.9),
                             squeeze=False, layout="constrained")
    for ax, (label, w) in zip(axes[:, 0], stages):
        ax.imshow(filter_grid(w, image_shape, n_units), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    axes[-1, 0].set_xlabel(f"{n_units} hidden units (the same units in every row)", fontsize=9)
    fig.suptitle(title, fontsize=11)
    if caption:
        fig.supxlabel(caption, fontsize=8)
    return _save(fig, out_path)


def read_histogram(path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """evaluate's <M>_hist.csv (bin_left, bin_right, bin_center, count) -> (left, right, count)."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    left = np.array([float(r["bin_left"]) for r in rows])
    right = np.array([float(r["bin_right"]) for r in rows])
    count = np.array([float(r["count"]) for r in rows])
    return left, right, count


def histogram_figure(series: list[tuple[str, Path]], title: str, out_path, *, xlabel: str) -> Path:
    """002 Fig. 4: log10 of the histogram counts of hidden activities, one step line per model.
    Counts are normalised to fractions of all entries so models of different sizes compare;
    empty bins are left out (gaps)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.2, 4.2), layout="constrained")
    styles = ["-", "--", "-.", ":"]
    for i, (label, path) in enumerate(series):
        h = read_histogram(path)
        if h is None:
            continue
        left, right, count = h
        frac = count / max(count.sum(), 1.0)
        with np.errstate(divide="ignore"):
            y = np.where(frac > 0, np.log10(np.where(frac > 0, frac, 1.0)), np.nan)
        centers = (left + right) / 2
        ax.step(centers, y, where="mid", label=label, linewidth=1.5, color=f"C{i % 10}",
                linestyle=styles[(i // 10) % len(styles)])  # empty bins (NaN) leave gaps
    ax.set_xlabel(xlabel)
    ax.set_ylabel("log10(fraction of code entries in bin)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title, fontsize=11)
    return _save(fig, out_path)


def error_vs_k_figure(curves: list[tuple[str, list[int], list[float]]], paper: list[tuple[str, list[int], list[float]]],
                      title: str, out_path, *, ylabel: str) -> Path:
    """Logistic-regression error against k: this run's curves (solid) and the paper's (dashed)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 3.8), layout="constrained")
    for i, (label, ks, ys) in enumerate(curves):
        ax.plot(ks, ys, "-o", color=f"C{i}", label=f"this run: {label}")
    for i, (label, ks, ys) in enumerate(paper):
        ax.plot(ks, ys, "--s", color=f"C{i + len(curves)}", label=f"paper: {label}")
    ax.set_xlabel("k (units kept while training)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=11)
    return _save(fig, out_path)
