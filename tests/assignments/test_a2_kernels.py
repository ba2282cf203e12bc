"""Assignment 2, kernels: the NumPy references of im2col, col2im and max pooling.

Handout: docs/assignments/kernels.rst. The tests call the public kernels of
:mod:`minidl.kernels` with the NumPy backend chosen (``K.use("numpy")``), so
the compiled twins, built from ``csrc/`` at install time, are not what is
graded. Expected values come from plain loops written here, one element at a
time, independent of each other: the col2im tests do not call im2col.
"""

from __future__ import annotations

import numpy as np
import pytest

import minidl.kernels as K

WINDOWS = [  # (N, C, H, W), kernel, stride, padding
    ((2, 3, 5, 5), (3, 3), (1, 1), (0, 0)),
    ((1, 2, 6, 7), (3, 2), (2, 1), (1, 0)),
    ((2, 1, 4, 4), (2, 2), (2, 2), (1, 1)),
    ((1, 2, 3, 3), (1, 1), (1, 1), (0, 0)),
]


@pytest.fixture(autouse=True)
def numpy_kernels():
    with K.use("numpy"):
        yield


def out_size(h, w, k, s, p):
    return (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1


def loop_im2col(x, k, s, p):
    n, c, h, w = x.shape
    oh, ow = out_size(h, w, k, s, p)
    cols = np.zeros((c * k[0] * k[1], n * oh * ow), dtype=x.dtype)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                col = (b * oh + i) * ow + j
                for ch in range(c):
                    for u in range(k[0]):
                        for v in range(k[1]):
                            y, z = i * s[0] - p[0] + u, j * s[1] - p[1] + v
                            if 0 <= y < h and 0 <= z < w:
                                cols[(ch * k[0] + u) * k[1] + v, col] = x[b, ch, y, z]
    return cols


def loop_col2im(cols, shape, k, s, p):
    n, c, h, w = shape
    oh, ow = out_size(h, w, k, s, p)
    x = np.zeros(shape, dtype=cols.dtype)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    for u in range(k[0]):
                        for v in range(k[1]):
                            y, z = i * s[0] - p[0] + u, j * s[1] - p[1] + v
                            if 0 <= y < h and 0 <= z < w:
                                x[b, ch, y, z] += cols[(ch * k[0] + u) * k[1] + v,
                                                       (b * oh + i) * ow + j]
    return x


def loop_maxpool(x, k, s, p):
    n, c, h, w = x.shape
    oh, ow = out_size(h, w, k, s, p)
    out = np.zeros((n, c, oh, ow), dtype=x.dtype)
    idx = np.zeros((n, c, oh, ow), dtype=np.int64)
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    best, where = -np.inf, -1
                    for u in range(k[0]):
                        for v in range(k[1]):
                            y, z = i * s[0] - p[0] + u, j * s[1] - p[1] + v
                            if 0 <= y < h and 0 <= z < w and x[b, ch, y, z] > best:
                                best, where = x[b, ch, y, z], y * w + z
                    out[b, ch, i, j], idx[b, ch, i, j] = best, where
    return out, idx


def data(shape, dtype=np.float64, seed=0):
    # Distinct values, so that every window has one maximum.
    rng = np.random.default_rng(seed)
    return rng.permutation(int(np.prod(shape))).reshape(shape).astype(dtype) / 7


# ------------------------------------------------------------------------ im2col
@pytest.mark.a2_im2col
@pytest.mark.parametrize("shape, k, s, p", WINDOWS)
def test_im2col_matches_loops(shape, k, s, p):
    x = data(shape)
    np.testing.assert_array_equal(K.im2col(x, k, s, p), loop_im2col(x, k, s, p))


@pytest.mark.a2_im2col
def test_im2col_keeps_float32_and_is_contiguous():
    x = data((2, 2, 4, 4), np.float32)
    cols = K.im2col(x, 3, 1, 1)
    assert cols.dtype == np.float32 and cols.flags.c_contiguous
    np.testing.assert_array_equal(cols, loop_im2col(x, (3, 3), (1, 1), (1, 1)))


# ------------------------------------------------------------------------ col2im
@pytest.mark.a2_col2im
@pytest.mark.parametrize("shape, k, s, p", WINDOWS)
def test_col2im_matches_loops(shape, k, s, p):
    oh, ow = out_size(shape[2], shape[3], k, s, p)
    cols = data((shape[1] * k[0] * k[1], shape[0] * oh * ow), seed=1)
    np.testing.assert_allclose(K.col2im(cols, shape, k, s, p), loop_col2im(cols, shape, k, s, p),
                               rtol=1e-12)


@pytest.mark.a2_col2im
def test_col2im_keeps_float32():
    cols = data((9, 2 * 16), np.float32, seed=2)
    x = K.col2im(cols, (2, 1, 4, 4), 3, 1, 1)
    assert x.dtype == np.float32 and x.shape == (2, 1, 4, 4)
    np.testing.assert_allclose(x, loop_col2im(cols, (2, 1, 4, 4), (3, 3), (1, 1), (1, 1)),
                               rtol=1e-6)


# -------------------------------------------------------------------- max pooling
@pytest.mark.a2_maxpool2d
@pytest.mark.parametrize("shape, k, s, p", [w for w in WINDOWS if w[3][0] * 2 <= w[1][0]])
def test_maxpool_forward_values_and_indices(shape, k, s, p):
    x = data(shape, seed=3)
    out, idx = K.maxpool2d_forward(x, k, s, p)
    expected_out, expected_idx = loop_maxpool(x, k, s, p)
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(idx, expected_idx)


@pytest.mark.a2_maxpool2d
@pytest.mark.parametrize("shape, k, s, p", [((1, 2, 5, 5), (3, 3), (1, 1), (1, 1)),
                                            ((2, 1, 4, 6), (2, 2), (2, 2), (0, 0))])
def test_maxpool_backward_routes_each_gradient_to_its_winner(shape, k, s, p):
    x = data(shape, seed=4)
    out, idx = K.maxpool2d_forward(x, k, s, p)
    g = data(out.shape, seed=5)
    grad = K.maxpool2d_backward(g, idx, shape, k, s, p)
    _, expected_idx = loop_maxpool(x, k, s, p)
    expected = np.zeros(shape)
    for b, ch, i, j in np.ndindex(g.shape):  # overlapping windows add up
        y, z = divmod(int(expected_idx[b, ch, i, j]), shape[3])
        expected[b, ch, y, z] += g[b, ch, i, j]
    np.testing.assert_allclose(grad, expected, rtol=1e-12)
