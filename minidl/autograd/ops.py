"""The differentiable ops: one small Function each, forward and backward together.

Read any one of them and you can write the next. ``forward`` receives NumPy
arrays and keeps what ``backward`` needs; ``backward`` receives the gradient of
the loss with respect to the output and returns one gradient per input (or a
single array for ops with one input). :func:`unbroadcast` sums a gradient back
to its input's shape wherever NumPy broadcasting stretched that input.

Derivatives at a glance (``g`` is the incoming gradient, ``y`` the output)::

    a + b      ->  g, g                 exp(x)    ->  g * y
    a - b      ->  g, -g                log(x)    ->  g / x
    a * b      ->  g * b, g * a         sqrt(x)   ->  g / (2 y)
    a / b      ->  g / b, -g a / b**2   abs(x)    ->  g * sign(x)
    a ** b     ->  g b a**(b-1), g y log(a)         relu(x)   ->  g * (x > 0)
    a @ b      ->  g @ b.T, a.T @ g     tanh(x)   ->  g * (1 - y**2)
    -x         ->  -g                   sigmoid   ->  g * y * (1 - y)
    x.astype   ->  g cast back to x's dtype
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from minidl.autograd.function import Function, unbroadcast
from minidl.autograd.tensor import Tensor, as_tensor, axis_or_dim


# ------------------------------------------------------------------ binary
class Add(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(g, self.shapes[1])


class Sub(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(-g, self.shapes[1])


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        a, b = self.a, self.b
        ga = unbroadcast(g * b, a.shape) if self.needs_grad[0] else None
        gb = unbroadcast(g * a, b.shape) if self.needs_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        a, b = self.a, self.b
        ga = unbroadcast(g / b, a.shape) if self.needs_grad[0] else None
        gb = unbroadcast(-g * a / (b * b), b.shape) if self.needs_grad[1] else None
        return ga, gb


class Pow(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, g):
        a, b = self.a, self.b
        ga = unbroadcast(g * b * a ** (b - 1), a.shape) if self.needs_grad[0] else None
        # d(a**b)/db = a**b * log(a): only asked for when the exponent is learned.
        gb = unbroadcast(g * self.out * np.log(a), b.shape) if self.needs_grad[1] else None
        return ga, gb


class MatMul(Function):
    """``a @ b`` with NumPy's rules: 1-D operands, batches, broadcasting."""

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul needs arrays with at least one dimension, not scalars")
        inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if a.shape[-1] != inner_b:
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                f"{a.shape[-1]} (last axis of the left) != {inner_b} "
                f"({'axis 0' if b.ndim == 1 else 'second-to-last axis'} of the right)"
            )
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        a, b = self.a, self.b
        # BEGIN SOLUTION matmul-backward
        # return (g @ b^T, a^T @ g), treating 1-D operands as a row or a column
        if a.ndim == 1 and b.ndim == 1:  # a dot product: g is a scalar
            return g * b, g * a
        # Treat 1-D operands as a row (left) or a column (right), as matmul does.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        if b.ndim == 1:
            g = np.expand_dims(g, -1)
        ga = gb = None
        if self.needs_grad[0]:
            ga = g @ np.swapaxes(b2, -1, -2)
            ga = unbroadcast(ga[..., 0, :] if a.ndim == 1 else ga, a.shape)
        if self.needs_grad[1]:
            gb = np.swapaxes(a2, -1, -2) @ g
            gb = unbroadcast(gb[..., 0] if b.ndim == 1 else gb, b.shape)
        return ga, gb
        # END SOLUTION


class Maximum(Function):
    """Elementwise maximum; where the inputs tie, each gets half the gradient."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return np.maximum(a, b)

    def backward(self, g):
        a, b = self.a, self.b
        share = ((a > b) + 0.5 * (a == b)).astype(g.dtype)
        return unbroadcast(g * share, a.shape), unbroadcast(g * (1 - share), b.shape)


class Minimum(Function):
    """Elementwise minimum; where the inputs tie, each gets half the gradient."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return np.minimum(a, b)

    def backward(self, g):
        a, b = self.a, self.b
        share = ((a < b) + 0.5 * (a == b)).astype(g.dtype)
        return unbroadcast(g * share, a.shape), unbroadcast(g * (1 - share), b.shape)


