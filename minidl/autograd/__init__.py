"""Define-by-run reverse-mode automatic differentiation on NumPy arrays.

- :mod:`~minidl.autograd.tensor`: :class:`Tensor`, the array that remembers its history;
- :mod:`~minidl.autograd.function`: :class:`Function`, the base of every op;
- :mod:`~minidl.autograd.ops`: the ops, forward and backward side by side;
- :mod:`~minidl.autograd.engine`: the backward pass;
- :mod:`~minidl.autograd.grad_mode`: :class:`no_grad`.
"""

from minidl.autograd.engine import backward
from minidl.autograd.function import Function, unbroadcast
from minidl.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad
from minidl.autograd.ops import cat, concatenate, maximum, minimum, stack, where
from minidl.autograd.tensor import Tensor, as_tensor

__all__ = [
    "Tensor", "Function", "backward", "no_grad", "enable_grad", "is_grad_enabled",
    "unbroadcast", "as_tensor", "concatenate", "cat", "stack", "where", "maximum", "minimum",
]
