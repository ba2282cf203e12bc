"""Property-based tests of the autograd ops on shapes, broadcasts and dtypes Hypothesis draws.

Every op is checked three ways, on tensors of rank 0 to 3 with sides 1 to 4:

- forward: equal to NumPy's result on float64 copies of the same values, to the
  rounding of the tensor's dtype (float32 or float64);
- dtypes: a float32 op gives float32 values and hands float32 gradients to its
  inputs (seen by a hook, before ``.grad`` casts them);
- backward: :func:`minidl.testing.gradcheck` (float64 central differences) passes.

Values are odd multiples of 1/16 in (-2, 2): never 0, so relu and abs are
differentiable everywhere they are drawn, and exact in float32, so forward
compares tightly. Where a tie would make an op non-differentiable (max, min,
maximum, max pooling) the values are drawn distinct, 1/8 apart, so central
differences with ``eps=1e-6`` never cross a kink.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidl
import minidl.functional as F
import minidl.kernels as K
from minidl.testing import gradcheck

# Deterministic in CI (the same examples every run, nothing saved between runs),
# and no per-example deadline: the machine is shared and noisy.
PROPERTY = settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

DTYPES = st.sampled_from([np.float32, np.float64])
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
PAIRS = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4)

# Odd sixteenths: never zero, exact in float32.
NONZERO = st.integers(-16, 15).map(lambda k: (2 * k + 1) / 16)  # -31/16 .. 31/16
POSITIVE = st.integers(0, 15).map(lambda k: (2 * k + 1) / 16)  # 1/16 .. 31/16


def values(shape: tuple[int, ...], elements: st.SearchStrategy = NONZERO) -> st.SearchStrategy:
    """Float64 arrays of ``shape`` (repeats allowed: for ops that are smooth everywhere)."""
    return hnp.arrays(np.float64, shape, elements=elements)


@st.composite
def distinct(draw, shape: tuple[int, ...], odd: bool = True) -> np.ndarray:
    """Distinct values 1/8 apart, in (-4, 4): odd sixteenths, or even ones when ``odd`` is False.

    An odd and an even draw never share a value, so ``maximum(a, b)`` has no tie either.
    """
    size = math.prod(shape)
    order = np.array(draw(st.permutations(range(64)))[:size])
    return ((2 * order - 63 + (0 if odd else 1)) / 16).reshape(shape)


def tolerance(dtype: type) -> dict[str, float]:
    """How close a forward in ``dtype`` must be to float64 NumPy: a few of its roundings."""
    return {"rtol": 2e-6, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}


def check(fn, reference, *arrays: np.ndarray, dtype: type, grad: bool = True) -> None:
    """Forward against ``reference`` in float64, gradient dtypes, then gradcheck.

    ``fn`` takes Tensors; ``reference`` the float64 values of the same inputs.
    """
    leaves = [minidl.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    seen: dict[int, np.ndarray] = {}
    for i, leaf in enumerate(leaves):
        leaf.register_hook(lambda g, i=i: seen.__setitem__(i, g))
    out = fn(*leaves)
    want = np.asarray(reference(*[a.astype(dtype).astype(np.float64) for a in arrays]))
    assert out.dtype == dtype, f"a {np.dtype(dtype).name} op gave {out.dtype}"
    assert out.shape == want.shape
    np.testing.assert_allclose(out.data, want, **tolerance(dtype))
    if not grad:
        return
    out.backward(np.ones(out.shape, dtype=dtype))
    for i, leaf in enumerate(leaves):
        g = seen.get(i)
        if g is None:  # no path from the output: an input that does not matter
            continue
        assert np.shape(g) == leaf.shape, f"input {i}: gradient of shape {np.shape(g)}"
        assert g.dtype == leaf.dtype, f"input {i} is {leaf.dtype}, its gradient {g.dtype}"
    assert gradcheck(fn, *arrays)


# --- Elementwise ------------------------------------------------------------------

BINARY = {
    "add": (lambda a, b: a + b, np.add, NONZERO, NONZERO),
    "sub": (lambda a, b: a - b, np.subtract, NONZERO, NONZERO),
    "mul": (lambda a, b: a * b, np.multiply, NONZERO, NONZERO),
    "div": (lambda a, b: a / b, np.divide, NONZERO, NONZERO),
    "pow": (lambda a, b: a**b, np.power, POSITIVE, NONZERO),
}


@PROPERTY
@pytest.mark.parametrize("name", list(BINARY))
@given(data=st.data(), shapes=PAIRS, dtype=DTYPES)
def test_binary_ops_broadcast_like_numpy(name, data, shapes, dtype):
    op, reference, left, right = BINARY[name]
    a = data.draw(values(shapes.input_shapes[0], left), label="a")
    b = data.draw(values(shapes.input_shapes[1], right), label="b")
    check(op, reference, a, b, dtype=dtype)


@PROPERTY
@pytest.mark.parametrize("name", ["maximum", "minimum"])
@given(data=st.data(), shapes=PAIRS, dtype=DTYPES)
def test_maximum_and_minimum_broadcast_like_numpy(name, data, shapes, dtype):
    a = data.draw(distinct(shapes.input_shapes[0], odd=True), label="a")
    b = data.draw(distinct(shapes.input_shapes[1], odd=False), label="b")
    check(getattr(minidl, name), getattr(np, name), a, b, dtype=dtype)


@PROPERTY
@given(
    data=st.data(),
    shape=SHAPES,
    dtype=DTYPES,
    c=NONZERO,
    name=st.sampled_from(["add", "sub", "mul", "div", "pow"]),
    reflected=st.booleans(),
)
def test_python_numbers_take_the_tensors_dtype(data, shape, dtype, c, name, reflected):
    op, reference, _, _ = BINARY[name]
    x = data.draw(values(shape, POSITIVE), label="x")
    if reflected:  # c op x: a Python number on the left
        check(lambda t: op(c, t), lambda t: reference(c, t), x, dtype=dtype)
    else:
        check(lambda t: op(t, c), lambda t: reference(t, c), x, dtype=dtype)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + e**-x)`` in float64, written independently of minidl's tanh form."""
    return np.exp(-np.logaddexp(0.0, -x))


