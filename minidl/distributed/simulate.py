"""Run a schedule in one process over ``p`` in-memory buffers: no MPI needed.

The simulator plays every rank, round by round: first all the round's sends
copy their data out (sends read the buffers as the round began), then every
receive takes its message and reduces or copies it in with the same
:mod:`minidl.kernels` reduction the MPI executor uses, so both give the same
bits. On the way it checks the rules of :mod:`minidl.distributed.steps` and raises a
:class:`ScheduleError` naming the round and ranks of the first one broken;
that is how a new schedule gets debugged before it ever meets ``mpiexec``.
"""

from __future__ import annotations

import functools
from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from minidl import kernels
from minidl.distributed.checks import check_dtype, check_op
from minidl.distributed.schedules import REARRANGE, check_layout, resolve, rounds_of
from minidl.distributed.steps import Recv, Round, ScheduleError, ScheduleFn, Send
from minidl.distributed.trace import Event, Trace


class Simulation(NamedTuple):
    """What :func:`simulate` returns: unpack as ``outputs, trace = simulate(...)``.

    ``outputs`` is the list of each rank's buffer afterwards, shaped like its
    input; ``trace`` is a :class:`~minidl.distributed.trace.Trace` with one event per
    message sent, received and reduced, whose clock counts rounds.
    """

    outputs: list[np.ndarray]
    """Each rank's buffer afterwards, shaped like its input."""
    trace: Trace
    """One event per message sent, received and reduced; its clock counts rounds."""


def simulate(
    algorithm: str | ScheduleFn,
    inputs: Sequence[np.ndarray],
    op: str = "sum",
    *,
    collective: str = "allreduce",
    root: int = 0,
) -> Simulation:
    """Run a collective on ``len(inputs)`` simulated ranks, one buffer each.

    Parameters
    ----------
    algorithm : str or callable
        An algorithm of ``collective`` (see :data:`minidl.distributed.ALGORITHMS`),
        or a schedule generator ``fn(p, rank, n)`` of your own (for scatter and
        gather from a root other than 0, ``fn(p, rank, n, root)``).
    inputs : sequence of numpy.ndarray
        Rank ``r``'s buffer is ``inputs[r]``; all the same shape and dtype
        (float32, float64, int32 or int64). They are not modified.
    op : {"sum", "prod", "max", "min"}, optional
        The reduction (ignored by the collectives that reduce nothing).
    collective : str, optional
        ``"allreduce"`` (default), ``"reduce_scatter"``, ``"allgather"``,
        ``"broadcast"``, ``"reduce"``, ``"scatter"``, ``"gather"`` or
        ``"alltoall"``, with the meaning of the functions of the same name in
        :mod:`minidl.distributed`. Scatter and gather move chunk ``r`` of the
        split by :func:`~minidl.distributed.chunking.chunk_bounds` between
        the root and rank ``r``; alltoall needs a size that ``p`` divides, and
        sends block ``j`` of rank ``i`` to block ``i`` of rank ``j``.
    root : int, optional
        The root of ``"broadcast"``, ``"reduce"``, ``"scatter"`` and ``"gather"``.

    Returns
    -------
    Simulation
        ``(outputs, trace)``.

    Raises
    ------
    ScheduleError
        If a send has no matching receive (or a receive no send), the ranks
        disagree on the number of rounds, or a step names a bad peer or range.
    ValueError, TypeError
        If the inputs differ in shape or dtype, the op or dtype is unsupported,
        an alltoall's size is not a multiple of ``p``, or ``root`` is not a rank
        (a TypeError if it is not an int).

    Examples
    --------
    >>> import numpy as np
    >>> inputs = [np.arange(5.0) + 10 * rank for rank in range(3)]
    >>> outputs, trace = simulate("ring", inputs)
    >>> outputs[2]
    array([30., 33., 36., 39., 42.])
    >>> len(trace.events)  # 4 rounds x 3 ranks x (send, recv), + 2 rounds x 3 reduces
    30
    """
    if isinstance(inputs, str) and not isinstance(algorithm, str):
        raise TypeError(
            f"simulate: the algorithm comes first, then the inputs: simulate({inputs!r}, inputs)"
        )
    buffers = _flat_copies(inputs, op)
    p, n = len(buffers), buffers[0].size
    check_layout(p, n, root, collective)
    name, _ = resolve(collective, algorithm)
    plans = _plans(name, collective, algorithm, p, n, root)
    trace = Trace(clock="rounds")
    keep_place = collective not in REARRANGE
    for k in range(len(plans[0])):
        _play_round(k, [plan[k] for plan in plans], buffers, op, trace, keep_place)
    outputs = [b.reshape(np.shape(inputs[0])) for b in buffers]
    if collective == "allreduce":
        _check_allreduced(name, inputs, outputs, op)
    return Simulation(outputs, trace)


