"""NumPy reference of every minidl kernel: read these first.

Each function here has the same name, signature and result as its compiled
twin in ``csrc/`` (built into ``minidl.kernels._*``). The tests check that the
two agree; ``minidl.kernels.use("numpy")`` makes every caller use these.
"""

from __future__ import annotations

import numpy as np

REDUCE_DTYPES = (np.float32, np.float64, np.int32, np.int64)


def _check_reduce(dst: np.ndarray, src: np.ndarray, name: str) -> None:
    """The same checks, in the same words, as the compiled reductions."""
    if dst.dtype != src.dtype:
        raise TypeError(f"{name}: dtypes differ: dst is {dst.dtype}, src is {src.dtype}")
    if dst.shape != src.shape:
        raise ValueError(f"{name}: shapes differ: dst {dst.shape}, src {src.shape}")
    if not dst.flags.writeable:
        raise ValueError(f"{name}: dst is read-only")
    if not (dst.flags.c_contiguous and src.flags.c_contiguous):
        raise ValueError(f"{name}: dst and src must be C-contiguous (use np.ascontiguousarray)")
    if dst.dtype not in REDUCE_DTYPES:
        raise TypeError(
            f"{name}: unsupported dtype {dst.dtype}; expected float32, float64, int32 or int64"
        )


def add_into(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Add ``src`` into ``dst`` in place and return ``dst``.

    ``dst[i] = dst[i] + src[i]`` for every element; nothing is allocated.

    Parameters
    ----------
    dst : numpy.ndarray
        Written in place. C-contiguous, float32, float64, int32 or int64.
    src : numpy.ndarray
        Same shape and dtype as ``dst``; only read.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([1.0, 2.0], dtype=np.float32)
    >>> add_into(a, np.array([10.0, 20.0], dtype=np.float32))
    array([11., 22.], dtype=float32)
    """
    _check_reduce(dst, src, "add_into")
    return np.add(dst, src, out=dst)


def prod_into(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Multiply ``dst`` by ``src`` in place and return ``dst`` (see :func:`add_into`)."""
    _check_reduce(dst, src, "prod_into")
    return np.multiply(dst, src, out=dst)


def max_into(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """``dst = maximum(dst, src)`` in place, NaN propagating (see :func:`add_into`)."""
    _check_reduce(dst, src, "max_into")
    return np.maximum(dst, src, out=dst)


def min_into(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """``dst = minimum(dst, src)`` in place, NaN propagating (see :func:`add_into`)."""
    _check_reduce(dst, src, "min_into")
    return np.minimum(dst, src, out=dst)
