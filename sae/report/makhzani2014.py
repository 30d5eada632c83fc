"""makhzani2014 (002, k-sparse AE): Tables 1-4, the alpha chosen on validation, error against k,
Figs. 1-3 (filters per k), Fig. 4 (log-histograms of the hidden activities)."""
from __future__ import annotations

import csv

from sae.base import catalog as C
from sae.report import figures as F
from sae.report import published as PUB
from sae.report.render import Table, spread
from sae.report.results import Ref
from sae.report.section import Section

PAPER = "makhzani2014"
LOGREG = {"mnist": "Table 1", "norb": "Table 2"}       # sec. 4.4: logistic regression on fixed features
FINETUNE = {"mnist": "Table 3", "norb": "Table 4"}     # sec. 4.5-4.6: fine-tuning
FILTER_FIGURE = {"mnist": "Fig. 1", "norb": "Fig. 2", "cifar10_patches": "Fig. 3"}
# Fig. 4's legend: ReLU AE, dropout AE (50% hidden, 20% input), k-sparse k = 70 and k = 15
FIG4 = ((Ref("relu_ae"), "ReLU autoencoder"), (Ref("dropout_dae"), "dropout AE, 50% hidden and 20% input"),
        (Ref("ksparse", 70), "k-sparse, k=70"), (Ref("ksparse", 15), "k-sparse, k=15"))
N_FILTERS = 36          # filters per k panel (6 x 6)
KSWEEP_COLUMNS = ("dataset", "k", "logreg_test_error_mean", "logreg_test_error_std", "n", "recon_error_mean",
                  "hoyer_mean", "paper_logreg_test_error")


def build(s: Section) -> None:
    s.header("The k-sparse autoencoder is tied and linear and keeps the k largest hidden units (sec. 2.2); k is "
             "lowered from k_start over the first half of training (sec. 4.2.1) and alpha*k units are kept at "
             "encoding, alpha chosen on validation.")
    p = s.ctx.params.protocol(PAPER)
    filter_sets = [d for d in (p.filters.datasets if p.filters else []) if d not in s.datasets()]
    for d in s.datasets():
        tables_1_2(s, d)
    for d in s.datasets():
        tables_3_4(s, d)
    s.add("### Figs. 1-3: filters for several k", "")
    for d in [*s.datasets(), *filter_sets]:
        filters(s, d)
    for d in s.datasets():
        fig4(s, d)
    refs = {d: [r for m in s.r.models(PAPER) for r in s.variants(d, m)] for d in s.datasets()}
    refs.update({d: [r for m in p.filters.models for r in s.variants(d, m)] for d in filter_sets})
    s.closing(refs)


def ksparse_refs(s: Section, d: str) -> list[Ref]:
    """This run's k-sparse models on d, one per k, largest k first."""
    if s.r.not_in_run(PAPER, d, "ksparse"):
        return []
    return sorted(s.variants(d, "ksparse"), key=lambda r: -(r.k or 0))


def tables_1_2(s: Section, d: str) -> None:
    s.add(f"### Tables 1-2: logistic regression on the features, {d}", "")
    extra = [r for m in s.r.models(PAPER) for r in s.variants(d, m)]
    t = s.published_table("Tables 1-2", "Test error (%) of logistic regression on the fixed features (its L2 "
                          "strength, and alpha for k-sparse, chosen on validation): mean ± std over seeds.", d,
                          LOGREG, extra)
    t.after += s.verdict_lines({"002-t1-ksparse", "002-t2-ksparse", "002-t12-rbm", "002-t1-kbest", "002-t2-kbest"}, d)
    s.table(t)
    alpha_table(s, d)
    error_vs_k(s, d)


def alpha_table(s: Section, d: str) -> None:
    paper_ds = C.stands_in_for(d)
    numbers = PUB.select(s.ctx.published, PAPER, metric="alpha", dataset=paper_ds)
    t = Table(s.caption("alpha", "The alpha of alpha*k chosen on validation (sec. 2.2, 4.4): the paper's, and this "
                                 "run's mean ± std over seeds.", d), ["model (this run)", "paper", "this run"])
    for ref in ksparse_refs(s, d):
        n = next((x for x in numbers if x.ref.k == ref.k), None)
        v = s.r.chosen_alpha(PAPER, d, ref)
        given = ", ".join(str(x.ref) for x in numbers) or "MNIST and NORB"
        t.add(s.model_label(d, ref), n.text if n else t.missing(f"the paper gives alpha only for {given}"),
              spread(v.mean, v.std, v.n) if v.ok else t.missing(v.note))
    if t.rows:
        s.table(t)


