"""The layers: each a small Module whose forward calls one function of ``minidl.functional``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import minidl.functional as F
from minidl.autograd.tensor import Tensor
from minidl.nn import init
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter


def _pytorch_default_init(weight: Parameter, bias: Parameter | None) -> None:
    """PyTorch's default for Linear and Conv2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init.calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in)
        init.uniform_(bias, -bound, bound)


def _size(layer: str, name: str, value: Any) -> int:
    """``value`` as a positive int, or a ValueError naming the layer and the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")
    return int(value)


class Linear(Module):
    """Fully connected layer ``y = x @ weight.T + bias``.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the input and output.
    bias : bool, default True
        Learn an additive bias.
    dtype : dtype, default float32

    Raises
    ------
    ValueError
        If ``in_features`` or ``out_features`` is not a positive integer.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, dtype=np.float32
    ) -> None:
        super().__init__()
        in_features = _size("Linear", "in_features", in_features)
        out_features = _size("Linear", "out_features", out_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        self.register_parameter(
            "bias", Parameter(np.empty(out_features, dtype=dtype)) if bias else None
        )
        _pytorch_default_init(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Conv2d(Module):
    """2-D convolution over an NCHW batch (im2col + one matrix product).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride, padding : int or (int, int)
    bias : bool, default True
    dtype : dtype, default float32

    Raises
    ------
    ValueError
        If ``in_channels``, ``out_channels`` or a side of ``kernel_size`` is not a
        positive integer.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, dtype=np.float32) -> None:
        super().__init__()
        in_channels = _size("Conv2d", "in_channels", in_channels)
        out_channels = _size("Conv2d", "out_channels", out_channels)
        sides = tuple(kernel_size) if isinstance(kernel_size, (tuple, list)) else (kernel_size,) * 2
        if len(sides) != 2:
            raise ValueError(f"Conv2d: kernel_size must be an int or a pair, got {kernel_size!r}")
        kh, kw = (_size("Conv2d", "kernel_size", side) for side in sides)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kh, kw), stride, padding
        self.weight = Parameter(np.empty((out_channels, in_channels, kh, kw), dtype=dtype))
        self.register_parameter(
            "bias", Parameter(np.empty(out_channels, dtype=dtype)) if bias else None
        )
        _pytorch_default_init(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")


class MaxPool2d(Module):
    """Max over each ``kernel_size`` window; ``stride`` defaults to ``kernel_size``."""

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, "
            f"padding={self.padding}"
        )


class AvgPool2d(MaxPool2d):
    """Mean over each ``kernel_size`` window; ``stride`` defaults to ``kernel_size``."""

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class ReLU(Module):
    """``max(x, 0)`` elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class Tanh(Module):
    """Hyperbolic tangent elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sigmoid(Module):
    """Logistic sigmoid elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class Flatten(Module):
    """Merge every axis from ``start_dim`` on: (N, C, H, W) -> (N, C*H*W)."""

    def __init__(self, start_dim: int = 1) -> None:
        super().__init__()
        self.start_dim = start_dim

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, self.start_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}"


class Dropout(Module):
    """Zero elements with probability ``p`` in training mode; identity in eval mode."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _BatchNorm(Module):
    expected_ndim: tuple[int, ...] = ()

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, dtype=np.float32
    ) -> None:
        super().__init__()
        num_features = _size(type(self).__name__, "num_features", num_features)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features, dtype=dtype))
        self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self.expected_ndim:
            raise ValueError(
                f"{type(self).__name__} expects input with {self.expected_ndim} dimensions, "
                f"got shape {x.shape}"
            )
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training, self.momentum, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) inputs, per channel.

    ``num_features`` (C) must be a positive integer: a ValueError says so.
    """

    expected_ndim = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) inputs, per channel; running statistics in eval mode.

    ``num_features`` (C) must be a positive integer: a ValueError says so.
    """

    expected_ndim = (4,)


class Sequential(Module):
    """Apply modules one after another.

    Examples
    --------
    >>> import minidl.nn as nn
    >>> nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    Sequential(
      (0): Linear(in_features=2, out_features=3, bias=True)
      (1): ReLU()
    )
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(
                    f"Sequential takes Modules, argument {i} is a {type(module).__name__}"
                )
            self.add_module(str(i), module)

    def forward(self, x: Tensor) -> Tensor:
        for module in self._modules.values():
            x = module(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)


class CrossEntropyLoss(Module):
    """``F.cross_entropy``: logits (N, C) and integer targets (N,), mean over the batch."""

    def forward(self, logits: Tensor, targets) -> Tensor:
        return F.cross_entropy(logits, targets)


class MSELoss(Module):
    """``F.mse_loss``: mean squared error."""

    def forward(self, input: Tensor, target) -> Tensor:
        return F.mse_loss(input, target)
