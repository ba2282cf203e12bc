"""``comm=None`` means ``MPI.COMM_WORLD``: the one place that says so.

Every function of minidl that takes a communicator follows mpi4py's
convention, and calls :func:`world` to apply it. mpi4py is imported here, on
first use, so that ``import minidl`` never starts MPI.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def mpi_module() -> Any:
    """mpi4py's ``MPI`` module, imported on first use: importing minidl must not start MPI."""
    from mpi4py import MPI

    return MPI


def world(comm: Any = None, where: str = "comm") -> Any:
    """Return ``comm``, or ``MPI.COMM_WORLD`` when it is None, after checking it is one.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm or None
        The communicator a caller passed.
    where : str, optional
        What to start the error message with (the function's name).

    Raises
    ------
    TypeError
        If ``comm`` is not an mpi4py intra-communicator.
    """
    MPI = mpi_module()
    if comm is None:
        return MPI.COMM_WORLD
    if not isinstance(comm, MPI.Intracomm):
        raise TypeError(
            f"{where}: comm must be an mpi4py intra-communicator (MPI.COMM_WORLD or one "
            f"made from it with Split or Dup), got {type(comm).__name__}"
        )
    return comm
