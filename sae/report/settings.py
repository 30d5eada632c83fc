"""The papers' published settings (settings.csv) and the deviations ledger (deviations.csv).

settings.csv: paper, dataset, model, key, value, source. `key` is a params path below the
paper's group (`train.mnist.hidden`, `model.ksparse.k`, `model.ksparse.datasets.norb.k`,
`finetune.settings.momentum`, `*` for any one name) or below `data.`, `seeds`, `classify.`,
`evaluate.`; dataset / model restrict it ("any": every one). `effective` turns a key into
the values this protocol actually runs with (sae.config.protocol resolves every layer), so
a paper value overridden further up (002's ksparse lr) is seen.

deviations.csv: paper, item, paper_value, ours, why. `item` is such a params path, or a
named item ("citation", "eq. 11-12 gradient", "Table 4 ...") for what params do not hold.
`problems(params, ...)` lists every published setting a paper-scale Params does not run
with and no ledger row explains, and every ledger item that names nothing.
"""
from __future__ import annotations

import csv
import fnmatch
import math
from dataclasses import dataclass
from pathlib import Path

from sae.base import catalog as C
from sae.config.protocol import layers
from sae.base.errors import DataError, ParamError

SETTINGS_COLUMNS = ("paper", "dataset", "model", "key", "value", "source")
LEDGER_COLUMNS = ("paper", "item", "paper_value", "ours", "why")
TOP_LEVEL = ("data", "seeds", "classify", "evaluate", "statistics")
NAMED_KINDS = ("citation", "eq.", "sec.", "Table", "Fig.", "Alg.")  # how a named ledger item starts
ANY = "any"


def read_rows(path, columns) -> list[dict]:
    """The rows of a data table, its columns checked (DataError naming the file)."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            lacking = [c for c in columns if c not in (reader.fieldnames or [])]
            rows = [dict(r) for r in reader]
    except OSError as exc:
        raise DataError(f"{path}: unreadable ({exc.strerror})") from None
    if lacking:
        raise DataError(f"{path}: missing columns {', '.join(lacking)}")
    for i, r in enumerate(rows, start=2):
        if r["paper"] not in C.PAPERS:
            raise DataError(f"{path}:{i}: unknown paper {r['paper']!r}; allowed: {', '.join(C.PAPERS)}")
        if any(v is None for v in r.values()):
            raise DataError(f"{path}:{i}: too few cells")
    return rows


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class Interval:
    """An open range a paper gives instead of one value (003: lr in (0.001, 0.005))."""
    lo: float
    hi: float

    def __str__(self) -> str:
        return f"({self.lo:g}, {self.hi:g})"


def parse_value(text: str):
    """A settings.csv value: a YAML scalar or list, or an open interval '(a, b)'."""
    import yaml
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        lo, hi = (float(x) for x in text[1:-1].split(","))
        return Interval(lo, hi)
    return yaml.safe_load(text)


def same(paper, ours) -> bool:
    """Does a resolved value equal the paper's? (one-element lists equal their element, numbers
    compare to 1e-9, lists of names compare as sets, an Interval holds an open range)."""
    if isinstance(paper, Interval):
        return isinstance(ours, (int, float)) and paper.lo < ours < paper.hi
    if isinstance(ours, (list, tuple)) and len(ours) == 1 and not isinstance(paper, (list, tuple)):
        ours = ours[0]
    if isinstance(paper, bool) or isinstance(ours, bool):
        return paper is ours
    if isinstance(paper, (int, float)) and isinstance(ours, (int, float)):
        return math.isclose(paper, ours, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(paper, list) and isinstance(ours, (list, tuple)):
        if all(isinstance(x, str) for x in paper):
            return sorted(paper) == sorted(ours)
        return len(paper) == len(ours) and all(same(a, b) for a, b in zip(paper, ours))
    return paper == ours


# ---------------------------------------------------------------- params paths


def _dump(params) -> dict:
    return params.model_dump()


def raw(params, paper: str, path: str) -> list[tuple[str, object]]:
    """(full path, value) of every params entry a (wildcard) path names, below the paper's group
    or, for a TOP_LEVEL group, from the top."""
    root = _dump(params)
    head = path.split(".")[0]
    found = [("", root)] if head in TOP_LEVEL else [(paper, root[paper])]
    for part in path.split("."):
        nxt = []
        for where, node in found:
            if isinstance(node, dict):
                for key in node:
                    if fnmatch.fnmatchcase(str(key), part):
                        nxt.append((f"{where}.{key}" if where else str(key), node[key]))
        found = nxt
    return found


def is_named(item: str) -> bool:
    return " " in item or item == "citation"


# ---------------------------------------------------------------- effective values


@dataclass(frozen=True)
class Target:
    """One value a settings key resolves to: for run dataset `dataset` (and model), set by `source`."""
    dataset: str | None
    model: str | None
    value: object
    source: str   # the params path of the layer that set it


def matches(dataset: str, wanted: str) -> bool:
    """Does run dataset `dataset` take the settings of `wanted` (a dataset, paper dataset, any, *)?"""
    return wanted in (ANY, "*") or wanted in layers(dataset)


def _layer_source(by_dataset: dict, fallback: str, dataset: str, key: str, path: str) -> str:
    """The path of the highest per-dataset layer setting `key`, else the fallback layer's."""
    out = fallback
    for d in layers(dataset):
        layer = by_dataset.get(d)
        if layer is not None and key in layer.model_fields_set and getattr(layer, key) is not None:
            out = f"{path}.{d}.{key}"
    return out