@functools.lru_cache(maxsize=1024)
def check_schedule(
    collective: str, algorithm: str | ScheduleFn, p: int, n: int, root: int = 0
) -> None:
    """Check that every rank's rounds match each other's: what would hang under ``mpiexec``.

    The simulator's rules without the data: every rank yields as many
    rounds, every send has its receive in the same round (same length, and
    the same range where data keeps its place), and no receive waits for a
    send that never comes. It needs every rank's rounds, which each rank can
    compute alone, so the collectives call it on every rank before they run
    a schedule function of your own for the first time with this ``p`` and
    ``n`` (cached: later calls cost nothing), and every rank raises the same
    error instead of waiting forever.

    Raises
    ------
    ScheduleError
        Naming the round, the ranks and the steps that do not match.
    """
    name, _ = resolve(collective, algorithm)
    plans = _plans(name, collective, algorithm, p, n, root)
    keep_place = collective not in REARRANGE
    for k in range(len(plans[0])):
        in_flight: dict[tuple[int, int], deque[tuple[Send, None]]] = defaultdict(deque)
        for rank, plan in enumerate(plans):
            for s in plan[k].sends:
                in_flight[rank, s.peer].append((s, None))
        for rank, plan in enumerate(plans):
            for r in plan[k].recvs:
                _match(k, rank, r, in_flight, keep_place)
        _check_drained(k, in_flight)


def _plans(
    name: str, collective: str, algorithm: str | ScheduleFn, p: int, n: int, root: int
) -> list[tuple[Round, ...]]:
    """Every rank's rounds, after checking that they are as many on every rank."""
    plans = [rounds_of(collective, algorithm, p, rank, n, root) for rank in range(p)]
    lengths = {len(plan) for plan in plans}
    if len(lengths) > 1:
        counts = ", ".join(f"rank {rank}: {len(plan)}" for rank, plan in enumerate(plans))
        raise ScheduleError(f"{name}: the ranks yield different numbers of rounds ({counts})")
    return plans


def _check_allreduced(
    name: str, inputs: Sequence[np.ndarray], outputs: list[np.ndarray], op: str
) -> None:
    """Raise unless every rank holds the reduction of all inputs (to float rounding).

    A schedule can keep every rule and still not all-reduce: a ring without
    its all-gather leaves each rank one reduced chunk.
    """
    stacked = np.stack([np.asarray(x) for x in inputs])
    if np.issubdtype(stacked.dtype, np.integer):  # exact, wrapping as the kernels do
        exact = {"dtype": stacked.dtype} if op in ("sum", "prod") else {}
        want = _REDUCE[op](stacked, axis=0, **exact)
        tolerance = {"rtol": 0.0, "atol": 0.0}
    else:
        want = _REDUCE[op](stacked.astype(np.float64), axis=0)
        eps = float(np.finfo(stacked.dtype).eps)
        scale = float(np.max(np.abs(stacked), initial=0.0))
        # Summed in another order, each of p - 1 additions rounds by up to eps.
        tolerance = {"rtol": 4 * len(inputs) * eps, "atol": 4 * len(inputs) * eps * scale}
    for rank, out in enumerate(outputs):
        close = np.isclose(out.astype(want.dtype), want, equal_nan=True, **tolerance)
        if not close.all():
            i = int(np.flatnonzero(~close.reshape(-1))[0])
            raise ScheduleError(
                f"{name}: after the last round rank {rank} holds {out.reshape(-1)[i]!r} at "
                f"element {i}, not the {op} over the ranks, {want.reshape(-1)[i]!r}: the "
                "schedule keeps the rules but does not all-reduce (is a phase missing?)"
            )


