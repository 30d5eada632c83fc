"""The report's figures (matplotlib, Agg): bars with error bars and per-seed dots, filter grids
(torchvision make_grid), receptive-field evolution, log-histograms of hidden activities, error
against k, and 003's panel grids. Every function takes plain numbers and an output path and
returns the path; none knows the workspace layout.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

DPI = 110
SEPARATOR = {1: (0.55, 0.7, 0.95), 3: (1.0, 1.0, 1.0)}  # between grey filters / between colour ones
MODEL_COLOR = {"dae": "C0", "cae": "C1", "mdae": "C2", "sae0": "C3", "edae": "C4"}


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


def _ok(v) -> bool:
    return v is not None and math.isfinite(v)


def bar_panels(panels: list[dict], title: str, out_path, caption: str = "") -> Path:
    """One bar chart per panel, side by side.

    panel: {"title", "ylabel", "labels": [str], "means": [float|None], "errors": [float|None]
    (+-1 error bar), "dots": [[float]] (per-seed values drawn over the bar), "better":
    "lower"|"higher"|None, "zoom": bool (y axis from near the smallest bar, marked)}.
    A missing mean is an empty slot labelled "n/a".
    """
    plt = _plt()
    width = max(3.6, 0.62 * max(len(p["labels"]) for p in panels) + 1.4)
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 3.9), squeeze=False, layout="constrained")
    for ax, p in zip(axes[0], panels):
        x = np.arange(len(p["labels"]))
        means = [m if _ok(m) else 0.0 for m in p["means"]]
        errors = [e if _ok(e) else 0.0 for e in p.get("errors") or [None] * len(x)]
        ax.bar(x, means, color=[f"C{i % 10}" for i in range(len(x))], edgecolor="black", linewidth=0.6)
        has = [i for i, e in enumerate(errors) if e > 0]
        if has:
            ax.errorbar([x[i] for i in has], [means[i] for i in has], yerr=[errors[i] for i in has], fmt="none",
                        capsize=4, elinewidth=1.1, ecolor="black")
        for xi, dots in zip(x, p.get("dots") or []):
            dots = [d for d in dots if _ok(d)]
            if dots:
                ax.plot(np.full(len(dots), xi) + np.linspace(-0.12, 0.12, len(dots)), dots, "o", color="white",
                        markeredgecolor="black", markersize=3.5, zorder=3)
        finite = [m for m in p["means"] if _ok(m)]
        tops = [m + e for m, e in zip(means, errors)] + [max([d for ds in p.get("dots") or [] for d in ds
                                                               if _ok(d)] or [0.0])]
        ylabel = p["ylabel"]
        if p.get("zoom") and finite:   # accuracies of 90-97% are unreadable from a zero baseline
            lo, hi = min(finite), max(tops)
            pad = max(hi - lo, 0.5)
            ax.set_ylim(max(0.0, lo - pad), hi + 0.35 * pad)
            ylabel += " (axis cut)"
        else:
            ax.set_ylim(0, (max(tops) if tops else 1.0) * 1.15 or 1.0)
        for xi, m, top in zip(x, p["means"], tops):
            if _ok(m):
                ax.text(xi, top, f"{m:.3g}", ha="center", va="bottom", fontsize=7.5, color="0.15")
            else:
                ax.text(xi, ax.get_ylim()[0], "n/a", ha="center", va="bottom", fontsize=8, color="0.3")
        ax.set_xticks(x)
        ax.set_xticklabels(p["labels"], rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        arrow = {"lower": " (lower is better)", "higher": " (higher is better)"}.get(p.get("better"), "")
        ax.set_title(p["title"] + arrow, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    fig.suptitle(title, fontsize=11)
    if caption:
        fig.supxlabel(caption, fontsize=8)
    return _save(fig, out_path)


def filter_grid(weights: np.ndarray, image_shape, nrow: int, padding: int = 2) -> np.ndarray:
    """Rows of `weights` (n, C*H*W) as one (H', W', 3) image in [0, 1]: each filter min-max
    scaled on its own (signed and whitened filters share no scale), SEPARATOR lines between."""
    import torch
    from torchvision.utils import make_grid
    c, h, w = (int(s) for s in image_shape)
    t = torch.as_tensor(np.asarray(weights, dtype=np.float32)).reshape(-1, c, h, w)
    if c not in (1, 3):  # NORB's stereo pair: its two channels side by side, in grey
        t, c = t.permute(0, 2, 1, 3).reshape(-1, 1, h, c * w), 1
    grid = make_grid(t, nrow=nrow, padding=padding, normalize=True, scale_each=True, pad_value=-1.0)
    pad = (grid == -1.0).all(dim=0)
    img = grid.clamp(0, 1).permute(1, 2, 0).numpy().copy()
    img[pad.numpy()] = SEPARATOR.get(c, SEPARATOR[1])
    return img


def filters_figure(panels: list[tuple[str, np.ndarray]], image_shape, title: str, out_path, *, nrow: int = 6,
                   caption: str = "") -> Path:
    """One filter grid per panel (title, weights (n, C*H*W)), side by side (002 Figs. 1-3)."""
    plt = _plt()
    images = [filter_grid(w, image_shape, nrow) for _, w in panels]
    aspect = images[0].shape[0] / images[0].shape[1]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2 * aspect + 0.9), squeeze=False,
                             layout="constrained")
    for ax, (name, _), img in zip(axes[0], panels, images):
        ax.axis("off")
        ax.imshow(img, interpolation="nearest")
        ax.set_title(name, fontsize=10)
    fig.suptitle(title, fontsize=11)
    if caption:
        fig.supxlabel(caption, fontsize=8)
    return _save(fig, out_path)


def evolution_figure(stages: list[tuple[str, np.ndarray]], image_shape, title: str, out_path, *,
                     caption: str = "") -> Path:
    """Receptive fields over the stages (000 Fig. 1c): one row per stage (label, weights
    (n_units, D)), the same units in every row."""
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


def histogram_figure(series: list[tuple[str, list, list, list]], title: str, out_path, *, xlabel: str) -> Path:
    """002 Fig. 4: log10 of the histogram of hidden activities, one step line per (label, left,
    right, count); counts as fractions of all entries so models of different sizes compare;
    empty bins leave gaps."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.2, 4.2), layout="constrained")
    for i, (label, left, right, count) in enumerate(series):
        count = np.asarray(count, dtype=float)
        frac = count / max(count.sum(), 1.0)
        y = np.full(len(frac), np.nan)
        y[frac > 0] = np.log10(frac[frac > 0])
        centers = (np.asarray(left) + np.asarray(right)) / 2
        ax.step(centers, y, where="mid", label=label, linewidth=1.5, color=f"C{i % 10}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("log10(fraction of code entries in the bin)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title, fontsize=11)
    return _save(fig, out_path)