UNARY = {
    "neg": (lambda t: -t, np.negative, NONZERO),
    "exp": (minidl.exp, np.exp, NONZERO),
    "log": (minidl.log, np.log, POSITIVE),
    "sqrt": (minidl.sqrt, np.sqrt, POSITIVE),
    "abs": (lambda t: t.abs(), np.abs, NONZERO),
    "relu": (minidl.relu, lambda x: np.maximum(x, 0.0), NONZERO),
    "tanh": (minidl.tanh, np.tanh, NONZERO),
    "sigmoid": (minidl.sigmoid, _sigmoid, NONZERO),
}


@PROPERTY
@pytest.mark.parametrize("name", list(UNARY))
@given(data=st.data(), shape=SHAPES, dtype=DTYPES)
def test_unary_ops_equal_numpy(name, data, shape, dtype):
    op, reference, elements = UNARY[name]
    check(op, reference, data.draw(values(shape, elements), label="x"), dtype=dtype)


FINITE = {
    np.float32: st.floats(-(2.0**100), 2.0**100, width=32),
    np.float64: st.floats(-(2.0**1000), 2.0**1000),
}


@settings(PROPERTY, max_examples=60)
@given(data=st.data(), shape=SHAPES, dtype=DTYPES)
def test_sigmoid_is_accurate_for_any_finite_input(data, shape, dtype):
    x = data.draw(hnp.arrays(dtype, shape, elements=FINITE[dtype]), label="x")
    out = minidl.sigmoid(minidl.tensor(x)).data
    assert out.dtype == dtype and np.all((out >= 0) & (out <= 1))
    # The absolute error of 0.5 (1 + tanh(x / 2)) is a rounding of 1, never more.
    np.testing.assert_allclose(out, _sigmoid(x.astype(np.float64)), rtol=0,
                               atol=2 * np.finfo(dtype).eps)


# --- Reductions -------------------------------------------------------------------


