"""Differentiable functions of tensors, imported as ``F`` (like ``torch.nn.functional``).

>>> import minidl.functional as F
"""

from minidl.autograd.ops import exp, log, relu, sigmoid, sqrt, tanh
from minidl.functional.activation import log_softmax, softmax
from minidl.functional.linear import linear
from minidl.functional.loss import cross_entropy, mse_loss

__all__ = [
    "softmax", "log_softmax", "cross_entropy", "mse_loss", "linear",
    "relu", "tanh", "sigmoid", "exp", "log", "sqrt",
]
