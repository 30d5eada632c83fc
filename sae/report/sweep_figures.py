"""Figures 1-5 of paper 003 from the sweep tables (sae.sweep), and the checks of its predictions.

Input: the tidy tables of sae.sweep.table (one row per model, activation, unit_norm,
coefficient). One figure per dataset: a panel grid of encoder activation (rows) x weight
constraint (columns), one colour per model, average activation fraction (003 eq. 14) solid
and the dead-unit fraction dashed, against the coefficient grid as categorical ticks.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

# What an embedded set stands in for (DESIGN.md sec. 2); paper sets are named as in 003.
STAND_IN = {"mnist5k": "MNIST", "patches": "CIFAR-10 8x8 patches", "optdigits": None, "fashion": None}
PAPER_NAME = {"mnist": "MNIST", "cifar10_patches": "CIFAR-10 8x8 patches"}
MODEL_ORDER = ("dae", "cae", "mdae", "sae0", "edae")
MODEL_LABEL = {"dae": "DAE", "cae": "CAE", "mdae": "mDAE", "sae0": "SAE (rho=0)", "edae": "eDAE"}
MODEL_COLOR = {"dae": "C0", "cae": "C1", "mdae": "C2", "sae0": "C3", "edae": "C4"}
ACTIVATION_ORDER = ("relu", "sigmoid", "softplus")

# The predictions of 003 sec. 3 checked on every dataset:
# (id, paper figure, models, activation, unit_norm values, expected trend of the activation fraction)
PREDICTIONS = (
    ("a", "Fig. 1", ("cae", "mdae"), "relu", (True,), "flat"),     # sec. 3.1: zero bias gradient
    ("b", "Fig. 4", ("sae0",), "sigmoid", (True,), "falls"),       # sec. 3.2: positive bias gradient
    ("b", "Fig. 5", ("sae0",), "sigmoid", (False,), "falls"),
    ("c", "Fig. 1", ("dae",), "relu", (True,), "falls"),           # sec. 3.1.1
    ("c", "Fig. 2", ("dae",), "relu", (False,), "falls"),
    ("fig3", "Fig. 3", ("edae",), "relu", (True, False), "falls"),  # sec. 3.1.1: first-order term alone
)
# A curve is "flat" when its activation fraction spans at most this much over the grid;
# it "falls" ("rises") when it ends at least this much lower (higher) than at coefficient 0
# with a Spearman rank correlation with the coefficient of at most -0.8 (at least 0.8).
FLAT_TOLERANCE = 0.05
MONOTONE_RHO = 0.8
OFF_SCALE = 3.0  # reconstruction panels: points above this multiple of the coefficient-0 error are marked ^


def dataset_title(dataset: str) -> str:
    """'mnist5k (stand-in for MNIST)', 'MNIST', or the id itself."""
    if STAND_IN.get(dataset):
        return f"{dataset} (stand-in for {STAND_IN[dataset]})"
    return PAPER_NAME.get(dataset, dataset)


def read_tables(paths) -> pd.DataFrame:
    """Concatenate sweep CSVs (sae.sweep.COLUMNS)."""
    frames = [pd.read_csv(p) for p in paths]
    df = pd.concat(frames, ignore_index=True)
    df["unit_norm"] = df["unit_norm"].astype(str).str.lower().map({"true": True, "false": False})
    return df


def _models(df):
    present = list(dict.fromkeys(df["model"]))
    return [m for m in MODEL_ORDER if m in present] + [m for m in present if m not in MODEL_ORDER]


def _activations(df):
    present = set(df["activation"])
    return [a for a in ACTIVATION_ORDER if a in present]


def _coef_label(c: float) -> str:
    return "0" if c == 0 else f"{c:g}"


def _protocol_line(df) -> str:
    first = df.iloc[0]
    return (f"{int(first['hidden'])} hidden, {int(first['epochs'])} epochs on {int(first['train_rows'])} training rows, "
            f"lr {first['lr']:g}, tied, linear decoder; measured on {int(first['n_eval'])} {first['eval_split']} rows")


def _grid_figure(df, dataset, value_panels, suptitle, out_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    coefs = sorted(df["coefficient"].unique())
    xpos = {c: i for i, c in enumerate(coefs)}
    acts, models = _activations(df), _models(df)
    constraints = [u for u in (True, False) if u in set(df["unit_norm"])]
    fig, axes = plt.subplots(len(acts), len(constraints), figsize=(5.2 * len(constraints), 3.3 * len(acts)),
                             squeeze=False, sharex=True, layout="constrained")
    n_div = n_off = 0
    for r, act in enumerate(acts):
        for c, un in enumerate(constraints):
            ax = axes[r][c]
            panel = df[(df["activation"] == act) & (df["unit_norm"] == un)]
            cap = value_panels.get("cap", lambda p: math.inf)(panel)
            for m in models:
                sub = panel[panel["model"] == m].sort_values("coefficient")
                x = sub["coefficient"].map(xpos).to_numpy()
                for column, style, marker in value_panels["series"]:
                    y = sub[column].to_numpy(dtype=float)
                    off = y > cap
                    ax.plot(x, np.where(off, np.nan, y), style, color=MODEL_COLOR.get(m), marker=marker,
                            markersize=3.5, linewidth=1.4)
                    if off.any():
                        n_off += int(off.sum())
                        ax.plot(x[off], [0.97] * int(off.sum()), "^", color=MODEL_COLOR.get(m), markersize=7,
                                clip_on=False, transform=ax.get_xaxis_transform())
                div = sub[sub["diverged"] == 1]
                if len(div):
                    n_div += len(div)
                    ax.plot(div["coefficient"].map(xpos), [1.0] * len(div), "x", color=MODEL_COLOR.get(m),
                            markersize=7, mew=2, clip_on=False, transform=ax.get_xaxis_transform())
            ax.set_title(f"{act}, {'unit-length rows' if un else 'unconstrained rows'}", fontsize=10)
            ax.grid(alpha=0.3)
            value_panels["axis"](ax)
            if c == 0:
                ax.set_ylabel(value_panels["ylabel"])
            if r == len(acts) - 1:
                ax.set_xticks(range(len(coefs)))
                ax.set_xticklabels([_coef_label(v) for v in coefs], rotation=45)
                ax.set_xlabel("coefficient (lambda; noise variance sigma^2 for DAE/eDAE)")
    handles = [Line2D([], [], color=MODEL_COLOR.get(m), lw=2, label=MODEL_LABEL.get(m, m)) for m in models]
    handles += [Line2D([], [], color="k", ls=style, marker=marker, label=label)
                for (_, style, marker), label in zip(value_panels["series"], value_panels["labels"])]
    if n_div:
        handles.append(Line2D([], [], color="k", ls="", marker="x", mew=2, label="diverged (NaN loss)"))
    if n_off:
        handles.append(Line2D([], [], color="k", ls="", marker="^", label=value_panels["off_label"]))
    fig.suptitle(f"{dataset_title(dataset)}: {suptitle}\n{_protocol_line(df)}", fontsize=11)
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 8), fontsize=9, frameon=False)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out_path


def plot_sparsity(df: pd.DataFrame, dataset: str, out_path) -> Path:
    """003 Figs. 1-5 style: activation fraction (solid) and dead fraction (dashed) vs the coefficient."""
    def axis(ax):
        ax.set_ylim(-0.02, 1.02)
    return _grid_figure(df, dataset, {
        "series": (("activation_fraction", "-", "o"), ("dead_fraction", "--", None)),
        "labels": ("avg. activation fraction (eq. 14)", "dead-unit fraction"),
        "ylabel": "fraction", "axis": axis,
    }, "sparsity vs regularisation coefficient (003 Figs. 1-5)", out_path)


def plot_recon(df: pd.DataFrame, dataset: str, out_path) -> Path:
    """Held-out reconstruction error (mean squared error per input dimension) vs the coefficient."""
    def axis(ax):
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)

    def cap(panel):  # keep a blown-up run from flattening every other curve of its panel
        base = panel.loc[panel["coefficient"] == panel["coefficient"].min(), "recon_error"]
        return OFF_SCALE * float(base.max()) if np.isfinite(base).any() else math.inf
    return _grid_figure(df, dataset, {
        "cap": cap, "off_label": f"off scale (> {OFF_SCALE:g}x the error at coefficient 0)",
        "series": (("recon_error", "-", "o"),),
        "labels": ("reconstruction error",),
        "ylabel": "MSE per dimension (standardised)", "axis": axis,
    }, "held-out reconstruction error vs regularisation coefficient", out_path)


def _spearman(x, y) -> float:
    if len(x) < 3 or np.ptp(y) == 0:
        return math.nan
    return float(pd.Series(x).rank().corr(pd.Series(y).rank()))


def trend(coefficients, fractions) -> dict:
    """Describe one curve (finite points only): range, change from the smallest to the largest
    coefficient, Spearman rho, and 'flat' / 'falls' / 'rises' / 'mixed' (FLAT_TOLERANCE, MONOTONE_RHO)."""
    order = np.argsort(coefficients)
    x = np.asarray(coefficients, dtype=float)[order]
    y = np.asarray(fractions, dtype=float)[order]
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(y) < 2:
        return {"af_first": math.nan, "af_last": math.nan, "af_min": math.nan, "af_max": math.nan,
                "spearman": math.nan, "observed": "n/a"}
    span, change, rho = float(y.max() - y.min()), float(y[-1] - y[0]), _spearman(x, y)
    if span <= FLAT_TOLERANCE:
        observed = "flat"
    elif change <= -FLAT_TOLERANCE and rho <= -MONOTONE_RHO:
        observed = "falls"
    elif change >= FLAT_TOLERANCE and rho >= MONOTONE_RHO:
        observed = "rises"
    else:
        observed = "mixed"
    return {"af_first": float(y[0]), "af_last": float(y[-1]), "af_min": float(y.min()), "af_max": float(y.max()),
            "spearman": rho, "observed": observed}


def prediction_checks(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, prediction, model, constraint) present in df: what 003 predicts for the
    activation fraction and what the sweep shows (see PREDICTIONS, FLAT_TOLERANCE)."""
    rows = []
    for dataset in dict.fromkeys(df["dataset"]):
        d = df[df["dataset"] == dataset]
        for pid, figure, models, act, constraints, expected in PREDICTIONS:
            for m in models:
                for un in constraints:
                    sub = d[(d["model"] == m) & (d["activation"] == act) & (d["unit_norm"] == un)]
                    if sub.empty:
                        continue
                    sub = sub.sort_values("coefficient")
                    t = trend(sub["coefficient"].to_numpy(), sub["activation_fraction"].to_numpy())
                    finite = sub[np.isfinite(sub["dead_fraction"])]
                    rows.append({"dataset": dataset, "prediction": pid, "paper_figure": figure, "model": m,
                                 "activation": act, "unit_norm": un, "expected": expected, **t,
                                 "holds": t["observed"] == expected,
                                 "dead_last": float(finite["dead_fraction"].iloc[-1]) if len(finite) else math.nan,
                                 "n_diverged": int(sub["diverged"].sum())})
    return pd.DataFrame(rows)
