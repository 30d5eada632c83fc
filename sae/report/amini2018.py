"""amini2018 (000, L1SAE): Table I, Fig. 1a-b, Table II and Fig. 1c on every run dataset."""
from __future__ import annotations

import math

import numpy as np

from sae.base import catalog as C
from sae.report import figures as F
from sae.report import published as PUB
from sae.report.render import Table, fmt_value
from sae.report.results import Ref
from sae.report.section import Section, metric_panels

PAPER = "amini2018"
# sec. III, Fig. 1a-b: the compared models in the paper's names (NCAE is left out of Fig. 1)
FIG1 = (("AE", "ae"), ("KLDSAE", "kl"), ("AL1SAE", "studentt"), ("DenAE", "dae"), ("L1SAE", "l1prox"))
FIG1_METRICS = ("recon_error", "gini")
TABLE_I_SYMBOL = {"beta": "β", "rho": "ρ", "weight_decay": "λ1 (pre-training weight decay)",
                  "finetune_weight_decay": "λ2 (fine-tuning weight decay)", "level": "σ (DenAE noise)"}
TABLE_II = {"mnist": "Table II", "norb": "Table II", "svhn": "Table II"}
N_EVOLUTION = 12   # receptive fields followed over the alpha stages (Fig. 1c)


def build(s: Section) -> None:
    s.header("L1SAE solves the l1-penalised autoencoder by a penalty method: soft-thresholding (proximal step) "
             "of the codes, then a gradient step, as alpha shrinks over T stages (sec. II, Alg. 1).")
    table_i(s)
    for d in s.datasets():
        fig1ab(s, d)
    for d in s.datasets():
        table_ii(s, d)
    for d in s.datasets():
        fig1c(s, d)
    s.closing({d: [Ref(m) for m in s.r.models(PAPER)] for d in s.datasets()})


def _run_setting(s: Section, dataset: str, model: str, key: str):
    """What this run trained `model` with for a Table I column (None: why in the second item)."""
    if key == "finetune_weight_decay":
        from sae.config.protocol import finetune_settings
        ft = s.ctx.params.protocol(PAPER).finetune
        if ft is None or model not in ft.models:
            return None, f"{model} is not in this run's {PAPER}.finetune.models"
        return finetune_settings(s.ctx.params, PAPER, dataset).weight_decay, None
    hp, why = s.r.hparams(PAPER, dataset, model)
    if hp is None:
        return None, why
    return hp["options"].get(key), None if key in hp["options"] else f"{model} has no {key}"


def table_i(s: Section) -> None:
    s.add("### Table I: hyper-parameters", "")
    t = Table(f"**Table I ({PAPER}).** The paper's grid-searched hyper-parameters (published.csv) and the ones "
              f"this run trained with (each model's hparams.json; λ2 from the fine-tuning settings). Protocol: "
              f"`{PAPER}`, scale `{s.ctx.params.scale}`; datasets: {', '.join(s.datasets()) or 'none'}.",
              ["model", "hyper-parameter", "paper", "this run"])
    for n in PUB.select(s.ctx.published, PAPER, "Table I"):
        values, notes = {}, []
        for d in s.datasets():
            v, why = _run_setting(s, d, n.ref.name, n.metric)
            if why:
                notes.append(why)
            elif n.metric == "level" and isinstance(v, (int, float)):
                # our level is the noise VARIANCE; Table I gives sigma, its std: show like with like
                values[d] = f"{fmt_value(round(math.sqrt(v), 6))} (noise variance {fmt_value(v)})"
            else:
                values[d] = fmt_value(v)
        if values:
            run = next(iter(values.values())) if len(set(values.values())) == 1 else \
                ", ".join(f"{v} ({d})" for d, v in values.items())
        else:
            run = t.missing(notes[0] if notes else f"no dataset in this run's {PAPER}.datasets")
        t.add(f"{n.row} ({n.ref})", TABLE_I_SYMBOL.get(n.metric, n.metric), n.text, run)
    s.table(t)


def fig1ab(s: Section, d: str) -> None:
    s.add(f"### Fig. 1a-b: reconstruction error and Gini index on {d}", "")
    t = Table(s.caption("Fig. 1a-b", "Reconstruction error (mean squared error per input dimension) and Gini index "
                                     "of the test codes: mean ± std over seeds (n seeds); 'test-sample std' is the "
                                     "spread over the test samples (the mean over seeds of each seed's std), what "
                                     "the paper's error bars show.", d),
              ["model", "measure", "paper", "this run"])
    values = {(m, metric): s.r.value(PAPER, d, m, metric) for metric in FIG1_METRICS for _, m in FIG1}
    for metric in FIG1_METRICS:
        for name, m in FIG1:
            t.add(f"{name} ({m})", C.METRICS[metric].label,
                  t.missing("Fig. 1 draws bars without printed numbers; its orderings are the claims below"),
                  s.cell(t, values[(m, metric)], metric, sample=True))
    t.after = s.verdict_lines({"000-re-ae", "000-re-l1sae", "000-gini-l1sae"}, d)
    s.table(t)
    if not any(v.ok for v in values.values()):
        return
    panels = metric_panels(values, FIG1, FIG1_METRICS, sample=True)
    path = F.bar_panels(panels, f"{PAPER} Fig. 1a-b on {d}", s.figure("fig1ab", d),
                        caption="bars: mean over seeds; error bars: ±1 std over the test samples (as the paper); "
                                "dots: the seeds")
    s.doc.image(path, f"{PAPER} Fig. 1a-b on {d}")


