"""Softmax and log-softmax, numerically stable, and GELU: each one op with its own backward."""

from __future__ import annotations

import math

import numpy as np

from minidl.autograd.function import Function
from minidl.autograd.tensor import Tensor, axis_or_dim


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """``x - log(sum(exp(x)))`` along ``axis``, shifted by the max so exp cannot overflow."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def forward(self, x):
        self.out = _log_softmax(x, self.axis)
        return self.out

    def backward(self, g):
        # y = x - lse(x), so dy_i/dx_j = [i == j] - softmax_j.
        return g - np.exp(self.out) * g.sum(axis=self.axis, keepdims=True)


class Softmax(Function):
    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def forward(self, x):
        self.out = np.exp(_log_softmax(x, self.axis))
        return self.out

    def backward(self, g):
        # ds_i/dx_j = s_i ([i == j] - s_j)
        s = self.out
        return s * (g - (g * s).sum(axis=self.axis, keepdims=True))


def softmax(x: Tensor, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Softmax along ``axis``: ``exp(x) / sum(exp(x))``, computed without overflow.

    ``axis`` (or ``dim``, PyTorch's name) defaults to the last axis.

    Examples
    --------
    >>> import minidl, minidl.functional as F
    >>> F.softmax(minidl.tensor([0.0, 0.0])).data
    array([0.5, 0.5], dtype=float32)
    """
    axis = axis_or_dim("softmax", axis, dim)
    return Softmax.apply(x, axis=-1 if axis is None else axis)


def log_softmax(x: Tensor, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """``log(softmax(x))`` along ``axis`` (or ``dim``; the last by default), stable for any
    magnitude of ``x``."""
    axis = axis_or_dim("log_softmax", axis, dim)
    return LogSoftmax.apply(x, axis=-1 if axis is None else axis)


# NumPy has no erf; the C library's, through Python's math module, one element at a time.
# Exact, but about 100 ns per element: approximate="tanh" is the fast one.
_erf = np.vectorize(math.erf, otypes=[np.float64])
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715  # the cubic term of Hendrycks & Gimpel's tanh approximation


class GELU(Function):
    """``x * Phi(x)``, Phi the standard normal CDF, exactly or in the tanh approximation.

    Exact::

        y  = x * Phi(x),   Phi(x) = (1 + erf(x / sqrt(2))) / 2
        y' = Phi(x) + x * phi(x),   phi(x) = exp(-x**2 / 2) / sqrt(2 pi)

    Tanh (Hendrycks & Gimpel, 2016, section 2), with ``u = sqrt(2/pi) (x + 0.044715 x**3)``::

        y  = x * (1 + tanh(u)) / 2
        y' = (1 + tanh(u)) / 2 + x * (1 - tanh(u)**2) / 2 * sqrt(2/pi) (1 + 3 * 0.044715 x**2)
    """

    def __init__(self, approximate: str = "none") -> None:
        self.approximate = approximate

    def forward(self, x):
        self.x = x
        if self.approximate == "tanh":
            self.t = np.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x**3))
            return 0.5 * x * (1 + self.t)
        self.cdf = (0.5 * (1 + _erf(x / math.sqrt(2.0)))).astype(x.dtype)  # erf in float64
        return x * self.cdf

    def backward(self, g):
        x = self.x
        if self.approximate == "tanh":
            du = _SQRT_2_OVER_PI * (1 + 3 * _GELU_CUBIC * x**2)
            return g * (0.5 * (1 + self.t) + 0.5 * x * (1 - self.t**2) * du)
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return g * (self.cdf + x * pdf)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit ``x * Phi(x)`` (Hendrycks & Gimpel, 2016), as in PyTorch.

    Parameters
    ----------
    x : Tensor
    approximate : {"none", "tanh"}, default "none"
        ``"none"`` uses the exact normal CDF (through ``math.erf``, element by
        element: slow on big tensors); ``"tanh"`` the tanh approximation that
        GPT-2 and BERT used, all in NumPy.

    Raises
    ------
    ValueError
        If ``approximate`` is neither.

    Examples
    --------
    >>> import minidl, minidl.functional as F
    >>> F.gelu(minidl.tensor([-1.0, 0.0, 1.0])).data
    array([-0.15865526,  0.        ,  0.8413447 ], dtype=float32)
    """
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(x, approximate=approximate)
