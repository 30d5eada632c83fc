"""A trained model directory, written and read only here: model.pt (the weights of every model
of the batch, stacked) and hparams.json (what it was trained with; sae.config.protocol).

Writes are atomic (a temporary file renamed into place); hparams.json records the sha256 of
model.pt and stages.pt, checked on every load, so a missing, truncated, damaged or foreign
file stops with DataError naming it, never a traceback or a silently wrong model.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from sae.base.errors import DataError, read_json

HPARAMS_KEYS = ("paper", "dataset", "model", "id", "seeds", "in_dim", "loop", "options")


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_writable(model_dir) -> None:
    """DataError (one line) unless files can be created in model_dir (made if missing)."""
    model_dir = Path(model_dir)
    probe = model_dir / ".write-test"
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise DataError(f"{model_dir}: cannot write the outputs here ({exc.strerror or type(exc).__name__})") from None


def save(model_dir, model, hparams: dict, snapshots=None) -> None:
    """model.pt, (when the model keeps them) stages.pt, then hparams.json with their sha256s."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _atomic(model_dir / "model.pt", lambda p: torch.save(state, p))
    files = ["model.pt"]
    if snapshots is not None:
        _atomic(model_dir / "stages.pt", lambda p: torch.save(snapshots, p))
        files.append("stages.pt")
    hparams = {**hparams, "sha256": {name: _sha256(model_dir / name) for name in files}}
    _atomic(model_dir / "hparams.json", lambda p: p.write_text(json.dumps(hparams, indent=2) + "\n"))


def _verified(model_dir: Path, name: str, hparams: dict) -> Path:
    """model_dir/name, after checking its bytes against the sha256 hparams.json records."""
    path = model_dir / name
    want = hparams.get("sha256", {}).get(name)
    if path.is_file() and want is not None and _sha256(path) != want:
        raise DataError(f"{path}: damaged (its sha256 differs from the one {model_dir / 'hparams.json'} records); "
                        "rerun its train stage")
    return path


def read_hparams(model_dir) -> dict:
    """hparams.json of a model directory (DataError when missing or malformed)."""
    return read_json(Path(model_dir) / "hparams.json", HPARAMS_KEYS, "rerun its train stage")


def layout_of(hparams: dict):
    from sae.models.batch import layout
    return layout(hparams["id"], hparams["options"], hparams["seeds"])


def rebuild(hparams: dict):
    """The untrained model batch an hparams.json describes (same ids, sizes, variants, seeds)."""
    from sae.models import build
    lay = layout_of(hparams)
    opts = {k: v for k, v in hparams["options"].items() if k != "k_sweep"}
    return build(hparams["id"], hparams["in_dim"], hparams["loop"]["hidden"], n_models=lay.n_models,
                 per_model=lay.per_model(), **opts)


def read_state(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing; rerun the stage that writes it")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle garbage: torch raises many types
        raise DataError(f"{path}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                        "rerun the stage that writes it") from None


def read_weights(model_dir) -> dict:
    """The state dict of model_dir/model.pt, verified against hparams.json."""
    model_dir = Path(model_dir)
    return read_state(_verified(model_dir, "model.pt", read_hparams(model_dir)))


def load(model_dir, device="cpu"):
    """(model batch in eval mode on `device`, hparams) of a trained model directory."""
    model_dir = Path(model_dir)
    hparams = read_hparams(model_dir)
    model = rebuild(hparams)
    state = read_state(_verified(model_dir, "model.pt", hparams))
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        raise DataError(f"{model_dir / 'model.pt'}: does not match {model_dir / 'hparams.json'} "
                        f"({str(exc).splitlines()[0][:160]}); rerun its train stage") from None
    return model.to(device).eval(), hparams


def load_snapshots(model_dir) -> list:
    """stages.pt: [{"epoch", "alpha", "W" (G,M,D)}] at the end of each schedule stage ([] when none)."""
    model_dir = Path(model_dir)
    path = _verified(model_dir, "stages.pt", read_hparams(model_dir))
    return read_state(path) if path.is_file() else []
