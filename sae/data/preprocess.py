"""Preprocessing of the papers' data sets: numpy arrays in, numpy arrays out.

Every statistic (mean, std, range, ZCA matrix) is fitted on the TRAINING split
only and then applied unchanged to validation and test data. Outputs are
float32 unless a docstring says otherwise; statistics are computed in float64.
"""

from __future__ import annotations

import numpy as np

from sae.base.errors import DataError, ParamError

# Rows per chunk where a whole-array float copy would be large (not a sample loop).
_CHUNK = 1024
_COV_CHUNK = 65536

# ITU-R BT.601 luma weights for R, G, B.
BT601_LUMA = (0.299, 0.587, 0.114)


# ---------------------------------------------------------------- standardise


# 001 sec. IV-B, 002 sec. 4.1, 003 sec. 3 and footnote 2 (std + 0.1 for MNIST)
def standardize_stats(x_train: np.ndarray, std_eps: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std of the training split.

    x_train: (N, D). Returns (mean, std), each (D,) float32, with
    std = std_N(x) + std_eps (population std, 1/N). A dimension that is
    constant on the training split (e.g. the border pixels of optdigits) gets
    std_eps if that is positive, else 1, so nothing ever divides by zero.
    """
    x_train = np.asarray(x_train)
    if x_train.ndim != 2 or x_train.shape[0] == 0:
        raise DataError(f"standardize_stats expects a non-empty (N, D) array, got shape {x_train.shape}")
    mean = x_train.mean(axis=0, dtype=np.float64)
    # Constancy tested exactly (max == min): the float std of a constant column may be ~1e-17, not 0.
    constant = x_train.max(axis=0) == x_train.min(axis=0)
    std = np.where(constant, 0.0, x_train.std(axis=0, dtype=np.float64)) + float(std_eps)
    std = np.where(std > 0.0, std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


# 001 sec. IV-B: zero mean and unit std per dimension, with training statistics
def standardize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x - mean) / std. x: (N, D); mean, std: (D,). Returns (N, D) float32."""
    out = np.asarray(x, dtype=np.float32) - np.asarray(mean, dtype=np.float32)
    out /= np.asarray(std, dtype=np.float32)
    return out


# 001 sec. IV-B: the range used to map standardised data into (0, 1) for sigmoid decoders
# 001 sec. IV-B: "the pixel values are mapped into the (0,1) interval", following the
# implementation of its ref. [3] (Ng's sparse-autoencoder notes, UFLDL normalizeData):
# truncate standardised values to +-3 std, then rescale [-3, 3] to [0.1, 0.9]. A global
# min/max rescaling would squash heavy-tailed data (whitened patches) into a sliver.
def to_unit_interval(z: np.ndarray, clip: float = 3.0) -> np.ndarray:
    """Standardised z (N, D) -> (N, D) float32 in [0.1, 0.9]."""
    z = np.clip(np.asarray(z, dtype=np.float32), -clip, clip)
    return (np.float32(0.1) + np.float32(0.8 / (2 * clip)) * (z + np.float32(clip))).astype(np.float32)


# ------------------------------------------------------------ image formats


# 002 sec. 4.1, 000 sec. III: inner 64x64 of each NORB channel, bicubic resize to 32x32, 2048 dims
def crop_resize_norb(x: np.ndarray, crop: int = 64, size: int = 32) -> np.ndarray:
    """Centre-crop and bicubically resize small-NORB stereo pairs.

    x: (N, 2, H, W) uint8 (H = W = 96 for small NORB). Takes the inner
    crop x crop pixels of each channel, resizes to size x size with bicubic
    interpolation (antialiased, align_corners=False), clamps to [0, 255] and
    divides by 255. Returns (N, 2*size*size) float32 in [0, 1], flattened
    channel-first (channel, row, column). Processed in chunks of 1024 samples.
    """
    import torch  # imported here: every later stage reads prepared data through this module
    import torch.nn.functional as F

    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1] != 2:
        raise DataError(f"crop_resize_norb expects (N, 2, H, W), got shape {x.shape}")
    n, c, h, w = x.shape
    if crop > h or crop > w:
        raise DataError(f"crop {crop} larger than the {h}x{w} NORB image")
    top, left = (h - crop) // 2, (w - crop) // 2
    inner = x[:, :, top : top + crop, left : left + crop]
    out = np.empty((n, c * size * size), dtype=np.float32)
    for start in range(0, n, _CHUNK):  # chunks bound memory; the work inside is vectorised
        block = torch.from_numpy(np.ascontiguousarray(inner[start : start + _CHUNK], dtype=np.float32))
        resized = F.interpolate(block, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
        out[start : start + _CHUNK] = (resized.clamp_(0.0, 255.0) / 255.0).reshape(block.shape[0], -1).numpy()
    return out


# 000 sec. III (SVHN as 32x32 grey images, 1024 dims); ITU-R BT.601 luma
def to_grayscale(x: np.ndarray) -> np.ndarray:
    """Luma 0.299 R + 0.587 G + 0.114 B of RGB images, scaled to [0, 1].

    x: (N, H, W, 3) uint8. Returns (N, H*W) float32 in [0, 1].
    """
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise DataError(f"to_grayscale expects (N, H, W, 3), got shape {x.shape}")
    r, g, b = BT601_LUMA
    luma = x[..., 0].astype(np.float32) * r
    luma += x[..., 1].astype(np.float32) * g
    luma += x[..., 2].astype(np.float32) * b
    luma /= 255.0
    return luma.reshape(x.shape[0], -1)


# ------------------------------------------------------------ natural patches


# 002 sec. 4.1: random 8x8 patches from the 32x32 CIFAR-10 images
def extract_patches(images: np.ndarray, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Random square patches, one random image and top-left corner per patch.

    images: (N, H, W, C) uint8, or (N, H, W) taken as C = 1. Draws, in this
    order from rng: image indices (n,) in [0, N), rows (n,) in [0, H - size],
    columns (n,) in [0, W - size]. Returns (n, C*size*size) float32 holding the
    0-255 pixel values, flattened channel-first (C, size, size): 192 dims for
    8x8 colour patches.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise DataError(f"extract_patches expects (N, H, W[, C]), got shape {images.shape}")
    n_img, h, w, c = images.shape
    if n_img == 0 or size < 1 or size > h or size > w:
        raise ParamError(f"cannot take {size}x{size} patches from {n_img} images of {h}x{w}")
    if n < 0:
        raise ParamError(f"number of patches must be >= 0, got {n}")
    idx = rng.integers(0, n_img, size=n)
    top = rng.integers(0, h - size + 1, size=n)
    left = rng.integers(0, w - size + 1, size=n)
    offs = np.arange(size)
    rows = (top[:, None] + offs)[:, :, None]  # (n, size, 1)
    cols = (left[:, None] + offs)[:, None, :]  # (n, 1, size)
    patches = images[idx[:, None, None], rows, cols]  # (n, size, size, C), source dtype
    return patches.transpose(0, 3, 1, 2).reshape(n, c * size * size).astype(np.float32)


# 002 sec. 4.1 (after Coates, Lee & Ng 2011): local contrast normalisation per patch
def lcn(p: np.ndarray, eps: float = 10.0) -> np.ndarray:
    """(p - mean_row) / sqrt(var_row + eps), per patch.

    p: (n, D) on 0-255 pixel values. var_row is the unbiased (1/(D-1)) row
    variance, as Matlab's var() in Coates et al.'s reference code. Returns
    (n, D) float32; every row has mean 0.
    """
    p = np.asarray(p, dtype=np.float32)
    if p.ndim != 2 or p.shape[1] < 2:
        raise DataError(f"lcn expects (n, D) with D >= 2, got shape {p.shape}")
    mean = p.mean(axis=1, keepdims=True, dtype=np.float64)
    centred = (p - mean).astype(np.float32)
    var = np.square(centred, dtype=np.float64).sum(axis=1, keepdims=True) / (p.shape[1] - 1)
    centred /= np.sqrt(var + eps).astype(np.float32)
    return centred


# 002 sec. 4.1 (after Coates, Lee & Ng 2011): ZCA whitening fitted on training patches
def zca_fit(x_train: np.ndarray, eps: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Fit ZCA whitening: W = V diag(1 / sqrt(l + eps)) V^T.

    x_train: (N, D). C = X^T X / N of the mean-subtracted training rows
    (accumulated in float64 over row chunks), C = V diag(l) V^T by eigh.
    Whitened training data then has covariance V diag(l / (l + eps)) V^T (the
    identity when eps = 0). Returns (mean (D,), W (D, D)), float32.
    """
    x_train = np.asarray(x_train)
    if x_train.ndim != 2 or x_train.shape[0] == 0:
        raise DataError(f"zca_fit expects a non-empty (N, D) array, got shape {x_train.shape}")
    n, d = x_train.shape
    mean = x_train.mean(axis=0, dtype=np.float64)
    cov = np.zeros((d, d), dtype=np.float64)
    for start in range(0, n, _COV_CHUNK):  # chunks bound the float64 copy; not a sample loop
        xc = x_train[start : start + _COV_CHUNK].astype(np.float64) - mean
        cov += xc.T @ xc
    cov /= n
    eigval, eigvec = np.linalg.eigh(cov)
    eigval = np.clip(eigval, 0.0, None)  # round-off can make a null eigenvalue slightly negative
    if eps <= 0.0 and np.any(eigval <= 0.0):
        raise DataError("ZCA with eps = 0 needs a full-rank training covariance")
    w = (eigvec / np.sqrt(eigval + eps)) @ eigvec.T
    return mean.astype(np.float32), w.astype(np.float32)


# 002 sec. 4.1: apply the training ZCA transform
def zca_apply(x: np.ndarray, mean: np.ndarray, W: np.ndarray) -> np.ndarray:
    """(x - mean) @ W. x: (N, D); mean: (D,); W: (D, D). Returns (N, D) float32."""
    return (np.asarray(x, dtype=np.float32) - mean.astype(np.float32)) @ W.astype(np.float32)


# ------------------------------------------------------------ splits


# 002 sec. 4.1 (50,000/10,000 MNIST, 20,000/4,300 NORB), seeded and stratified by class
def stratified_split(
    y: np.ndarray, n_val: int, n_test: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint train/val/test index arrays, stratified by the labels y (N,).

    The test set (n_test rows; may be 0, then test_idx is empty) is drawn
    first from all rows, then the validation set (n_val rows) from the rest;
    train is what remains. Each returned array is sorted, int64.
    """
    from sklearn.model_selection import train_test_split  # a slow import: only prepare@D splits

    y = np.asarray(y)
    n = y.shape[0]
    if n_val < 0 or n_test < 0 or n_val + n_test >= n:
        raise ParamError(
            f"cannot split {n} samples into n_val={n_val}, n_test={n_test} and a non-empty train set"
        )
    rest = np.arange(n, dtype=np.int64)
    empty = np.empty(0, dtype=np.int64)

    def take(pool: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k == 0:
            return pool, empty
        keep, taken = train_test_split(pool, test_size=k, stratify=y[pool], random_state=seed)
        return keep, taken

    rest, test_idx = take(rest, n_test)
    train_idx, val_idx = take(rest, n_val)
    return np.sort(train_idx), np.sort(val_idx), np.sort(test_idx)
