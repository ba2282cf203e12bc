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
until the next ``use``.
"""

from __future__ import annotations

import types
from typing import Literal

import numpy as np

from minidl.kernels import reference

BACKENDS = ("cython", "numpy")

try:
    from minidl.kernels import _reduce
except ImportError as exc:  # the package was copied without being built
    _reduce = None
    _BUILD_ERROR: ImportError | None = exc
else:
    _BUILD_ERROR = None

_KERNELS = ("add_into", "prod_into", "max_into", "min_into")


def _namespace(name: str) -> types.SimpleNamespace:
    """The kernels of one backend, by name."""
    if name == "numpy":
        return types.SimpleNamespace(**{k: getattr(reference, k) for k in _KERNELS})
    if _BUILD_ERROR is not None:
        raise ImportError(
            "minidl's compiled kernels are not built (" + str(_BUILD_ERROR) + "). "
            "Install the package with `pip install -e .` from the checkout, or "
            'use minidl.kernels.use("numpy").'
        )
    return types.SimpleNamespace(**{k: getattr(_reduce, k) for k in _KERNELS})


_active_name = "cython" if _BUILD_ERROR is None else "numpy"
_active = _namespace(_active_name)


def backend() -> str:
    """Return the name of the active backend, ``"cython"`` or ``"numpy"``."""
    return _active_name


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
        If ``"cython"`` is asked for but the compiled modules are not built.

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
    try:
        kernel = _REDUCE_BY_OP[op]
    except KeyError:
        raise ValueError(f"unknown reduction op {op!r}; expected one of {tuple(_REDUCE_BY_OP)}") from None
    return kernel(dst, src)


_REDUCE_BY_OP = {"sum": add_into, "prod": prod_into, "max": max_into, "min": min_into}

__all__ = ["backend", "use", "add_into", "prod_into", "max_into", "min_into", "reduce_into"]
