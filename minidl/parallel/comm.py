"""Waiting for MPI requests without taking a core from the ranks that compute.

:func:`wait_politely` waits for one request; :class:`WaitPolicy` chooses,
once per communicator, how long a rank may poll and whether a blocking
all-reduce may block in MPI, from whether every rank has a core of its own.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from minidl.distributed import allreduce, iallreduce
from minidl.distributed.watchdog import WATCH
from minidl.distributed.world import mpi_module

SPIN_SHORT = 5e-5
"""Seconds a wait polls before it starts giving its core away (yielding, then
sleeping), when another process may need the core."""

SPIN_LONG = 5e-3
"""Seconds a wait polls before giving its core away when the rank has nothing
else to do and the rank owns a core. A peer is usually less than a few
milliseconds behind; a sleeping waiter notices it up to a sleep late, and the
peer, already inside the all-reduce, waits that long for it (measured on
lenet, 2 ranks: DDP's communication per step 0.45 ms with short spins, 0.18 ms
with long ones)."""


YIELD_FOR = 1e-3
"""Seconds a wait keeps polling after its spin, giving the core away between
two polls (``sched_yield``) to any other process ready to run on it, before it
starts sleeping. With more ranks than cores, the process waiting for is
often the one next in line for this very core: yielding hands it over at
once, where a sleep costs a timer tick (the 4-rank training job on 2 cores:
0.36 s per epoch sleeping, 0.15 s yielding, 0.66 s with MPI's own waits)."""


def wait_politely(
    request: Any, spin: float = SPIN_SHORT, longest_sleep: float = 2e-4, what: Any = None
) -> None:
    """Wait for a non-blocking MPI request without spinning a core for long.

    MPICH's blocking waits poll at full speed. That is right when the other
    ranks are about to arrive, but a rank that waits long (for a peer still
    computing its backward) steals the core from its own computing thread, or,
    oversubscribed, from another rank. So: poll for ``spin`` seconds (the
    peer is usually close), then for :data:`YIELD_FOR` seconds giving the
    core to whoever else is ready to run between two polls, then sleep
    between polls, a little longer each time up to ``longest_sleep``, which
    frees the core at a small cost in latency. Pass ``spin=SPIN_LONG`` when
    nothing else needs the core (see :func:`ranks_have_own_cores`).

    ``what`` names the wait for the watchdog (:mod:`minidl.distributed.watchdog`);
    by default the request's own ``what`` (a started collective has one).
    """
    if what is None:
        what = getattr(request, "what", "an MPI request")
    outer = WATCH.enter(what, WATCH.round)  # a started collective's round, as it last said
    try:
        _poll(request, spin, longest_sleep)
    finally:
        WATCH.leave(outer)


def _poll(request: Any, spin: float, longest_sleep: float) -> None:
    """Spin, then yield, then sleep between tests of ``request`` (see :func:`wait_politely`)."""
    deadline = time.perf_counter() + spin
    while time.perf_counter() < deadline:
        if request.Test():
            return
    deadline = time.perf_counter() + YIELD_FOR
    while time.perf_counter() < deadline:
        if request.Test():
            return
        _yield()
    sleep = 1e-5
    while not request.Test():
        time.sleep(sleep)
        sleep = min(2 * sleep, longest_sleep)


_yield = getattr(os, "sched_yield", lambda: time.sleep(0))  # sched_yield is POSIX-only


def ranks_have_own_cores(comm: Any) -> bool:
    """Whether each rank of ``comm`` can have a core of its own; the same answer on every rank.

    Collective. Each rank counts the ranks sharing its node (MPI's
    ``COMM_TYPE_SHARED`` split) against the cores of that node it may run on
    (or, when bound to fewer, than the node has); the answer is yes only if
    it is yes everywhere, so that every rank makes the same choices with it.
    When they fit, a rank that waits with nothing else to do may poll instead
    of sleeping; oversubscribed, polling would take the core from another rank.
    """
    MPI = mpi_module()
    if hasattr(os, "sched_getaffinity"):
        mine = set(os.sched_getaffinity(0))
    else:
        mine = set(range(os.cpu_count() or 1))
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        ranks_here = node.Get_size()
        # Together: ranks bound to a core each (mpiexec -bind-to core) see one apiece.
        cores_here = set().union(*node.allgather(mine))
    finally:
        node.Free()
    return bool(comm.allreduce(ranks_here <= len(cores_here), op=MPI.LAND))


class WaitPolicy:
    """How the ranks of ``comm`` wait for their peers, chosen once and the same on every rank.

    Collective to construct: it asks :func:`ranks_have_own_cores`. When
    every rank has a core to itself, a waiting rank polls for
    :data:`SPIN_LONG` (its peer is close, and nobody else needs the core)
    and a blocking all-reduce blocks inside MPI. Oversubscribed, it polls
    for :data:`SPIN_SHORT` and then gives its core away.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        The ranks that wait for each other.

    Attributes
    ----------
    own_cores : bool
        Whether every rank has a core to itself (False for one rank alone).
    spin : float
        Seconds :meth:`wait` polls before giving the core away.
    """

    def __init__(self, comm: Any) -> None:
        self.own_cores = comm.Get_size() > 1 and ranks_have_own_cores(comm)
        self.spin = SPIN_LONG if self.own_cores else SPIN_SHORT

    def wait(self, request: Any, what: Any = None) -> None:
        """Wait for ``request`` (anything with ``Test()``) with :func:`wait_politely`;
        ``what`` names it for the watchdog."""
        wait_politely(request, self.spin, what=what)

    def allreduce(self, buf: np.ndarray, **kwargs: Any) -> None:
        """All-reduce ``buf`` in place, returning when done; ``kwargs`` as for ``allreduce``."""
        if self.own_cores:
            allreduce(buf, **kwargs)
        else:
            # More ranks than cores: MPI's blocking calls poll without end,
            # keeping the core from the very peer they wait for. Started
            # without blocking, the all-reduce can wait politely.
            request = iallreduce(buf, **kwargs)
            self.wait(request)
            request.wait()  # done: this lets the next collective start on the communicator
