"""Readers of the raw dataset formats (IDX, small NORB, CIFAR-10 python, SVHN .mat, UCI optdigits).

Readers detect gzip by its magic bytes, not the suffix, and raise DataError naming the file for
anything malformed. The writers produce the same layouts; the tests use them to make fixtures.
"""
from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import scipy.io
from scipy.io.matlab import MatReadError

from sae.base.errors import DataError

_IDX_NDIM = {2049: 1, 2051: 3}  # magic -> ndim; both are uint8 (type code 0x08)
_NORB_DTYPE = {0x1E3D4C55: np.dtype(np.uint8), 0x1E3D4C54: np.dtype("<i4")}
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
_CIFAR_LABELS = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
                 b"dog", b"frog", b"horse", b"ship", b"truck"]


def _read_bytes(path) -> bytearray:
    """The file's bytes, gunzipped if it starts with 1f 8b.

    A bytearray, so arrays made with np.frombuffer on it are writable (torch.from_numpy warns on
    read-only arrays) without another copy.
    """
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"\x1f\x8b":
                buf = bytearray(os.fstat(f.fileno()).st_size)
                f.seek(0)
                f.readinto(buf)
                return buf
            f.seek(0)
            buf = bytearray()
            with gzip.GzipFile(fileobj=f) as gz:
                while chunk := gz.read(1 << 24):
                    buf += chunk
            return buf
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read ({e})") from e


def _write_bytes(path, data: bytes) -> None:
    # mtime=0 keeps .gz outputs byte-identical across runs (stable DVC hashes)
    if str(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    Path(path).write_bytes(data)


def _check_size(path, buf, header: int, shape, dtype: np.dtype) -> None:
    expected = header + math.prod(shape) * dtype.itemsize
    if len(buf) != expected:
        raise DataError(f"{path}: {len(buf)} bytes, expected {expected} for shape {tuple(shape)} "
                        f"(truncated or corrupt)")


# ---- IDX (MNIST, Fashion-MNIST) ----

def read_idx(path) -> np.ndarray:
    """Read an IDX file: images uint8 (N, rows, cols) for magic 2051, labels uint8 (N,) for 2049."""
    buf = _read_bytes(path)
    if len(buf) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(buf)} bytes)")
    (magic,) = struct.unpack_from(">i", buf)
    if magic not in _IDX_NDIM:
        raise DataError(f"{path}: not an IDX file (magic {magic}, expected 2049 or 2051)")
    ndim = _IDX_NDIM[magic]
    header = 4 * (1 + ndim)
    if len(buf) < header:
        raise DataError(f"{path}: truncated IDX header ({len(buf)} bytes)")
    shape = struct.unpack_from(f">{ndim}i", buf, 4)
    _check_size(path, buf, header, shape, np.dtype(np.uint8))
    return np.frombuffer(buf, np.uint8, offset=header).reshape(shape)


