"""Ways to make a tensor: from data, filled with a constant, random, a range.

Every ``dtype=`` takes a NumPy dtype in any spelling: ``minidl.float64``,
``np.float64`` or ``"float64"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minidl.autograd.tensor import Tensor, _check_dtype
from minidl.random import generator

DEFAULT_DTYPE = np.float32


def _shape(shape: tuple) -> tuple[int, ...]:
    """Accept ``zeros(2, 3)`` and ``zeros((2, 3))`` alike."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Make a tensor from ``data`` (a copy).

    Parameters
    ----------
    data : array_like
        Numbers, nested lists, a NumPy array or a Tensor.
    requires_grad : bool, default False
        Track operations for backward (float dtypes only).
    dtype : dtype, optional
        Defaults to float32 for Python floats, int64 for Python ints, and the
        array's own dtype for NumPy arrays (so float64 stays float64).

    Examples
    --------
    >>> import minidl
    >>> minidl.tensor([1.0, 2.0]).dtype
    dtype('float32')
    """
    if isinstance(data, Tensor):
        data = data.data
    return Tensor(np.array(data, copy=True) if isinstance(data, np.ndarray) else data,
                  requires_grad=requires_grad, dtype=dtype)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor that shares ``array``'s memory (no copy), like ``torch.from_numpy``.

    Writing to one writes to the other; the dtype is the array's own. Compare
    :func:`tensor`, which copies.

    Raises
    ------
    TypeError
        If ``array`` is not a NumPy array, or has a dtype minidl does not hold.

    Examples
    --------
    >>> import numpy as np, minidl
    >>> a = np.zeros(2)
    >>> t = minidl.from_numpy(a)
    >>> a[0] = 5
    >>> t.tolist()
    [5.0, 0.0]
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy() expects a NumPy array, got {type(array).__name__}")
    _check_dtype(array)
    return Tensor._make(array, False)


def zeros(*shape: int, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    return Tensor(np.zeros(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def ones(*shape: int, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    """A tensor of ones: ``ones(2, 3)`` or ``ones((2, 3))``."""
    return Tensor(np.ones(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def randn(*shape: int, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from minidl's generator (see :func:`minidl.manual_seed`)."""
    data = generator().standard_normal(_shape(shape)).astype(dtype)
    return Tensor(data, requires_grad=requires_grad)


def arange(start: float, stop: float | None = None, step: float = 1, dtype: Any = None,
           requires_grad: bool = False) -> Tensor:
    """Evenly spaced values in ``[start, stop)``, like ``np.arange``.

    Integer arguments give int64, any float argument gives float32, unless
    ``dtype`` says otherwise.
    """
    data = np.arange(start, stop, step) if stop is not None else np.arange(start)
    if dtype is None:
        dtype = np.int64 if data.dtype.kind == "i" else DEFAULT_DTYPE
    return Tensor(data.astype(dtype), requires_grad=requires_grad)


def zeros_like(t: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros with the shape (and dtype, unless given) of ``t``."""
    ref = np.asarray(t.data if isinstance(t, Tensor) else t)
    return Tensor(np.zeros(ref.shape, dtype=dtype or ref.dtype), requires_grad=requires_grad)


def ones_like(t: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones with the shape (and dtype, unless given) of ``t``."""
    ref = np.asarray(t.data if isinstance(t, Tensor) else t)
    return Tensor(np.ones(ref.shape, dtype=dtype or ref.dtype), requires_grad=requires_grad)


def randn_like(t: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples with the shape (and dtype, unless given) of ``t``."""
    ref = np.asarray(t.data if isinstance(t, Tensor) else t)
    return randn(*ref.shape, dtype=dtype or ref.dtype, requires_grad=requires_grad)
