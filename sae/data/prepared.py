"""Prepared datasets on disk: train/val/test arrays, training statistics and a JSON summary.

Layout of a prepared folder:
  x_{train,val,test}.npy  float32 (N, D)
  y_{train,val,test}.npy  int64 (N,)       (absent for unlabelled patch sets)
  stats.npz               mean, std (per dimension, training split only), x_min, x_max
  meta.json               shapes, image shape, statistics summary, sha256 of every file
Every later stage reads only this folder. `input_view` turns the stored arrays into what
a model is trained on (pixels in [0,1], standardised, or standardised then mapped into (0,1)).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sae.data import preprocess
from sae.base.errors import DataError, read_json
from sae.base.catalog import VIEWS

SPLITS = ("train", "val", "test")


@dataclass
class Splits:
    """Arrays of one dataset: x_* float32 (N, D); y_* int64 (N,) or None when unlabelled."""
    x_train: np.ndarray
    y_train: np.ndarray | None
    x_val: np.ndarray
    y_val: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    image_shape: tuple[int, int, int]  # (C, H, W) of one sample, for filter images


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write(splits: Splits, out_dir: Path, *, dataset: str, std_eps: float) -> dict:
    """Write `splits` to out_dir atomically (a temporary folder renamed at the end)."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for split in SPLITS:
        x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
        np.save(tmp / f"x_{split}.npy", np.ascontiguousarray(x, dtype=np.float32))
        if y is not None:
            np.save(tmp / f"y_{split}.npy", np.asarray(y, dtype=np.int64))
    # statistics of the training split only; val/test are transformed with them
    mean, std = preprocess.standardize_stats(splits.x_train, std_eps)
    np.savez(tmp / "stats.npz", mean=mean, std=std, x_min=splits.x_train.min(), x_max=splits.x_train.max())
    labelled = splits.y_train is not None
    meta = {
        "dataset": dataset,
        "dim": int(splits.x_train.shape[1]),
        "image_shape": list(splits.image_shape),
        "n": {s: int(getattr(splits, f"x_{s}").shape[0]) for s in SPLITS},
        "labelled": labelled,
        "n_classes": int(max(int(splits.y_train.max()), int(splits.y_test.max())) + 1) if labelled else 0,
        "stats": {"std_eps": std_eps, "mean_of_mean": float(mean.mean()), "mean_of_std": float(std.mean()),
                  "x_train_min": float(splits.x_train.min()), "x_train_max": float(splits.x_train.max())},
        "sha256": {p.name: _sha256(p) for p in sorted(tmp.iterdir())},
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return meta


META_KEYS = ("dataset", "dim", "image_shape", "n", "labelled", "n_classes", "sha256")


def read_meta(prepared_dir: Path) -> dict:
    """meta.json of a prepared folder (DataError naming the file when missing or malformed)."""
    return read_json(Path(prepared_dir) / "meta.json", META_KEYS, "rerun its prepare stage")


def read(prepared_dir: Path, view: str = "pixels", *, verify: bool = True) -> dict:
    """Load a prepared folder as numpy arrays in the requested input view.

    Returns {"x_train", "y_train", "x_val", ..., "meta"}; y_* is None when unlabelled.
    With verify, every file's sha256 is checked against meta.json first.
    """
    prepared_dir = Path(prepared_dir)
    meta = read_meta(prepared_dir)
    if verify:
        for name, digest in meta["sha256"].items():
            path = prepared_dir / name
            if not path.is_file() or _sha256(path) != digest:
                raise DataError(f"{path}: missing or checksum mismatch; rerun prepare")
    try:
        stats = np.load(prepared_dir / "stats.npz")
        out = {"meta": meta}
        for split in SPLITS:
            x = np.load(prepared_dir / f"x_{split}.npy")
            out[f"x_{split}"] = input_view(x, stats, view)
            y_path = prepared_dir / f"y_{split}.npy"
            out[f"y_{split}"] = np.load(y_path) if y_path.is_file() else None
    except (OSError, ValueError, KeyError) as exc:  # without verify, a damaged file fails here
        raise DataError(f"{prepared_dir}: unreadable ({str(exc).splitlines()[0][:120]}); rerun prepare") from None
    return out


def read_tensors(prepared_dir: Path, view: str, device) -> tuple[dict, dict]:
    """(tensors, meta): x_/y_ train/val/test of a prepared folder as torch tensors on `device`
    in input view `view` (None where the split has no such array)."""
    import torch
    data = read(prepared_dir, view)
    tensors = {k: (None if v is None else torch.from_numpy(v).to(device)) for k, v in data.items() if k != "meta"}
    return tensors, data["meta"]


def input_view(x: np.ndarray, stats, view: str) -> np.ndarray:
    """x (N, D) as stored -> what the model sees.

    pixels: as stored ([0,1] images; LCN+ZCA values for patch sets);
    center: pixels minus their training mean (no scaling): a linear or ReLU code of non-negative
        pixels otherwise favours the units aligned with the mean digit, and the rest never fire;
    standardize: per-dimension (x - mean)/std with training statistics (002 sec. 4.1, 003 sec. 3);
    standardize_unit: standardised, then mapped into (0,1) for sigmoid decoders (001 sec. IV-B);
    unit: pixels when they already lie in [0,1], else standardize_unit.
    """
    if view == "unit":
        view = "pixels" if stats["x_min"] >= 0 and stats["x_max"] <= 1 else "standardize_unit"
    if view == "pixels":
        return x
    if view not in VIEWS:
        raise DataError(f"input view {view!r}: allowed: {', '.join(VIEWS)}")
    if view == "center":
        return (np.asarray(x, dtype=np.float32) - np.asarray(stats["mean"], dtype=np.float32)).astype(np.float32)
    z = preprocess.standardize(x, stats["mean"], stats["std"]).astype(np.float32)
    if view == "standardize":
        return z
    return preprocess.to_unit_interval(z)