def table_ii(s: Section, d: str) -> None:
    s.add(f"### Table II: accuracy after deep fine-tuning on {d}", "")
    arch = next((part.get("arch") for m in s.r.models(PAPER)
                 for part in [s.r.finetune_json(PAPER, d, m, "deep")[0] or {}] if part.get("arch")), None)
    t = s.published_table("Table II", "Test accuracy (%) of the network pre-trained layer-wise by each model, then "
                          "fine-tuned: the paper's mean ± std over its runs, this run's mean ± std over seeds"
                          + (f" (this run's network: {arch})." if arch else "."), d, TABLE_II)
    t.after += s.verdict_lines({"000-t2-l1sae"}, d)
    s.table(t)


def fig1c(s: Section, d: str) -> None:
    """000 Fig. 1c: the encoder rows of the first seed at the end of each alpha stage."""
    s.add(f"### Fig. 1c: L1SAE receptive fields after each alpha stage on {d}", "")
    snaps, why = s.r.snapshots(PAPER, d, "l1prox")
    shape = s.r.image_shape(d)
    if snaps is not None and len(snaps) < 2:
        why = f"{len(snaps)} alpha stage snapshot(s) in stages.pt: nothing to follow"
    if why or shape is None:
        s.add(f"Not available on {d}: {why or 'no image shape in its meta.json'}.", "")
    else:
        first, last = snaps[0]["W"][0].float().numpy(), snaps[-1]["W"][0].float().numpy()
        change = np.linalg.norm(last - first, axis=1) / np.maximum(np.linalg.norm(first, axis=1), 1e-12)
        units = np.sort(np.argsort(-change, kind="stable")[:min(N_EVOLUTION, len(change))])
        stages = [(f"alpha={float(x['alpha']):.3g}\n(epoch {int(x['epoch']) + 1})", x["W"][0].float().numpy()[units])
                  for x in snaps]
        path = F.evolution_figure(stages, shape, f"{PAPER} Fig. 1c: L1SAE receptive fields after each alpha stage, "
                                  f"{d}", s.figure("fig1c", d), caption="first seed; each filter min-max scaled on "
                                  "its own (white = most positive weight)")
        s.add(f"Rows: the encoder weights of the same {len(units)} hidden units of the first seed (those whose "
              f"weights change most from the first to the last stage) at the end of each alpha stage. "
              + s.dataset_sentence(d), "")
        s.doc.image(path, f"{PAPER} Fig. 1c on {d}")
    s.add(threshold_share(s, d), "")
    s.add(*s.verdict_lines({"000-fig1c-alpha", "000-fig1c-control"}, d), "")


def threshold_share(s: Section, d: str, rows: int = 2000) -> str:
    """How much of the last sub-problem is l1: the share of validation codes above the final soft
    threshold alpha*beta/N (000 eq. 8). Below it, Y = 0 and the coupling term is a quadratic pull to 0."""
    import torch

    from sae.data import prepared
    from sae.base.errors import DataError
    from sae.models import store
    try:
        model, hp = store.load(s.r.model_dir(PAPER, d, "l1prox"))
        x = prepared.read(s.r.prepared_dir / d, hp["loop"]["input"])["x_val"][:rows]
    except (DataError, OSError, KeyError) as exc:
        return f"The share of codes above the final threshold is not available on {d}: {exc}."
    thr = model.alpha * model.beta / hp["loop"]["batch"]
    with torch.no_grad():
        share = (model.encode(torch.as_tensor(x)) > thr).float().mean(dim=(1, 2)).tolist()
    mean = sum(share) / len(share)
    return (f"At the end of training the soft threshold is alpha*beta/N = {thr:.3g} (alpha = {model.alpha:.3g}, "
            f"N = the batch of {hp['loop']['batch']}): {mean:.1%} of the validation codes lie above it "
            f"(per seed {', '.join(f'{v:.1%}' for v in share)}), where the coupling term acts as the l1 penalty; "
            f"the other codes are pulled to zero by a quadratic.")
