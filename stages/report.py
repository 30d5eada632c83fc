"""report: reports/report.md + reports/report_figures/*.png, the claim verdicts
(reports/claims.csv, counts in reports/claims.json) and the k-sweep tables (reports/ksweep/*.csv)."""
import csv
import json
import logging
from pathlib import Path

from sae.cli import run_stage

REPORTS = Path("reports")


def main(params, args):
    from sae.report import report as R
    import pandas as pd

    from sae import ksweep

    ks = params.get("ksweep") or {"datasets": [], "k": []}
    rep = R.build_report(metrics_dir="metrics", models_dir="models", prepared_dir="data/prepared",
                         sweep_figures_dir=REPORTS / "figures", ksweep_dir="ksweep", params=params,
                         published="sae/report/published.csv", claims="sae/report/claims.csv",
                         out_md=REPORTS / "report.md", fig_dir=REPORTS / "report_figures")

    with open(REPORTS / "claims.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "paper", "section", "dataset", "status", "evidence", "statement"])
        for v in rep.verdicts:
            w.writerow([v.claim["id"], v.claim["paper"], v.claim["section"], v.dataset or "", v.status, v.evidence,
                        v.claim["statement"]])
    counts = {}
    for v in rep.verdicts:
        c = counts.setdefault(v.claim["paper"], {"holds": 0, "does_not_hold": 0, "not_measured": 0})
        c[v.status.replace(" ", "_")] += 1
    (REPORTS / "claims.json").write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")

    # k-sweep tables: one CSV per dataset (a DVC plot of test error against k)
    table_dir = REPORTS / "ksweep"
    table_dir.mkdir(parents=True, exist_ok=True)
    for old in table_dir.glob("*.csv"):
        old.unlink()
    for d in ks.get("datasets") or []:
        own = ("metrics", "models") if "ksparse" in params["models"] else (None, None)
        rows = ksweep.table_rows(d, ks.get("k") or [], Path("ksweep"), *own)
        pd.DataFrame(rows, columns=list(ksweep.TABLE_COLUMNS)).to_csv(table_dir / f"ksweep_{d}.csv", index=False,
                                                                     float_format="%.6g")

    log = logging.getLogger("report")
    for paper in sorted(counts):
        c = counts[paper]
        log.info("%s: %d hold, %d do not hold, %d not measured", paper, c["holds"], c["does_not_hold"],
                 c["not_measured"])
    log.info("wrote %s (%d figures)", REPORTS / "report.md", len(rep.images))


if __name__ == "__main__":
    run_stage(main)
