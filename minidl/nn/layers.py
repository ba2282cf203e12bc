"""The layers: each a small Module whose forward calls one function of ``minidl.functional``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import minidl.functional as F
from minidl.autograd.tensor import Tensor, as_tensor
from minidl.functional.loss import check_reduction
from minidl.functional.normalization import normalized_shape_tuple
from minidl.nn import init
from minidl.nn.containers import Sequential  # noqa: F401  (its home before containers.py)
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


def check_input_dtype(layer: Module, x: Any, weight: Parameter) -> None:
    """Refuse an input whose dtype is not the layer's, naming both, as PyTorch does.

    NumPy would quietly promote: a float32 layer fed a float64 array computes
    in float64, hands float64 gradients to float32 parameters, and runs at
    half the speed. That is nearly always a mistake (a float64 NumPy array fed
    straight to a float32 model), so say which dtype is which and how to fix it.
    A layer of your own calls it first thing in ``forward``.

    Raises
    ------
    TypeError
        Naming the layer's class, both dtypes, and the conversion to make.
    """
    have, want = as_tensor(x).dtype, weight.dtype
    if have == want:
        return
    fix = f"convert the input with minidl.tensor(x, dtype=np.{want.name})"
    if have.kind == "f":
        fix += f", or the model with model.{'double' if have == np.float64 else 'float'}()"
    raise TypeError(
        f"{type(layer).__name__}: input is {have} but the layer's parameters are {want}; {fix}"
    )


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
    TypeError
        In ``forward``, if the input's dtype is not the parameters' (PyTorch
        refuses too; NumPy would quietly compute in the wider one).
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
        check_input_dtype(self, x, self.weight)
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Embedding(Module):
    """A lookup table: row ``i`` of ``weight`` for each integer index ``i`` in the input.

    ``weight`` has shape (num_embeddings, embedding_dim) and starts from
    N(0, 1), as in PyTorch. In backward, each looked-up row's gradient is
    added into its weight row; an index that appears twice gets both.

    Parameters
    ----------
    num_embeddings : int
        Rows in the table (the vocabulary size).
    embedding_dim : int
        Length of each row.
    dtype : dtype, default float32

    Raises
    ------
    ValueError
        If a size is not a positive integer.
    TypeError
        In ``forward``, if the input is not integers (its dtype, not the
        weight's, is what matters here).
    IndexError
        In ``forward``, naming an index outside ``[0, num_embeddings)``.

    Examples
    --------
    >>> import minidl, minidl.nn as nn
    >>> words = nn.Embedding(10, 3)
    >>> words(minidl.tensor([[1, 2, 1]])).shape
    (1, 3, 3)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, dtype=np.float32) -> None:
        super().__init__()
        self.num_embeddings = _size("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = _size("Embedding", "embedding_dim", embedding_dim)
        self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim), dtype=dtype))
        init.normal_(self.weight)

    def forward(self, input: Tensor) -> Tensor:
        return F.embedding(input, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


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
    TypeError
        In ``forward``, if the input's dtype is not the parameters'.
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
        check_input_dtype(self, x, self.weight)
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


class GELU(Module):
    """Gaussian error linear unit ``x * Phi(x)`` elementwise (see :func:`minidl.functional.gelu`).

    Parameters
    ----------
    approximate : {"none", "tanh"}, default "none"
        The exact normal CDF, or the faster tanh approximation.

    Raises
    ------
    ValueError
        If ``approximate`` is neither.
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


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
        check_input_dtype(self, x, self.weight)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training, self.momentum, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) inputs, per channel.

    ``num_features`` (C) must be a positive integer: a ValueError says so. An
    input of another dtype than the parameters is a TypeError.
    """

    expected_ndim = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) inputs, per channel; running statistics in eval mode.

    ``num_features`` (C) must be a positive integer: a ValueError says so. An
    input of another dtype than the parameters is a TypeError.
    """

    expected_ndim = (4,)


class LayerNorm(Module):
    """Layer normalization (Ba et al., 2016): each sample over its last axes, scaled and shifted.

    The statistics are the sample's own, so training and evaluation compute
    the same and there are no running averages (the usual choice in
    transformers, where batch statistics mix sequences of other lengths).

    Parameters
    ----------
    normalized_shape : int or tuple of int
        The trailing shape to normalize over (an int: the last axis).
    eps : float, default 1e-5
    elementwise_affine : bool, default True
        Learn ``weight`` (ones) and ``bias`` (zeros) of shape ``normalized_shape``.
    bias : bool, default True
        With ``elementwise_affine``, learn the bias too.
    dtype : dtype, default float32

    Raises
    ------
    ValueError
        If ``normalized_shape`` is not a positive int or a tuple of them; in
        ``forward``, if the input does not end with ``normalized_shape``.
    TypeError
        In ``forward``, if the input's dtype is not the parameters'.
    """

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, dtype=np.float32) -> None:
        super().__init__()
        self.normalized_shape = normalized_shape_tuple("LayerNorm", normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        shape = self.normalized_shape
        self.register_parameter(
            "weight", Parameter(np.ones(shape, dtype=dtype)) if elementwise_affine else None
        )
        self.register_parameter(
            "bias",
            Parameter(np.zeros(shape, dtype=dtype)) if elementwise_affine and bias else None,
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.weight is not None:
            check_input_dtype(self, x, self.weight)
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class CrossEntropyLoss(Module):
    """``F.cross_entropy``: logits (N, C) and integer targets (N,).

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}, default "mean"
        Average over the batch, add up, or one loss per sample.

    Raises
    ------
    ValueError
        If ``reduction`` is not one of the three.
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction("CrossEntropyLoss", reduction)

    def forward(self, logits: Tensor, targets) -> Tensor:
        return F.cross_entropy(logits, targets, reduction=self.reduction)


class NLLLoss(Module):
    """``F.nll_loss``: log-probabilities (N, C) and integer targets (N,).

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}, default "mean"

    Raises
    ------
    ValueError
        If ``reduction`` is not one of the three.
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction("NLLLoss", reduction)

    def forward(self, log_probs: Tensor, targets) -> Tensor:
        return F.nll_loss(log_probs, targets, reduction=self.reduction)


class MSELoss(Module):
    """``F.mse_loss``: squared error, averaged by default.

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}, default "mean"

    Raises
    ------
    ValueError
        If ``reduction`` is not one of the three.
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction("MSELoss", reduction)

    def forward(self, input: Tensor, target) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)
