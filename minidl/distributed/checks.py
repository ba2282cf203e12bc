"""What a collective accepts: the reduction ops and dtypes, checked with clear errors."""

from __future__ import annotations

import numpy as np

from minidl.distributed.schedules import ALGORITHMS

OPS = ("sum", "prod", "max", "min")
"""The reductions, each a kernel of :mod:`minidl.kernels` (``reduce_into(op, dst, src)``)."""

DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int32), np.dtype(np.int64))
"""The element types the reduction kernels are compiled for."""


def check_op(op: str, where: str) -> None:
    """Raise ValueError unless ``op`` is one of :data:`OPS`; ``where`` starts the message.

    The message guesses the two usual slips: an algorithm passed where the op
    goes (``allreduce(buf, "ring")``: the op comes second), and one of MPI's
    ops (``MPI.SUM``) where minidl takes a name.
    """
    if isinstance(op, str) and op in OPS:
        return
    hint = ""
    if isinstance(op, str) and any(op in names for names in ALGORITHMS.values()):
        hint = f" ({op!r} is an algorithm: the op comes second, so pass algorithm={op!r})"
    elif type(op).__name__ == "Op":  # mpi4py's MPI.SUM and friends
        hint = " (minidl takes the op by name, not MPI's Op: op='sum' for MPI.SUM)"
    raise ValueError(f"{where}: unknown op {op!r}; expected one of {OPS}{hint}")


def check_dtype(dtype: np.dtype, where: str) -> None:
    """Raise TypeError unless ``dtype`` is one of :data:`DTYPES`; ``where`` starts the message."""
    if dtype not in DTYPES:
        names = ", ".join(d.name for d in DTYPES)
        raise TypeError(
            f"{where}: unsupported dtype {dtype}; expected one of {names} "
            "(convert with buf.astype(np.float32), for example)"
        )
