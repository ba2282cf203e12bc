"""Assignment 3, layers and optimizers: Conv2d via im2col, SGD with momentum, Adam.

Handout: docs/assignments/layers.rst. Conv2d is reached through
``minidl.functional.conv2d`` and ``minidl.nn.Conv2d`` (its backward through
``Tensor.backward``, so this assignment builds on autograd and, without
compiled kernels, on the kernels assignment); the optimizers through
``minidl.optim.SGD`` and ``Adam`` with gradients set by hand, no backward.
Expected values are a loop convolution and central differences, and the
update rules written out here step by step (those of ``torch.optim``).
"""

from __future__ import annotations

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
import minidl.optim as optim


def loop_conv(x, w, b, stride, padding):
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, f, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


def numeric_grad(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f()
        x[i] = old - eps
        down = f()
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


CONVS = [((2, 3, 5, 5), (4, 3, 3, 3), 1, 0), ((1, 2, 6, 5), (3, 2, 3, 2), 2, 1)]


# ------------------------------------------------------------------------ conv2d
@pytest.mark.a3_conv2d
@pytest.mark.parametrize("x_shape, w_shape, stride, padding", CONVS)
def test_conv2d_forward_matches_loops(x_shape, w_shape, stride, padding):
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s) for s in (x_shape, w_shape, w_shape[:1]))
    out = F.conv2d(minidl.tensor(x), minidl.tensor(w), minidl.tensor(b), stride, padding)
    np.testing.assert_allclose(out.data, loop_conv(x, w, b, stride, padding), rtol=1e-10,
                               atol=1e-12)


@pytest.mark.a3_conv2d
@pytest.mark.parametrize("x_shape, w_shape, stride, padding", CONVS)
def test_conv2d_backward_matches_central_differences(x_shape, w_shape, stride, padding):
    rng = np.random.default_rng(1)
    x, w, b = (rng.standard_normal(s) for s in (x_shape, w_shape, w_shape[:1]))
    xt, wt, bt = (minidl.tensor(a, requires_grad=True) for a in (x, w, b))
    out = F.conv2d(xt, wt, bt, stride, padding)
    g = rng.standard_normal(out.shape)
    out.backward(g)

    def loss():
        return float(np.sum(g * loop_conv(x, w, b, stride, padding)))

    for tensor, array in ((xt, x), (wt, w), (bt, b)):
        np.testing.assert_allclose(tensor.grad, numeric_grad(loss, array), rtol=1e-5, atol=1e-7)


@pytest.mark.a3_conv2d
def test_conv2d_layer_uses_its_weight_and_bias():
    minidl.manual_seed(0)
    layer = nn.Conv2d(2, 3, 3, padding=1)
    x = np.random.default_rng(2).standard_normal((2, 2, 4, 4)).astype(np.float32)
    out = layer(minidl.tensor(x))
    assert out.shape == (2, 3, 4, 4) and out.dtype == np.float32
    expected = loop_conv(x.astype(np.float64), layer.weight.data.astype(np.float64),
                         layer.bias.data.astype(np.float64), 1, 1)
    np.testing.assert_allclose(out.data, expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------- optimizers
GRADS = [np.array([[0.5, -1.0], [2.0, 0.25]]) * (k + 1) - k for k in range(5)]
START = np.array([[1.0, -2.0], [0.5, 3.0]])


def run(make_optimizer):
    """Five steps from START with the gradients GRADS, set by hand (no backward)."""
    p = nn.Parameter(START.copy())
    opt = make_optimizer([p])
    for g in GRADS:
        p.grad = g.copy()
        opt.step()
    return p.data


def sgd_by_hand(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    p, buf = START.copy(), None
    for g in GRADS:
        g = g + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


def adam_by_hand(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    p, m, v = START.copy(), np.zeros_like(START), np.zeros_like(START)
    for t, g in enumerate(GRADS, start=1):
        g = g + weight_decay * p
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


SGD_CASES = [dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.05, momentum=0.8, dampening=0.3),
             dict(lr=0.1, weight_decay=0.01), dict(lr=0.1, momentum=0.9, nesterov=True,
                                                    weight_decay=0.1)]
ADAM_CASES = [dict(lr=0.01), dict(lr=0.1, betas=(0.8, 0.99)), dict(lr=0.01, weight_decay=0.1),
              dict(lr=0.05, eps=1e-3)]


@pytest.mark.a3_sgd
@pytest.mark.parametrize("options", SGD_CASES)
def test_sgd_follows_the_update_rule(options):
    np.testing.assert_allclose(run(lambda ps: optim.SGD(ps, **options)), sgd_by_hand(**options),
                               rtol=1e-12)


@pytest.mark.a3_sgd
def test_sgd_skips_parameters_without_gradients():
    p, q = nn.Parameter(START.copy()), nn.Parameter(START.copy())
    opt = optim.SGD([p, q], lr=0.1, momentum=0.9)
    p.grad = np.ones_like(START)
    opt.step()
    np.testing.assert_allclose(p.data, START - 0.1)
    np.testing.assert_array_equal(q.data, START)


@pytest.mark.a3_adam
@pytest.mark.parametrize("options", ADAM_CASES)
def test_adam_follows_the_update_rule(options):
    np.testing.assert_allclose(run(lambda ps: optim.Adam(ps, **options)), adam_by_hand(**options),
                               rtol=1e-10)
