"""Protocol resolution: the settings one stage runs with, merged from the layers of a paper.

A model's settings on a run dataset D (standing in for the paper dataset P_D) resolve as

    <paper>.optim < <paper>.train.<P_D> < <paper>.train.<D>
        < <paper>.model.<name> < <paper>.model.<name>.datasets.<P_D> < ... .datasets.<D>

so a protocol writes the paper's values once per paper dataset, and a stand-in (mnist5k for
MNIST) or a scale (conf/scale/embedded.yaml) overrides only what it changes. Every value
remembers the layer that set it, so an error names the key a user wrote.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ValidationError

from sae.base import catalog as C
from sae.config import schema as S
from sae.base.errors import ParamError


def _set(layer) -> dict:
    """The keys a layer (pydantic model or dict) actually sets."""
    if isinstance(layer, BaseModel):
        return {k: getattr(layer, k) for k in layer.model_fields_set if getattr(layer, k) is not None}
    return {k: v for k, v in layer.items() if v is not None}


@dataclass
class Merged:
    """Values merged from protocol layers, each with the dotted path of the layer that set it."""
    values: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)

    def add(self, path: str, layer) -> None:
        for k, v in _set(layer).items():
            self.values[k] = v
            self.source[k] = f"{path}.{k}"

    def validate(self, cls: type[BaseModel], keys, where: str):
        """cls built from the merged values of `keys`; an error names the layer that set the key
        (or `where`.key for a key no layer sets)."""
        from sae.config import describe_error
        data = {k: self.values[k] for k in keys if k in self.values}
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = [str(x) for x in err["loc"]]
            head = self.source.get(loc[0], f"{where}.{loc[0]}") if loc else where
            raise ParamError(describe_error(err, ".".join([head, *loc[1:]]))) from None

    def path(self, key: str, default: str) -> str:
        return self.source.get(key, default)


@dataclass(frozen=True)
class RunConfig:
    """Everything train/evaluate/finetune need about one (paper, dataset, model)."""
    paper: str
    dataset: str
    model: str            # the protocol's name for it (a `model` key)
    id: str               # its registry id
    loop: S.Loop
    options: dict         # build() keywords (OPTIONS[id] fields other than the loop's)
    source: dict          # option/loop key -> the params path that set it

    def hparams(self, seeds, in_dim: int) -> dict:
        """hparams.json: what the model directory was trained with."""
        return {"paper": self.paper, "dataset": self.dataset, "model": self.model, "id": self.id,
                "seeds": list(seeds), "in_dim": int(in_dim), "loop": self.loop.model_dump(exclude_none=True),
                "options": dict(self.options)}


def model_entry(protocol: S.AEProtocol, paper: str, name: str) -> tuple[str, dict, dict]:
    """(registry id, options, per-dataset options) of `<paper>.model.<name>`."""
    if name not in protocol.model:
        raise ParamError(f"{paper}.model.{name}: missing (named in {paper}.models)")
    entry = protocol.model[name]
    if entry is None:
        entry = {}
    if not isinstance(entry, dict):
        raise ParamError(f"{paper}.model.{name}={entry!r}: expected a mapping of options")
    model_id = entry.get("id", name)
    if model_id not in C.MODEL_IDS:
        from sae.config import unknown
        raise ParamError(unknown(f"{paper}.model.{name}.id" if "id" in entry else f"{paper}.model.{name}",
                                 model_id, C.MODEL_IDS, what="model id"))
    per_dataset = entry.get("datasets") or {}
    if not isinstance(per_dataset, dict):
        raise ParamError(f"{paper}.model.{name}.datasets={per_dataset!r}: expected a mapping dataset -> options")
    options = {k: v for k, v in entry.items() if k not in ("id", "datasets")}
    return model_id, options, per_dataset


def dataset_keys(paper: str, what: str, keys, allowed=None) -> None:
    """Keys of a per-dataset mapping must be paper datasets or dataset ids."""
    from sae.config import unknown
    allowed = allowed or (*C.PAPER_DATASETS, *C.DATASET_IDS)
    for k in keys:
        if k not in allowed:
            raise ParamError(unknown(f"{paper}.{what}.{k}", k, allowed, what="dataset", key=True))


def layers(dataset: str) -> list[str]:
    """The per-dataset layer keys of a run dataset, lowest first: the paper dataset it stands in
    for, then itself."""
    paper_ds = C.stands_in_for(dataset)
    return [paper_ds] + ([dataset] if dataset != paper_ds else [])


def _options_layer(model_id: str, options: dict, path: str):
    """A model layer checked on its own (types, ranges, unknown keys), so errors name it."""
    from sae.config import validate_group
    return validate_group(S.OPTIONS[model_id], options, path)


def run_config(params: S.Params, paper: str, dataset: str, name: str) -> RunConfig:
    """The resolved settings of model `name` of `paper` on run dataset `dataset` (ParamError if bad)."""
    protocol = params.protocol(paper)
    model_id, options, per_dataset = model_entry(protocol, paper, name)
    dataset_keys(paper, f"model.{name}.datasets", per_dataset)
    dataset_keys(paper, "train", protocol.train)
    merged = Merged()
    merged.add(f"{paper}.optim", protocol.optim)
    for key in layers(dataset):
        if key in protocol.train:
            merged.add(f"{paper}.train.{key}", protocol.train[key])
    merged.add(f"{paper}.model.{name}", _options_layer(model_id, options, f"{paper}.model.{name}"))
    for key in layers(dataset):
        if key in per_dataset:
            path = f"{paper}.model.{name}.datasets.{key}"
            merged.add(path, _options_layer(model_id, per_dataset[key] or {}, path))
    where = f"{paper}.train.{C.stands_in_for(dataset)}"
    loop = merged.validate(S.Loop, S.LOOP_KEYS, where)
    opts_cls = S.OPTIONS[model_id]
    option_keys = [k for k in opts_cls.model_fields if k not in S.LOOP_KEYS]
    opts = merged.validate(opts_cls, option_keys, f"{paper}.model.{name}")
    options = {k: getattr(opts, k) for k in option_keys}
    cfg = RunConfig(paper, dataset, name, model_id, loop, options, dict(merged.source))
    check_run(cfg)
    return cfg


def check_run(cfg: RunConfig) -> None:
    """Constraints that tie options to the code size."""
    o, hidden = cfg.options, cfg.loop.hidden
    at = lambda key: cfg.source.get(key, f"{cfg.paper}.model.{cfg.model}.{key}")  # noqa: E731
    if cfg.id == "ksparse":
        if o["k"] > hidden:
            raise ParamError(f"{at('k')}={o['k']}: exceeds hidden={hidden} ({at('hidden')}) on {cfg.dataset}")
        if o["k_start"] < o["k"]:
            raise ParamError(f"{at('k_start')}={o['k_start']}: is below k={o['k']} (the schedule only lowers k)")
        for k in o["k_sweep"]:
            if k > hidden:
                raise ParamError(f"{at('k_sweep')}: k={k} exceeds hidden={hidden} on {cfg.dataset}")
    if cfg.id == "dae" and o["corruption"] == "mask" and o["level"] >= 1:
        raise ParamError(f"{at('level')}={o['level']}: must be < 1 for mask corruption")


def _per_dataset(paper: str, dataset: str, base_path: str, base, by_dataset: dict, by_dataset_path: str, cls):
    """cls from a base layer overridden by the layers of the paper dataset, then the run dataset."""
    dataset_keys(paper, by_dataset_path.removeprefix(f"{paper}."), by_dataset)
    merged = Merged()
    merged.add(base_path, base)
    for key in layers(dataset):
        if key in by_dataset:
            merged.add(f"{by_dataset_path}.{key}", by_dataset[key])
    return merged.validate(cls, cls.model_fields, base_path)


def finetune_settings(params: S.Params, paper: str, dataset: str) -> S.FinetuneSettings:
    """The resolved fine-tuning settings of `paper` on `dataset`: settings < datasets.<P_D> < datasets.<D>."""
    ft = params.protocol(paper).finetune
    if ft is None:
        raise ParamError(f"{paper}.finetune: missing (this paper has no fine-tuning)")
    return _per_dataset(paper, dataset, f"{paper}.finetune.settings", ft.settings, ft.datasets,
                        f"{paper}.finetune.datasets", S.FinetuneSettings)


def sweep_settings(params: S.Params, paper: str, dataset: str) -> S.SweepSettings:
    """The resolved 003 protocol of `dataset`: protocol < train.<paper dataset> < train.<dataset>."""
    sweep = params.protocol(paper)
    return _per_dataset(paper, dataset, f"{paper}.protocol", sweep.protocol, sweep.train, f"{paper}.train",
                        S.SweepSettings)


def stages(params: S.Params) -> list[tuple[str, str, str, str | None]]:
    """(kind, paper, dataset, model) of every model stage the protocols define (dvc.yaml's matrices);
    a sweep stage trains every model of its dataset, so its model is None."""
    out = []
    for paper in C.AUTOENCODER_PAPERS:
        p = params.protocol(paper)
        for d in p.datasets:
            for m in p.models:
                out += [("train", paper, d, m), ("evaluate", paper, d, m)]
            for m in (p.finetune.models if p.finetune else []):
                out.append(("finetune", paper, d, m))
        if p.filters:
            out += [("filters", paper, d, m) for d in p.filters.datasets for m in p.filters.models]
    for paper in C.SWEEP_PAPERS:
        p = params.protocol(paper)
        out += [("sweep", paper, d, None) for d in p.datasets]
    return out