_REDUCE = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min}
"""NumPy's reduction along an axis for each op: the independent reference of an all-reduce."""


def _flat_copies(inputs: Sequence[np.ndarray], op: str) -> list[np.ndarray]:
    """A flat, contiguous copy of each input, after checking they fit together."""
    if len(inputs) < 1:
        raise ValueError("simulate: inputs must hold one array per rank, got none")
    arrays = [np.asarray(x) for x in inputs]
    check_op(op, "simulate")
    check_dtype(arrays[0].dtype, "simulate: inputs[0]")
    for rank, x in enumerate(arrays):
        if x.shape != arrays[0].shape or x.dtype != arrays[0].dtype:
            raise ValueError(
                f"simulate: every rank's input must have the same shape and dtype; rank 0 has "
                f"{arrays[0].shape} {arrays[0].dtype}, rank {rank} has {x.shape} {x.dtype}"
            )
    return [np.array(x, copy=True).reshape(-1) for x in arrays]


def _play_round(
    k: int,
    rounds: list[Round],
    buffers: list[np.ndarray],
    op: str,
    trace: Trace,
    keep_place: bool,
) -> None:
    """Perform round ``k`` of every rank: all sends first, then all receives.

    A message to the rank itself is no different here: its data is copied out
    with the other sends and lands with the other receives. ``keep_place``:
    whether a receive must name its send's element range (rule 2), or only
    its length.
    """
    itemsize = buffers[0].itemsize
    # Messages in flight, per (sender, receiver), in the order they were sent:
    # MPI keeps that order between one pair of ranks, and so do we.
    in_flight: dict[tuple[int, int], deque[tuple[Send, np.ndarray]]] = defaultdict(deque)
    for rank, rnd in enumerate(rounds):
        for s in rnd.sends:
            in_flight[rank, s.peer].append((s, buffers[rank][s.start : s.stop].copy()))
            trace.record(
                Event(rank, k, "send", s.peer, s.chunks, s.count, s.count * itemsize, k, k + 1)
            )
    for rank, rnd in enumerate(rounds):
        for r in rnd.recvs:
            data = _match(k, rank, r, in_flight, keep_place)
            nbytes = r.count * itemsize
            trace.record(Event(rank, k, "recv", r.peer, r.chunks, r.count, nbytes, k, k + 1))
            target = buffers[rank][r.start : r.stop]
            if r.reduce:
                kernels.reduce_into(op, target, data)
                trace.record(Event(rank, k, "reduce", r.peer, r.chunks, r.count, nbytes, k, k + 1))
            else:
                target[...] = data
    _check_drained(k, in_flight)


def _check_drained(k: int, in_flight: dict[tuple[int, int], deque[tuple[Send, Any]]]) -> None:
    """Raise if a message of round ``k`` met no receive."""
    for (sender, receiver), queue in in_flight.items():
        if queue:
            s, _ = queue[0]
            raise ScheduleError(
                f"round {k}: rank {sender} does '{s}', but rank {receiver} posts no "
                f"matching receive from rank {sender} in that round"
            )


def _match(
    k: int,
    rank: int,
    r: Recv,
    in_flight: dict[tuple[int, int], deque[tuple[Send, Any]]],
    keep_place: bool,
) -> Any:
    """The data of the message that receive ``r`` of ``rank`` takes, checked against it."""
    queue = in_flight.get((r.peer, rank))
    if not queue:
        raise ScheduleError(
            f"round {k}: rank {rank} does '{r}', but rank {r.peer} sends nothing "
            f"(or nothing more) to rank {rank} in that round"
        )
    s, data = queue.popleft()
    if keep_place and (s.start, s.stop) != (r.start, r.stop):
        raise ScheduleError(
            f"round {k}: rank {r.peer} does '{s}', but the matching receive on rank {rank} "
            f"is '{r}': the element ranges differ (data keeps its place, except in an alltoall)"
        )
    if s.count != r.count:
        raise ScheduleError(
            f"round {k}: rank {r.peer} does '{s}', but the matching receive on rank {rank} "
            f"is '{r}': {s.count} elements sent, {r.count} expected"
        )
    return data
