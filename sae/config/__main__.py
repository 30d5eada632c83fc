"""python -m sae.config [OVERRIDE ...]: compose conf/ into params.yaml as `dvc exp run` does,
without running anything (after editing conf/, before `dvc repro`), and validate it.
python -m sae.config explain PAPER DATASET MODEL: where each resolved setting comes from (sae.explain).

It also explains a refused `dvc exp run -S KEY=VALUE`: DVC prints Hydra's own message there,
while this command names the bad key or value in one line, with the nearest allowed name."""
from __future__ import annotations

import sys
from pathlib import Path

USAGE = ("usage: python -m sae.config [KEY=VALUE ...]\n"
         "  compose conf/ (with the overrides `dvc exp run -S` takes) into params.yaml and validate it;\n"
         "  e.g. python -m sae.config scale=tiny 'makhzani2014.model.ksparse.k=40'\n"
         "       python -m sae.config explain PAPER DATASET MODEL\n"
         "  every resolved setting of one model stage, where it comes from and the paper's value")


def repository_root(start: Path) -> Path:
    """The nearest folder at or above `start` that holds conf/config.yaml (ParamError if none)."""
    from sae.base.errors import ParamError
    for folder in (start, *start.parents):
        if (folder / "conf" / "config.yaml").is_file():
            return folder
    raise ParamError(f"{start}: no conf/config.yaml here or above; run from the sae-repro repository")


def compose(conf_dir: Path, overrides: list[str]) -> str:
    """params.yaml's text: conf_dir/config.yaml composed by Hydra with `overrides` (key=value);
    ParamError naming the bad override when Hydra refuses one."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from omegaconf import OmegaConf
    for item in overrides:
        _check_form(item)
    try:
        with initialize_config_dir(str(Path(conf_dir).resolve()), version_base=None):
            cfg = hydra_compose(config_name="config", overrides=overrides)
        return OmegaConf.to_yaml(cfg, resolve=True)
    except Exception as exc:  # Hydra / OmegaConf / YAML: each reworded as one line below
        raise _explained(exc, Path(conf_dir), overrides) from None


def _check_form(item: str) -> None:
    from sae.base.errors import ParamError
    if "=" not in item:
        raise ParamError(f"{item!r}: an override is KEY=VALUE (for example scale={item})" if item.isidentifier()
                         else f"{item!r}: an override is KEY=VALUE")


def _explained(exc: Exception, conf_dir: Path, overrides: list[str]):
    """One ParamError line for what Hydra refused: an unknown key (did you mean), an unknown
    group option (scale=huge), an unparsable override, or a YAML error in conf/."""
    from sae.config import unknown
    from sae.base.errors import ParamError
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "Could not override" in text:
        key = text.split("'")[1] if "'" in text else text
        parent, _, leaf = key.rpartition(".")
        known = _keys(conf_dir, parent)
        return ParamError(unknown(key, leaf, known, what="key", key=True) if known is not None
                          else f"{key}: unknown key (python -m sae.config prints the composed params)")
    if "Could not find" in text or "MissingConfig" in type(exc).__name__:
        for item in overrides:
            group, _, value = item.partition("=")
            folder = conf_dir / group
            if folder.is_dir() and not (folder / f"{value}.yaml").is_file():
                options = sorted(p.stem for p in folder.glob("*.yaml"))
                return ParamError(unknown(group, value, options))
    if type(exc).__name__ in ("ScannerError", "ParserError", "ComposerError") or "yaml" in type(exc).__module__:
        return ParamError(f"conf/: YAML error: {' '.join(str(exc).split())}")
    return ParamError(f"{' '.join(overrides) or 'conf/'}: {text}")


def _keys(conf_dir: Path, parent: str) -> list[str] | None:
    """The keys under dotted `parent` of the composed default config (None if not a mapping)."""
    import yaml
    node = yaml.safe_load(compose(conf_dir, []))
    for part in [p for p in parent.split(".") if p]:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return list(node) if isinstance(node, dict) else None


def main(argv: list[str]) -> None:
    import yaml

    from sae.config import validate
    from sae.base.errors import SaeError
    if argv[:1] == ["explain"]:  # sae.explain reads the report's tables: imported only for this command
        from sae.explain import main as explain
        explain(argv[1:])
        return
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return
    try:
        root = repository_root(Path.cwd())
        text = compose(root / "conf", argv)
        validate(yaml.safe_load(text))
    except SaeError as exc:
        sys.exit(f"error: {exc}")
    (root / "params.yaml").write_text(text)
    print(f"params.yaml composed from conf/{' with ' + ' '.join(argv) if argv else ''}")


if __name__ == "__main__":
    main(sys.argv[1:])
