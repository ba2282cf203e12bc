"""The reference executor: perform any schedule's rounds on real MPI ranks. Read this one first.

For each round of one rank's schedule (:mod:`minidl.distributed.steps`):

1. post a receive (``Irecv``) into a fresh landing array for each step in,
   and a send (``Isend``) straight from the buffer for each step out;
2. wait for all of them (``Waitall``);
3. reduce each landing array into its range of the buffer (or copy it there).

That is the whole algorithm, and it keeps the rules of a schedule by
construction: sends read the buffer as the round began (nothing is written
before every send has left), and receives land after the sends (a receive
may even copy into a range the round sends: a swap). Messages between two
ranks match in the order they were posted, since they share one tag: MPI
never lets one message overtake another with the same sender, tag and
communicator.

:func:`start` is the same loop as a generator that yields what it waits on
instead of waiting, so that :func:`~minidl.distributed.iallreduce` can hand
control back to its caller between rounds. :func:`run` drives it to the end.
The fast executor (:mod:`minidl.distributed.fast`) performs the same
schedules with the same bits, faster; ``minidl.distributed.use("reference")``
selects this one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from minidl import kernels
from minidl.distributed.steps import Round
from minidl.distributed.trace import Event, Trace
from minidl.distributed.watchdog import WATCH, At
from minidl.distributed.world import mpi_module

TAG = 27_171
"""The MPI tag of the collectives' messages: apart from the tags a program uses
for its own (MPI guarantees tags up to 32767). Below it, ``TAG - 1`` is the
agreement check's and ``TAG - 2`` calibration's; the fast executor numbers
its messages upwards from it."""


def run(
    rounds: Iterable[Round], flat: np.ndarray, op: str | None, comm: Any, trace: Trace | None = None
) -> None:
    """Perform ``rounds`` on this rank's buffer ``flat``, in place, blocking until done.

    Parameters
    ----------
    rounds : iterable of Round
        This rank's schedule; every rank of ``comm`` runs its own at the same time.
    flat : numpy.ndarray
        The buffer: 1-D, C-contiguous, writable.
    op : str or None
        The reduction of the receives that reduce (``"sum"``, ...); None if none do.
    comm : mpi4py.MPI.Intracomm
        The communicator whose ranks the schedule's peers are.
    trace : Trace, optional
        Receives one event per send, receive and reduction.
    """
    for waiting in start(rounds, flat, op, comm, trace):
        waiting.Wait()


def start(
    rounds: Iterable[Round], flat: np.ndarray, op: str | None, comm: Any, trace: Trace | None = None
) -> Iterator[Any]:
    """:func:`run` without blocking: a generator that yields each round's requests to wait on.

    Each ``next()`` goes as far as it can without blocking and yields an
    :class:`AllOf` (it has ``Test()`` and ``Wait()``, like one MPI request);
    when the generator stops, ``flat`` holds the result.
    """
    rank = comm.Get_rank()
    for k, rnd in enumerate(rounds):
        if not (rnd.sends or rnd.recvs):
            continue  # an idle round: nothing to post, nothing to wait for
        began = time.perf_counter()
        landings = [np.empty(r.count, flat.dtype) for r in rnd.recvs]
        requests = [comm.Irecv(landing, r.peer, TAG) for r, landing in zip(rnd.recvs, landings)]
        requests += [comm.Isend(flat[s.start : s.stop], s.peer, TAG) for s in rnd.sends]
        waiting = AllOf(requests)
        WATCH.round = At(k, rnd)  # where this rank waits, should the watchdog ask
        while not waiting.Test():
            yield waiting
        arrived = time.perf_counter()
        for r, landing in zip(rnd.recvs, landings):
            if r.reduce:
                kernels.reduce_into(op, flat[r.start : r.stop], landing)
            else:
                flat[r.start : r.stop] = landing
        if trace is not None:
            _record(trace, rank, k, rnd, flat.itemsize, began, arrived, time.perf_counter())


class AllOf:
    """MPI requests waited on together, with ``Test`` and ``Wait`` as one request has them."""

    __slots__ = ("requests",)

    def __init__(self, requests: list[Any]) -> None:
        self.requests = requests

    def Test(self) -> bool:
        """Whether every request has completed (then they are freed, or made inactive)."""
        return bool(mpi_module().Request.Testall(self.requests))

    def Wait(self) -> None:
        """Block until every request has completed."""
        mpi_module().Request.Waitall(self.requests)


def _record(
    trace: Trace, rank: int, k: int, rnd: Round, itemsize: int, began: float, arrived: float,
    done: float,
) -> None:
    """One event per send and receive of round ``k`` (from ``began`` to ``arrived``), and per
    reduction (from ``arrived`` to ``done``)."""
    for s in rnd.sends:
        nbytes = s.count * itemsize
        trace.record(Event(rank, k, "send", s.peer, s.chunks, s.count, nbytes, began, arrived))
    for r in rnd.recvs:
        nbytes = r.count * itemsize
        trace.record(Event(rank, k, "recv", r.peer, r.chunks, r.count, nbytes, began, arrived))
        if r.reduce:
            trace.record(Event(rank, k, "reduce", r.peer, r.chunks, r.count, nbytes, arrived, done))
