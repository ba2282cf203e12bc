"""Every differentiable op passes gradcheck, in several broadcasting situations."""

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.testing import gradcheck

rng = np.random.default_rng(0)


def rand(*shape, low=-2.0, high=2.0):
    return rng.uniform(low, high, size=shape)


def positive(*shape):
    return rng.uniform(0.5, 2.0, size=shape)


def weighted(y):
    """Multiply by distinct weights, so a gradient sent to the wrong element shows."""
    return y * np.arange(1.0, y.size + 1).reshape(y.shape)


# (a shape, b shape) pairs: equal, scalar, trailing-axis, stretched 1s, new leading axes.
BROADCASTS = [((3, 4), (3, 4)), ((3, 4), ()), ((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1))]


@pytest.mark.parametrize("shapes", BROADCASTS, ids=str)
@pytest.mark.parametrize(
    "op",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a * b,
        lambda a, b: a / b,
        lambda a, b: a**b,
        minidl.maximum,
        minidl.minimum,
    ],
    ids=["add", "sub", "mul", "div", "pow", "maximum", "minimum"],
)
def test_binary_ops_broadcast(op, shapes):
    a, b = positive(*shapes[0]), positive(*shapes[1])
    assert gradcheck(op, a, b)
    assert gradcheck(op, b, a)


@pytest.mark.parametrize(
    "op",
    [lambda x: 2.5 + x, lambda x: 2.5 - x, lambda x: 3.0 * x, lambda x: 1.5 / x, lambda x: x**3,
     lambda x: x**-0.5, lambda x: 2.0**x],
    ids=["radd", "rsub", "rmul", "rtruediv", "pow3", "pow-half", "rpow"],
)
def test_ops_with_python_scalars(op):
    assert gradcheck(op, positive(3, 2))


def test_numpy_array_on_either_side():
    const = rand(3, 4)
    assert gradcheck(lambda x: const * x + const, rand(3, 4))
    assert gradcheck(lambda x: const / x - const, positive(3, 4))
    y = const * minidl.tensor(rand(3, 4), requires_grad=True)
    assert isinstance(y, minidl.Tensor) and y.requires_grad


@pytest.mark.parametrize(
    "shapes", [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
               ((2, 3, 4), (2, 4, 5)), ((1, 3, 4), (2, 4, 2))],
    ids=str,
)
def test_matmul(shapes):
    assert gradcheck(lambda a, b: a @ b, rand(*shapes[0]), rand(*shapes[1]))


def test_matmul_with_numpy_on_the_left():
    w = rand(5, 3)
    assert gradcheck(lambda x: w @ x, rand(3, 2))


@pytest.mark.parametrize(
    "op",
    [lambda x: -x, lambda x: x.exp(), lambda x: x.tanh(), lambda x: x.sigmoid(),
     lambda x: x.relu(), lambda x: x.abs()],
    ids=["neg", "exp", "tanh", "sigmoid", "relu", "abs"],
)
def test_unary_ops(op):
    x = rand(3, 5)
    x[np.abs(x) < 0.1] = 0.5  # keep away from the kinks of relu and abs
    assert gradcheck(op, x)


@pytest.mark.parametrize("op", [lambda x: x.log(), lambda x: x.sqrt()], ids=["log", "sqrt"])
def test_unary_ops_on_positive_inputs(op):
    assert gradcheck(op, positive(4, 3))


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
def test_reductions(name, axis, keepdims):
    x = rng.permutation(24).reshape(2, 3, 4) / 7.0  # distinct values: no ties at the max
    assert gradcheck(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims), x)


def test_max_ties_share_the_gradient():
    x = minidl.tensor(np.array([1.0, 3.0, 3.0]), requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.5, 0.5])


def test_reshape_and_transpose():
    x = rand(2, 3, 4)
    assert gradcheck(lambda t: weighted(t.reshape(4, 6)), x)
    assert gradcheck(lambda t: weighted(t.reshape((-1,))), x)
    assert gradcheck(lambda t: weighted(t.transpose(2, 0, 1)), x)
    assert gradcheck(lambda t: weighted(t.transpose((1, 2, 0))), x)
    assert gradcheck(lambda t: weighted(t.T), x)
    assert gradcheck(lambda t: weighted(t.transpose()), x)


@pytest.mark.parametrize(
    "index",
    [1, -1, slice(1, 3), (slice(None), 2), (Ellipsis, 0), (None, 1), np.array([0, 2, 0, 1]),
     (np.array([0, 1, 1]), np.array([2, 0, 2])), np.array([True, False, True, True])],
    ids=["int", "negative", "slice", "column", "ellipsis", "newaxis", "repeated-rows",
         "repeated-pairs", "mask"],
)
def test_indexing_scatter_adds(index):
    assert gradcheck(lambda t: weighted(t[index]), rand(4, 3))


def test_indexing_repeated_rows_accumulate():
    x = minidl.tensor(np.zeros((3, 2)), requires_grad=True)
    x[np.array([0, 0, 2])].sum().backward()
    np.testing.assert_array_equal(x.grad, [[2, 2], [0, 0], [1, 1]])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_and_stack(axis):
    a, b, c = rand(2, 3), rand(2, 3), rand(2, 3)
    assert gradcheck(lambda *t: weighted(minidl.concatenate(t, axis=axis)), a, b, c)
    assert gradcheck(lambda *t: weighted(minidl.stack(t, axis=axis)), a, b, c)


def test_where():
    cond = rand(3, 4) > 0
    assert gradcheck(lambda a, b: minidl.where(cond, a, b), rand(3, 4), rand(3, 4))
    assert gradcheck(lambda a, b: minidl.where(cond, a, b), rand(3, 4), rand(4))


def test_functional_ops():
    x = rand(4, 5)
    targets = np.array([0, 3, 4, 1])
    assert gradcheck(lambda t: weighted(F.softmax(t, axis=1)), x)
    assert gradcheck(lambda t: weighted(F.softmax(t, axis=0)), x)
    assert gradcheck(lambda t: weighted(F.log_softmax(t)), x)
    assert gradcheck(lambda t: F.cross_entropy(t, targets), x)
    assert gradcheck(lambda t, y: F.mse_loss(t, y), x, rand(4, 5))
    assert gradcheck(lambda t, wt, b: F.linear(t, wt, b), rand(4, 3), rand(2, 3), rand(2))
    assert gradcheck(lambda t, wt: F.linear(t, wt), rand(2, 4, 3), rand(2, 3))


def test_composite_network_gradcheck():
    def mlp(x, w1, b1, w2, b2):
        h = F.linear(x, w1, b1).tanh()
        return F.cross_entropy(F.linear(h, w2, b2), np.array([1, 0, 2]))

    assert gradcheck(mlp, rand(3, 4), rand(5, 4), rand(5), rand(3, 5), rand(3))


def test_gradcheck_catches_a_wrong_backward():
    class BadSquare(minidl.Function):
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, g):
            return g * self.x  # should be 2 * g * x

    with pytest.raises(AssertionError, match=r"input 0 \(shape \(3,\)\) at index \(0,\): analytic"):
        gradcheck(lambda t: BadSquare.apply(t), np.array([1.0, 2.0, 3.0]))
