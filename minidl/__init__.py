"""minidl: a from-scratch deep-learning framework for teaching parallel and
distributed training.

The names most programs need are here: :class:`Tensor` and the ways to make
one, :class:`no_grad`, the differentiable functions that are not methods, and
:func:`manual_seed`. Importing minidl never starts MPI: :mod:`mpi4py` is
imported only by the code that sends messages. It does ask the C allocator to
keep freed memory for reuse (see :mod:`minidl.allocator`; set
``MINIDL_KEEP_FREED_MEMORY=0`` to leave it alone).

>>> import minidl
>>> x = minidl.tensor([1.0, 2.0], requires_grad=True)
>>> (x * x).sum().backward()
>>> x.grad
array([2., 4.], dtype=float32)
"""

from minidl import allocator
from minidl.autograd import (
    Function,
    Tensor,
    concatenate,
    enable_grad,
    is_grad_enabled,
    maximum,
    minimum,
    no_grad,
    stack,
    where,
)
from minidl.autograd.creation import (
    arange,
    ones,
    ones_like,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from minidl.autograd.ops import exp, log, relu, sigmoid, sqrt, tanh
from minidl.checkpoint import load, save
from minidl.random import manual_seed

allocator._configure_from_environment()  # every training step reuses the last one's memory

__version__ = "0.1.0"

__all__ = [
    "Tensor", "Function", "tensor", "zeros", "ones", "randn", "arange", "zeros_like",
    "ones_like", "randn_like", "no_grad", "enable_grad", "is_grad_enabled", "concatenate",
    "stack", "where", "maximum", "minimum", "exp", "log", "sqrt", "tanh", "sigmoid", "relu",
    "manual_seed", "save", "load",
]
