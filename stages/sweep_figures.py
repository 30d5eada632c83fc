"""sweep_figures@D: 003 Figures 1-5 from sweeps/D/*.csv -> reports/figures/sweep_D*.png and the prediction checks."""
import logging
from pathlib import Path

from sae.cli import run_stage
from sae.errors import DataError, ParamError


def main(params, args):
    (dataset,) = args
    sweep = params.get("sweep") or {}
    if dataset not in (sweep.get("datasets") or []):
        raise ParamError(f"sweep.datasets={sweep.get('datasets')!r}: does not list {dataset!r}")
    models = sweep.get("models") or []
    paths = [Path("sweeps") / dataset / f"{m}.csv" for m in models]
    for p in paths:
        if not p.is_file():
            raise DataError(f"{p}: missing; run the sweep@{dataset}-{p.stem} stage first")
    from sae.report import sweep_figures as sf

    df = sf.read_tables(paths)
    out = Path("reports") / "figures"
    written = [sf.plot_sparsity(df, dataset, out / f"sweep_{dataset}.png"),
               sf.plot_recon(df, dataset, out / f"sweep_{dataset}_recon.png")]
    checks = sf.prediction_checks(df)
    checks_path = out / f"sweep_{dataset}_predictions.csv"
    checks.to_csv(checks_path, index=False, float_format="%.4g")
    log = logging.getLogger("sweep_figures")
    for _, r in checks.iterrows():
        log.info("%s (%s) %s %s unit_norm=%s: expected %s, observed %s (%.3f -> %.3f, rho %.2f)", r["prediction"],
                 r["paper_figure"], r["model"], r["activation"], r["unit_norm"], r["expected"], r["observed"],
                 r["af_first"], r["af_last"], r["spearman"])
    log.info("wrote %s", ", ".join(str(p) for p in [*written, checks_path]))


if __name__ == "__main__":
    run_stage(main)
