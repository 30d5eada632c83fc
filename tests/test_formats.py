import gzip
import struct
import tarfile

import numpy as np
import pytest

from sae.data import formats
from sae.base.errors import DataError

rng = np.random.default_rng(0)


def _u8(*shape):
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _put(path, data: bytes):
    """Write bytes, gzipped when the name ends in .gz (an independent writer for the readers)."""
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


@pytest.fixture(params=["", ".gz"], ids=["plain", "gz"])
def gz(request):
    return request.param


# ---- IDX ----

@pytest.mark.parametrize("shape", [(7,), (5, 4, 3)])
def test_idx_round_trip(tmp_path, gz, shape):
    a = _u8(*shape)
    formats.write_idx(tmp_path / f"a.idx{gz}", a)
    got = formats.read_idx(tmp_path / f"a.idx{gz}")
    assert got.dtype == np.uint8 and np.array_equal(got, a)
    got[0] = 1  # writable, so torch.from_numpy does not warn


def test_write_idx_gz_suffix_decides_compression(tmp_path):
    formats.write_idx(tmp_path / "a.gz", _u8(3))
    formats.write_idx(tmp_path / "a", _u8(3))
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "a").read_bytes()[:4] == struct.pack(">i", 2049)


def test_read_idx_hand_made(tmp_path, gz):
    images, labels = _u8(3, 2, 5), _u8(3)
    p_img = _put(tmp_path / f"img-idx3-ubyte{gz}", struct.pack(">iiii", 2051, 3, 2, 5) + images.tobytes())
    p_lab = _put(tmp_path / f"lab-idx1-ubyte{gz}", struct.pack(">ii", 2049, 3) + labels.tobytes())
    assert np.array_equal(formats.read_idx(p_img), images)
    assert np.array_equal(formats.read_idx(p_lab), labels)


def test_read_idx_gzip_detected_by_content_not_suffix(tmp_path):
    a = _u8(4)
    p = tmp_path / "labels-idx1-ubyte"  # no .gz suffix, gzipped content
    p.write_bytes(gzip.compress(struct.pack(">ii", 2049, 4) + a.tobytes()))
    assert np.array_equal(formats.read_idx(p), a)


def test_read_idx_wrong_magic(tmp_path):
    p = _put(tmp_path / "weird-ubyte", struct.pack(">ii", 2050, 1) + b"\x00")
    with pytest.raises(DataError, match="weird-ubyte.*magic 2050"):
        formats.read_idx(p)


@pytest.mark.parametrize("cut", [1, 10, 17])
def test_read_idx_truncated(tmp_path, cut):
    data = struct.pack(">iiii", 2051, 2, 3, 3) + _u8(2, 3, 3).tobytes()
    p = _put(tmp_path / "short-idx3-ubyte", data[:-cut])
    with pytest.raises(DataError, match="short-idx3-ubyte"):
        formats.read_idx(p)


def test_read_missing_file_is_data_error(tmp_path):
    with pytest.raises(DataError, match="nothere"):
        formats.read_idx(tmp_path / "nothere")


def test_write_idx_rejects_other_arrays(tmp_path):
    with pytest.raises(DataError, match="bad.idx"):
        formats.write_idx(tmp_path / "bad.idx", np.zeros((2, 2), np.uint8))


# ---- small NORB ----

def _norb_bytes(magic, ndim, dims, payload: bytes) -> bytes:
    return struct.pack(f"<ii{len(dims)}i", magic, ndim, *dims) + payload


@pytest.mark.parametrize("shape,dtype", [((6, 2, 4, 5), np.uint8), ((6,), np.int32), ((6, 4), np.int32),
                                         ((2, 3, 4, 2, 2), np.uint8)])
