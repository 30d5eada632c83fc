"""Tests of sae.data.preprocess: statistics from the training split only, shapes, values."""

import numpy as np
import pytest

from sae.data.preprocess import (
    crop_resize_norb,
    extract_patches,
    lcn,
    standardize,
    standardize_stats,
    stratified_split,
    to_grayscale,
    to_unit_interval,
    zca_apply,
    zca_fit,
)


def _correlated(n=5000, d=20, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d))
    return (rng.normal(size=(n, d)) @ mixing + rng.normal(size=d) * 5).astype(np.float32)


def _cov(z):
    z = z.astype(np.float64)
    zc = z - z.mean(axis=0)
    return zc.T @ zc / z.shape[0]


# ---------------------------------------------------------------- ZCA


@pytest.mark.parametrize("eps", [0.1, 1.0])
def test_zca_whitened_covariance_is_v_diag_l_over_l_plus_eps(eps):
    x = _correlated()
    mean, w = zca_fit(x, eps=eps)
    assert mean.dtype == np.float32 and w.dtype == np.float32 and w.shape == (20, 20)
    z = zca_apply(x, mean, w)
    assert z.dtype == np.float32
    lam, v = np.linalg.eigh(_cov(x))
    expected = (v * (lam / (lam + eps))) @ v.T
    np.testing.assert_allclose(_cov(z), expected, atol=1e-3)
    assert np.abs(z.mean(axis=0)).max() < 1e-3


def test_zca_eps_zero_gives_identity_covariance():
    x = _correlated()
    z = zca_apply(x, *zca_fit(x, eps=0.0))
    np.testing.assert_allclose(_cov(z), np.eye(20), atol=1e-3)


def test_zca_w_is_symmetric():
    _, w = zca_fit(_correlated(), eps=0.1)
    np.testing.assert_allclose(w, w.T, atol=1e-5)


# ---------------------------------------------------------------- standardise


def test_standardized_training_data_has_zero_mean_unit_std():
    x = _correlated()
    mean, std = standardize_stats(x)
    z = standardize(x, mean, std)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0, dtype=np.float64), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0, dtype=np.float64), 1.0, atol=1e-5)


def test_val_and_test_use_training_statistics():
    rng = np.random.default_rng(1)
    x_train = rng.normal(0.0, 1.0, size=(2000, 8)).astype(np.float32)
    x_val = rng.normal(3.0, 4.0, size=(500, 8)).astype(np.float32)  # shifted and scaled
    mean, std = standardize_stats(x_train)
    z_val = standardize(x_val, mean, std)
    np.testing.assert_allclose(z_val, (x_val - x_train.mean(0)) / x_train.std(0), rtol=1e-4, atol=1e-4)
    # Its own statistics would have given zero mean / unit std; the training ones must not.
    assert np.abs(z_val.mean(axis=0)).min() > 1.0
    assert np.abs(z_val.std(axis=0) - 1.0).min() > 1.0


def test_std_eps_is_added_to_std():
    x = _correlated()
    _, std0 = standardize_stats(x)
    _, std1 = standardize_stats(x, std_eps=0.1)
    np.testing.assert_allclose(std1, std0 + 0.1, rtol=1e-6)


def test_constant_columns_give_finite_values():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(100, 6)).astype(np.uint8)
    x[:, 0] = 0
    x[:, 3] = 17
    mean, std = standardize_stats(x)
    assert std[0] == 1.0 and std[3] == 1.0
    z = standardize(x, mean, std)
    assert np.isfinite(z).all()
    np.testing.assert_array_equal(z[:, [0, 3]], 0.0)
    # A test image that differs on a constant training pixel stays finite too.
    x_test = x[:3].copy()
    x_test[:, 0] = 255
    assert np.isfinite(standardize(x_test, mean, std)).all()
    # Float constant columns (whose std is round-off, not 0) are caught as well.
    xf = rng.normal(size=(1000, 3))
    xf[:, 1] = 0.1
    _, stdf = standardize_stats(xf)
    assert stdf[1] == 1.0


def test_to_unit_interval_maps_three_std_onto_point1_to_point9():
    x = _correlated()
    z = standardize(x, *standardize_stats(x))
    u = to_unit_interval(z)
    assert u.dtype == np.float32
    assert u.min() >= 0.1 - 1e-6 and u.max() <= 0.9 + 1e-6
    np.testing.assert_allclose(to_unit_interval(np.array([[-3.0, 0.0, 3.0, 30.0]])),
                               [[0.1, 0.5, 0.9, 0.9]], atol=1e-6)
    # the bulk of the data keeps its spread (no squashing by outliers)
    assert u.std() > 0.1


# ---------------------------------------------------------------- patches