class Where(Function):
    """``where(condition, a, b)``; the condition is data, not differentiated."""

    def __init__(self, condition: np.ndarray) -> None:
        self.condition = condition

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return np.where(self.condition, a, b)

    def backward(self, g):
        zero = np.zeros((), dtype=g.dtype)
        ga = unbroadcast(np.where(self.condition, g, zero), self.shapes[0])
        gb = unbroadcast(np.where(self.condition, zero, g), self.shapes[1])
        return ga, gb


# ------------------------------------------------------------------- unary
class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


class Exp(Function):
    def forward(self, x):
        self.out = np.exp(x)
        return self.out

    def backward(self, g):
        return g * self.out


class Log(Function):
    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, g):
        return g / self.x


class Sqrt(Function):
    def forward(self, x):
        self.out = np.sqrt(x)
        return self.out

    def backward(self, g):
        return g / (2 * self.out)


class Abs(Function):
    def forward(self, x):
        self.x = x
        return np.abs(x)

    def backward(self, g):
        return g * np.sign(self.x)


class ReLU(Function):
    def forward(self, x):
        self.positive = x > 0
        return np.where(self.positive, x, 0).astype(x.dtype, copy=False)

    def backward(self, g):
        return g * self.positive


class Tanh(Function):
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, g):
        return g * (1 - self.out * self.out)


class Sigmoid(Function):
    def forward(self, x):
        # 1 / (1 + e**-x) overflows for large negative x; this form cannot.
        self.out = 0.5 * (1 + np.tanh(0.5 * x))
        return self.out

    def backward(self, g):
        return g * self.out * (1 - self.out)


class Cast(Function):
    """``x.astype(dtype)`` between floating dtypes; the gradient goes back in x's dtype."""

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.source = x.dtype
        return x.astype(self.dtype)

    def backward(self, g):
        return g.astype(self.source)


# -------------------------------------------------------------- reductions
class Sum(Function):
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.shape = x.shape
        return np.sum(x, axis=self.axis, keepdims=self.keepdims)

    def backward(self, g):
        # BEGIN SOLUTION reduction-backward
        # put the reduced axes back into g, then broadcast it to the input's shape
        return np.broadcast_to(
            _keep_reduced_axes(g, self.shape, self.axis, self.keepdims), self.shape
        )
        # END SOLUTION


class Mean(Function):
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.shape = x.shape
        out = np.mean(x, axis=self.axis, keepdims=self.keepdims)
        self.count = x.size // max(out.size, 1) if x.size else 0
        return out

    def backward(self, g):
        # BEGIN SOLUTION reduction-backward
        # like Sum's backward, divided by the number of elements each output averaged
        g = _keep_reduced_axes(g, self.shape, self.axis, self.keepdims)
        return np.broadcast_to(g / self.count, self.shape)
        # END SOLUTION


class Max(Function):
    """Maximum over axes; tied maxima share the gradient equally."""

    reduce = staticmethod(np.max)

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        if x.size == 0:
            raise ValueError(f"{self.name.lower()}() of an empty tensor of shape {x.shape}")
        self.x = x
        self.out = self.reduce(x, axis=self.axis, keepdims=True)
        return self.out if self.keepdims else np.squeeze(self.out, axis=self.axis)

    def backward(self, g):
        g = _keep_reduced_axes(g, self.x.shape, self.axis, self.keepdims)
        winners = self.x == self.out
        # Counted in g's dtype: an int count would promote a float32 gradient to float64.
        return g * winners / winners.sum(axis=self.axis, keepdims=True, dtype=g.dtype)


class Min(Max):
    """Minimum over axes; tied minima share the gradient equally."""

    reduce = staticmethod(np.min)


def _keep_reduced_axes(g: np.ndarray, shape: tuple, axis, keepdims: bool) -> np.ndarray:
    """Reinsert the axes a reduction removed, so ``g`` broadcasts against ``shape``."""
    if keepdims or axis is None:
        return g.reshape([1] * len(shape)) if not keepdims else g
    axes = (axis,) if np.isscalar(axis) else axis
    return np.expand_dims(g, tuple(a % len(shape) for a in axes))


# ------------------------------------------------------------------ shapes
class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(
                f"cannot reshape a tensor of shape {x.shape} ({x.size} elements) into {self.shape}"
            ) from None

    def backward(self, g):
        return g.reshape(self.in_shape)


