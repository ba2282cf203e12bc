"""What a collective accepts: the reduction ops and dtypes, checked with clear errors."""

from __future__ import annotations

import numpy as np

OPS = ("sum", "prod", "max", "min")
"""The reductions, each a kernel of :mod:`minidl.kernels` (``reduce_into(op, dst, src)``)."""

DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int32), np.dtype(np.int64))
"""The element types the reduction kernels are compiled for."""


def check_op(op: str, where: str) -> None:
    """Raise ValueError unless ``op`` is one of :data:`OPS`; ``where`` starts the message."""
    if op not in OPS:
        raise ValueError(f"{where}: unknown op {op!r}; expected one of {OPS}")


def check_dtype(dtype: np.dtype, where: str) -> None:
    """Raise TypeError unless ``dtype`` is one of :data:`DTYPES`; ``where`` starts the message."""
    if dtype not in DTYPES:
        names = ", ".join(d.name for d in DTYPES)
        raise TypeError(
            f"{where}: unsupported dtype {dtype}; expected one of {names} "
            "(convert with buf.astype(np.float32), for example)"
        )
