"""python -m sae.config [OVERRIDE ...]: compose conf/ into params.yaml as `dvc exp run` does,
without running anything (after editing conf/, before `dvc repro`), and validate it."""
from __future__ import annotations

import sys
from pathlib import Path


def compose(conf_dir: Path, overrides: list[str]) -> str:
    """params.yaml's text: conf_dir/config.yaml composed by Hydra with `overrides` (key=value)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from omegaconf import OmegaConf
    with initialize_config_dir(str(Path(conf_dir).resolve()), version_base=None):
        cfg = hydra_compose(config_name="config", overrides=overrides)
    return OmegaConf.to_yaml(cfg, resolve=True)


def main(argv: list[str]) -> None:
    import yaml

    from sae.config import validate
    from sae.errors import SaeError
    text = compose(Path("conf"), argv)
    try:
        validate(yaml.safe_load(text))
    except SaeError as exc:
        sys.exit(f"error: {exc}")
    Path("params.yaml").write_text(text)
    print(f"params.yaml composed from conf/{' with ' + ' '.join(argv) if argv else ''}")


if __name__ == "__main__":
    main(sys.argv[1:])