def error_vs_k_figure(run: tuple[list, list, list], paper: tuple[list, list] | None, title: str, out_path, *,
                      run_label: str, paper_label: str, ylabel: str) -> Path:
    """Error against k: this run (ks, means, stds over seeds; error bars) solid, the paper's dashed."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 3.8), layout="constrained")
    ks, means, stds = run
    ax.errorbar(ks, means, yerr=[s if _ok(s) else 0.0 for s in stds], fmt="-o", capsize=4, color="C0",
                label=f"this run: {run_label} (mean ± std over seeds)")
    if paper:
        ax.plot(paper[0], paper[1], "--s", color="C1", label=f"paper: {paper_label}")
    ax.set_xlabel("k (units kept while training)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=11)
    return _save(fig, out_path)


def sweep_figure(panels: dict, title: str, out_path, *, subtitle: str = "") -> Path:
    """003 Figs. 1-5: a grid of panels {(row name, column name): {"title", "series": [(model, label,
    coefficients, means, stds, dead means)]}}: the activation fraction (mean over seeds, band of
    +-1 std over seeds) solid, the dead-unit fraction dashed, coefficients as categorical ticks."""
    from matplotlib.lines import Line2D
    plt = _plt()
    rows = list(dict.fromkeys(r for r, _ in panels))
    cols = list(dict.fromkeys(c for _, c in panels))
    coefs = sorted({c for p in panels.values() for s in p["series"] for c in s[2]})
    xpos = {c: i for i, c in enumerate(coefs)}
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(5.2 * len(cols), 3.3 * len(rows)), squeeze=False,
                             sharex=True, layout="constrained")
    models = {}
    for (r, c), p in panels.items():
        ax = axes[rows.index(r)][cols.index(c)]
        for model, label, xs, means, stds, dead in p["series"]:
            color = MODEL_COLOR.get(model, f"C{len(models) % 10}")
            models[label] = color
            x = np.array([xpos[v] for v in xs], dtype=float)
            m = np.asarray(means, dtype=float)
            s = np.array([v if _ok(v) else 0.0 for v in stds])
            ax.plot(x, m, "-o", color=color, markersize=3.5, linewidth=1.4)
            ax.fill_between(x, m - s, m + s, color=color, alpha=0.18, linewidth=0)
            ax.plot(x, dead, "--", color=color, linewidth=1.0)
        ax.set_title(p["title"], fontsize=10)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xticks(range(len(coefs)))
        ax.set_xticklabels(["0" if v == 0 else f"{v:g}" for v in coefs], rotation=45)
        ax.set_xlabel("coefficient (lambda; noise variance for DAE / eDAE)")
    for ax in axes[:, 0]:
        ax.set_ylabel("fraction")
    handles = [Line2D([], [], color=col, lw=2, label=lab) for lab, col in models.items()]
    handles += [Line2D([], [], color="k", ls="-", marker="o", label="avg. activation fraction (eq. 14), ±1 std band"),
                Line2D([], [], color="k", ls="--", label="dead-unit fraction")]
    fig.suptitle(title + (f"\n{subtitle}" if subtitle else ""), fontsize=11)
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=9, frameon=False)
    return _save(fig, out_path)
