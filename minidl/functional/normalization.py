"""Batch normalization (Ioffe & Szegedy, 2015) and layer normalization (Ba et al., 2016),
each one op with its textbook backward."""

from __future__ import annotations

from typing import Any

import numpy as np

from minidl.autograd.function import Function
from minidl.autograd.tensor import Tensor


class BatchNorm(Function):
    """``y = (x - mean) / sqrt(var + eps) * weight + bias`` over every axis but the channels (1)."""

    def __init__(self, mean, var, batch_stats, eps=1e-5):
        # batch_stats: mean and var are this batch's own, so they depend on x too.
        self.mean, self.var, self.batch_stats, self.eps = mean, var, batch_stats, eps

    def forward(self, x, weight, bias):
        self.axes = _channel_free_axes(x)
        shape = [1] * x.ndim
        shape[1] = x.shape[1]
        self.shape = tuple(shape)
        self.inv_std = 1.0 / np.sqrt(self.var + self.eps)
        self.x_hat = (x - self.mean.reshape(self.shape)) * self.inv_std.reshape(self.shape)
        self.weight = weight
        return self.x_hat * weight.reshape(self.shape) + bias.reshape(self.shape)

    def backward(self, g):
        axes, shape = self.axes, self.shape
        gw = (g * self.x_hat).sum(axis=axes)
        gb = g.sum(axis=axes)
        g_hat = g * self.weight.reshape(shape)
        inv_std = self.inv_std.reshape(shape)
        if not self.batch_stats:  # fixed statistics: an affine map
            return g_hat * inv_std, gw, gb
        # The mean and variance depend on every x in the batch too:
        # dx = inv_std * (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat)).
        m = g.size // g.shape[1]
        mean_g = g_hat.sum(axis=axes).reshape(shape) / m
        mean_gx = (g_hat * self.x_hat).sum(axis=axes).reshape(shape) / m
        return inv_std * (g_hat - mean_g - self.x_hat * mean_gx), gw, gb


def batch_norm(x: Tensor, running_mean: np.ndarray | None, running_var: np.ndarray | None,
               weight: Tensor, bias: Tensor, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Normalize ``x`` per channel (axis 1) and apply a learned scale and shift.

    In training, the batch's own mean and (biased) variance normalize it, and
    the running statistics move toward them in place:
    ``running = (1 - momentum) * running + momentum * batch`` (the variance
    with Bessel's correction, as in PyTorch). In evaluation the running
    statistics are used.

    Parameters
    ----------
    x : Tensor
        (N, C) or (N, C, H, W).
    running_mean, running_var : numpy.ndarray or None
        Shape (C,), updated in place in training; None to always use batch statistics.
    weight, bias : Tensor
        Shape (C,).
    training : bool
        Use batch statistics (True) or the running ones (False).
    momentum, eps : float
        Running-average rate and the variance's guard against division by zero.
    """
    if x.ndim < 2 or x.shape[1] != weight.shape[0]:
        raise ValueError(
            f"batch_norm: input of shape {x.shape} does not have {weight.shape[0]} channels "
            "on axis 1"
        )
    use_batch = training or running_mean is None
    if use_batch:
        count = x.size // x.shape[1]
        if count < 2:
            raise ValueError(
                "batch_norm with batch statistics needs more than one value per channel, "
                f"got input {x.shape}"
            )
        axes = _channel_free_axes(x.data)
        mean, var = x.data.mean(axis=axes), x.data.var(axis=axes)
        if training and running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * var * (count / (count - 1))
    else:
        mean, var = running_mean, running_var
    return BatchNorm.apply(x, weight, bias, mean=mean, var=var, batch_stats=use_batch, eps=eps)


def _channel_free_axes(x: np.ndarray) -> tuple[int, ...]:
    """Every axis but the channel axis 1: the axes that batch statistics average over."""
    return (0,) + tuple(range(2, x.ndim))


class LayerNorm(Function):
    """``x_hat = (x - mean) / sqrt(var + eps)`` over the last ``dims`` axes of each sample.

    The same backward as batch normalization's with batch statistics, taken
    over the normalized axes of one sample instead of over the batch:
    ``dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat))``.
    """

    def __init__(self, dims: int, eps: float = 1e-5) -> None:
        self.dims, self.eps = dims, eps

    def forward(self, x):
        self.axes = tuple(range(x.ndim - self.dims, x.ndim))
        mean = x.mean(axis=self.axes, keepdims=True)
        var = x.var(axis=self.axes, keepdims=True)  # biased, as in PyTorch
        self.inv_std = 1.0 / np.sqrt(var + self.eps)
        self.x_hat = (x - mean) * self.inv_std
        return self.x_hat

    def backward(self, g):
        mean_g = g.mean(axis=self.axes, keepdims=True)
        mean_gx = (g * self.x_hat).mean(axis=self.axes, keepdims=True)
        return self.inv_std * (g - mean_g - self.x_hat * mean_gx)


def layer_norm(x: Tensor, normalized_shape: int | tuple[int, ...], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalize each sample over its last axes (Ba et al., 2016), then scale and shift.

    Unlike :func:`batch_norm`, the statistics are each sample's own, so there
    are no running averages and training and evaluation compute the same.
    The scale and shift are ordinary tensor ops after the normalization, so
    their gradients come from autograd (summed over the leading axes by
    broadcasting's backward).

    Parameters
    ----------
    x : Tensor
        Shape (..., \\*normalized_shape).
    normalized_shape : int or tuple of int
        The trailing shape to normalize over; an int means the last axis.
    weight, bias : Tensor, optional
        Shape ``normalized_shape``; omitted, no scale (or no shift).
    eps : float, default 1e-5
        Added to the variance before the square root.

    Raises
    ------
    ValueError
        If ``x``'s trailing shape is not ``normalized_shape``, or ``weight``
        or ``bias`` has another shape.

    Examples
    --------
    >>> import minidl, minidl.functional as F
    >>> F.layer_norm(minidl.tensor([[1.0, 3.0]]), 2).data
    array([[-0.999995,  0.999995]], dtype=float32)
    """
    shape = normalized_shape_tuple("layer_norm", normalized_shape)
    if x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise ValueError(
            f"layer_norm: normalized_shape {shape} must be the last axes of the input, "
            f"got input of shape {x.shape}"
        )
    for name, param in (("weight", weight), ("bias", bias)):
        if param is not None and tuple(param.shape) != shape:
            raise ValueError(
                f"layer_norm: {name} has shape {param.shape}, expected normalized_shape {shape}"
            )
    out = LayerNorm.apply(x, dims=len(shape), eps=eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def normalized_shape_tuple(owner: str, normalized_shape: Any) -> tuple[int, ...]:
    """``normalized_shape`` as a tuple of positive ints (an int is one axis), or a ValueError."""
    if isinstance(normalized_shape, (int, np.integer)):
        normalized_shape = (normalized_shape,)
    shape = tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list)) else None
    if not shape or not all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in shape
    ):
        raise ValueError(
            f"{owner}: normalized_shape must be a positive int or a non-empty tuple of them, "
            f"got {normalized_shape!r}"
        )
    return tuple(int(n) for n in shape)