@st.composite
def axes(draw, ndim: int):
    """``None``, one axis, or a tuple of distinct axes (maybe empty), each maybe negative."""
    kind = draw(st.sampled_from(["none", "int", "tuple"] if ndim else ["none", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        axis = draw(st.integers(0, ndim - 1))
        return axis - ndim if draw(st.booleans()) else axis
    chosen = draw(st.permutations(range(ndim)))[: draw(st.integers(0, ndim))]
    return tuple(a - ndim if draw(st.booleans()) else a for a in chosen)


@PROPERTY
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
@given(data=st.data(), shape=SHAPES, dtype=DTYPES, keepdims=st.booleans())
def test_reductions_over_any_axes_equal_numpy(name, data, shape, dtype, keepdims):
    axis = data.draw(axes(len(shape)), label="axis")
    x = data.draw(distinct(shape), label="x")  # distinct: no tie at the max or min
    check(
        lambda t: getattr(t, name)(axis=axis, keepdims=keepdims),
        lambda v: getattr(np, name)(v, axis=axis, keepdims=keepdims),
        x,
        dtype=dtype,
    )


# --- Matrix products --------------------------------------------------------------


@st.composite
def matmul_shapes(draw) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Operands of ``a @ b``: 1-D vectors, matrices, and stacks whose batches broadcast."""
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))
    a = draw(st.sampled_from([(k,), batch.input_shapes[0] + (m, k)]))
    b = draw(st.sampled_from([(k,), batch.input_shapes[1] + (k, n)]))
    return a, b


@PROPERTY
@given(data=st.data(), shapes=matmul_shapes(), dtype=DTYPES)
def test_matmul_of_vectors_matrices_and_broadcast_stacks(data, shapes, dtype):
    a = data.draw(values(shapes[0]), label="a")
    b = data.draw(values(shapes[1]), label="b")
    check(lambda x, y: x @ y, np.matmul, a, b, dtype=dtype)


@PROPERTY
@given(
    data=st.data(),
    batch=hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),
    features=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    bias=st.booleans(),
    dtype=DTYPES,
)
def test_linear_equals_x_times_w_transposed_plus_b(data, batch, features, bias, dtype):
    fan_in, fan_out = features
    x = data.draw(values(batch + (fan_in,)), label="x")
    w = data.draw(values((fan_out, fan_in)), label="w")
    if bias:
        b = data.draw(values((fan_out,)), label="b")
        check(F.linear, lambda x, w, b: x @ w.T + b, x, w, b, dtype=dtype)
    else:
        check(F.linear, lambda x, w: x @ w.T, x, w, dtype=dtype)


# --- Shapes -----------------------------------------------------------------------


@st.composite
def reshapes(draw, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape of the same size: the sides shuffled, 1s put in or taken out, maybe one -1."""
    sides = [s for s in shape if s != 1] + [1] * draw(st.integers(0, 2))
    sides = list(draw(st.permutations(sides)))
    if sides and draw(st.booleans()):
        sides[draw(st.integers(0, len(sides) - 1))] = -1
    return tuple(sides)


@PROPERTY
@given(data=st.data(), shape=SHAPES, dtype=DTYPES)
def test_reshape_to_any_shape_of_the_same_size(data, shape, dtype):
    target = data.draw(reshapes(shape), label="target")
    x = data.draw(values(shape), label="x")
    check(lambda t: t.reshape(target), lambda v: v.reshape(target), x, dtype=dtype)


@PROPERTY
@given(data=st.data(), shape=SHAPES, dtype=DTYPES)
def test_transpose_by_any_permutation(data, shape, dtype):
    order = tuple(data.draw(st.permutations(range(len(shape))), label="axes"))
    x = data.draw(values(shape), label="x")
    check(lambda t: t.transpose(order), lambda v: v.transpose(order), x, dtype=dtype)
    check(lambda t: t.T, lambda v: v.T, x, dtype=dtype)


@st.composite
def indices(draw, shape: tuple[int, ...]):
    """A basic index (ints, slices with any step, None, Ellipsis) or integer arrays with repeats."""
    if draw(st.booleans()):
        rows = draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=1, max_size=5))
        return np.array(rows)  # repeats allowed: their gradients must add up
    parts = []
    for side in shape[: draw(st.integers(0, len(shape)))]:
        if draw(st.booleans()):
            parts.append(draw(st.integers(-side, side - 1)))
        else:
            start, stop = draw(st.integers(-side, side)), draw(st.integers(-side, side))
            step = draw(st.sampled_from([1, 2, -1, -2]))
            parts.append(slice(start, stop, step))
    if draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), None)
    if draw(st.booleans()):
        parts.append(Ellipsis)
    return tuple(parts)


@PROPERTY
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), dtype=DTYPES)
def test_indexing_equals_numpy_and_scatters_gradients_back(data, shape, dtype):
    index = data.draw(indices(shape), label="index")
    x = data.draw(values(shape), label="x")
    check(lambda t: t[index], lambda v: v[index], x, dtype=dtype)


