"""Array kernels, in two interchangeable backends.

Every kernel has a NumPy reference (:mod:`minidl.kernels.reference`, the one to
read first) and a compiled Cython twin built from ``csrc/`` at install time.
Callers always go through the functions of this module, which forward to the
active backend:

>>> import numpy as np
>>> import minidl.kernels as K
>>> K.backend()
'cython'
>>> with K.use("numpy"):
...     K.backend()
'numpy'

``use`` also works as a plain call, ``K.use("numpy")``, which stays in effect
until the next ``use``. The compiled sliding-window kernels (``im2col``,
``col2im``, ``maxpool2d_*``) run their loops on OpenMP threads;
:func:`set_num_threads` says how many.

The compiled kernels are optional. Installing on a machine without a C
compiler builds none of them: minidl then runs every kernel's NumPy reference,
:func:`backend` says ``"numpy"``, :func:`available` lists only ``"numpy"``,
and importing this module warns once (convolutions and pooling are several
times slower). A compiler without OpenMP (macOS's clang) builds them
single-threaded, and :func:`has_openmp` says so.
"""

from __future__ import annotations

import os
import types
import warnings
from collections.abc import Callable
from typing import Literal

import numpy as np

from minidl.kernels import reference

BACKENDS = ("cython", "numpy")

# OpenMP threads that have finished a loop spin for a while before sleeping
# (GNU OpenMP's default), waiting for the next one. Next to NumPy's own BLAS
# threads on the same cores, the spinning takes the cores the BLAS threads
# need: lenet's training step on 28x28 images took 56 ms with two threads in
# each pool, 22 ms with idle OpenMP threads sleeping (and 20 ms on one
# thread). So they sleep, unless the user chose otherwise. The OpenMP
# runtime reads the variable once, when it loads with the compiled kernels;
# it is set for that moment only, so that other programs and libraries
# started later (PyTorch, say) keep their own defaults.
_SLEEPING_OPENMP = "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ
if _SLEEPING_OPENMP:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
try:
    # (Not "from minidl.kernels import ...": its error for a missing module blames
    # a circular import.)
    import minidl.kernels._im2col as _im2col
    import minidl.kernels._pool as _pool
    import minidl.kernels._reduce as _reduce
except ImportError as exc:  # no compiler at install time, or a copy of the package without a build
    _im2col = _pool = _reduce = None
    _BUILD_ERROR: ImportError | None = exc
else:
    _BUILD_ERROR = None
finally:
    if _SLEEPING_OPENMP:
        del os.environ["OMP_WAIT_POLICY"]

# Every compiled module and the kernels it holds; the reference holds them all.
_KERNELS = {
    "_reduce": ("add_into", "prod_into", "max_into", "min_into"),
    "_im2col": ("im2col", "col2im"),
    "_pool": ("maxpool2d_forward", "maxpool2d_backward"),
}
_MODULES = {"_reduce": _reduce, "_im2col": _im2col, "_pool": _pool}
# The compiled modules whose loops run on OpenMP threads.
_THREADED = ("_im2col", "_pool")


def _namespace(name: str) -> types.SimpleNamespace:
    """The kernels of one backend, by name."""
    if name == "numpy":
        return types.SimpleNamespace(
            **{k: getattr(reference, k) for kernels in _KERNELS.values() for k in kernels}
        )
    if _BUILD_ERROR is not None:
        raise ImportError(
            f"the cython backend needs minidl's compiled kernels, which are not built "
            f"({_BUILD_ERROR}). Install a C compiler and reinstall minidl (`pip install -e .` "
            f"from the checkout; `pip install -v` shows why a build fails), or use "
            f'minidl.kernels.use("numpy").'
        )
    return types.SimpleNamespace(
        **{k: getattr(_MODULES[module], k) for module, kernels in _KERNELS.items() for k in kernels}
    )


_active_name = "cython" if _BUILD_ERROR is None else "numpy"
_active = _namespace(_active_name)
# Built without OpenMP, every prange is a plain loop: one thread, whatever is asked.
_OPENMP = _BUILD_ERROR is None and all(_MODULES[m].OPENMP for m in _THREADED)


