"""The communicator every strategy defaults to, without importing MPI early."""

from __future__ import annotations

from typing import Any


def world(comm: Any = None) -> Any:
    """Return ``comm``, or ``MPI.COMM_WORLD`` when it is None (mpi4py's convention).

    mpi4py is imported here, on first use, so that ``import minidl`` never
    starts MPI.
    """
    if comm is not None:
        return comm
    from mpi4py import MPI

    return MPI.COMM_WORLD