@PROPERTY
@given(
    data=st.data(),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=3),
    count=st.integers(1, 3),
    dtype=DTYPES,
)
def test_concatenate_and_stack_along_any_axis(data, shape, count, dtype):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    # Concatenated tensors agree on every side but the axis they are joined along.
    parts = []
    for i in range(count):
        side = data.draw(st.integers(1, 3), label=f"side {i}")
        part_shape = shape[: axis % len(shape)] + (side,) + shape[axis % len(shape) + 1 :]
        parts.append(data.draw(values(part_shape), label=f"part {i}"))
    check(
        lambda *t: minidl.concatenate(t, axis=axis),
        lambda *v: np.concatenate(v, axis=axis),
        *parts,
        dtype=dtype,
    )
    new_axis = data.draw(st.integers(-len(shape) - 1, len(shape)), label="stack axis")
    same = [data.draw(values(shape), label=f"stacked {i}") for i in range(count)]
    check(
        lambda *t: minidl.stack(t, axis=new_axis),
        lambda *v: np.stack(v, axis=new_axis),
        *same,
        dtype=dtype,
    )


@PROPERTY
@given(
    data=st.data(),
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=4),
    dtype=DTYPES,
)
def test_where_broadcasts_condition_and_both_branches(data, shapes, dtype):
    condition = data.draw(hnp.arrays(np.bool_, shapes.input_shapes[0]), label="condition")
    a = data.draw(values(shapes.input_shapes[1]), label="a")
    b = data.draw(values(shapes.input_shapes[2]), label="b")
    check(
        lambda x, y: minidl.where(condition, x, y),
        lambda x, y: np.where(condition, x, y),
        a,
        b,
        dtype=dtype,
    )


