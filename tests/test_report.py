"""The report built from small fake metrics files: tables with both columns, no NaN, every
linked image present, and claims that hold / fail / are not measured marked as such.

The fake files have the exact structure the evaluate and finetune stages write: their
templates come from sae.evaluate.evaluate and sae.finetune.finetune run on a tiny model,
then the numbers are replaced with ones chosen to make some claims hold and others fail.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from sae.evaluate import write_hist_csv
from sae.report import claims as C
from sae.report import report as R
from sae.report import tables as T

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO / "sae" / "report" / "published.csv"
CLAIMS = REPO / "sae" / "report" / "claims.csv"
MODELS = ["raw", "ae", "kl", "l1", "studentt", "dae", "dropout", "ncae", "l1prox", "sl0sq", "ksparse"]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
# the repo's own classify / finetune groups (so the schema always matches), made tiny
CLASSIFY = {**PARAMS["classify"], "l2": [0.0, 0.01], "epochs": 2, "batch": 16}
FINETUNE = {**PARAMS["finetune"], "seeds": [0, 1], "epochs": 1, "deep_epochs": [1, 0, 1], "batch": 16,
            "deep_hidden": {"mnist5k": 4}}


@pytest.fixture(scope="module")
def templates():
    """(metrics dict, histogram, finetune dict) exactly as sae.evaluate / sae.finetune return them."""
    from sae import classify, evaluate, finetune
    from sae.models import build
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    data = {f"x_{s}": torch.rand(40, 784, generator=g) for s in ("train", "val", "test")}
    data |= {f"y_{s}": torch.arange(40) % 10 for s in ("train", "val", "test")}
    torch.manual_seed(0)
    model = build("ae", 784, 8, activation="sigmoid", decoder="sigmoid")
    metrics, hist = evaluate.evaluate(model, data, n_classes=10, classify_cfg=classify.check_config(CLASSIFY),
                                      hist_bins=10)
    hparams = {"dataset": "mnist5k", "model": "ae", "seed": 0, "in_dim": 784, "optimizer": "sgd", "lr": 0.1,
               "momentum": 0.9, "schedule": "constant", "final_lr": 0.001, "checkpoint_every": 0, "hidden": 8,
               "epochs": 1, "batch": 16, "input": "unit", "activation": "sigmoid", "decoder": "sigmoid"}
    ft = finetune.finetune(hparams, model.state_dict(), data, n_classes=10, cfg=finetune.check_config(FINETUNE),
                           deep_hidden=4)
    return metrics, hist, ft


# chosen numbers: ae has the lowest RE (000-re-ae holds); kl has a higher Gini than l1prox
# (000-gini-l1sae fails); ksparse beats raw, dropout and dae (002-t1-ksparse holds).
RE = {"ae": 0.010, "kl": 0.020, "l1": 0.030, "studentt": 0.025, "dae": 0.040, "ncae": 0.05, "l1prox": 0.015,
      "sl0sq": 0.018, "raw": 0.0, "dropout": 0.03, "ksparse": 0.02}
GINI = {"ae": 0.3, "kl": 0.9, "l1": 0.6, "studentt": 0.5, "dae": 0.4, "ncae": 0.6, "l1prox": 0.8, "sl0sq": 0.7,
        "raw": 0.5, "dropout": 0.4, "ksparse": 0.85}
ERR = {"ae": 0.08, "kl": 0.07, "l1": 0.06, "studentt": 0.07, "dae": 0.09, "ncae": 0.07, "l1prox": 0.05,
       "sl0sq": 0.04, "raw": 0.12, "dropout": 0.10, "ksparse": 0.03}


def _metrics(template, model, k=None):
    m = copy.deepcopy(template)
    m = {"input": "unit" if model != "sl0sq" else "standardize_unit", **m}
    m["recon_error"] = {"mean": RE[model], "std": RE[model] / 3}
    m["gini"] = {"mean": GINI[model], "std": 0.02}
    m["hoyer"] = {"mean": GINI[model] - 0.1, "std": 0.03}
    m["ssd"] = 0.03 if model != "sl0sq" else 0.01
    err = ERR[model] if k is None else {10: 0.05, 40: 0.04, 70: 0.045}[k]
    m["logreg"].update(test_error=err, test_accuracy=1 - err)
    if model == "ksparse":
        m["logreg"]["alpha"] = 3.0
    return m


@pytest.fixture
def workspace(tmp_path, templates):
    metrics_t, hist, ft_t = templates
    ws = tmp_path / "ws"
    (ws / "metrics" / "mnist5k").mkdir(parents=True)
    (ws / "data" / "prepared" / "mnist5k").mkdir(parents=True)
    (ws / "data" / "prepared" / "mnist5k" / "meta.json").write_text(json.dumps({"image_shape": [1, 28, 28]}))
    g = torch.Generator().manual_seed(1)
    for m in MODELS:
        (ws / "metrics" / "mnist5k" / f"{m}.json").write_text(json.dumps(_metrics(metrics_t, m), indent=2))
        write_hist_csv(ws / "metrics" / "mnist5k" / f"{m}_hist.csv", hist)
        ft = copy.deepcopy(ft_t)
        acc = 1 - ERR[m] / 2
        for kind, a in (("shallow", acc), ("deep", acc + 0.005), ("none", 0.9)):
            if ft.get(kind, {}).get("mean") is not None:
                ft[kind]["mean"], ft[kind]["std"] = a, 0.001
        (ws / "metrics" / "mnist5k" / f"{m}_finetune.json").write_text(json.dumps(ft, indent=2))
        mdir = ws / "models" / "mnist5k" / m
        mdir.mkdir(parents=True)
        hp = {"dataset": "mnist5k", "model": m, "seed": 0, "in_dim": 784, "hidden": 16, "epochs": 3, "lr": 0.1,
              "input": "unit"}
        if m == "ksparse":
            hp |= {"k": 25, "k_start": 100, "alpha": 3}
        if m == "kl":
            hp |= {"beta": 1.0, "rho": 0.01, "weight_decay": 5e-5}
        (mdir / "hparams.json").write_text(json.dumps(hp))
        torch.save({"W": torch.randn(16, 784, generator=g)}, mdir / "model.pt")
    # l1prox weights at the end of each alpha stage; dvclive curves of val_hoyer and alpha
    snaps = [{"epoch": e, "alpha": a, "W": torch.randn(16, 784, generator=g)} for e, a in ((0, 1.0), (1, 0.6), (2, 0.36))]
    torch.save(snaps, ws / "models" / "mnist5k" / "l1prox" / "stages.pt")
    curves = ws / "models" / "mnist5k" / "l1prox" / "live" / "plots" / "metrics"
    curves.mkdir(parents=True)
    (curves / "alpha.tsv").write_text("step\talpha\n0\t1.0\n1\t0.6\n2\t0.36\n")
    (curves / "val_hoyer.tsv").write_text("step\tval_hoyer\n0\t0.5\n1\t0.6\n2\t0.7\n")
    # k sweep
    for k in (10, 40, 70):
        kd = ws / "ksweep" / "mnist5k" / f"k{k}"
        kd.mkdir(parents=True)
        (kd / "metrics.json").write_text(json.dumps(_metrics(metrics_t, "ksparse", k)))
        (kd / "hparams.json").write_text(json.dumps({"model": "ksparse", "k": k, "hidden": 16, "input": "pixels"}))
        write_hist_csv(kd / "hist.csv", hist)
        torch.save({"W": torch.randn(16, 784, generator=g)}, kd / "model.pt")
    # 003 predictions in sweep_figures' format: (a) fails, (b) holds; (c) and fig3 absent
    fig = ws / "reports" / "figures"
    fig.mkdir(parents=True)
    (fig / "sweep_mnist5k_predictions.csv").write_text(
        "dataset,prediction,paper_figure,model,activation,unit_norm,expected,af_first,af_last,af_min,af_max,"
        "spearman,observed,holds,dead_last,n_diverged\n"
        "mnist5k,a,Fig. 1,cae,relu,True,flat,0.79,0.76,0.76,0.79,-0.9,flat,True,0,0\n"
        "mnist5k,a,Fig. 1,mdae,relu,True,flat,0.79,0.70,0.70,0.79,-0.95,falls,False,0,0\n"
        "mnist5k,b,Fig. 4,sae0,sigmoid,True,falls,0.74,0.46,0.46,0.74,-1,falls,True,0,0\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.imsave(fig / "sweep_mnist5k.png", [[0, 1], [1, 0]])
    plt.imsave(fig / "sweep_mnist5k_recon.png", [[0, 1], [1, 0]])
    return ws


def _params():
    return {"datasets": ["mnist5k"], "train_datasets": ["mnist5k"], "models": MODELS, "ksweep": {"datasets": ["mnist5k"], "k": [10, 40, 70]},
            "sweep": {"datasets": ["mnist5k"]}, "finetune": FINETUNE}


def _build(ws, params=None):
    return R.build_report(metrics_dir=ws / "metrics", models_dir=ws / "models", prepared_dir=ws / "data" / "prepared",
                          sweep_figures_dir=ws / "reports" / "figures", ksweep_dir=ws / "ksweep",
                          params=params or _params(), published=PUBLISHED, claims=CLAIMS,
                          out_md=ws / "reports" / "report.md", fig_dir=ws / "reports" / "report_figures")


def _status(rep, claim_id, dataset="mnist5k"):
    return {v.status for v in rep.verdicts if v.claim["id"] == claim_id and v.dataset in (dataset, None)}


def test_report_tables_images_and_claims(workspace):
    rep = _build(workspace)
    md = (workspace / "reports" / "report.md").read_text()
    assert md == rep.markdown
    assert not re.search(r"\bnan\b", md, re.IGNORECASE)
    headers = R.table_headers(md)
    assert len(headers) >= 10
    for h in headers:
        assert "paper" in h and "this run" in h, h
    links = R.image_links(md)
    assert any("000_fig1ab_mnist5k" in l for l in links) and any("002_filters_mnist5k" in l for l in links)
    assert any("000_fig1c_mnist5k" in l for l in links)
    for link in links:
        assert (workspace / "reports" / link).is_file(), link
    # the dataset actually used is named in every caption
    for line in md.splitlines():
        if line.startswith("**Fig. 1a-b") or line.startswith("**Table 1 ") or line.startswith("**Table II"):
            assert "This run:" in line
    assert "mnist5k (5,000 MNIST digits: stand-in for MNIST)" in md

    # claims: holds / does not hold / not measured, decided by the numbers
    assert _status(rep, "000-re-ae") == {C.HOLDS}                # ae RE 0.010 is the lowest
    assert _status(rep, "000-gini-l1sae") == {C.FAILS}           # kl Gini 0.9 > l1prox 0.8
    assert _status(rep, "002-t1-ksparse") == {C.HOLDS}
    assert _status(rep, "002-t1-kbest") == {C.HOLDS}             # k=25 3% < k=40 4%, k=10 5%
    assert _status(rep, "003-a") == {C.FAILS} and _status(rep, "003-b") == {C.HOLDS}
    assert _status(rep, "003-c") == {C.UNMEASURED}               # no rows for (c) in the predictions
    assert _status(rep, "000-alpha-sparser") == {C.HOLDS}        # val_hoyer 0.5 -> 0.7
    # sl0sq's RE is in another input view than ae's: not comparable, so not measured
    assert _status(rep, "001-re-rae") == {C.UNMEASURED}
    assert "not comparable: the models were measured in different input views" in md
    # the summary says so, in the paper/this run table of each paper
    summary = md.split("\n## 000:")[0]
    row = next(l for l in summary.splitlines() if l.startswith("| 000-gini-l1sae"))
    assert "**does not hold** on mnist5k" in row and "kl 0.9 > l1prox 0.8" in row
    row = next(l for l in summary.splitlines() if l.startswith("| 000-re-ae"))
    assert "**holds** on mnist5k" in row
    # the paper's numbers come from published.csv, this run's from the metrics files
    t1 = md.split("**Table 1 (002).**")[1].split("\n\n")[1]
    raw_row = next(l for l in t1.splitlines() if l.startswith("| Raw Pixels"))
    assert "7.20%" in raw_row and "12.00%" in raw_row
    assert "ksparse (k=70)" in t1  # a k-sweep point the paper's table lacks
    # NORB is not in this run: its tables exist with "—" and a footnote
    t2 = md.split("**Table 2 (002).**")[1].split("\n\n")[1]
    assert "— (a)" in t2


def test_missing_files_give_dashes_not_nan(workspace):
    (workspace / "metrics" / "mnist5k" / "l1prox.json").unlink()
    (workspace / "models" / "mnist5k" / "l1prox" / "stages.pt").unlink()
    params = _params()
    params["models"] = [m for m in MODELS if m != "dropout"]
    rep = _build(workspace, params)
    assert not re.search(r"\bnan\b", rep.markdown, re.IGNORECASE)
    assert _status(rep, "000-re-ae") == {C.UNMEASURED}           # l1prox RE is missing
    assert "l1prox.json is missing" in rep.markdown
    assert "dropout is not in this run's `models`" in rep.markdown
    assert "Not available on mnist5k" in rep.markdown            # no stage snapshots for Fig. 1c


def test_numbers_change_with_the_metrics(workspace):
    params = _params()
    results = T.RunResults(workspace / "metrics", workspace / "models", datasets=params["train_datasets"],
                           models=params["models"])
    claims = [c for c in C.load_claims(CLAIMS) if c["id"] == "000-gini-l1sae"]
    assert [v.status for v in C.evaluate(claims, results, predictions_dir=workspace)] == [C.FAILS]
    path = workspace / "metrics" / "mnist5k" / "l1prox.json"
    m = json.loads(path.read_text())
    m["gini"]["mean"] = 0.95                                      # now l1prox has the highest Gini
    path.write_text(json.dumps(m))
    rep = _build(workspace)
    assert _status(rep, "000-gini-l1sae") == {C.HOLDS}
    assert "l1prox 0.95 > kl 0.9" in rep.markdown and "0.95 ± 0.02" in rep.markdown


def test_ordering_lines_report_disagreement():
    b = R._Builder.__new__(R._Builder)
    lines = R._Builder.ordering_lines(b, [("A", 1.0, 3.0), ("B", 2.0, 1.0), ("C", 3.0, 2.0)], "lower")
    assert "disagree on the winner" in lines[0] and "A vs B" in lines[0]
    lines = R._Builder.ordering_lines(b, [("A", 1.0, 1.0), ("B", 2.0, 2.0)], "lower")
    assert "same winner" in lines[0]


def test_claims_file_is_valid_and_cites_seeds():
    claims = C.load_claims(CLAIMS)
    seeds = {p.name for p in (REPO.parent / "shared" / "seeds").glob("*.txt")} or None
    for c in claims:
        assert c["paper"] in R.SEEDS and c["seed_file"] == R.SEEDS[c["paper"]][0]
        if seeds:
            assert c["seed_file"] in seeds
        for d in c["datasets_list"]:
            assert d in T.MEASURED_BY
    assert {c["paper"] for c in claims} == {"000", "001", "002", "003"}


def test_published_models_resolve():
    """Every model id of published.csv is a registry id, `none`, or `ksparse@k=K` (or empty)."""
    from sae.models.registry import MODEL_IDS
    for r in T.Published(PUBLISHED).rows:
        model, k = T.parse_ref(r["model"])
        assert r["model"] == "" or model in MODEL_IDS or model == "none", r
        assert r["metric"] in T.METRICS or r["metric"] in T.PUBLISHED_PAIRS or r["source"] == "Table I", r


def test_ksweep_config():
    """The k sweep resolves the ksparse config of the dataset with only k changed."""
    from sae import ksweep
    from sae.errors import ParamError
    from sae.params import model_config
    params = copy.deepcopy(PARAMS)
    params["ksweep"] = {"datasets": ["mnist5k"], "k": [10, 150]}
    assert ksweep.check_config(params) == {"datasets": ["mnist5k"], "k": [10, 150]}
    base = model_config(params, "mnist5k", "ksparse")
    low, high = ksweep.sweep_model_config(params, "mnist5k", 10), ksweep.sweep_model_config(params, "mnist5k", 150)
    assert low == {**base, "k": 10} and high["k"] == 150 and high["k_start"] == max(base["k_start"], 150)
    with pytest.raises(ParamError, match="exceeds"):
        ksweep.sweep_model_config(params, "mnist5k", base["hidden"] + 1)
    for bad, match in (({"datasets": ["norb"], "k": [10]}, "not in datasets"), ({"datasets": [], "k": [10, 10]}, "repeated"),
                       ({"datasets": [], "k": []}, "non-empty"), ({"datasets": [], "k": [10], "x": 1}, "unknown key")):
        with pytest.raises(ParamError, match=match):
            ksweep.check_config({**params, "ksweep": bad})


def test_ksweep_table_adds_the_ksparse_model_at_its_own_k(tmp_path):
    """reports/ksweep rows: one per sweep point that ran, plus `ksparse` itself unless a point has its k."""
    from sae import ksweep

    def fake(metrics_path, hparams_path, k, err):
        for p in (metrics_path, hparams_path):
            p.parent.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text(json.dumps({"logreg": {"test_error": err, "alpha": 2}, "recon_error": {"mean": 1.0},
                                            "hoyer": {"mean": 0.5}, "gini": {"mean": 0.7}}))
        hparams_path.write_text(json.dumps({"k": k}))

    for k, err in ((40, 0.03), (10, 0.05)):
        fake(tmp_path / f"ksweep/d/k{k}/metrics.json", tmp_path / f"ksweep/d/k{k}/hparams.json", k, err)
    fake(tmp_path / "metrics/d/ksparse.json", tmp_path / "models/d/ksparse/hparams.json", 25, 0.04)
    rows = ksweep.table_rows("d", [10, 40, 70], tmp_path / "ksweep", tmp_path / "metrics", tmp_path / "models")
    assert [(r["model"], r["k"]) for r in rows] == [("ksparse@k=10", 10), ("ksparse", 25), ("ksparse@k=40", 40)]
    assert [r["logreg_test_error"] for r in rows] == pytest.approx([5.0, 4.0, 3.0])  # percent
    assert [r["model"] for r in ksweep.table_rows("d", [10, 25, 40], tmp_path / "ksweep")] == \
        ["ksparse@k=10", "ksparse@k=40"]  # k=25 never ran; without metrics_dir no own row
    fake(tmp_path / "ksweep/d/k25/metrics.json", tmp_path / "ksweep/d/k25/hparams.json", 25, 0.04)
    rows = ksweep.table_rows("d", [10, 25, 40], tmp_path / "ksweep", tmp_path / "metrics", tmp_path / "models")
    assert [r["model"] for r in rows] == ["ksparse@k=10", "ksparse@k=25", "ksparse@k=40"]  # no duplicate at k=25


def test_sweep_claims_read_the_sweep_datasets(workspace):
    """003 claims are checked on sweep.datasets even where no model is trained (train_datasets)."""
    params = dict(_params(), train_datasets=[])
    rep = _build(workspace, params)
    assert _status(rep, "003-a") == {C.FAILS} and _status(rep, "003-b") == {C.HOLDS}
    assert _status(rep, "000-re-ae") == {C.UNMEASURED}  # no model trained anywhere
    assert "no MNIST (or stand-in) in this run's `train_datasets`" in rep.markdown