def error_vs_k(s: Section, d: str) -> None:
    """The logistic-regression error against k (figure, and reports/sweeps/<paper>_ksweep_<d>.csv)."""
    paper_ds = C.stands_in_for(d)
    paper_points = {n.ref.k: n.value for n in PUB.select(s.ctx.published, PAPER, LOGREG.get(paper_ds), paper_ds,
                                                          "logreg_test_error") if n.ref and n.ref.k is not None}
    points = []
    for ref in sorted(ksparse_refs(s, d), key=lambda r: r.k or 0):
        v = s.r.value(PAPER, d, ref, "logreg_test_error")
        if v.ok:
            other = {m: s.r.value(PAPER, d, ref, m) for m in ("recon_error", "hoyer")}
            points.append({"dataset": d, "k": ref.k, "logreg_test_error_mean": v.mean,
                           "logreg_test_error_std": v.std, "n": v.n,
                           **{f"{m}_mean": o.mean if o.ok else None for m, o in other.items()},
                           "paper_logreg_test_error": paper_points.get(ref.k)})
    if not points:
        return
    path = s.ctx.tables_dir / f"{PAPER}_ksweep_{d}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=KSWEEP_COLUMNS)
        w.writeheader()
        w.writerows({k: "" if v is None else f"{v:.6g}" if isinstance(v, float) else v for k, v in p.items()}
                    for p in points)
    s.ctx.tables.append(path)
    if len(points) < 2:
        return
    paper = sorted(paper_points.items())
    out = F.error_vs_k_figure(([p["k"] for p in points], [p["logreg_test_error_mean"] for p in points],
                               [p["logreg_test_error_std"] for p in points]),
                              ([k for k, _ in paper], [e for _, e in paper]) if paper else None,
                              f"{PAPER}: logistic-regression error against k, {d}", s.figure("error_vs_k", d),
                              run_label=d, paper_label=C.PAPER_DATASETS.get(paper_ds, paper_ds), ylabel="test error (%)")
    s.add(f"Logistic-regression test error against k on {d} (this run's mean ± std over seeds; the paper's points "
          f"dashed where it has them). The table is `{path.name}` under the report's sweeps folder.", "")
    s.doc.image(out, f"{PAPER} error against k on {d}")


def tables_3_4(s: Section, d: str) -> None:
    s.add(f"### Tables 3-4: fine-tuning, {d}", "")
    t = s.published_table("Tables 3-4", "Test error (%) after supervised fine-tuning: shallow (encoder + softmax), "
                          "deep (a second layer pre-trained on the codes, then layer-wise fine-tuning) or the same "
                          "network from random weights: mean ± std over seeds.", d, FINETUNE)
    t.after += s.verdict_lines({"002-t34-shallow", "002-t34-deep"}, d)
    s.table(t)


def filters(s: Section, d: str) -> None:
    """Figs. 1-3: the encoder rows of the first seed of each k."""
    w, hp = s.r.encoder_weights(PAPER, d, "ksparse")
    shape = s.r.image_shape(d)
    fig = FILTER_FIGURE.get(C.stands_in_for(d), "Figs. 1-3")
    if w is None or shape is None:
        s.add(f"{fig} on {d}: not available ({hp if w is None else 'no image shape in its meta.json'}).", "")
        return
    n_seeds = len(hp["seeds"])
    refs = s.variants(d, "ksparse")
    # a model without a k sweep has one variant, named without k: its k is the configuration's
    ks = [ref.k if ref.k is not None else s.r.config_k(PAPER, d, "ksparse") for ref in refs]
    panels = sorted(((k or 0, f"k={k}, {w.shape[1]} hidden", w[v * n_seeds][:N_FILTERS])
                     for v, k in enumerate(ks)), key=lambda p: -p[0])
    out = F.filters_figure([(title, ws) for _, title, ws in panels], shape, f"{PAPER} {fig}: k-sparse filters "
                           f"(encoder rows), {d}", s.figure("filters", d),
                           caption=f"the first {min(N_FILTERS, w.shape[1])} hidden units of the first seed of each k; "
                                   "each filter "
                                   "min-max scaled on its own (black = most negative, white = most positive)")
    expect = ("localised Gabor filters (k = 50, 1000 hidden units)" if C.stands_in_for(d) == "cifar10_patches"
              else "local features at large k that grow more global as k falls, too global at very small k")
    s.add(f"{fig} ({PAPER} sec. 4.3 shows {expect}). " + s.dataset_sentence(d), "")
    s.doc.image(out, f"{PAPER} filters on {d}")


def fig4(s: Section, d: str) -> None:
    """Fig. 4: log-histograms of the test codes of the paper's four models (first seed)."""
    s.add(f"### Fig. 4: histogram of hidden activities, {d}", "")
    series, lacking, paper_k = [], [], False
    for ref, label in FIG4:
        hist, why = s.r.histogram(PAPER, d, ref)
        if hist is None:
            lacking.append(f"{ref}: {why}")
        else:
            series.append((f"{label} ({ref})", *hist))
            paper_k |= ref.name == "ksparse"
    if not paper_k:   # this run's own k values stand in for the paper's 70 and 15
        for ref in ksparse_refs(s, d):
            hist, _ = s.r.histogram(PAPER, d, ref)
            if hist is not None:
                series.append((f"k-sparse, k={ref.k} (this run's k)", *hist))
    if lacking:
        s.add("Missing from this figure: " + "; ".join(lacking) + ".", "")
    if series:
        out = F.histogram_figure(series, f"{PAPER} Fig. 4: hidden activities of the test set, {d}",
                                 s.figure("fig4", d), xlabel="hidden activity (code value; raw: the pixel value)")
        s.add("Log-histogram of the code values each model gives the test set (first seed); k-sparse codes are "
              "the alpha*k kept units, the rest exactly 0. " + s.dataset_sentence(d), "")
        s.doc.image(out, f"{PAPER} Fig. 4 on {d}")
    s.add(*s.verdict_lines({"002-fig4-sparser"}, d), "")