def _first_rank() -> bool:
    """False on every rank but the first of a job that a launcher started (read from its env)."""
    ranks = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID")
    return all(os.environ.get(var, "0") == "0" for var in ranks)


if _BUILD_ERROR is not None and _first_rank():
    warnings.warn(
        f"minidl's compiled kernels are not built ({_BUILD_ERROR}), so every kernel runs "
        f"its NumPy reference: correct, but a CNN trains 2-3 times slower. To build them, "
        f"install a C compiler and reinstall minidl (`pip install -e .` from the checkout; "
        f"`pip install -v` shows why a build fails).",
        stacklevel=2,
    )


def _default_num_threads() -> int:
    """``OMP_NUM_THREADS`` when it is set, else 1 (see :func:`set_num_threads` for why)."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(value) if value.isdigit() and int(value) > 0 else 1


# Without OpenMP threads (the NumPy reference, or a build without OpenMP) it is one.
_num_threads = _default_num_threads() if _OPENMP else 1
if _BUILD_ERROR is None:
    for _module in _THREADED:
        _MODULES[_module].set_num_threads(_num_threads)


def backend() -> str:
    """Return the name of the active backend, ``"cython"`` or ``"numpy"``."""
    return _active_name


def available() -> tuple[str, ...]:
    """Return the backends :class:`use` accepts here.

    ``("cython", "numpy")``, or ``("numpy",)`` when the compiled kernels are
    not built (no C compiler at install time).

    Examples
    --------
    >>> import minidl.kernels as K
    >>> "numpy" in K.available()
    True
    """
    return BACKENDS if _BUILD_ERROR is None else ("numpy",)


def has_openmp() -> bool:
    """Return whether the compiled kernels run their loops on OpenMP threads.

    False when they were built without OpenMP (a compiler without ``-fopenmp``,
    such as macOS's clang: they then run on one thread) or not built at all.
    """
    return _OPENMP


class use:
    """Select the kernel backend: ``"cython"`` (compiled) or ``"numpy"`` (reference).

    Works as a plain call, which switches for good, and as a context manager,
    which switches back to the previous backend on exit.

    Parameters
    ----------
    name : {"cython", "numpy"}
        The backend to make active.

    Raises
    ------
    ValueError
        If ``name`` is not a known backend.
    ImportError
        If ``"cython"`` is asked for but the compiled modules are not built
        (see :func:`available`).

    Examples
    --------
    >>> import minidl.kernels as K
    >>> with K.use("numpy"):
    ...     pass  # every kernel call here runs the NumPy reference
    """

    def __init__(self, name: Literal["cython", "numpy"]) -> None:
        global _active, _active_name
        if name not in BACKENDS:
            raise ValueError(f"unknown kernel backend {name!r}; expected one of {BACKENDS}")
        self._previous = (_active_name, _active)
        _active = _namespace(name)
        _active_name = name

    def __enter__(self) -> "use":
        return self

    def __exit__(self, *exc_info: object) -> None:
        global _active, _active_name
        _active_name, _active = self._previous


def set_num_threads(n: int) -> None:
    """Set how many OpenMP threads the compiled kernels use from now on.

    The default is ``OMP_NUM_THREADS`` when it is set, else 1. Not the number
    of cores: NumPy's BLAS keeps a pool of threads of its own on the same
    cores, and a second thread in each pays only on large batches. (Idle OpenMP
    threads sleep: the kernels load their OpenMP runtime with
    ``OMP_WAIT_POLICY=PASSIVE`` unless it is set. Spinning, they took the cores
    from the BLAS threads: the digits CNN trained 18x slower with both pools on
    2 cores.) ``python -m minidl.train --threads N`` sets both pools. It is an
    upper bound: a kernel call uses one thread per 32768 elements of work
    (PyTorch's grain size), so small calls stay on one thread. Results never
    depend on it: every parallel loop gives each thread whole images (or image
    channels), so nothing is summed in a different order. The NumPy reference
    always runs on one thread, and so do compiled kernels built without OpenMP
    (:func:`has_openmp`): there ``n`` is checked, and the count stays 1.

    Parameters
    ----------
    n : int
        Number of threads, at least 1.

    Raises
    ------
    TypeError
        If ``n`` is not an int.
    ValueError
        If ``n`` is less than 1.

    Examples
    --------
    >>> import minidl.kernels as K
    >>> before = K.get_num_threads()
    >>> K.set_num_threads(1)
    >>> K.get_num_threads()
    1
    >>> K.set_num_threads(before)
    """
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be at least 1, got {n}")
    _num_threads = int(n) if _OPENMP else 1
    if _BUILD_ERROR is None:
        for module in _THREADED:
            _MODULES[module].set_num_threads(_num_threads)


def get_num_threads() -> int:
    """Return how many OpenMP threads the compiled kernels use (see :func:`set_num_threads`)."""
    return _num_threads


def add_into(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """``dst += src`` in place with the active backend; see :func:`reference.add_into`."""
    return _active.add_into(dst, src)


def prod_into(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """``dst *= src`` in place with the active backend."""
    return _active.prod_into(dst, src)


def max_into(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """``dst = maximum(dst, src)`` in place with the active backend."""
    return _active.max_into(dst, src)


def min_into(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """``dst = minimum(dst, src)`` in place with the active backend."""
    return _active.min_into(dst, src)


def reduce_into(op: str, dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Apply the reduction named ``op`` ("sum", "prod", "max", "min") in place."""
    return reduce_kernel(op)(dst, src)


def reduce_kernel(op: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The kernel ``f(dst, src)`` of the reduction named ``op``: the one op-to-kernel table.

    It dispatches to the active backend at each call.
    """
    try:
        return REDUCE_KERNELS[op]
    except KeyError:
        raise ValueError(
            f"unknown reduction op {op!r}; expected one of {tuple(REDUCE_KERNELS)}"
        ) from None


REDUCE_KERNELS = {"sum": add_into, "prod": prod_into, "max": max_into, "min": min_into}
"""The one op-to-kernel table: each reduction's kernel, by name (see :func:`reduce_kernel`)."""


def im2col(
    x: np.ndarray,
    kernel_size: reference.IntPair,
    stride: reference.IntPair = 1,
    padding: reference.IntPair = 0,
) -> np.ndarray:
    """Unfold the receptive fields of an NCHW batch into ``(C*KH*KW, N*OH*OW)``.

    Runs the active backend; see :func:`minidl.kernels.reference.im2col` for
    the layout and why a convolution wants it.
    """
    return _active.im2col(x, kernel_size, stride, padding)


def col2im(
    cols: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kernel_size: reference.IntPair,
    stride: reference.IntPair = 1,
    padding: reference.IntPair = 0,
) -> np.ndarray:
    """Fold ``(C*KH*KW, N*OH*OW)`` columns back into an NCHW batch, summing overlaps.

    Runs the active backend; the adjoint of :func:`im2col`, see
    :func:`minidl.kernels.reference.col2im`.
    """
    return _active.col2im(cols, x_shape, kernel_size, stride, padding)


def maxpool2d_forward(
    x: np.ndarray,
    kernel_size: reference.IntPair,
    stride: reference.IntPair | None = None,
    padding: reference.IntPair = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """2-D max pooling of an NCHW batch: ``(out, indices)``, indices flat in each image.

    Runs the active backend; see :func:`minidl.kernels.reference.maxpool2d_forward`
    for the index layout and which element wins a tie.
    """
    return _active.maxpool2d_forward(x, kernel_size, stride, padding)


def maxpool2d_backward(
    grad_out: np.ndarray,
    indices: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kernel_size: reference.IntPair,
    stride: reference.IntPair | None = None,
    padding: reference.IntPair = 0,
) -> np.ndarray:
    """Scatter-add ``grad_out`` to the elements that won their windows.

    Runs the active backend; see :func:`minidl.kernels.reference.maxpool2d_backward`.
    """
    return _active.maxpool2d_backward(grad_out, indices, x_shape, kernel_size, stride, padding)


__all__ = [
    "backend",
    "available",
    "has_openmp",
    "use",
    "set_num_threads",
    "get_num_threads",
    "add_into",
    "prod_into",
    "max_into",
    "min_into",
    "reduce_into",
    "reduce_kernel",
    "im2col",
    "col2im",
    "maxpool2d_forward",
    "maxpool2d_backward",
]
