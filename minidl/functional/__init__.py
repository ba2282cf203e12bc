"""Differentiable functions of tensors, imported as ``F`` (like ``torch.nn.functional``).

>>> import minidl.functional as F
"""

from minidl.autograd.ops import exp, log, relu, sigmoid, sqrt, tanh
from minidl.functional.activation import gelu, log_softmax, softmax
from minidl.functional.conv import avg_pool2d, conv2d, max_pool2d
from minidl.functional.dropout import dropout, flatten
from minidl.functional.embedding import embedding
from minidl.functional.linear import linear
from minidl.functional.loss import cross_entropy, mse_loss, nll_loss
from minidl.functional.normalization import batch_norm, layer_norm

__all__ = [
    "softmax", "log_softmax", "gelu", "cross_entropy", "nll_loss", "mse_loss", "linear",
    "embedding", "conv2d", "max_pool2d", "avg_pool2d", "dropout", "flatten", "batch_norm",
    "layer_norm", "relu", "tanh", "sigmoid", "exp", "log", "sqrt",
]