def write_idx(path, array: np.ndarray) -> None:
    """Write a uint8 array of shape (N,) (magic 2049) or (N, rows, cols) (magic 2051) as IDX."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (1, 3):
        raise DataError(f"{path}: IDX takes uint8 arrays of ndim 1 or 3, got {array.dtype} "
                        f"ndim {array.ndim}")
    magic = 2049 if array.ndim == 1 else 2051
    _write_bytes(path, struct.pack(f">{1 + array.ndim}i", magic, *array.shape) + array.tobytes())


# ---- small NORB ----

def read_norb(path) -> np.ndarray:
    """Read a small-NORB matrix: uint8 for the -dat files (24300, 2, 96, 96), int32 for -cat
    (24300,) and -info (24300, 4). Returns shape dims[:ndim] of the header."""
    buf = _read_bytes(path)
    if len(buf) < 8:
        raise DataError(f"{path}: truncated NORB file ({len(buf)} bytes)")
    magic, ndim = struct.unpack_from("<Ii", buf)
    dtype = _NORB_DTYPE.get(magic)
    if dtype is None:
        raise DataError(f"{path}: not a small-NORB matrix (magic {magic:#x}, "
                        f"expected 0x1e3d4c55 or 0x1e3d4c54)")
    if ndim < 1:
        raise DataError(f"{path}: bad NORB ndim {ndim}")
    nfields = max(3, ndim)  # the format always stores at least 3 dims, unused ones as 1
    header = 8 + 4 * nfields
    if len(buf) < header:
        raise DataError(f"{path}: truncated NORB header ({len(buf)} bytes)")
    shape = struct.unpack_from(f"<{nfields}i", buf, 8)[:ndim]
    _check_size(path, buf, header, shape, dtype)
    return np.frombuffer(buf, dtype, offset=header).reshape(shape)


def write_norb(path, array: np.ndarray) -> None:
    """Write a uint8 or int32 array (any ndim >= 1) as a small-NORB matrix."""
    array = np.asarray(array)
    magic = {np.dtype(np.uint8): 0x1E3D4C55, np.dtype(np.int32): 0x1E3D4C54}.get(array.dtype)
    if magic is None or array.ndim < 1:
        raise DataError(f"{path}: NORB takes uint8 or int32 arrays of ndim >= 1, got {array.dtype} "
                        f"ndim {array.ndim}")
    dims = array.shape + (1,) * (3 - array.ndim)
    header = struct.pack(f"<Ii{len(dims)}i", magic, array.ndim, *dims)
    _write_bytes(path, header + array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())


# ---- CIFAR-10 python version ----

def _check_cifar(where, data: np.ndarray, labels: np.ndarray) -> None:
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (len(data),):
        raise DataError(f"{where}: expected uint8 data (N, 3072) and N labels, got {data.dtype} "
                        f"{data.shape} and labels {labels.shape}")


def _parse_cifar(buf, where) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = pickle.loads(buf, encoding="bytes")
    except Exception as e:  # unpickling garbage can raise almost any exception type
        raise DataError(f"{where}: not a CIFAR batch pickle ({type(e).__name__}: {e})") from e
    try:
        data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"], np.int64)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{where}: not a CIFAR batch (no usable b'data'/b'labels': {e})") from e
    _check_cifar(where, data, labels)
    return data, labels


def _cifar_pickle(where, data, labels, batch_label: bytes) -> bytes:
    data, labels = np.asarray(data), np.asarray(labels)
    _check_cifar(where, data, labels)
    return pickle.dumps({b"batch_label": batch_label, b"labels": labels.tolist(), b"data": data},
                        protocol=2)


def read_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 batch file: data uint8 (N, 3072) with rows R plane, G, B (1024 each,
    row-major 32x32), labels int64 (N,)."""
    return _parse_cifar(_read_bytes(path), path)


def write_cifar_batch(path, data: np.ndarray, labels) -> None:
    """Write data uint8 (N, 3072) and labels (N,) as a CIFAR-10 batch pickle."""
    _write_bytes(path, _cifar_pickle(path, data, labels, b"batch"))


