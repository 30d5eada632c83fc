"""report: REPORTS_DIR/report.md with its figures/*.png, the claim verdicts (claims.csv, their
counts per paper in claims.json: a DVC metric) and derived tables (sweeps/*.csv: DVC plots)."""
import logging

from sae.base.cli import expect_args, run_stage


def main(params, args):
    conf, prepared, models, metrics, sweeps, timings, reports = expect_args(
        args, "CONF_DIR DATA_DIR MODELS_DIR METRICS_DIR SWEEPS_DIR TIMINGS_DIR REPORTS_DIR")
    from sae.report.claims import counts
    from sae.report.report import build_report

    rep = build_report(params, conf_dir=conf, prepared_dir=prepared, models_dir=models, metrics_dir=metrics,
                       sweeps_dir=sweeps, timings_dir=timings, reports_dir=reports)
    log = logging.getLogger("report")
    for paper in dict.fromkeys(v.claim.paper for v in rep.verdicts):
        tally = counts(rep.verdicts, paper)
        log.info("%s: %s", paper, ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in tally.items()))
    log.info("wrote %s/report.md (%d figures, %d tables)", reports, len(rep.images), len(rep.tables))


if __name__ == "__main__":
    run_stage(main, warm=True)  # torch stage: a fork of the warm server (sae.base.warm)