def _ae_runs(params, paper: str) -> list[tuple[str, str]]:
    """(dataset, model) of every training stage of an autoencoder paper (filters included), once each."""
    from sae.config import protocol as P
    return list(dict.fromkeys((d, m) for kind, p, d, m in P.stages(params)
                              if p == paper and kind in ("train", "filters")))


def _run_key(parts: list[str]) -> tuple[str, str] | None:
    """(dataset, model) patterns of a key naming one setting of a model's run: optim.K, train.D.K,
    model.M.K, model.M.datasets.D.K (None for any other path)."""
    if parts[0] == "optim" and len(parts) == 2:
        return "*", "*"
    if parts[0] == "train" and len(parts) == 3:
        return parts[1], "*"
    if parts[0] == "model" and len(parts) == 3:
        return "*", parts[1]
    if parts[0] == "model" and len(parts) == 5 and parts[2] == "datasets":
        return parts[3], parts[1]
    return None


def effective(params, paper: str, key: str, dataset: str = ANY, model: str = ANY) -> list[Target]:
    """The values a settings key resolves to in `params` for every run dataset standing in for
    `dataset` and every model matching `model` (ParamError from a protocol that does not resolve)."""
    from sae.config import protocol as P
    from sae.config import schema as S
    parts = key.split(".")
    group, name = parts[0], parts[-1]
    p = params.protocol(paper)
    if group == "data" and len(parts) == 3:
        return [Target(d, None, value, f"data.{d}.{k}") for d in params.datasets
                if d in params.data and matches(d, parts[1]) and matches(d, dataset)
                for k, value in params.data[d].items() if fnmatch.fnmatchcase(k, name)]
    if paper in C.AUTOENCODER_PAPERS and _run_key(parts):
        key_ds, key_model = _run_key(parts)
        out = []
        for d, m in _ae_runs(params, paper):
            if not (matches(d, key_ds) and matches(d, dataset) and fnmatch.fnmatchcase(m, key_model)
                    and model in (ANY, m)):
                continue
            cfg = P.run_config(params, paper, d, m)
            loop = cfg.loop.model_dump()
            if name in loop or name in cfg.options:
                value = loop[name] if name in loop else cfg.options[name]
                out.append(Target(d, m, value, cfg.source.get(name, f"{paper}.model.{m}.{name}")))
        return out
    ft = getattr(p, "finetune", None)
    if ft and group == "finetune" and (parts[1:2], len(parts)) in ((["settings"], 3), (["datasets"], 4)):
        if name not in S.FinetuneSettings.model_fields or model not in (ANY, *ft.models):
            return []
        key_ds = parts[2] if parts[1] == "datasets" else "*"
        return [Target(d, None, getattr(P.finetune_settings(params, paper, d), name),
                       _layer_source(ft.datasets, f"{paper}.finetune.settings.{name}", d, name,
                                     f"{paper}.finetune.datasets"))
                for d in p.datasets if matches(d, key_ds) and matches(d, dataset)]
    if paper in C.SWEEP_PAPERS and (group, len(parts)) in (("protocol", 2), ("train", 3)):
        if name not in S.SweepSettings.model_fields:
            return []
        key_ds = parts[1] if group == "train" else "*"
        return [Target(d, None, getattr(P.sweep_settings(params, paper, d), name),
                       _layer_source(p.train, f"{paper}.protocol.{name}", d, name, f"{paper}.train"))
                for d in p.datasets if matches(d, key_ds) and matches(d, dataset)]
    return [Target(None, None, value, where) for where, value in raw(params, paper, key)]


