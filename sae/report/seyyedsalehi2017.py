"""seyyedsalehi2017 (001, PSAE): Fig. 2a-d (RE, Hoyer, SSD, classification accuracy) on every run dataset."""
from __future__ import annotations

from sae.base import catalog as C
from sae.report import figures as F
from sae.report.render import Table
from sae.report.results import Ref
from sae.report.section import Section, metric_panels

PAPER = "seyyedsalehi2017"
# Fig. 2: the compared models in the paper's names
FIG2 = (("RAE", "ae"), ("SAE+L1", "l1"), ("SAE+Ber", "kl"), ("PSAE", "sl0sq"))
FIG2_METRICS = ("recon_error", "hoyer", "ssd", "logreg_accuracy")   # Fig. 2a-d: eqs. 13, 14, 15, softmax


def build(s: Section) -> None:
    s.header("PSAE penalises the square of a smoothed L0 norm of each code (eqs. 7, 9), lowering sigma over a "
             "sequence (graduated non-convexity, sec. IV-B); every input is standardised, then mapped into (0, 1).")
    for d in s.datasets():
        fig2(s, d)
    s.closing({d: [Ref(m) for m in s.r.models(PAPER)] for d in s.datasets()})


def fig2(s: Section, d: str) -> None:
    s.add(f"### Fig. 2a-d: reconstruction error, Hoyer sparseness, SSD and accuracy on {d}", "")
    t = Table(s.caption("Fig. 2a-d", "RE (eq. 13, per input dimension), Hoyer sparseness of the codes (eq. 14), "
                                     "SSD (eq. 15: the spread of the sparseness over the test samples) and the test "
                                     "accuracy of a softmax classifier on the codes: mean ± std over seeds (n seeds).",
                        d), ["model", "measure", "input", "paper", "this run"])
    values = {(m, metric): s.r.value(PAPER, d, m, metric) for metric in FIG2_METRICS for _, m in FIG2}
    for metric in FIG2_METRICS:
        for name, m in FIG2:
            view = s.r.input_view(PAPER, d, Ref(m)) or t.missing(values[(m, metric)].note or "no metrics file")
            t.add(f"{name} ({m})", C.METRICS[metric].label, view,
                  t.missing("Fig. 2 draws bars without printed numbers; its orderings are the claims below"),
                  s.cell(t, values[(m, metric)], metric))
    t.after = s.verdict_lines({c.claim.id for c in s.ctx.verdicts if c.claim.paper == PAPER}, d)
    s.table(t)
    if not any(v.ok for v in values.values()):
        return
    panels = metric_panels(values, FIG2, FIG2_METRICS, zoom=("logreg_accuracy",))
    path = F.bar_panels(panels, f"{PAPER} Fig. 2a-d on {d}", s.figure("fig2", d),
                        caption="bars: mean over seeds; error bars: ±1 std over seeds; dots: the seeds")
    s.doc.image(path, f"{PAPER} Fig. 2a-d on {d}")
