"""Perform a schedule on real MPI ranks with mpi4py's buffer methods.

The executor knows nothing about algorithms: it takes the rounds of one rank
(from :func:`~minidl.dist.schedules.rounds_of`) and, for each round, starts the
sends, lands the receives, and then reduces what arrived. Data always moves
as raw NumPy buffers (``Sendrecv``, ``Isend``/``Irecv``), never pickled.

Memory: a receive that copies lands straight in the buffer; a receive that
reduces lands in one scratch array, allocated once per call and as long as the
most elements any round reduces (``ceil(n / p)`` for the ring, so the ring
needs ``O(n / p)`` extra memory), and is then reduced into the buffer by the
compiled kernel.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from minidl import kernels
from minidl.dist.steps import Round
from minidl.dist.trace import Event, Trace

TAG = 27_171
"""The MPI tag of every message of a schedule: apart from tags a program uses
for its own messages (MPI guarantees tags up to 32767). Within a round, MPI
delivers the messages between two ranks in the order they were sent, which is
the order the schedule lists them in."""


def scratch_size(rounds: Sequence[Round]) -> int:
    """The most elements one round of ``rounds`` receives to reduce."""
    return max((sum(r.count for r in rnd.recvs if r.reduce) for rnd in rounds), default=0)


def execute(
    rounds: Sequence[Round],
    flat: np.ndarray,
    op: str | None,
    comm: Any,
    trace: Trace | None = None,
) -> None:
    """Perform ``rounds`` on this rank's buffer ``flat``, in place.

    Parameters
    ----------
    rounds : sequence of Round
        This rank's rounds; every rank of ``comm`` must run its own rounds of
        the same schedule at the same time.
    flat : numpy.ndarray
        The buffer: 1-D, C-contiguous, writable, of a dtype the kernels support.
    op : str or None
        The reduction applied by receives that reduce (None if there are none).
    comm : mpi4py.MPI.Intracomm
        The communicator whose ranks the schedule's peers are.
    trace : Trace, optional
        Receives one event per send, receive and reduction, timed with
        :func:`time.perf_counter`.
    """
    from mpi4py import MPI  # imported here: importing minidl.dist must not start MPI

    scratch = np.empty(scratch_size(rounds), dtype=flat.dtype)
    rank = comm.Get_rank()
    for k, rnd in enumerate(rounds):
        if not (rnd.sends or rnd.recvs):
            continue
        landing = _landing_zones(rnd, flat, scratch)
        started = time.perf_counter()
        if len(rnd.sends) == 1 and len(rnd.recvs) == 1:
            # The common round (ring, butterfly): one call, and MPI pairs the
            # send with the receive without deadlock.
            s, r = rnd.sends[0], rnd.recvs[0]
            comm.Sendrecv(flat[s.start : s.stop], s.peer, TAG, landing[0], r.peer, TAG)
        else:
            # Post the receives first, so that every arriving message has a
            # place to go, then the sends; wait for all of them.
            requests = [comm.Irecv(buf, r.peer, TAG) for r, buf in zip(rnd.recvs, landing)]
            requests += [comm.Isend(flat[s.start : s.stop], s.peer, TAG) for s in rnd.sends]
            MPI.Request.Waitall(requests)
        arrived = time.perf_counter()
        # Reduce only now: the round's sends may read the ranges reduced into.
        for r, buf in zip(rnd.recvs, landing):
            if r.reduce:
                kernels.reduce_into(op, flat[r.start : r.stop], buf)
        if trace is not None:
            _record(trace, rank, k, rnd, flat.itemsize, started, arrived, time.perf_counter())


def _landing_zones(rnd: Round, flat: np.ndarray, scratch: np.ndarray) -> list[np.ndarray]:
    """Where each receive of ``rnd`` lands: in the buffer (copy) or in scratch (reduce)."""
    zones = []
    offset = 0
    for r in rnd.recvs:
        if r.reduce:
            zones.append(scratch[offset : offset + r.count])
            offset += r.count
        else:
            zones.append(flat[r.start : r.stop])
    return zones


def _record(
    trace: Trace,
    rank: int,
    k: int,
    rnd: Round,
    itemsize: int,
    started: float,
    arrived: float,
    done: float,
) -> None:
    """Messages span [started, arrived]; the round's reductions span [arrived, done]."""
    for s in rnd.sends:
        trace.record(
            Event(rank, k, "send", s.peer, s.chunks, s.count, s.count * itemsize, started, arrived)
        )
    for r in rnd.recvs:
        nbytes = r.count * itemsize
        trace.record(Event(rank, k, "recv", r.peer, r.chunks, r.count, nbytes, started, arrived))
        if r.reduce:
            trace.record(Event(rank, k, "reduce", r.peer, r.chunks, r.count, nbytes, arrived, done))
