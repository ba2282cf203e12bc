"""Softmax and log-softmax, numerically stable, each one op with its own backward."""

from __future__ import annotations

import numpy as np

from minidl.autograd.function import Function
from minidl.autograd.tensor import Tensor


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


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Softmax along ``axis``: ``exp(x) / sum(exp(x))``, computed without overflow.

    Examples
    --------
    >>> import minidl, minidl.functional as F
    >>> F.softmax(minidl.tensor([0.0, 0.0])).data
    array([0.5, 0.5], dtype=float32)
    """
    return Softmax.apply(x, axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """``log(softmax(x))`` along ``axis``, stable for any magnitude of ``x``."""
    return LogSoftmax.apply(x, axis=axis)
