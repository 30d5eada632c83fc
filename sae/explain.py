"""python -m sae.config explain PAPER DATASET MODEL: every resolved setting of one model stage, where it
was set, and what the paper says of it.

For each loop setting and model option of `train-PAPER@DATASET-MODEL` it prints:
- the value the stage runs with (sae.config.protocol.run_config on params.yaml);
- the params layer that set it (`makhzani2014.model.ksparse.datasets.mnist.epochs`);
- the file behind that layer: conf/PAPER.yaml (the paper protocol), conf/scale/SCALE.yaml (a
  reduction of this scale), or params.yaml itself (a `dvc exp run -S` override or a hand edit),
  found by composing conf/ again;
- the paper's value with its source (sae/report/settings.csv), or the ledger's reason
  (sae/report/deviations.csv) where the paper publishes none.
"""
from __future__ import annotations

import fnmatch
import sys
from pathlib import Path

USAGE = ("usage: python -m sae.config explain PAPER DATASET MODEL   "
         "(e.g. python -m sae.config explain makhzani2014 mnist ksparse)")
DATA = Path(__file__).resolve().parent / "report"


def _at(tree: dict, path: str):
    """The value at dotted `path` of a nested dict (KeyError when absent)."""
    node = tree
    for part in path.split("."):
        node = node[part]
    return node


def _file_of(path: str, paper: str, params_raw: dict, scale_raw: dict, paper_raw: dict, scale: str) -> str:
    """Which file set the params entry at `path`: params.yaml (an override), the scale file or the
    paper's protocol (a key the scale leaves alone)."""
    def get(tree):
        try:
            return _at(tree, path)
        except (KeyError, TypeError):
            return None
    if get(params_raw) != get(scale_raw):
        return "params.yaml (an override: dvc exp run -S, or an edit)"
    if scale != "paper" and get(scale_raw) != get(paper_raw):
        return f"conf/scale/{scale}.yaml"
    return f"conf/{paper}.yaml" if path.startswith(f"{paper}.") else "conf/config.yaml"


def _paper_says(paper: str, dataset: str, model: str, name: str, source: str, settings, ledger) -> str:
    """The paper's value of option `name` (settings.csv) or the ledger's word on it."""
    from sae.report import settings as S
    for r in settings:
        parts = r["key"].split(".")
        run = S._run_key(parts)  # only the keys of a model's run: optim.K, train.D.K, model.M(.datasets.D).K
        if r["paper"] != paper or parts[-1] != name or run is None:
            continue
        key_ds, key_model = run
        if S.matches(dataset, key_ds) and S.matches(dataset, r["dataset"]) and r["model"] in (S.ANY, model) \
                and fnmatch.fnmatchcase(model, key_model):
            return f"paper: {r['value']} ({r['source']})"
    path = S.below(paper, source)
    for r in S.ledger_rows(ledger, paper, path, f"model.{model}.{name}", f"model.*.{name}"):
        return f"paper: {r['paper_value']}; ledger: {r['why']}"
    return "paper: (no settings.csv or ledger row)"


def explain(paper: str, dataset: str, model: str, root: Path) -> list[tuple[str, str, str, str, str]]:
    """(setting, value, params layer, file, the paper's word) for every loop setting and option."""
    import yaml

    from sae.config import load
    from sae.config.__main__ import compose
    from sae.config.protocol import run_config
    from sae.report import settings as S
    params = load(root / "params.yaml")
    cfg = run_config(params, paper, dataset, model)
    params_raw = yaml.safe_load((root / "params.yaml").read_text())
    scale_raw = yaml.safe_load(compose(root / "conf", [f"scale={params.scale}"]))
    paper_raw = scale_raw if params.scale == "paper" else yaml.safe_load(compose(root / "conf", ["scale=paper"]))
    settings = S.read_rows(DATA / "settings.csv", S.SETTINGS_COLUMNS)
    ledger = S.read_rows(DATA / "deviations.csv", S.LEDGER_COLUMNS)
    rows = []
    values = {**cfg.loop.model_dump(), **cfg.options}
    for name, value in values.items():
        source = cfg.source.get(name)
        where = source or "(the model's default: sae/config/schema.py)"
        file = _file_of(source, paper, params_raw, scale_raw, paper_raw, params.scale) if source else "sae/config/schema.py"
        rows.append((name, repr(value) if isinstance(value, str) else str(value), where, file,
                     _paper_says(paper, dataset, model, name, source or f"{paper}.model.{model}.{name}", settings,
                                 ledger)))
    return rows


def main(argv: list[str]) -> None:
    from sae.config.__main__ import repository_root
    from sae.base.errors import SaeError
    if any(a in ("-h", "--help") for a in argv) or len(argv) != 3:
        print(USAGE)
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    try:
        rows = explain(*argv, repository_root(Path.cwd()))
    except SaeError as exc:
        sys.exit(f"error: {exc}")
    paper, dataset, model = argv
    print(f"train-{paper}@{dataset}-{model}: every setting, the layer and file that set it, and the paper's word")
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print(f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  [{r[3]}]  {r[4]}")


if __name__ == "__main__":
    main(sys.argv[1:])
