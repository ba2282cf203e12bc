"""Batch normalization (Ioffe & Szegedy, 2015) as one op with its textbook backward."""

from __future__ import annotations

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