def test_norb_round_trip(tmp_path, gz, shape, dtype):
    a = rng.integers(-5 if dtype == np.int32 else 0, 200, size=shape).astype(dtype)
    formats.write_norb(tmp_path / f"m.mat{gz}", a)
    got = formats.read_norb(tmp_path / f"m.mat{gz}")
    assert got.dtype == dtype and got.shape == shape and np.array_equal(got, a)


def test_read_norb_hand_made_dat(tmp_path, gz):
    a = _u8(3, 2, 4, 5)
    p = _put(tmp_path / f"smallnorb-dat.mat{gz}", _norb_bytes(0x1E3D4C55, 4, (3, 2, 4, 5), a.tobytes()))
    assert np.array_equal(formats.read_norb(p), a)


def test_read_norb_hand_made_cat_ndim1(tmp_path):
    cat = np.array([0, 4, 2, 1, 3], "<i4")
    # ndim=1 still stores three dims; the unused ones are 1, and data starts at byte 20
    data = _norb_bytes(0x1E3D4C54, 1, (5, 1, 1), cat.tobytes())
    assert len(data) == 20 + 5 * 4
    got = formats.read_norb(_put(tmp_path / "smallnorb-cat.mat", data))
    assert got.shape == (5,) and got.dtype == np.int32 and got.tolist() == [0, 4, 2, 1, 3]


def test_read_norb_hand_made_info(tmp_path):
    info = np.arange(20, dtype="<i4").reshape(5, 4)
    got = formats.read_norb(_put(tmp_path / "smallnorb-info.mat", _norb_bytes(0x1E3D4C54, 2, (5, 4, 1),
                                                                             info.tobytes())))
    assert got.shape == (5, 4) and np.array_equal(got, info)


def test_read_norb_wrong_magic(tmp_path):
    p = _put(tmp_path / "bogus-dat.mat", _norb_bytes(0x1E3D4C51, 1, (2, 1, 1), b"\x00" * 8))
    with pytest.raises(DataError, match="bogus-dat.mat.*magic"):
        formats.read_norb(p)


def test_read_norb_truncated(tmp_path):
    p = _put(tmp_path / "cut-dat.mat", _norb_bytes(0x1E3D4C55, 3, (2, 3, 3), _u8(2, 3, 3).tobytes()[:-1]))
    with pytest.raises(DataError, match="cut-dat.mat"):
        formats.read_norb(p)


# ---- CIFAR-10 ----

def test_cifar_batch_round_trip(tmp_path, gz):
    x, y = _u8(6, 3072), rng.integers(0, 10, 6)
    formats.write_cifar_batch(tmp_path / f"data_batch_1{gz}", x, y)
    gx, gy = formats.read_cifar_batch(tmp_path / f"data_batch_1{gz}")
    assert gx.dtype == np.uint8 and gy.dtype == np.int64
    assert np.array_equal(gx, x) and np.array_equal(gy, y)


def test_cifar_batch_garbage(tmp_path):
    p = _put(tmp_path / "data_batch_9", b"not a pickle")
    with pytest.raises(DataError, match="data_batch_9"):
        formats.read_cifar_batch(p)


@pytest.mark.parametrize("suffix", [".tar.gz", ".tar"])
def test_cifar_archive_round_trip_and_layout(tmp_path, suffix):
    x_train, y_train = _u8(10, 3072), rng.integers(0, 10, 10)
    x_test, y_test = _u8(3, 3072), rng.integers(0, 10, 3)
    p = tmp_path / f"cifar-10-python{suffix}"
    formats.write_cifar_archive(p, x_train, y_train, x_test, y_test)
    with tarfile.open(p) as tar:
        names = set(tar.getnames())
    expected = {f"cifar-10-batches-py/{n}" for n in
                ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                 "test_batch", "batches.meta"]}
    assert expected <= names
    got = formats.read_cifar_archive(p)
    for g, e in zip(got, (x_train, y_train, x_test, y_test)):
        assert np.array_equal(g, e)


