"""Convolution and pooling on NCHW batches, built on the im2col kernels.

A convolution is one matrix product once every receptive field is unfolded
into a row (:func:`minidl.kernels.im2col`); its input gradient folds the rows
back with the adjoint, :func:`minidl.kernels.col2im`. Both kernels run in the
compiled backend by default; ``minidl.kernels.use("numpy")`` swaps in the
NumPy reference without changing a line here.
"""

from __future__ import annotations

import numpy as np

import minidl.kernels as K
from minidl.autograd.function import Function
from minidl.autograd.tensor import Tensor


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, (int, np.integer)) else tuple(value)


class Conv2d(Function):
    """``out[n, f] = sum_c w[f, c] * x[n, c] (cross-correlation) + b[f]`` via im2col."""

    def __init__(self, stride=1, padding=0):
        self.stride, self.padding = _pair(stride), _pair(padding)

    def forward(self, x, w, b=None):
        if x.ndim != 4 or w.ndim != 4:
            raise ValueError(f"conv2d expects x of shape (N, C, H, W) and weight (F, C, KH, KW), "
                             f"got {x.shape} and {w.shape}")
        if x.shape[1] != w.shape[1]:
            raise ValueError(f"conv2d: input has {x.shape[1]} channels (shape {x.shape}) but the "
                             f"weight of shape {w.shape} expects {w.shape[1]}")
        if b is not None and b.shape != (w.shape[0],):
            raise ValueError(f"conv2d: the bias has shape {b.shape}, but the weight of shape "
                             f"{w.shape} has {w.shape[0]} filters: expected ({w.shape[0]},)")
        # BEGIN SOLUTION conv2d
        # unfold x with K.im2col, then one matrix product with the weight, plus the bias
        n, f = x.shape[0], w.shape[0]
        self.x_shape, self.w = x.shape, w
        self.cols = K.im2col(x, w.shape[2:], self.stride, self.padding)  # (C*KH*KW, N*OH*OW)
        out = w.reshape(f, -1) @ self.cols  # (F, N*OH*OW): one BLAS call
        if b is not None:
            out += b[:, None]
        oh, ow = _out_size(x.shape, w.shape[2:], self.stride, self.padding)
        return np.ascontiguousarray(out.reshape(f, n, oh, ow).transpose(1, 0, 2, 3))
        # END SOLUTION

    def backward(self, g):
        # BEGIN SOLUTION conv2d
        # gradients of the matrix product: K.col2im for x, g @ cols.T for w, sum for b
        w = self.w
        f = w.shape[0]
        g2 = g.transpose(1, 0, 2, 3).reshape(f, -1)  # back to (F, N*OH*OW)
        gx = gw = None
        if self.needs_grad[0]:
            gx = K.col2im(
                w.reshape(f, -1).T @ g2, self.x_shape, w.shape[2:], self.stride, self.padding
            )
        if self.needs_grad[1]:
            gw = (g2 @ self.cols.T).reshape(w.shape)
        if len(self.needs_grad) == 2:
            return gx, gw
        return gx, gw, g2.sum(axis=1)
        # END SOLUTION


def _out_size(x_shape, kernel, stride, padding) -> tuple[int, int]:
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    return (x_shape[2] + 2 * ph - kh) // sh + 1, (x_shape[3] + 2 * pw - kw) // sw + 1


class MaxPool2d(Function):
    def __init__(self, kernel_size, stride=None, padding=0):
        self.args = (
            _pair(kernel_size),
            _pair(stride if stride is not None else kernel_size),
            _pair(padding),
        )

    def forward(self, x):
        self.x_shape = x.shape
        out, self.indices = K.maxpool2d_forward(x, *self.args)
        return out

    def backward(self, g):
        return K.maxpool2d_backward(np.ascontiguousarray(g), self.indices, self.x_shape, *self.args)


class AvgPool2d(Function):
    """Average over each window, zero padding included in the count (PyTorch's default)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        self.args = (
            _pair(kernel_size),
            _pair(stride if stride is not None else kernel_size),
            _pair(padding),
        )

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"avg_pool2d expects an (N, C, H, W) input, got shape {x.shape}")
        n, c, h, w = self.x_shape = x.shape
        # Pool every channel as its own one-channel image: one column per window.
        cols = K.im2col(x.reshape(n * c, 1, h, w), *self.args)  # (KH*KW, N*C*OH*OW)
        oh, ow = _out_size(x.shape, *self.args)
        return cols.mean(axis=0).reshape(n, c, oh, ow)

    def backward(self, g):
        n, c, h, w = self.x_shape
        (kh, kw) = self.args[0]
        share = g.reshape(1, -1) / (kh * kw)  # each window's gradient, split over its pixels
        gcols = np.ascontiguousarray(np.broadcast_to(share, (kh * kw, share.shape[1])))
        return K.col2im(gcols, (n * c, 1, h, w), *self.args).reshape(self.x_shape)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | tuple = 1,
           padding: int | tuple = 0) -> Tensor:
    """2-D convolution (cross-correlation, as in every framework) of an NCHW batch.

    Parameters
    ----------
    x : Tensor
        Shape (N, C, H, W).
    weight : Tensor
        Shape (F, C, KH, KW).
    bias : Tensor, optional
        Shape (F,).
    stride, padding : int or (int, int)
        Step of the window and zero padding on each side.

    Returns
    -------
    Tensor
        Shape (N, F, OH, OW) with ``OH = (H + 2 ph - KH) // sh + 1``.
    """
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d.apply(*inputs, stride=stride, padding=padding)


def max_pool2d(x: Tensor, kernel_size: int | tuple, stride: int | tuple | None = None,
               padding: int | tuple = 0) -> Tensor:
    """Max over each window of an NCHW batch; ``stride`` defaults to ``kernel_size``."""
    return MaxPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding)


def avg_pool2d(x: Tensor, kernel_size: int | tuple, stride: int | tuple | None = None,
               padding: int | tuple = 0) -> Tensor:
    """Mean over each window of an NCHW batch; ``stride`` defaults to ``kernel_size``."""
    return AvgPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding)