class Transpose(Function):
    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        self.axes = tuple(range(x.ndim))[::-1] if self.axes is None else tuple(self.axes)
        if sorted(a % max(x.ndim, 1) for a in self.axes) != list(range(x.ndim)):
            raise ValueError(
                f"transpose: axes {self.axes} are not a permutation of a {x.ndim}-d tensor's axes"
            )
        return x.transpose(self.axes)

    def backward(self, g):
        return g.transpose(np.argsort(self.axes))


class GetItem(Function):
    """``x[index]``; backward scatters the gradient back, adding repeats."""

    def __init__(self, index):
        self.index = _unwrap_index(index)

    def forward(self, x):
        self.shape, self.dtype = x.shape, x.dtype
        try:
            return x[self.index]
        except IndexError as exc:
            raise IndexError(
                f"index {self.index!r} is invalid for a tensor of shape {x.shape}: {exc}"
            ) from None

    def backward(self, g):
        grad = np.zeros(self.shape, dtype=g.dtype)
        if _is_basic_index(self.index):
            grad[self.index] = g  # a view of distinct elements: plain assignment
        else:
            np.add.at(grad, self.index, g)  # an index may repeat: add each occurrence
        return grad


def _unwrap_index(index: Any) -> Any:
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


def _is_basic_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in parts)


class Concatenate(Function):
    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        out = np.concatenate(xs, axis=self.axis)  # first: it names a bad axis; shape[axis] not
        self.sizes = [x.shape[self.axis] for x in xs]
        return out

    def backward(self, g):
        return tuple(np.split(g, np.cumsum(self.sizes)[:-1], axis=self.axis))


class Stack(Function):
    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        return np.stack(xs, axis=self.axis)

    def backward(self, g):
        return tuple(np.moveaxis(g, self.axis, 0))


# --------------------------------------------------- functions on tensors
def concatenate(tensors: Sequence[Any], axis: int | None = None, *,
                dim: int | None = None) -> Tensor:
    """Join tensors along an existing axis (differentiable ``np.concatenate``).

    ``axis`` (or ``dim``, PyTorch's name) defaults to 0. :func:`cat` is the
    same function under PyTorch's name.
    """
    if len(tensors) == 0:
        raise ValueError("concatenate needs at least one tensor")
    axis = axis_or_dim("concatenate", axis, dim)
    return Concatenate.apply(*tensors, axis=0 if axis is None else axis)


#: PyTorch's name for :func:`concatenate`: ``minidl.cat([a, b], dim=1)``.
cat = concatenate


def stack(tensors: Sequence[Any], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Join tensors along a new axis (differentiable ``np.stack``); ``axis``/``dim`` default 0."""
    if len(tensors) == 0:
        raise ValueError("stack needs at least one tensor")
    axis = axis_or_dim("stack", axis, dim)
    return Stack.apply(*tensors, axis=0 if axis is None else axis)


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """Pick ``a`` where ``condition`` holds and ``b`` elsewhere; differentiable in ``a``
    and ``b``."""
    condition = np.asarray(
        condition.data if isinstance(condition, Tensor) else condition, dtype=bool
    )
    return Where.apply(a, b, condition=condition)


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise maximum of two tensors (differentiable; ties share the gradient)."""
    return Maximum.apply(a, b)


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise minimum of two tensors (differentiable; ties share the gradient)."""
    return Minimum.apply(a, b)


def exp(x: Any) -> Tensor:
    """``e ** x`` elementwise."""
    return Exp.apply(x)


def log(x: Any) -> Tensor:
    """Natural logarithm elementwise."""
    return Log.apply(x)


def sqrt(x: Any) -> Tensor:
    """Square root elementwise."""
    return Sqrt.apply(x)


def tanh(x: Any) -> Tensor:
    """Hyperbolic tangent elementwise."""
    return Tanh.apply(x)


def sigmoid(x: Any) -> Tensor:
    """Logistic sigmoid elementwise."""
    return Sigmoid.apply(x)


def relu(x: Any) -> Tensor:
    """``max(x, 0)`` elementwise."""
    return ReLU.apply(x)


__all__ = [
    "Add", "Sub", "Mul", "Div", "Pow", "MatMul", "Maximum", "Minimum", "Where", "Neg", "Exp",
    "Log", "Sqrt", "Abs", "ReLU", "Tanh", "Sigmoid", "Cast", "Sum", "Mean", "Max", "Min",
    "Reshape", "Transpose", "GetItem", "Concatenate", "Stack", "concatenate", "cat", "stack",
    "where", "maximum", "minimum", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "as_tensor",
]