def below(paper: str, source: str) -> str:
    """A full params path relative to the paper's group (top-level paths unchanged)."""
    return source.removeprefix(f"{paper}.")


# ---------------------------------------------------------------- the ledger


def ledger_rows(ledger: list[dict], paper: str, *paths: str) -> list[dict]:
    """Ledger rows of `paper` whose item names one of `paths` (items may use * wildcards)."""
    return [r for r in ledger if r["paper"] == paper
            and any(fnmatch.fnmatchcase(path, r["item"]) for path in paths)]


def explains(row: dict, value) -> bool:
    """Does a ledger row cover this value? Its `ours` must be the value, unless `ours` is prose."""
    try:
        ours = parse_value(row["ours"])
    except Exception:  # prose such as "100 (MNIST; 40 NORB)" is not a value
        return True
    return not isinstance(ours, (int, float, list)) or isinstance(ours, bool) or same(ours, value)


def item_problem(params, paper: str, item: str, published_sources=()) -> str | None:
    """Why a ledger item names nothing (None when it names a params entry or a known thing)."""
    if is_named(item):
        if item == "citation":
            return None if C.PAPERS[paper].confirmed else f"{paper}'s citation is confirmed: no ledger row needed"
        if not item.startswith(NAMED_KINDS):
            return f"named item {item!r} must start with one of: {', '.join(NAMED_KINDS)}"
        if item.startswith("Table") and not any(item.startswith(s + " ") for s in published_sources):
            return f"{item!r} names no table of published.csv for {paper}"
        return None
    return None if raw(params, paper, item) else f"{paper}.{item} (or {item}) is not in params"


def problems(params, settings: list[dict], ledger: list[dict], published_sources: dict | None = None) -> list[str]:
    """Every published setting `params` does not run with and no ledger row explains, every
    settings key that addresses nothing, every ledger item that names nothing."""
    out = []
    for r in settings:
        try:
            targets = effective(params, r["paper"], r["key"], r["dataset"], r["model"])
        except ParamError as exc:
            out.append(f"settings {r['paper']} {r['key']}: {exc}")
            continue
        if not targets:
            out.append(f"settings {r['paper']} {r['key']} ({r['dataset']}, {r['model']}): addresses no setting")
        want = parse_value(r["value"])
        for t in targets:
            rows = ledger_rows(ledger, r["paper"], r["key"], below(r["paper"], t.source))
            if not same(want, t.value) and not any(explains(row, t.value) for row in rows):
                out.append(f"settings {r['paper']} {r['key']} on {t.dataset or 'any'}/{t.model or 'any'}: paper "
                           f"{r['value']}, protocol {t.value!r} (set by {t.source}) and no deviations.csv row "
                           "with that value")
    for r in ledger:
        why = item_problem(params, r["paper"], r["item"], (published_sources or {}).get(r["paper"], ()))
        if why:
            out.append(f"deviations {r['paper']} {r['item']}: {why}")
    return out