# --- Softmax and losses -----------------------------------------------------------


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """In float64, shifted by the max: ``logaddexp.reduce`` loses the digits of a log 2
    next to a logit of 1e10."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


@PROPERTY
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), dtype=DTYPES)
def test_softmax_along_any_axis(name, data, shape, dtype):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    x = data.draw(values(shape), label="x")
    if name == "softmax":
        check(lambda t: F.softmax(t, axis), lambda v: np.exp(_log_softmax(v, axis)), x, dtype=dtype)
    else:
        check(lambda t: F.log_softmax(t, axis), lambda v: _log_softmax(v, axis), x, dtype=dtype)


@settings(PROPERTY, max_examples=60)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=2, max_dims=2, max_side=5), dtype=DTYPES)
def test_softmax_and_cross_entropy_stay_finite_for_huge_logits(data, shape, dtype):
    logits = data.draw(hnp.arrays(dtype, shape, elements=FINITE[dtype]), label="logits")
    targets = np.array(data.draw(st.lists(st.integers(0, shape[1] - 1), min_size=shape[0],
                                          max_size=shape[0]), label="targets"))
    want = _log_softmax(logits.astype(np.float64), axis=1)
    log_probs = F.log_softmax(minidl.tensor(logits), axis=1).data
    assert log_probs.dtype == dtype and np.all(np.isfinite(log_probs) | np.isinf(want))
    # Shifting by the row's max costs one rounding of each logit's distance from it.
    np.testing.assert_allclose(log_probs, want, rtol=4 * np.finfo(dtype).eps, atol=1e-6)
    probs = F.softmax(minidl.tensor(logits), axis=1).data
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=shape[1] * np.finfo(dtype).eps)
    loss = F.cross_entropy(minidl.tensor(logits), targets).item()
    expected = -want[np.arange(shape[0]), targets].mean()
    assert math.isfinite(loss) or math.isinf(expected)
    assert loss == pytest.approx(expected, rel=8 * float(np.finfo(dtype).eps), abs=1e-6)


@PROPERTY
@given(
    data=st.data(),
    batch=st.integers(1, 4),
    classes=st.integers(1, 5),
    dtype=DTYPES,
)
def test_cross_entropy_is_the_mean_negative_log_softmax_of_the_target(data, batch, classes, dtype):
    logits = data.draw(values((batch, classes)), label="logits")
    targets = np.array(data.draw(st.lists(st.integers(0, classes - 1), min_size=batch,
                                          max_size=batch), label="targets"))
    check(
        lambda t: F.cross_entropy(t, targets),
        lambda v: -_log_softmax(v, axis=1)[np.arange(batch), targets].mean(),
        logits,
        dtype=dtype,
    )


@PROPERTY
@given(data=st.data(), shape=SHAPES, dtype=DTYPES)
def test_mse_loss_in_both_arguments(data, shape, dtype):
    x = data.draw(values(shape), label="input")
    y = data.draw(values(shape), label="target")
    check(F.mse_loss, lambda a, b: np.mean((a - b) ** 2), x, y, dtype=dtype)


# --- Batch normalization ----------------------------------------------------------


@PROPERTY
@given(
    data=st.data(),
    shape=st.sampled_from([(2, 1), (3, 2), (4, 3), (2, 2, 3), (1, 2, 2, 2), (2, 3, 1, 2)]),
    dtype=DTYPES,
    momentum=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
)
def test_batch_norm_normalizes_each_channel_and_tracks_running_stats(data, shape, dtype, momentum):
    x = data.draw(distinct(shape), label="x")  # distinct: every channel has a variance
    channels, axes_ = shape[1], (0,) + tuple(range(2, len(shape)))
    weight = data.draw(values((channels,)), label="weight")
    bias = data.draw(values((channels,)), label="bias")
    view = (1, channels) + (1,) * (len(shape) - 2)

    def reference(x, w, b):
        mean, var = x.mean(axis=axes_, keepdims=True), x.var(axis=axes_, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-5) * w.reshape(view) + b.reshape(view)

    check(lambda t, w, b: F.batch_norm(t, None, None, w, b, training=True), reference,
          x, weight, bias, dtype=dtype)

    running_mean, running_var = np.zeros(channels, dtype), np.ones(channels, dtype)
    F.batch_norm(minidl.tensor(x.astype(dtype)), running_mean, running_var,
                 minidl.tensor(weight.astype(dtype)), minidl.tensor(bias.astype(dtype)),
                 training=True, momentum=momentum)
    xd = x.astype(dtype).astype(np.float64)
    np.testing.assert_allclose(running_mean, momentum * xd.mean(axis=axes_), **tolerance(dtype))
    unbiased = xd.var(axis=axes_, ddof=1)
    np.testing.assert_allclose(running_var, (1 - momentum) + momentum * unbiased,
                               **tolerance(dtype))


# --- Convolution and pooling ------------------------------------------------------


def _pad(x: np.ndarray, padding: tuple[int, int], value: float = 0.0) -> np.ndarray:
    (ph, pw) = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _windows(x: np.ndarray, kernel, stride) -> np.ndarray:
    """Every window of an NCHW batch, as (N, C, OH, OW, KH, KW), by plain loops."""
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    out = np.empty(x.shape[:2] + (oh, ow, kh, kw))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = x[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
    return out


@st.composite
def pool_geometry(draw, shape: tuple[int, ...], half_kernel_padding: bool):
    """A kernel that fits the padded input, a stride, and a padding (at most half the kernel
    where pooling requires it)."""
    h, w = shape[2], shape[3]
    padding = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    low = (2 * padding[0] if half_kernel_padding else 1, 2 * padding[1] if half_kernel_padding
           else 1)
    kernel = (
        draw(st.integers(max(low[0], 1), h + 2 * padding[0])),
        draw(st.integers(max(low[1], 1), w + 2 * padding[1])),
    )
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    return kernel, stride, padding


NCHW = st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 4), st.integers(1, 4))
BACKENDS = st.sampled_from(K.available())  # cython too, where it is built


@PROPERTY
@given(data=st.data(), shape=NCHW, filters=st.integers(1, 2), bias=st.booleans(), dtype=DTYPES,
       backend=BACKENDS)
def test_conv2d_equals_a_loop_over_windows(data, shape, filters, bias, dtype, backend):
    kernel, stride, padding = data.draw(pool_geometry(shape, False), label="geometry")
    x = data.draw(values(shape), label="x")
    w = data.draw(values((filters, shape[1]) + kernel), label="w")

    def reference(x, w, b=None):
        win = _windows(_pad(x, padding), kernel, stride)
        out = np.einsum("nchwij,fcij->nfhw", win, w)
        return out if b is None else out + b[None, :, None, None]

    with K.use(backend):
        if bias:
            b = data.draw(values((filters,)), label="b")
            check(lambda x, w, b: F.conv2d(x, w, b, stride, padding), reference, x, w, b,
                  dtype=dtype)
        else:
            check(lambda x, w: F.conv2d(x, w, None, stride, padding), reference, x, w,
                  dtype=dtype)


@PROPERTY
@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
@given(data=st.data(), shape=NCHW, dtype=DTYPES, backend=BACKENDS)
def test_pooling_equals_a_loop_over_windows(name, data, shape, dtype, backend):
    kernel, stride, padding = data.draw(pool_geometry(shape, True), label="geometry")
    x = data.draw(distinct(shape), label="x")  # distinct: one winner per window
    if name == "max_pool2d":
        def reference(v):
            return _windows(_pad(v, padding, -np.inf), kernel, stride).max(axis=(4, 5))
    else:  # zero padding counts in the mean, as in PyTorch's default
        def reference(v):
            return _windows(_pad(v, padding), kernel, stride).mean(axis=(4, 5))

    with K.use(backend):
        check(lambda t: getattr(F, name)(t, kernel, stride, padding), reference, x, dtype=dtype)