def test_cifar_archive_batches_are_equal_and_in_order(tmp_path):
    x_train, y_train = _u8(10, 3072), np.arange(10) % 10
    p = tmp_path / "c.tar.gz"
    formats.write_cifar_archive(p, x_train, y_train, _u8(1, 3072), [0])
    with tarfile.open(p) as tar:
        tar.extractall(tmp_path, filter="data")
    for i in range(5):
        x, y = formats.read_cifar_batch(tmp_path / f"cifar-10-batches-py/data_batch_{i + 1}")
        assert np.array_equal(x, x_train[2 * i:2 * i + 2]) and y.tolist() == [2 * i, 2 * i + 1]


def test_cifar_archive_missing_member(tmp_path):
    p = tmp_path / "partial.tar.gz"
    with tarfile.open(p, "w:gz") as tar:
        tar.add(formats.__file__, arcname="cifar-10-batches-py/readme.html")
    with pytest.raises(DataError, match="partial.tar.gz"):
        formats.read_cifar_archive(p)


# ---- SVHN ----

def test_svhn_round_trip(tmp_path, gz):
    x, y = _u8(5, 32, 32, 3), np.array([0, 1, 9, 0, 5])
    formats.write_svhn_mat(tmp_path / f"train_32x32.mat{gz}", x, y)
    gx, gy = formats.read_svhn_mat(tmp_path / f"train_32x32.mat{gz}")
    assert gx.shape == (5, 32, 32, 3) and gx.dtype == np.uint8 and gy.dtype == np.int64
    assert np.array_equal(gx, x) and gy.tolist() == [0, 1, 9, 0, 5]


def test_svhn_real_layout_maps_10_to_0(tmp_path):
    import scipy.io

    X = _u8(32, 32, 3, 4)  # the real file: images last, labels 1..10 with 10 meaning digit 0
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": X, "y": np.array([[10], [1], [10], [9]], np.uint8)})
    x, y = formats.read_svhn_mat(tmp_path / "test_32x32.mat")
    assert y.tolist() == [0, 1, 0, 9]
    assert np.array_equal(x[2], X[:, :, :, 2])
    formats.write_svhn_mat(tmp_path / "out.mat", x, y)
    assert scipy.io.loadmat(tmp_path / "out.mat")["y"].ravel().tolist() == [10, 1, 10, 9]


def test_svhn_not_a_mat_file(tmp_path):
    p = _put(tmp_path / "extra_32x32.mat", b"garbage" * 30)
    with pytest.raises(DataError, match="extra_32x32.mat"):
        formats.read_svhn_mat(p)


# ---- UCI optdigits ----

def test_optdigits_round_trip(tmp_path, gz):
    x, y = rng.integers(0, 17, (8, 64)).astype(np.uint8), rng.integers(0, 10, 8)
    formats.write_optdigits_uci(tmp_path / f"optdigits.tra{gz}", x, y)
    gx, gy = formats.read_optdigits_uci(tmp_path / f"optdigits.tra{gz}")
    assert gx.dtype == np.uint8 and gy.dtype == np.int64
    assert np.array_equal(gx, x) and np.array_equal(gy, y)


def test_optdigits_hand_made_crlf(tmp_path):
    rows = [list(range(16)) * 4 + [7], [16] * 64 + [0]]
    p = _put(tmp_path / "optdigits.tes", "".join(",".join(map(str, r)) + "\r\n" for r in rows).encode())
    x, y = formats.read_optdigits_uci(p)
    assert x.shape == (2, 64) and x[0, 15] == 15 and x[1, 0] == 16 and y.tolist() == [7, 0]


@pytest.mark.parametrize("text", ["1,2,3\n", "", "a,b\n", ",".join(["17"] * 64 + ["1"]) + "\n"])
def test_optdigits_malformed(tmp_path, text):
    p = _put(tmp_path / "optdigits.bad", text.encode())
    with pytest.raises(DataError, match="optdigits.bad"):
        formats.read_optdigits_uci(p)
