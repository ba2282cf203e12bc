"""minidl: a from-scratch deep-learning framework for teaching parallel and
distributed training.

The names most programs need are here: :class:`Tensor` and the ways to make
one, :class:`no_grad`, the differentiable functions that are not methods, the
dtypes (``minidl.float32``, ...: NumPy's own) and :func:`manual_seed`. As
with ``import torch``, the packages come along: ``minidl.nn`` (with
``minidl.nn.functional``, the very module ``minidl.functional``),
``minidl.optim``, ``minidl.data`` and ``minidl.models``; ``minidl.distributed``
and ``minidl.parallel`` load on first use.

Importing minidl never starts MPI: :mod:`mpi4py` is imported only by the code
that sends messages. It does ask the C allocator to keep freed memory for
reuse (see :mod:`minidl.allocator`; set ``MINIDL_KEEP_FREED_MEMORY=0`` to
leave it alone).

>>> import minidl
>>> x = minidl.tensor([1.0, 2.0], requires_grad=True)
>>> (x * x).sum().backward()
>>> x.grad
array([2., 4.], dtype=float32)
"""

# Underscored: `import minidl` shows only the framework, not the modules it uses.
import importlib as _importlib
import sys as _sys
from typing import Any as _Any

import numpy as _np

from minidl import allocator, data, functional, models, nn, optim
from minidl.autograd import (
    Function,
    Tensor,
    cat,
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
    from_numpy,
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

# The dtypes, as PyTorch spells them: NumPy's own, so that ``t.dtype == minidl.float32``
# and even ``t.dtype is minidl.float32`` hold.
float32 = _np.dtype(_np.float32)
float64 = _np.dtype(_np.float64)
int32 = _np.dtype(_np.int32)
int64 = _np.dtype(_np.int64)

# ``import minidl.nn.functional as F`` works as in PyTorch and gives minidl.functional itself.
nn.functional = functional
_sys.modules["minidl.nn.functional"] = functional

# Loaded on first use (PEP 562): they are the floors that reach MPI.
_LAZY_PACKAGES = ("distributed", "parallel")


def __getattr__(name: str) -> _Any:
    if name in _LAZY_PACKAGES:
        return _importlib.import_module(f"minidl.{name}")  # which sets minidl.<name> for next time
    raise AttributeError(f"module 'minidl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY_PACKAGES])


__all__ = [
    "Tensor", "Function", "tensor", "zeros", "ones", "randn", "arange", "zeros_like",
    "ones_like", "randn_like", "no_grad", "enable_grad", "is_grad_enabled", "concatenate",
    "stack", "where", "maximum", "minimum", "exp", "log", "sqrt", "tanh", "sigmoid", "relu",
    "manual_seed", "save", "load", "cat", "from_numpy", "float32", "float64", "int32", "int64",
    "nn", "functional", "optim", "data", "models",
]
