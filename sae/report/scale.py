"""This run against the paper-scale protocol: compose conf/ with scale=paper (Hydra, as DVC
does) and list every resolved setting of this run's stages that differs from it.

`reductions(run, paper_scale, paper)` compares, for one paper: the lists (seeds, datasets,
models, fine-tuning and grid lists), then per stage of this run the settings it resolves
(sae.config.protocol) against those the paper-scale protocol resolves for the paper dataset
the run dataset stands in for, and the prepare settings of that dataset.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sae.base import catalog as C
from sae.base.errors import DataError, ParamError
from sae.report.render import fmt_value


def compose_raw(conf_dir, overrides=("scale=paper",)) -> dict:
    """conf_dir/config.yaml composed with `overrides` and resolved, as a plain dict (DataError
    naming what failed)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf
    conf_dir = Path(conf_dir).resolve()
    if not (conf_dir / "config.yaml").is_file():
        raise DataError(f"{conf_dir}/config.yaml: missing (the Hydra sources of params.yaml)")
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base=None):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
        OmegaConf.resolve(cfg)
        return OmegaConf.to_container(cfg)
    except Exception as exc:  # hydra raises many types for a bad file or override
        raise DataError(f"{conf_dir}: cannot compose {' '.join(overrides)} ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160]})") from None


def compose(conf_dir, overrides=("scale=paper",)):
    """The validated Params of the composition (ParamError when it breaks the schema)."""
    from sae.config import validate
    return validate(compose_raw(conf_dir, overrides))


@dataclass(frozen=True)
class Reduction:
    """One setting of this run that differs from the paper-scale protocol."""
    setting: str
    stage: str
    paper: str | None      # the paper-scale value (None: see note)
    this_run: str
    note: str | None = None


def _list_rows(key: str, ours, theirs) -> list[Reduction]:
    return [] if list(ours) == list(theirs) else [Reduction(key, "every stage", fmt_value(list(theirs)),
                                                            fmt_value(list(ours)))]


def _diff(a: dict, b: dict) -> list[tuple[str, object, object]]:
    """(key, paper-scale value, this run's value) of the keys where two settings dicts differ."""
    return [(k, b.get(k), a.get(k)) for k in dict.fromkeys([*b, *a]) if a.get(k) != b.get(k)]


def _grouped(found: dict, kind: str, dataset: str, all_models: list[str]) -> list[Reduction]:
    """found: (key, paper value, run value), values as shown -> models; one row per difference."""
    out = []
    for (key, theirs, ours), models in found.items():
        who = "every model" if models == all_models else ", ".join(models)
        out.append(Reduction(key, f"{kind} on {dataset}: {who}", theirs, ours))
    return out


def _no_counterpart(paper: str, dataset: str, kind: str, settings: dict, why: str) -> Reduction:
    shown = ", ".join(f"{k} {fmt_value(v)}" for k, v in settings.items())
    return Reduction("every setting", f"{kind} on {dataset}", None, shown or "—",
                     f"the paper-scale {paper} protocol resolves no settings for "
                     f"{C.PAPER_DATASETS[C.stands_in_for(dataset)]} ({why})")


def _model_stages(run, full, paper: str, kind: str, dataset: str, models: list[str]) -> list[Reduction]:
    from sae.config import protocol as P
    found: dict = {}
    common: dict | None = None
    why = None
    for m in models:
        cfg = P.run_config(run, paper, dataset, m)
        ours = {**cfg.loop.model_dump(), **cfg.options}
        common = dict(cfg.loop.model_dump()) if common is None else \
            {k: v for k, v in common.items() if cfg.loop.model_dump().get(k) == v}
        try:
            ref = P.run_config(full, paper, C.stands_in_for(dataset), m)
        except ParamError as exc:
            why = str(exc)
            continue
        for key, theirs, mine in _diff(ours, {**ref.loop.model_dump(), **ref.options}):
            found.setdefault((key, fmt_value(theirs), fmt_value(mine)), []).append(m)  # list values: as text
    rows = _grouped(found, kind, dataset, models)
    if why is not None:
        rows.append(_no_counterpart(paper, dataset, kind, common or {}, why))
    return rows


def _settings_stage(run, full, paper: str, kind: str, dataset: str, resolve) -> list[Reduction]:
    """Fine-tuning or sweep settings (resolve: finetune_settings / sweep_settings), this run's
    against the paper scale's for the paper dataset."""
    ours = resolve(run, paper, dataset)
    try:
        theirs = resolve(full, paper, C.stands_in_for(dataset))
    except ParamError as exc:
        return [_no_counterpart(paper, dataset, kind, ours.model_dump(), str(exc))]
    return [Reduction(k, f"{kind} on {dataset}", fmt_value(t), fmt_value(o))
            for k, t, o in _diff(ours.model_dump(), theirs.model_dump())]


def _data_rows(run, full, datasets) -> list[Reduction]:
    out = []
    for d in datasets:
        paper_ds = C.stands_in_for(d)
        if d != paper_ds:
            out.append(Reduction("dataset", f"prepare@{d}", paper_ds, d))
        theirs = full.data.get(paper_ds)
        if theirs is None:
            continue
        ours = run.data.get(d) or {}
        out += [Reduction(f"data.{k}", f"prepare@{d}", fmt_value(theirs[k]), fmt_value(ours[k]))
                for k in ours if k in theirs and ours[k] != theirs[k]]
    return out


def reductions(run, full, paper: str) -> list[Reduction]:
    """Every setting of this run's `paper` stages that differs from the paper-scale Params `full`."""
    from sae.config import protocol as P
    mine, theirs = run.protocol(paper), full.protocol(paper)
    rows = _list_rows("seeds", run.seeds, full.seeds)
    for group in ("classify", "evaluate"):  # the evaluate stages' settings (002's classifier, alpha grid)
        rows += [Reduction(f"{group}.{k}", "evaluate (every model)", fmt_value(t), fmt_value(o))
                 for k, t, o in _diff(getattr(run, group).model_dump(), getattr(full, group).model_dump())]
    rows += _list_rows(f"{paper}.datasets", mine.datasets, theirs.datasets)
    rows += _list_rows(f"{paper}.models", mine.models, theirs.models)

    if paper in C.SWEEP_PAPERS:
        for key in ("coefficients", "activations", "unit_norm"):
            rows += _list_rows(f"{paper}.grid.{key}", getattr(mine.grid, key), getattr(theirs.grid, key))
        for d in mine.datasets:
            rows += _settings_stage(run, full, paper, "sweep", d, P.sweep_settings)
        return rows + _data_rows(run, full, mine.datasets)
    if mine.finetune and theirs.finetune:
        for key in ("models", "kinds", "deep_models", "without_pretraining"):
            rows += _list_rows(f"{paper}.finetune.{key}", getattr(mine.finetune, key), getattr(theirs.finetune, key))
    if mine.filters and theirs.filters:
        rows += _list_rows(f"{paper}.filters.datasets", mine.filters.datasets, theirs.filters.datasets)
    for d in mine.datasets:
        rows += _model_stages(run, full, paper, "train", d, list(mine.models))
        if mine.finetune and mine.finetune.models:
            rows += _settings_stage(run, full, paper, "finetune", d, P.finetune_settings)
    for d in (mine.filters.datasets if mine.filters else []):
        rows += _model_stages(run, full, paper, "train (filters)", d, list(mine.filters.models))
    used = list(dict.fromkeys([*mine.datasets, *(mine.filters.datasets if mine.filters else [])]))
    return rows + _data_rows(run, full, used)