def read_cifar_archive(tar_path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read cifar-10-python.tar.gz in memory: x_train uint8 (50000, 3072), y_train int64 (50000,),
    x_test uint8 (10000, 3072), y_test int64 (10000,)."""
    try:
        with tarfile.open(tar_path, "r:*") as tar:  # compression detected from the content
            parts = [_parse_cifar(tar.extractfile(f"{_CIFAR_DIR}/{name}").read(),
                                  f"{tar_path}:{_CIFAR_DIR}/{name}")
                     for name in _CIFAR_BATCHES + ["test_batch"]]
    except (tarfile.TarError, KeyError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{tar_path}: not a CIFAR-10 python archive ({e})") from e
    train, (x_test, y_test) = parts[:5], parts[5]
    return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
            x_test, y_test)


def write_cifar_archive(tar_path, x_train, y_train, x_test, y_test) -> None:
    """Write a CIFAR-10 python tar (gzipped if the name ends in .gz): train split into
    data_batch_1..5 (equal when N divides by 5), test_batch and batches.meta."""
    xs, ys = np.array_split(np.asarray(x_train), 5), np.array_split(np.asarray(y_train), 5)
    members = {name: _cifar_pickle(tar_path, x, y, f"training batch {i} of 5".encode())
               for i, (name, x, y) in enumerate(zip(_CIFAR_BATCHES, xs, ys), 1)}
    members["test_batch"] = _cifar_pickle(tar_path, x_test, y_test, b"testing batch 1 of 1")
    members["batches.meta"] = pickle.dumps({b"num_cases_per_batch": len(xs[0]), b"num_vis": 3072,
                                            b"label_names": _CIFAR_LABELS}, protocol=2)
    with tarfile.open(tar_path, "w:gz" if str(tar_path).endswith(".gz") else "w") as tar:
        tar.addfile(_dir_info(_CIFAR_DIR))
        for name, payload in members.items():
            info = tarfile.TarInfo(f"{_CIFAR_DIR}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def _dir_info(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info


# ---- SVHN cropped digits (format 2) ----

def read_svhn_mat(path) -> tuple[np.ndarray, np.ndarray]:
    """Read train_32x32.mat / test_32x32.mat: x uint8 (N, 32, 32, 3), y int64 (N,) in 0..9.

    The file holds X (32, 32, 3, N) and y (N, 1) where 10 stands for digit 0.
    """
    try:
        mat = scipy.io.loadmat(io.BytesIO(_read_bytes(path)))
        X, y = mat["X"], mat["y"]
    except KeyError as e:
        raise DataError(f"{path}: no variable {e} (expected X and y)") from e
    except (ValueError, TypeError, NotImplementedError, MatReadError) as e:
        raise DataError(f"{path}: not a MATLAB v5 file ({e})") from e
    if X.dtype != np.uint8 or X.ndim != 4 or X.shape[:3] != (32, 32, 3) or y.size != X.shape[3]:
        raise DataError(f"{path}: expected X uint8 (32, 32, 3, N) and y (N, 1), got X {X.dtype} "
                        f"{X.shape} and y {y.shape}")
    y = y.ravel().astype(np.int64)
    if ((y < 1) | (y > 10)).any():
        raise DataError(f"{path}: labels must be 1..10, found {sorted(set(y[(y < 1) | (y > 10)]))[:5]}")
    y[y == 10] = 0
    return np.ascontiguousarray(X.transpose(3, 0, 1, 2)), y


def write_svhn_mat(path, x: np.ndarray, y) -> None:
    """Write x uint8 (N, 32, 32, 3) and y (N,) in 0..9 in the SVHN layout (digit 0 stored as 10)."""
    y = np.asarray(y)
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"X": np.asarray(x, np.uint8).transpose(1, 2, 3, 0),
                           "y": np.where(y == 0, 10, y).astype(np.uint8).reshape(-1, 1)})
    _write_bytes(path, buf.getvalue())


# ---- UCI optdigits (optdigits.tra / optdigits.tes) ----

def read_optdigits_uci(path) -> tuple[np.ndarray, np.ndarray]:
    """Read UCI optdigits: x uint8 (N, 64) block counts 0..16, y int64 (N,) in 0..9."""
    try:
        lines = [line for line in _read_bytes(path).decode("ascii").splitlines() if line.strip()]
        if not lines:
            raise ValueError("empty file")
        table = np.loadtxt(lines, delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as e:  # also UnicodeDecodeError
        raise DataError(f"{path}: not comma-separated integers ({e})") from e
    if table.shape[1] != 65:
        raise DataError(f"{path}: expected 65 values a line, got {table.shape[1]}")
    x, y = table[:, :64], table[:, 64]
    if x.min() < 0 or x.max() > 16 or y.min() < 0 or y.max() > 9:
        raise DataError(f"{path}: values out of range (features 0..16, classes 0..9)")
    return x.astype(np.uint8), y


def write_optdigits_uci(path, x: np.ndarray, y) -> None:
    """Write x (N, 64) and y (N,) as comma-separated lines of 65 integers."""
    out = io.StringIO()
    np.savetxt(out, np.column_stack([np.asarray(x, np.int64), np.asarray(y, np.int64)]),
               fmt="%d", delimiter=",")
    _write_bytes(path, out.getvalue().encode("ascii"))
