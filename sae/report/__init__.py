"""The report (reports/report.md): one module per paper (its tables, figures and claims), shared
rendering (render, section, figures), this run's numbers (results), the data tables and their
readers (published.csv, settings.csv, deviations.csv, claims.csv) and the paper-scale comparison."""