def test_lcn_rows_have_zero_mean_and_expected_scale():
    rng = np.random.default_rng(3)
    p = rng.integers(0, 256, size=(50, 192)).astype(np.float32)
    q = lcn(p)
    assert q.dtype == np.float32 and q.shape == p.shape
    np.testing.assert_allclose(q.mean(axis=1), 0.0, atol=1e-5)
    expected = (p - p.mean(1, keepdims=True)) / np.sqrt(p.var(1, ddof=1, keepdims=True) + 10.0)
    np.testing.assert_allclose(q, expected, rtol=1e-5, atol=1e-5)
    assert np.isfinite(lcn(np.zeros((2, 192), np.float32))).all()


def _images(seed=4):
    return np.random.default_rng(seed).integers(0, 256, size=(10, 32, 32, 3), dtype=np.uint8)


def test_extract_patches_shape_and_values():
    images = _images()
    p = extract_patches(images, 100, 8, np.random.default_rng(42))
    assert p.shape == (100, 192) and p.dtype == np.float32
    # Recompute the locations from the documented draw order.
    rng = np.random.default_rng(42)
    idx = rng.integers(0, 10, size=100)
    top = rng.integers(0, 32 - 8 + 1, size=100)
    left = rng.integers(0, 32 - 8 + 1, size=100)
    for j in (0, 17, 99):
        src = images[idx[j], top[j] : top[j] + 8, left[j] : left[j] + 8, :]  # (8, 8, 3)
        np.testing.assert_array_equal(p[j], src.transpose(2, 0, 1).ravel().astype(np.float32))


def test_extract_patches_seeded():
    images = _images()
    a = extract_patches(images, 50, 8, np.random.default_rng(7))
    b = extract_patches(images, 50, 8, np.random.default_rng(7))
    c = extract_patches(images, 50, 8, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_extract_patches_greyscale_images():
    images = _images()[..., 0]
    p = extract_patches(images, 5, 6, np.random.default_rng(0))
    assert p.shape == (5, 36)


# ---------------------------------------------------------------- image formats


def test_crop_resize_norb_shape_and_constant_image():
    x = np.full((3, 2, 96, 96), 128, dtype=np.uint8)
    x[:, :, :16, :] = 0  # outside the inner 64x64 crop: must not leak in
    out = crop_resize_norb(x)
    assert out.shape == (3, 2048) and out.dtype == np.float32
    np.testing.assert_allclose(out, 128 / 255, atol=1e-5)


def test_crop_resize_norb_range_and_channel_order():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, size=(4, 2, 96, 96), dtype=np.uint8)
    x[:, 1] = 255
    out = crop_resize_norb(x)
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(out[:, 1024:], 1.0, atol=1e-5)  # channel 1 is the second half


def test_to_grayscale_pure_red():
    x = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    x[..., 0] = 255
    g = to_grayscale(x)
    assert g.shape == (2, 1024) and g.dtype == np.float32
    np.testing.assert_allclose(g, 0.299, atol=1e-6)
    white = to_grayscale(np.full((1, 4, 4, 3), 255, np.uint8))
    np.testing.assert_allclose(white, 1.0, atol=1e-6)


# ---------------------------------------------------------------- splits


def _labels():
    rng = np.random.default_rng(6)
    counts = [700, 300, 150, 1000, 50, 423]  # imbalanced
    return rng.permutation(np.repeat(np.arange(len(counts)), counts))


def test_stratified_split_disjoint_sizes_and_proportions():
    y = _labels()
    tr, va, te = stratified_split(y, n_val=500, n_test=400, seed=0)
    assert len(va) == 500 and len(te) == 400 and len(tr) == len(y) - 900
    allidx = np.concatenate([tr, va, te])
    assert len(np.unique(allidx)) == len(y)
    for part in (tr, va, te):
        assert np.all(np.diff(part) > 0)
    frac = np.bincount(y) / len(y)
    for part in (tr, va, te):
        counts = np.bincount(y[part], minlength=len(frac))
        assert np.abs(counts - frac * len(part)).max() <= 1.0


def test_stratified_split_deterministic_and_no_test():
    y = _labels()
    a = stratified_split(y, 300, 0, seed=3)
    b = stratified_split(y, 300, 0, seed=3)
    c = stratified_split(y, 300, 0, seed=4)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[1], c[1])
    assert a[2].size == 0 and len(a[0]) + len(a[1]) == len(y)


def test_the_center_view_subtracts_the_training_mean_only():
    """The `center` input view (002's MNIST autoencoders): x minus the training mean, unscaled."""
    from sae.data.prepared import input_view
    rng = np.random.default_rng(0)
    x_train = rng.random((50, 6)).astype(np.float32)
    x_test = rng.random((7, 6)).astype(np.float32)
    stats = {"mean": x_train.mean(0), "std": x_train.std(0) + 5, "x_min": 0.0, "x_max": 1.0}
    centred = input_view(x_train, stats, "center")
    assert centred.dtype == np.float32
    np.testing.assert_allclose(centred.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(input_view(x_test, stats, "center"), x_test - x_train.mean(0), atol=1e-7)
    np.testing.assert_allclose(centred.std(0), x_train.std(0), rtol=1e-5)  # no scaling
