"""Assignment 1, autograd: the tests of each task (``pytest -m a1_topological_order`` ...).

Handout: docs/assignments/autograd.rst. Each task's tests reach the student's
code through public names only: ``Tensor.backward`` for the walk of the graph,
:func:`minidl.autograd.function.unbroadcast`, and the ``MatMul``, ``Sum``,
``Mean`` Functions of :mod:`minidl.autograd.ops` called directly, so that a
task's tests do not depend on another task of this assignment. Expected
gradients are central differences in float64, or closed forms.
"""

from __future__ import annotations

import numpy as np
import pytest

import minidl
from minidl.autograd.function import unbroadcast
from minidl.autograd.ops import Add, MatMul, Mean, Sum


def numeric_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f(x)`` with respect to every element of ``x``."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f(x)
        x[i] = old - eps
        down = f(x)
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


def leaf(values) -> minidl.Tensor:
    return minidl.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


# ------------------------------------------------------------ topological order
# Only elementwise ops on tensors of one shape: no broadcasting, matmul or reduction.
@pytest.mark.a1_topological_order
def test_diamond_graph_gets_both_paths():
    x = leaf([0.5, -1.0, 2.0])
    y = (x * x) * x.exp()  # two paths from x to y
    y.backward(np.ones(3))
    v = x.data
    np.testing.assert_allclose(x.grad, 2 * v * np.exp(v) + v * v * np.exp(v), rtol=1e-12)


@pytest.mark.a1_topological_order
def test_shared_subexpression_is_visited_once_with_its_whole_gradient():
    x, w = leaf([1.0, 2.0, -3.0]), leaf([0.5, -0.25, 2.0])
    h = x * w
    y = h * h + h.tanh() + h  # h has three consumers
    y.backward(np.ones(3))
    hv = x.data * w.data
    dh = 2 * hv + (1 - np.tanh(hv) ** 2) + 1
    np.testing.assert_allclose(x.grad, dh * w.data, rtol=1e-12)
    np.testing.assert_allclose(w.grad, dh * x.data, rtol=1e-12)


@pytest.mark.a1_topological_order
def test_deep_chain_needs_no_recursion():
    x = leaf([1.0, 2.0])
    y = x
    for _ in range(3000):  # deeper than Python's recursion limit
        y = y + x
    y.backward(np.ones(2))
    np.testing.assert_allclose(x.grad, [3001.0, 3001.0])


@pytest.mark.a1_topological_order
def test_leaves_accumulate_and_intermediates_do_not_leak():
    x = leaf([2.0, 3.0])
    for _ in range(2):
        y = (x * x).exp() * x
        y.backward(np.ones(2))
    v = x.data
    np.testing.assert_allclose(x.grad, 2 * (np.exp(v * v) * (2 * v * v + 1)), rtol=1e-12)


# --------------------------------------------------------- broadcasting backward
@pytest.mark.a1_broadcast_backward
@pytest.mark.parametrize(
    "grad_shape, shape",
    [((4, 2, 3), (2, 1)), ((5, 3), (3,)), ((5, 3), (1, 3)), ((5, 3), (5, 1)),
     ((2, 3, 4), ()), ((2, 1, 4), (1, 1, 4))],
)
def test_unbroadcast_sums_what_broadcasting_copied(grad_shape, shape):
    rng = np.random.default_rng(len(grad_shape) * 10 + len(shape))
    g = rng.standard_normal(grad_shape)
    out = unbroadcast(g, shape)
    assert np.shape(out) == shape
    # d/da sum(g * broadcast_to(a, grad_shape)), element by element
    expected = numeric_grad(lambda a: float(np.sum(g * np.broadcast_to(a, grad_shape))),
                            np.zeros(shape))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-8)


@pytest.mark.a1_broadcast_backward
def test_add_backward_of_a_bias_row():
    a, b = np.ones((4, 3)), np.arange(3.0)
    f = Add()
    f.forward(a, b)
    g = np.arange(12.0).reshape(4, 3)
    ga, gb = f.backward(g)
    np.testing.assert_array_equal(ga, g)
    np.testing.assert_array_equal(gb, g.sum(axis=0))


# ---------------------------------------------------------------- matmul backward
def matmul_grads(a: np.ndarray, b: np.ndarray):
    f = MatMul()
    f.needs_grad = (True, True)
    out = f.forward(a, b)
    g = np.random.default_rng(7).standard_normal(np.shape(out))
    ga, gb = f.backward(g)
    expected_a = numeric_grad(lambda v: float(np.sum(g * (v @ b))), a.copy())
    expected_b = numeric_grad(lambda v: float(np.sum(g * (a @ v))), b.copy())
    return (ga, expected_a), (gb, expected_b)


@pytest.mark.a1_matmul_backward
@pytest.mark.parametrize(
    "shape_a, shape_b",
    [((3, 4), (4, 2)), ((1, 5), (5, 1)), ((2, 3, 4), (2, 4, 5))],
)
def test_matmul_backward_matrices_and_batches(shape_a, shape_b):
    rng = np.random.default_rng(sum(shape_a) + sum(shape_b))
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    for got, expected in matmul_grads(a, b):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)


@pytest.mark.a1_matmul_backward
@pytest.mark.parametrize("shape_a, shape_b", [((4,), (4, 3)), ((3, 4), (4,)), ((4,), (4,))])
def test_matmul_backward_with_vectors(shape_a, shape_b):
    rng = np.random.default_rng(len(shape_a) * 3 + len(shape_b))
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    for got, expected in matmul_grads(a, b):
        assert np.shape(got) == np.shape(expected)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------- reduction backward
@pytest.mark.a1_reduction_backward
@pytest.mark.parametrize("op, np_op", [(Sum, np.sum), (Mean, np.mean)])
@pytest.mark.parametrize(
    "axis, keepdims", [(None, False), (None, True), (1, False), (-1, True), ((0, 2), False)]
)
def test_reduction_backward(op, np_op, axis, keepdims):
    x = np.random.default_rng(3).standard_normal((2, 3, 4))
    f = op(axis=axis, keepdims=keepdims)
    out = f.forward(x)
    g = np.random.default_rng(4).standard_normal(np.shape(out))
    got = f.backward(g)
    expected = numeric_grad(lambda v: float(np.sum(g * np_op(v, axis=axis, keepdims=keepdims))),
                            x.copy())
    assert np.shape(got) == x.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)
