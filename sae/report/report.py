"""reports/report.md: one section per paper of ../shared/seeds/, every table with a `paper`
column (sae/report/published.csv only) and a `this run` column (metrics files only), the
dataset actually used named in every caption, the paper's claims checked from the numbers
(claims.csv) and summarised at the top.

`build_report(...)` takes every input folder as an argument; stages/report.py passes the
workspace paths. Missing values are "—" with a footnote saying why, never NaN.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sae.report import claims as C
from sae.report import figures as F
from sae.report import tables as T
from sae.report.tables import DASH, Table

SEEDS = {
    "000": ("000_f1431cb5cc42ca0b.txt", "L1SAE: sparse autoencoder with a non-smooth L1 penalty (penalty method, proximal soft-thresholding)"),
    "001": ("001_a2dd41933451f4ca.txt", "PSAE: sparse autoencoder with the square of a smoothed L0 norm"),
    "002": ("002_f564898ba05c63e1.txt", "k-sparse autoencoders (Makhzani and Frey)"),
    "003": ("003_c2046cc42e608b6b.txt", "Why regularized auto-encoders learn sparse representation (Arpit et al.)"),
}
# (paper name, registry id) of the models each paper compares, in the paper's order
MODELS_000 = (("AE", "ae"), ("KLDSAE", "kl"), ("AL1SAE", "studentt"), ("DenAE", "dae"), ("NCAE", "ncae"),
              ("L1SAE", "l1prox"))
MODELS_001 = (("RAE", "ae"), ("SAE+L1", "l1"), ("SAE+Ber", "kl"), ("PSAE", "sl0sq"))
# 000 Table I columns: (symbol, published.csv metric, hparams key)
TABLE_I = (("β", "beta", "beta"), ("ρ", "rho", "rho"), ("λ1 (weight decay)", "weight_decay", "weight_decay"),
           ("λ2 (fine-tuning weight decay)", "finetune_weight_decay", None), ("σ (noise level)", "level", "level"))
RUN_KEYS = ("dataset", "model", "seed", "in_dim")
N_FILTERS = 36      # filters per k panel (6 x 6)
N_EVOLUTION = 12    # receptive fields followed over the alpha stages
VIEW_WARNING = ("**Input views differ** between these models (column `input`): their reconstruction errors are "
                "not comparable, and claims comparing them are marked not measured")


@dataclass
class Report:
    markdown: str
    verdicts: list
    images: list[Path] = field(default_factory=list)


class _Builder:
    def __init__(self, *, results: T.RunResults, published: T.Published, claims: list[dict], verdicts: list,
                 params: dict, prepared_dir: Path, sweep_figures_dir: Path, out_md: Path, fig_dir: Path):
        self.r, self.pub, self.claims, self.verdicts = results, published, claims, verdicts
        self.params, self.prepared_dir = params, Path(prepared_dir)
        self.sweep_figures_dir, self.out_md, self.fig_dir = Path(sweep_figures_dir), Path(out_md), Path(fig_dir)
        self.lines: list[str] = []
        self.images: list[Path] = []
        self.n_table = 0

    # ---------------------------------------------------------------- helpers
    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(self, t: Table) -> None:
        self.add(t.markdown())

    def link(self, path: Path, alt: str) -> str:
        self.images.append(Path(path))
        rel = os.path.relpath(path, self.out_md.parent).replace(os.sep, "/")
        return f"![{alt}]({rel})"

    def image_shape(self, dataset: str):
        import json
        try:
            return json.loads((self.prepared_dir / dataset / "meta.json").read_text())["image_shape"]
        except (OSError, ValueError, KeyError):
            return None

    def run_datasets(self, paper: str, extra=()) -> list[tuple[str, str]]:
        """(paper dataset, run dataset) pairs of this run for a paper: the datasets the models
        were trained on, and `extra` ones (the k sweep's, for the 002 k figures)."""
        ours = list(dict.fromkeys([*self.r.datasets, *extra]))
        return [(p, d) for p in T.PAPER_DATASETS[paper] for d in T.measured_by(p, ours)]

    def model_label(self, dataset: str, ref: str) -> str:
        model, k = T.parse_ref(ref)
        if model == "none":
            return f"none ({T.NONE_SOURCE} network from random weights)"
        hp = self.r.hparams(dataset, ref)
        if model == "ksparse":
            kk = hp.get("k") if hp else k
            return f"ksparse (k={kk})" if kk is not None else "ksparse"
        return ref

    def cell(self, t: Table, v: T.Value, metric: str, *, with_std: bool = True) -> str:
        if not v.ok:
            return t.missing(v.note or "not measured")
        m = T.METRICS[metric]
        pct = m.unit == "%"
        s = T.fmt_number(v.mean, m.digits, pct) + ("%" if pct else "")
        if with_std:
            if v.std is not None and math.isfinite(v.std):
                s += " ± " + T.fmt_number(v.std, m.digits if not pct else 2, pct)
            elif v.std_note and metric in ("deep_finetune_accuracy", "shallow_finetune_accuracy"):
                s += " " + t.note(f"std: {v.std_note}")
        return s

    def verdict_lines(self, claim_ids, dataset: str | None = None) -> list[str]:
        out = []
        for v in self.verdicts:
            if v.claim["id"] in claim_ids and (dataset is None or v.dataset in (dataset, None)):
                out.append(f"- Claim `{v.claim['id']}` ({v.claim['section']}): {v.claim['statement']} "
                           f"**{v.status}**" + (f" on {v.dataset}" if v.dataset else "") + f": {v.evidence}")
        return out

    def ordering_lines(self, pairs: list[tuple[str, float, float]], better: str) -> list[str]:
        """Compare the paper's ordering with this run's over rows having both numbers."""
        if len(pairs) < 2:
            return ["Ordering: fewer than two rows have both a paper and a this-run number; nothing to compare."]
        sign = -1.0 if better == "lower" else 1.0
        best_p = max(pairs, key=lambda p: sign * p[1])
        best_r = max(pairs, key=lambda p: sign * p[2])
        n, swapped = 0, []
        for i in range(len(pairs)):
            for j in range(i + 1, len(pairs)):
                a, b = pairs[i], pairs[j]
                if a[1] == b[1]:
                    continue
                n += 1
                if (a[1] - b[1]) * (a[2] - b[2]) <= 0:
                    swapped.append(f"{a[0]} vs {b[0]}")
        head = (f"Ordering ({better} is better): the paper's best row is **{best_p[0]}**, this run's best is "
                f"**{best_r[0]}**")
        head += " (same winner)." if best_p[0] == best_r[0] else " — **the run and the paper disagree on the winner**."
        tail = f" {n - len(swapped)} of {n} row pairs are ordered as in the paper"
        tail += (f"; reversed: {', '.join(swapped[:8])}{' ...' if len(swapped) > 8 else ''}." if swapped else ".")
        return [head + tail]

    def published_cell(self, t: Table, rows: list[dict]) -> str:
        if not rows:
            return t.missing("published.csv has no number for this cell")
        r = rows[0]
        return f"{r['value_str']}{r['unit']}"

    def published_lookup(self, paper, source_prefix, paper_ds, model, metric) -> list[dict]:
        return [r for r in self.pub.rows if r["paper"] == paper and r["source"].startswith(source_prefix)
                and r["dataset"] in (paper_ds, "any") and r["model"] == model and r["metric"] == metric]

    def caption(self, label: str, what: str, paper_ds: str, run_ds: str | None) -> str:
        self.n_table += 1
        ran = T.run_label(run_ds) if run_ds else f"no {T.paper_name(paper_ds)} (or stand-in) in this run's `train_datasets`"
        return (f"**{label}.** {what} Paper: {T.paper_name(paper_ds)}. This run: {ran}.")

    # ---------------------------------------------------------------- header + summary
    def header(self) -> None:
        ds = ", ".join(f"{T.run_label(d)}" for d in self.params["datasets"])
        self.add("# sae-repro: report", "",
                 "Generated by `dvc repro` (stage `report`) from this run's metrics files; the paper numbers come "
                 "only from `sae/report/published.csv` and the claims from `sae/report/claims.csv`. "
                 "Do not edit: rebuild with `dvc repro report`.", "",
                 f"Datasets of this run: {ds}; the models are trained on "
                 f"{', '.join(self.r.datasets) or 'none of them'} (`train_datasets`), the sweeps use their own "
                 "lists. A stand-in is never the paper's dataset: compare orderings, "
                 "not absolute numbers.", "",
                 "Missing numbers are shown as “—” with a footnote saying why.", "")

    def summary(self) -> None:
        self.add("## What reproduces", "",
                 "Each claim below is checked from this run's numbers (`sae/report/claims.csv` holds the claims "
                 "and their checks; nothing here is typed by hand).", "")
        for paper, (seed, title) in SEEDS.items():
            vs = [v for v in self.verdicts if v.claim["paper"] == paper]
            if not vs:
                continue
            counts = {s: sum(v.status == s for v in vs) for s in (C.HOLDS, C.FAILS, C.UNMEASURED)}
            self.add(f"### {paper}: {title}", "",
                     f"`../shared/seeds/{seed}` — **{counts[C.HOLDS]} hold, {counts[C.FAILS]} do not hold, "
                     f"{counts[C.UNMEASURED]} not measured** on this run.", "")
            t = Table(f"Claims of paper {paper} and their check on this run.",
                      ["claim", "source", "paper", "this run"])
            for v in vs:
                where = f" on {v.dataset}" if v.dataset else ""
                t.add(v.claim["id"], v.claim["section"], v.claim["statement"], f"**{v.status}**{where}: {v.evidence}")
            self.table(t)

    # ---------------------------------------------------------------- 000
    def section_000(self) -> None:
        seed, title = SEEDS["000"]
        self.add(f"## 000: {title}", "", f"Source: `../shared/seeds/{seed}`.", "")
        pairs = self.run_datasets("000")
        run_ds = [d for _, d in pairs]
        # Table I
        self.add("### Table I: hyper-parameters", "")
        t = Table(f"**Table I (000).** Hyper-parameters of the compared autoencoders: the paper's grid-searched "
                  f"values and the ones this run trained with (registry defaults overridden by params.yaml, as "
                  f"recorded in each model's hparams.json). Paper: any dataset. This run: "
                  f"{', '.join(T.run_label(d) for d in run_ds) or 'no 000 dataset (values of ' + ', '.join(self.r.datasets) + ')'}.",
                  ["model", "hyper-parameter", "paper", "this run"])
        show_ds = run_ds or self.r.datasets
        other_lines = []
        ft_wd = (self.params.get("finetune") or {}).get("weight_decay")
        for name, model in MODELS_000:
            effs = {d: self.r.effective_hparams(d, model) for d in show_ds}
            for sym, pmetric, key in TABLE_I:
                pub = [r for r in self.pub.rows if r["paper"] == "000" and r["source"] == "Table I"
                       and r["model"] == model and r["metric"] == pmetric]
                if key is None:
                    vals = {d: ft_wd for d in show_ds} if model in self.r.models else {}
                else:
                    vals = {d: e[key] for d, e in effs.items() if e is not None and key in e}
                if not pub and not vals:
                    continue
                if key is None and not pub and vals:
                    paper = t.missing("published.csv has no 000 Table I λ2 (fine-tuning weight decay) rows")
                else:
                    paper = self.published_cell(t, pub) if pub else t.missing(
                        "the paper gives no value: the model has no such term in 000 Table I")
                if vals:
                    uniq = {T.fmt_param(v) for v in vals.values()}
                    run = uniq.pop() if len(uniq) == 1 else ", ".join(f"{T.fmt_param(v)} ({d})" for d, v in vals.items())
                elif model not in self.r.models:
                    run = t.missing(f"{model} is not in this run's `models`")
                elif all(e is None for e in effs.values()):
                    run = t.missing(f"models/<dataset>/{model}/hparams.json is missing (train stage not run?)")
                else:
                    run = t.missing(f"{model} has no `{key}` term in this run")
                t.add(f"{name} ({model})", sym, paper, run)
            eff = next((e for e in effs.values() if e is not None), None)
            if eff is not None:
                shown = {k for _, _, k in TABLE_I if k}
                rest = {k: v for k, v in eff.items() if k not in shown and k not in RUN_KEYS
                        and k not in ("checkpoint_every", "datasets")}
                other_lines.append(f"- {name} ({model}): " + ", ".join(f"{k} {T.fmt_param(v)}" for k, v in rest.items()))
        if other_lines:
            t.after = ["Other settings this run used (same source):", "", *other_lines]
        self.table(t)

        # Fig. 1a-b
        self.add("### Fig. 1a-b: reconstruction error and Gini index", "")
        if not pairs:
            self.add(f"Not measured: no {', '.join(T.paper_name(p) for p in T.PAPER_DATASETS['000'])} "
                     "(or stand-in) in this run's `train_datasets`.", "")
        for paper_ds, d in pairs:
            models = [(n, m) for n, m in MODELS_000 if m != "ncae"]  # 000 Fig. 1 leaves NCAE out
            t = Table(self.caption("Fig. 1a-b (000)", "Reconstruction error (mean squared error per input dimension, "
                                   "in each model's input view) and Gini index of the codes: mean ± std over the "
                                   "test samples.", paper_ds, d),
                      ["model", "metric", "input", "paper", "this run"])
            inputs = set()
            for metric in ("recon_error", "gini"):
                for name, m in models:
                    v = self.r.value(d, m, metric)
                    inp = self.r.input_view(d, m) or DASH
                    inputs.add(self.r.view_class(d, inp))
                    pub = self.published_lookup("000", "Fig. 1", paper_ds, m, metric)
                    paper = self.published_cell(t, pub) if pub else t.missing(
                        "000 Fig. 1 draws bars without printed numbers (published.csv has none); the paper's "
                        "orderings are checked as claims below")
                    t.add(f"{name} ({m})", T.METRICS[metric].label, inp, paper, self.cell(t, v, metric))
            t.after = ([VIEW_WARNING] if len(inputs - {DASH}) > 1 else []) + \
                self.verdict_lines({"000-re-ae", "000-re-l1sae", "000-gini-l1sae"}, d)
            self.table(t)
            panels = []
            for metric in ("recon_error", "gini"):
                vals = [self.r.value(d, m, metric) for _, m in models]
                panels.append({"title": T.METRICS[metric].label.split(" (")[0], "ylabel":
                               "MSE per input dimension" if metric == "recon_error" else "Gini index (0-1)",
                               "labels": [n for n, _ in models], "means": [v.mean for v in vals],
                               "stds": [v.std for v in vals], "better": T.METRICS[metric].better,
                               "note": "error bars: ±1 std over test samples"})
            path = F.bar_panels(panels, f"000 Fig. 1a-b on {T.run_label(d)}", self.fig_dir / f"000_fig1ab_{d}.png")
            self.add(self.link(path, f"000 Fig. 1a-b on {d}"), "")

        # Table II
        self.add("### Table II: accuracy after deep fine-tuning", "")
        for paper_ds in T.PAPER_DATASETS["000"]:
            ds = T.measured_by(paper_ds, self.r.datasets) or [None]
            for d in ds:
                arch = None
                if d:
                    ft, _ = self.r.finetune_json(d, "l1prox")
                    arch = ((ft or {}).get("deep") or {}).get("arch")
                what = ("Test accuracy (%) of the network pre-trained layer-wise with each model, then fine-tuned: "
                        "mean ± std over fine-tuning seeds" + (f" (this run's network: {arch})." if arch else "."))
                t = Table(self.caption("Table II (000)", what, paper_ds, d), ["model", "paper", "this run"])
                pairs_o = []
                for name, m in MODELS_000:
                    if m == "ae":
                        continue
                    mean = self.published_lookup("000", "Table II", paper_ds, m, "deep_finetune_accuracy_mean")
                    std = self.published_lookup("000", "Table II", paper_ds, m, "deep_finetune_accuracy_std")
                    paper = (f"{mean[0]['value_str']}%" + (f" ± {std[0]['value_str']}" if std else "")) if mean \
                        else t.missing("published.csv has no number for this cell")
                    v = self.r.value(d, m, "deep_finetune_accuracy") if d else T.Value(
                        note=f"no {T.paper_name(paper_ds)} (or stand-in) in this run's `train_datasets`")
                    t.add(f"{name} ({m})", paper, self.cell(t, v, "deep_finetune_accuracy"))
                    if mean and v.ok:
                        pairs_o.append((name, mean[0]["value"], v.mean))
                t.after = self.ordering_lines(pairs_o, "higher") + (self.verdict_lines({"000-ft-l1sae"}, d) if d else [])
                self.table(t)

        # Fig. 1c
        self.add("### Fig. 1c: L1SAE receptive fields after each alpha stage", "")
        shown = False
        for paper_ds, d in pairs:
            if paper_ds != "mnist":
                continue
            shown = True
            self.evolution(d)
        if not shown:
            self.add("Not measured: 000 Fig. 1c is on MNIST and this run has no MNIST (or stand-in).", "")
        self.add(*self.verdict_lines({"000-alpha-sparser"}), "")

    def evolution(self, d: str) -> None:
        path = self.r.models_dir / d / "l1prox" / "stages.pt"
        shape = self.image_shape(d)
        if "l1prox" not in self.r.models:
            self.add("Not available: l1prox is not in this run's `models`.", "")
            return
        if not path.is_file() or shape is None:
            self.add(f"Not available on {d}: `{path}` (the encoder weights at the end of each alpha stage) "
                     "is not written by this version of the train stage.", "")
            return
        import torch
        snaps = torch.load(path, map_location="cpu", weights_only=True)
        snaps = [s for s in snaps if "W" in s]
        if not snaps:
            self.add(f"Not available on {d}: `{path}` holds no stage snapshots (a resumed run keeps only "
                     "the stages trained after the resume).", "")
            return
        # the units whose receptive fields change most between the first and the last stage
        first, last = snaps[0]["W"].numpy(), snaps[-1]["W"].numpy()
        change = np.linalg.norm(last - first, axis=1) / np.maximum(np.linalg.norm(first, axis=1), 1e-12)
        units = np.sort(np.argsort(-change, kind="stable")[:min(N_EVOLUTION, len(change))])
        stages = [(f"alpha={float(s['alpha']):.3g}\n(epoch {int(s['epoch']) + 1})", s["W"].numpy()[units])
                  for s in snaps]
        out = F.evolution_figure(stages, shape, f"000 Fig. 1c: L1SAE receptive fields after each alpha stage, "
                                 f"{T.run_label(d)}", self.fig_dir / f"000_fig1c_{d}.png",
                                 caption="each filter min-max scaled on its own (white = most positive weight)")
        self.add(f"Rows: the encoder weights of the same {len(units)} hidden units (those whose weights change "
                 f"most from the first to the last stage: units {', '.join(str(u + 1) for u in units)}) at the end "
                 f"of each alpha stage (alpha shrinks by f each stage). Dataset: {T.run_label(d)}.", "",
                 self.link(out, f"000 Fig. 1c on {d}"), "")

    # ---------------------------------------------------------------- 001
    def section_001(self) -> None:
        seed, title = SEEDS["001"]
        self.add(f"## 001: {title}", "", f"Source: `../shared/seeds/{seed}`. PSAE is our `sl0sq`, RAE `ae`, "
                 "SAE+L1 `l1`, SAE+Ber `kl`.", "")
        pairs = self.run_datasets("001")
        self.add("### Fig. 2a-d: reconstruction error, Hoyer sparseness, SSD, classification accuracy", "")
        if not pairs:
            self.add("Not measured: no MNIST, CIFAR-10 or OPTDIGITS (or stand-in) in this run's `train_datasets`.", "")
        metrics = ("recon_error", "hoyer", "ssd", "logreg_accuracy")
        for paper_ds, d in pairs:
            t = Table(self.caption("Fig. 2a-d (001)", "RE (eq. 13, per input dimension, in each model's input "
                                   "view), Hoyer sparseness (eq. 14; mean ± std over test samples), SSD (eq. 15) "
                                   "and the test accuracy of a softmax classifier on the codes.", paper_ds, d),
                      ["model", "metric", "input", "paper", "this run"])
            inputs = set()
            for metric in metrics:
                for name, m in MODELS_001:
                    inp = self.r.input_view(d, m) or DASH
                    inputs.add(self.r.view_class(d, inp))
                    pub = self.published_lookup("001", "Fig. 2", paper_ds, m, metric)
                    paper = self.published_cell(t, pub) if pub else t.missing(
                        "001 Fig. 2 draws bars without printed numbers (published.csv has none); the paper's "
                        "orderings (sec. IV-C) are checked as claims below")
                    t.add(f"{name} ({m})", T.METRICS[metric].label, inp, paper,
                          self.cell(t, self.r.value(d, m, metric), metric))
            t.after = ([VIEW_WARNING + " (001 sec. IV-B maps every model's input the PSAE way: "
                        "standardised, then into (0,1))"] if len(inputs - {DASH}) > 1 else []) + \
                self.verdict_lines({c["id"] for c in self.claims if c["paper"] == "001"}, d)
            self.table(t)
            panels = []
            ylabels = {"recon_error": "MSE per input dimension", "hoyer": "Hoyer sparseness (0-1)",
                       "ssd": "std over samples of Hoyer", "logreg_accuracy": "test accuracy (%)"}
            for metric in metrics:
                vals = [self.r.value(d, m, metric) for _, m in MODELS_001]
                panels.append({"title": T.METRICS[metric].label.split(" (")[0], "ylabel": ylabels[metric],
                               "labels": [n for n, _ in MODELS_001], "means": [v.mean for v in vals],
                               "stds": [v.std for v in vals], "better": T.METRICS[metric].better,
                               "note": "error bars: ±1 std over test samples" if metric in ("recon_error", "hoyer")
                               else "one number per test set", "zoom": metric == "logreg_accuracy"})
            path = F.bar_panels(panels, f"001 Fig. 2a-d on {T.run_label(d)}", self.fig_dir / f"001_fig2_{d}.png")
            self.add(self.link(path, f"001 Fig. 2a-d on {d}"), "")

    # ---------------------------------------------------------------- 002
    def ks_for(self, d: str) -> list[int]:
        return sorted(self.r.ksweep_k, reverse=True) if d in self.r.ksweep_datasets else []

    def published_table(self, paper: str, source: str, what: str, extra_refs=()) -> None:
        for paper_ds in self.pub.datasets(paper, source):
            rows = self.pub.select(paper, source, paper_ds)
            metrics = list(dict.fromkeys(r["metric"] for r in rows))
            for d in T.measured_by(paper_ds, self.r.datasets) or [None]:
                cols = ["paper row", "model (this run)"] + (["metric"] if len(metrics) > 1 else []) + ["paper", "this run"]
                t = Table(self.caption(f"{source} ({paper})", what, paper_ds, d), cols)
                pairs = []
                covered = set()
                for r in rows:
                    ref = r["model"]
                    covered.add(ref)
                    if d is None:
                        v = T.Value(note=f"no {T.paper_name(paper_ds)} (or stand-in) in this run's `train_datasets`")
                        label = ref or DASH
                    else:
                        v = self.r.value(d, ref, r["metric"]) if ref else T.Value(
                            note="not in the model registry (published.csv has no model id for it)")
                        label = self.model_label(d, ref) if ref else DASH
                    cells = [r["row"], label] + ([T.METRICS[r["metric"]].label] if len(metrics) > 1 else [])
                    cells += [f"{r['value_str']}{r['unit']}", self.cell(t, v, r["metric"], with_std=False)]
                    t.add(*cells)
                    if v.ok:
                        pairs.append((r["row"], r["value"], v.mean))
                for ref in extra_refs:
                    if d is None or ref in covered or metrics[0] not in T.METRICS:
                        continue
                    v = self.r.value(d, ref, metrics[0])
                    if not v.ok:
                        continue
                    cells = ["(not in the paper's table)", self.model_label(d, ref)] + \
                            ([T.METRICS[metrics[0]].label] if len(metrics) > 1 else [])
                    cells += [t.missing("the paper has no row for this model"), self.cell(t, v, metrics[0], with_std=False)]
                    t.add(*cells)
                better = {T.METRICS[m].better for m in metrics}
                t.after = self.ordering_lines(pairs, better.pop()) if len(better) == 1 else []
                if d:
                    ids = {"002-t1-ksparse", "002-t1-kbest"} if "logreg_test_error" in metrics else \
                        {"002-t3-shallow", "002-t3-deep"}
                    t.after += self.verdict_lines(ids, d)
                self.table(t)

    def section_002(self) -> None:
        seed, title = SEEDS["002"]
        self.add(f"## 002: {title}", "", f"Source: `../shared/seeds/{seed}`. `ksparse@k=K` rows are the k-sweep "
                 "models (stages `ksweep@<dataset>-<K>`), trained like `ksparse` with only k changed.", "")
        self.add("### Tables 1-2: logistic regression on fixed features", "")
        extra = []
        for d in self.r.ksweep_datasets:
            extra += [f"ksparse@k={k}" for k in self.r.ksweep_k]
        self.published_table("002", "Table 1", "Test error (%) of logistic regression on the fixed features "
                             "(L2 strength and, for k-sparse, alpha chosen on validation).", dict.fromkeys(extra))
        self.published_table("002", "Table 2", "Test error (%) of logistic regression on the fixed features.",
                             dict.fromkeys(extra))
        self.add("### Tables 3-4: fine-tuning", "")
        self.published_table("002", "Table 3", "Test error (%) after supervised fine-tuning: shallow (encoder + "
                             "softmax) or deep (two layer-wise pre-trained layers + softmax).")
        self.published_table("002", "Table 4", "Test error (%) after supervised fine-tuning.")

        # error vs k
        for paper_ds, d in self.run_datasets("002", self.r.ksweep_datasets):
            ks = self.ks_for(d)
            if not ks:
                continue
            pts = []
            main_k = (self.r.hparams(d, "ksparse") or {}).get("k")
            refs = [(k, f"ksparse@k={k}") for k in ks]
            if "ksparse" in self.r.models and main_k is not None and main_k not in ks:
                refs.append((main_k, "ksparse"))
            for k, ref in refs:
                v = self.r.value(d, ref, "logreg_test_error")
                if v.ok:
                    pts.append((k, v.mean))
            if len(pts) < 2:
                continue
            pts.sort()
            paper_pts = []
            for r in self.pub.rows:
                if r["paper"] == "002" and r["dataset"] == paper_ds and r["metric"] == "logreg_test_error" \
                        and r["model"].startswith("ksparse"):
                    m = re.search(r"k\s*=\s*(\d+)", r["row"])
                    if m:
                        paper_pts.append((int(m[1]), r["value"]))
            paper_pts.sort()
            out = F.error_vs_k_figure([(d, [k for k, _ in pts], [e for _, e in pts])],
                                      [(T.paper_name(paper_ds), [k for k, _ in paper_pts], [e for _, e in paper_pts])]
                                      if paper_pts else [],
                                      f"002 Tables 1-2: logistic-regression error vs k, {T.run_label(d)}",
                                      self.fig_dir / f"002_error_vs_k_{d}.png", ylabel="test error (%)")
            self.add(f"Logistic-regression test error against k on {T.run_label(d)} (the paper's MNIST/NORB "
                     "points dashed, from published.csv).", "", self.link(out, f"error vs k on {d}"), "")

        self.add("### Figs. 1-3: filters for several k", "")
        any_filters = False
        for paper_ds, d in self.run_datasets("002", self.r.ksweep_datasets):
            shape = self.image_shape(d)
            refs = [f"ksparse@k={k}" for k in self.ks_for(d)]
            main_k = (self.r.hparams(d, "ksparse") or {}).get("k")
            if "ksparse" in self.r.models and main_k not in self.ks_for(d):
                refs.append("ksparse")
            def k_of(ref):
                return (self.r.hparams(d, ref) or {}).get("k") or T.parse_ref(ref)[1] or 0
            refs.sort(key=k_of, reverse=True)
            panels = []
            for ref in refs:
                path = self.r.model_path(d, ref)
                if not path.is_file():
                    continue
                import torch
                w = torch.load(path, map_location="cpu", weights_only=True)["W"].numpy()
                panels.append((f"{self.model_label(d, ref)}, {w.shape[0]} hidden", w[:N_FILTERS]))
            if not panels or shape is None:
                continue
            any_filters = True
            fig_no = {"mnist": "Fig. 1", "norb": "Fig. 2", "cifar10_patches": "Fig. 3"}.get(paper_ds, "filters")
            out = F.filters_figure(panels, shape, f"002 {fig_no}: k-sparse filters (encoder rows), {T.run_label(d)}",
                                   self.fig_dir / f"002_filters_{d}.png", nrow=6,
                                   caption=f"the first {N_FILTERS} hidden units of each model; each filter min-max "
                                           "scaled on its own (black = most negative, white = most positive)")
            expect = ("localised Gabor-like filters (002 sec. 4.3, k=50 with 1000 hidden units)"
                      if paper_ds == "cifar10_patches" else
                      "local, stroke-like filters at large k that grow more global as k falls, too global at "
                      "very small k (002 sec. 4.3)")
            self.add(f"002 {fig_no} ({T.paper_name(paper_ds)} in the paper). This run: {T.run_label(d)}. "
                     f"The paper shows {expect}.", "",
                     self.link(out, f"002 filters on {d}"), "")
        if not any_filters:
            self.add("Not available: no k-sparse model files for a 002 dataset in this run.", "")

        self.add("### Fig. 4: histogram of hidden activities", "")
        any_hist = False
        for paper_ds, d in self.run_datasets("002", self.r.ksweep_datasets):
            if paper_ds != "mnist":
                continue
            refs = [m for m in ("raw", "ae", "dropout", "dae") if m in self.r.models]
            own_k = (self.r.hparams(d, "ksparse") or {}).get("k") if "ksparse" in self.r.models else None
            ks = sorted({k for k in self.ks_for(d) if k != own_k} | ({own_k} if own_k is not None else set()))
            refs += ["ksparse" if k == own_k else f"ksparse@k={k}" for k in ks]  # legend in order of k
            series = [(self.model_label(d, ref) if ref.startswith("ksparse") else ref, self.r.hist_path(d, ref))
                      for ref in refs if self.r.hist_path(d, ref).is_file()]
            if not series:
                continue
            any_hist = True
            out = F.histogram_figure(series, f"002 Fig. 4: hidden activities on the test set, {T.run_label(d)}",
                                     self.fig_dir / f"002_fig4_{d}.png",
                                     xlabel="hidden activity (code value; for raw: the pixel value)")
            self.add(f"Log-histogram of the code values each model gives the test set ({T.run_label(d)}); "
                     "k-sparse codes are the alpha*k kept units (the rest exactly 0).", "",
                     self.link(out, f"002 Fig. 4 on {d}"), "")
            self.add(*self.verdict_lines({"002-fig4-sparser"}, d), "")
        if not any_hist:
            self.add("Not measured: 002 Fig. 4 is on MNIST and this run has no MNIST (or stand-in) histograms.", "")

    # ---------------------------------------------------------------- 003
    def section_003(self) -> None:
        seed, title = SEEDS["003"]
        self.add(f"## 003: {title}", "", f"Source: `../shared/seeds/{seed}`. Average activation fraction "
                 "(eq. 14) and dead units against the regularisation coefficient (lambda; the noise variance "
                 "for DAE/eDAE), from the sweep stages.", "")
        sweep_ds = list(((self.params.get("sweep") or {}).get("datasets")) or [])
        pairs = [(p, d) for p, d in self.run_datasets("003") if d in sweep_ds]
        if not pairs:
            self.add("Not measured: no dataset of `sweep.datasets` measures MNIST or CIFAR-10 patches.", "")
        for paper_ds, d in pairs:
            path = self.sweep_figures_dir / f"sweep_{d}_predictions.csv"
            rows = C.read_predictions(path) or []
            t = Table(self.caption("Predictions (003)", "What 003 sec. 3 predicts for the activation fraction as "
                                   "the coefficient grows, and what the sweep shows (first -> last coefficient).",
                                   paper_ds, d),
                      ["prediction", "figure", "model", "activation", "encoder rows", "paper", "this run"])
            for r in rows:
                first, last = C._num(r.get("af_first")), C._num(r.get("af_last"))
                span = f" ({first:.3f} -> {last:.3f})" if first is not None and last is not None else ""
                run = f"{r['observed']}{span}" + ("" if C._truthy(r.get("holds")) else " — differs from the paper")
                t.add(r["prediction"], r.get("paper_figure", ""), r["model"], r["activation"],
                      "unit-length" if C._truthy(r.get("unit_norm")) else "unconstrained", r["expected"], run)
            if not rows:
                t.add(DASH, DASH, DASH, DASH, DASH, t.missing("the 003 predictions are text (sec. 3), not numbers"),
                      t.missing(f"{path} is missing (sweep_figures@{d} not run)"))
            t.after = self.verdict_lines({c["id"] for c in self.claims if c["paper"] == "003"}, d)
            self.table(t)
            for name, what in ((f"sweep_{d}.png", "activation fraction and dead units (003 Figs. 1-5)"),
                               (f"sweep_{d}_recon.png", "held-out reconstruction error")):
                p = self.sweep_figures_dir / name
                if p.is_file():
                    self.add(f"{what.capitalize()}, {T.run_label(d)}:", "", self.link(p, f"003 {what} on {d}"), "")
                else:
                    self.add(f"{what.capitalize()}: not available (`{p}` missing).", "")

    def footer(self) -> None:
        self.add("## Training curves", "",
                 "Per-epoch loss, reconstruction error, Hoyer sparseness and activation fraction of every model are "
                 "DVC plots: `dvc plots show` renders them (with the sweep and k-sweep tables) into "
                 "`dvc_plots/index.html`; `dvc plots diff` compares experiments.", "")

    def build(self) -> str:
        self.header()
        self.summary()
        self.section_000()
        self.section_001()
        self.section_002()
        self.section_003()
        self.footer()
        return "\n".join(self.lines).rstrip() + "\n"


def build_report(*, metrics_dir, models_dir, prepared_dir, sweep_figures_dir, params: dict, published,
                 claims, out_md, fig_dir, ksweep_dir=None) -> Report:
    """Write out_md and its figures under fig_dir; return the markdown, the claim verdicts and the images.

    params: the params.yaml dict (datasets, models, ksweep, sweep.datasets, finetune).
    published / claims: paths of published.csv and claims.csv.
    """
    ks = params.get("ksweep") or {}
    results = T.RunResults(metrics_dir, models_dir, datasets=params["train_datasets"], models=params["models"],
                           ksweep_dir=ksweep_dir, ksweep_datasets=ks.get("datasets") or [],
                           ksweep_k=ks.get("k") or [], prepared_dir=prepared_dir)
    pub = T.Published(published)
    claim_list = C.load_claims(claims)
    sweep_ds = list(((params.get("sweep") or {}).get("datasets")) or [])
    verdicts = C.evaluate(claim_list, results, predictions_dir=sweep_figures_dir, sweep_datasets=sweep_ds)
    out_md, fig_dir = Path(out_md), Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    for old in fig_dir.glob("*.png"):  # a figure of a dataset no longer run must not linger
        old.unlink()
    b = _Builder(results=results, published=pub, claims=claim_list, verdicts=verdicts, params=params,
                 prepared_dir=prepared_dir, sweep_figures_dir=sweep_figures_dir, out_md=out_md, fig_dir=fig_dir)
    md = b.build()
    check_markdown(md, out_md.parent)
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text(md)
    return Report(md, verdicts, b.images)


def image_links(md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


def check_markdown(md: str, root: Path) -> None:
    """The report's own guarantees: no NaN anywhere, every linked image exists, every table has
    a `paper` and a `this run` column."""
    if re.search(r"\bnan\b", md, flags=re.IGNORECASE):
        line = next(l for l in md.splitlines() if re.search(r"\bnan\b", l, flags=re.IGNORECASE))
        raise ValueError(f"report would contain NaN: {line[:200]}")
    for link in image_links(md):
        if not (Path(root) / link).is_file():
            raise ValueError(f"report links a missing image: {link}")
    for header in table_headers(md):
        if "paper" not in header or "this run" not in header:
            raise ValueError(f"report table without paper/this run columns: {header}")


def table_headers(md: str) -> list[list[str]]:
    """The header cells of every markdown pipe table in md."""
    lines = md.splitlines()
    out = []
    for i in range(len(lines) - 1):
        if lines[i].startswith("|") and re.fullmatch(r"\|(-+\|)+", lines[i + 1].replace(" ", "")) \
                and (i == 0 or not lines[i - 1].startswith("|")):
            out.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
    return out
