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


def wait_politely(request: Any, spin: float = 5e-5, longest_sleep: float = 2e-4) -> None:
    """Wait for a non-blocking MPI request without spinning a core for long.

    MPICH's blocking waits poll at full speed. That is right when the other
    ranks are about to arrive, but a rank that waits long (for a peer still
    computing its backward) steals the core from its own computing thread, or,
    oversubscribed, from another rank. So: poll for ``spin`` seconds (the
    peer is usually close), then sleep between polls, a little longer each
    time up to ``longest_sleep``, which frees the core at a small cost in
    latency.
    """
    deadline = time.perf_counter() + spin
    while time.perf_counter() < deadline:
        if request.Test():
            return
    sleep = 1e-5
    while not request.Test():
        time.sleep(sleep)
        sleep = min(2 * sleep, longest_sleep)
