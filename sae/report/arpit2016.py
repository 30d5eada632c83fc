"""arpit2016 (003): the activation fraction and dead units against the regularisation coefficient
(Figs. 1-5) over seeds, and the table of the paper's predictions on every run dataset."""
from __future__ import annotations

import csv

import pandas as pd

from sae.base import catalog as C
from sae.report import figures as F
from sae.report import trends
from sae.report.render import Table
from sae.report.section import Section

PAPER = "arpit2016"
# which figure of the paper shows each (activation, weight-length constraint) panel
PANEL_FIGURE = {("relu", True): "Fig. 1 (eDAE: Fig. 3)", ("relu", False): "Fig. 2 (eDAE: Fig. 3)",
                ("sigmoid", True): "Fig. 4", ("sigmoid", False): "Fig. 5",
                ("softplus", True): "not plotted (footnote 4)", ("softplus", False): "not plotted (footnote 4)"}
MODEL_LABEL = {"dae": "DAE", "cae": "CAE", "mdae": "mDAE", "sae0": "SAE (rho = 0, eq. 13)", "edae": "eDAE"}
CURVE_COLUMNS = ("dataset", "model", "activation", "unit_norm", "coefficient", "n", "activation_fraction_mean",
                 "activation_fraction_std", "dead_fraction_mean", "dead_fraction_std", "recon_error_mean")


def build(s: Section) -> None:
    s.header("Regularised autoencoders whose regularisation has a positive gradient in the encoder bias get "
             "sparser as the coefficient grows; with a zero bias gradient (ReLU with CAE / mDAE) sparsity stays "
             "unchanged; unit-length encoder rows make this predictable (sec. 3). The coefficient is lambda, or "
             "the variance of the Gaussian noise for DAE and eDAE.")
    for d in s.datasets():
        sweep(s, d)
    s.closing(None)
    s.add("### Convergence", "", "The sweep stages keep no per-epoch curves, so the convergence of the "
          f"{PAPER} models is not measured (each point trains for the protocol's epochs; see the reductions above).",
          "")


def _frame(s: Section, d: str):
    frames, lacking = [], []
    for m in s.r.models(PAPER):
        df, why = s.r.sweep(PAPER, d, m)
        if df is None:
            lacking.append(why)
        else:
            frames.append(df)
    return (pd.concat(frames, ignore_index=True) if frames else None), lacking


def sweep(s: Section, d: str) -> None:
    s.add(f"### Figs. 1-5: activation fraction against the coefficient, {d}", "")
    df, lacking = _frame(s, d)
    if lacking:
        s.add("Missing: " + "; ".join(lacking) + ".", "")
    if df is not None:
        af, dead, recon = (trends.curves(df, v) for v in ("activation_fraction", "dead_fraction", "recon_error"))
        write_curves(s, d, af, dead, recon)
        first = df.iloc[0]
        protocol = (f"{int(first['hidden'])} hidden, {int(first['epochs'])} epochs on {int(first['train_rows'])} "
                    f"training rows, lr {first['lr']:g}; measured on {int(first['n_eval'])} {first['eval_split']} rows")
        panels = {}
        for (model, act, unit), curve in af.items():
            rows = "unit-length rows" if unit else "unconstrained rows"
            panel = panels.setdefault((act, rows), {"title": f"{act}, {rows}: {PANEL_FIGURE[(act, unit)]}",
                                                    "series": []})
            stds = [curve.summary(i)["std"] for i in range(len(curve.coefficients))]
            dc = dead[(model, act, unit)]
            dead_by_c = dict(zip(dc.coefficients, dc.means))
            panel["series"].append((model, MODEL_LABEL.get(model, model), list(curve.coefficients), curve.means,
                                    stds, [dead_by_c.get(c) for c in curve.coefficients]))
        out = F.sweep_figure(panels, f"{PAPER} Figs. 1-5 on {d} (mean over seeds, ±1 std band)",
                             s.figure("sweep", d), subtitle=protocol)
        s.add(f"Average activation fraction (eq. 14: delta_min {C.ACTIVATION_THRESHOLD['relu']:g} for ReLU, "
              f"{C.ACTIVATION_THRESHOLD['sigmoid']:g} for sigmoid and softplus) and dead-unit fraction against the "
              "coefficient; solid lines are means over seeds with a band of ±1 std over seeds. "
              + s.dataset_sentence(d), "")
        s.doc.image(out, f"{PAPER} Figs. 1-5 on {d}")
    predictions(s, d)


def write_curves(s: Section, d: str, af: dict, dead: dict, recon: dict) -> None:
    """reports/sweeps/<paper>_<d>.csv: the mean-over-seeds curves (a DVC plot)."""
    path = s.ctx.tables_dir / f"{PAPER}_{d}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CURVE_COLUMNS)
        for (model, act, unit), curve in af.items():
            other = {key: dict(zip(c.coefficients, (c.summary(i) for i in range(len(c.coefficients)))))
                     for key, c in (("dead", dead[(model, act, unit)]), ("recon", recon[(model, act, unit)]))}
            for i, coef in enumerate(curve.coefficients):
                a, dd, rr = curve.summary(i), other["dead"].get(coef, {}), other["recon"].get(coef, {})
                w.writerow([d, model, act, unit, coef, a["n"], a["mean"], _csv(a["std"]), _csv(dd.get("mean")),
                            _csv(dd.get("std")), _csv(rr.get("mean"))])
    s.ctx.tables.append(path)


def _csv(v) -> str:
    return "" if v is None else f"{v:.6g}"


def predictions(s: Section, d: str) -> None:
    """The paper's predictions (its trend claims) and what this run's sweep shows."""
    t = Table(s.caption("Predictions", "What sec. 3 predicts for the average activation fraction as the coefficient "
                                       "grows, and the verdict on this run's curves (Welch's t-test on the seeds at "
                                       f"level {s.ctx.params.statistics.level:g}; a steady trend needs |Spearman "
                                       f"rho| >= {trends.MONOTONE_RHO:g}, a flat one a span <= {trends.FLAT_SPAN:g}: "
                                       "thresholds ours).", d),
              ["claim", "figure", "model", "activation", "encoder rows", "paper", "this run"])
    for v in s.ctx.verdicts:
        c = v.claim
        if c.paper != PAPER or v.dataset not in (d, None):
            continue
        rows = " and ".join("unit-length" if u else "unconstrained" for u in c.unit_norm)
        t.add(f"`{c.id}`", c.section, ", ".join(MODEL_LABEL.get(r.name, r.name) for r in c.winners), c.activation,
              rows, c.expect, f"**{v.status}**: {v.evidence}")
    s.table(t)
