"""The communicator every strategy defaults to, without importing MPI early."""

from __future__ import annotations

import time
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


def wait_politely(request: Any, first_sleep: float = 2e-5, longest_sleep: float = 1e-3) -> None:
    """Wait for a non-blocking MPI request without spinning a core.

    MPICH's blocking waits poll at full speed. That is right when the other
    ranks are about to arrive, but a rank that waits long (for a peer still
    computing its backward) steals the core from its own computing thread, or,
    oversubscribed, from another rank. Testing with a short, growing sleep in
    between costs a little latency and frees the core.
    """
    sleep = first_sleep
    while not request.Test():
        time.sleep(sleep)
        sleep = min(2 * sleep, longest_sleep)
