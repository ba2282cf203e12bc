"""The collectives on real MPI ranks: allreduce and its family. Read this file first.

Every collective here takes the same four steps, one call each:

1. ``_validate``: check every argument this rank passed (an error names
   what was wrong, and on which rank);
2. ``_agree``: make sure every rank made the same call (a tiny collective,
   see :mod:`minidl.distributed.fingerprint`), so that a mismatch raises on
   every rank instead of hanging;
3. ``_schedule``: this rank's rounds of the algorithm (see
   :mod:`minidl.distributed.steps`);
4. ``_run``: perform them with MPI's point-to-point messages, in place.

The executor that does steps 1, 3 and 4 is chosen by
:func:`minidl.distributed.use`: ``"reference"`` (:mod:`minidl.distributed.run`,
the plain loop of ``Irecv``, ``Isend`` and ``Waitall`` to read next) or
``"fast"`` (:mod:`minidl.distributed.fast`, the default: the same results,
tuned). ``algorithm="mpi"`` calls MPI's own implementation instead, the
baseline to measure against.

Run scripts that use them as ``mpiexec -n P python -m mpi4py script.py``: if
one rank raises, ``-m mpi4py`` aborts every rank, where a plain ``python``
would leave the others waiting forever for its messages.

mpi4py is imported only when one of these functions runs, so ``import
minidl`` never starts MPI.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minidl.distributed import executors
from minidl.distributed.call import MPI_BUILTIN, Call
from minidl.distributed.chunking import chunk_bounds
from minidl.distributed.fingerprint import check_agreement
from minidl.distributed.request import _STARTED, CollectiveRequest, refuse_while_started, until_done
from minidl.distributed.steps import ScheduleFn
from minidl.distributed.trace import Trace
from minidl.distributed.watchdog import WATCH
from minidl.distributed.world import mpi_module


def allreduce(
    buf: np.ndarray,
    op: str = "sum",
    algorithm: str | ScheduleFn = "ring",
    comm: Any = None,
    trace: Trace | None = None,
    *,
    check: bool = True,
) -> np.ndarray:
    """Reduce ``buf`` over all ranks, in place: afterwards every rank holds the result.

    Parameters
    ----------
    buf : numpy.ndarray
        This rank's data; any shape, C-contiguous, writable, float32, float64,
        int32 or int64. Same size and dtype on every rank.
    op : {"sum", "prod", "max", "min"}, optional
        The reduction.
    algorithm : str or callable, optional
        ``"ring"`` (default), ``"rabenseifner"``, ``"recursive_doubling"``,
        ``"tree"``, ``"naive"``, ``"auto"`` (the one the calibrated cost
        model predicts fastest, see :func:`~minidl.distributed.calibration.calibrate`;
        before any calibration, a model of the 2-core machine minidl is
        developed on, :data:`~minidl.distributed.calibration.DEFAULT`),
        ``"mpi"`` (MPI's own ``Allreduce``), or a schedule generator
        ``fn(p, rank, n)`` of your own.
    comm : mpi4py.MPI.Intracomm, optional
        The ranks taking part; ``None`` means ``MPI.COMM_WORLD``. Any
        intra-communicator works, including those from ``comm.Split``.
    trace : Trace, optional
        If given, receives an event per message and reduction of this rank
        (none for ``"mpi"``, whose messages MPI does not show).
    check : bool, optional
        Check first that every rank passed the same size, dtype, op and
        algorithm, so that a mismatch raises a clear error on every rank
        instead of hanging (default). ``False`` saves one tiny collective per
        call, for benchmarks; it must then be ``False`` on every rank.

    Returns
    -------
    numpy.ndarray
        ``buf`` itself, now holding the reduction; bit-identical on every rank.

    Raises
    ------
    TypeError
        If ``buf`` is not a NumPy array of a supported dtype, or ``comm`` is
        not an intra-communicator.
    ValueError
        If ``buf`` is read-only or not contiguous, ``op`` or ``algorithm`` is
        unknown, or (on every rank) the ranks disagree on the call.

    Examples
    --------
    Under ``mpiexec -n 4 python -m mpi4py``:

    >>> import numpy as np
    >>> from mpi4py import MPI
    >>> from minidl.distributed import allreduce
    >>> grad = np.full(3, MPI.COMM_WORLD.rank, dtype=np.float32)  # doctest: +SKIP
    >>> allreduce(grad)  # doctest: +SKIP
    array([6., 6., 6.], dtype=float32)
    """
    call = _validate("allreduce", buf, op, algorithm, 0, comm, trace)
    _agree(call, check)
    _run(call, _schedule(call), buf, trace)
    return buf


def iallreduce(
    buf: np.ndarray,
    op: str = "sum",
    algorithm: str | ScheduleFn = "ring",
    comm: Any = None,
    trace: Trace | None = None,
    *,
    check: bool = True,
) -> CollectiveRequest:
    """Start :func:`allreduce` without waiting for it: MPI's ``MPI_Iallreduce``.

    The first messages are posted before it returns. The returned request
    moves the rest along each time its :meth:`~CollectiveRequest.test` is
    called, and :meth:`~CollectiveRequest.wait` finishes it. In between, the
    caller computes: this is how
    :class:`~minidl.parallel.DistributedDataParallel` overlaps gradient
    all-reduces with backward, without a thread. Do not touch ``buf`` until
    the request is done. Start non-blocking collectives on a communicator in
    the same order on every rank, and only one of minidl's at a time per
    communicator (their messages use the same tags; ``comm.Dup()`` gives
    each its own): any other of minidl's collectives on it raises until this
    one's ``wait()`` has returned (call it also once ``test()`` has returned
    True; it then returns at once).

    Parameters
    ----------
    buf, op, algorithm, comm, trace, check
        As in :func:`allreduce`. The check, when on, is done before this
        returns: it blocks for ``ceil(lg p)`` exchanges of 16 bytes.

    Returns
    -------
    CollectiveRequest

    Examples
    --------
    Under ``mpiexec -n 2 python -m mpi4py``::

        request = iallreduce(grad)
        ...                          # compute something else
        request.wait()               # grad now holds the sum over the ranks
    """
    call = _validate("allreduce", buf, op, algorithm, 0, comm, trace, name="iallreduce")
    _agree(call, check)
    return _start(call, _schedule(call), buf, trace)


def reduce_scatter(
    buf: np.ndarray,
    op: str = "sum",
    algorithm: str | ScheduleFn = "ring",
    comm: Any = None,
    trace: Trace | None = None,
    *,
    check: bool = True,
) -> np.ndarray:
    """Reduce ``buf`` over all ranks, leaving rank ``r`` with chunk ``r`` of the result.

    The flattened buffer is split into ``p`` chunks by
    :func:`~minidl.distributed.chunking.chunk_bounds`. Afterwards chunk ``r`` of
    ``buf`` on rank ``r`` holds the reduction of chunk ``r`` over all ranks;
    the other chunks of ``buf`` are left holding partial results.

    Parameters
    ----------
    buf, op, comm, trace, check
        As in :func:`allreduce`.
    algorithm : str or callable, optional
        ``"ring"`` (default), ``"mpi"`` (MPI's ``Reduce_scatter``), or a schedule of your own.

    Returns
    -------
    numpy.ndarray
        This rank's chunk: a 1-D view into ``buf``.
    """
    call = _validate("reduce_scatter", buf, op, algorithm, 0, comm, trace)
    _agree(call, check)
    flat = _run(call, _schedule(call), buf, trace)
    bounds = chunk_bounds(call.n, call.p)
    return flat[bounds[call.rank] : bounds[call.rank + 1]]


def allgather(
    buf: np.ndarray,
    algorithm: str | ScheduleFn = "ring",
    comm: Any = None,
    trace: Trace | None = None,
    *,
    check: bool = True,
) -> np.ndarray:
    """Gather every rank's chunk into every rank's ``buf``, in place.

    The flattened buffer is split into ``p`` chunks by
    :func:`~minidl.distributed.chunking.chunk_bounds`. On entry rank ``r``
    contributes its chunk ``r`` (the rest of its ``buf`` is overwritten);
    afterwards every rank holds all chunks.

    Parameters
    ----------
    buf, comm, trace, check
        As in :func:`allreduce`.
    algorithm : str or callable, optional
        ``"ring"`` (default), ``"mpi"`` (MPI's ``Allgatherv``), or a schedule of your own.

    Returns
    -------
    numpy.ndarray
        ``buf`` itself.
    """
    call = _validate("allgather", buf, None, algorithm, 0, comm, trace)
    _agree(call, check)
    _run(call, _schedule(call), buf, trace)
    return buf


def broadcast(
    buf: np.ndarray,
    root: int = 0,
    algorithm: str | ScheduleFn = "binomial",
    comm: Any = None,
    trace: Trace | None = None,
    *,
    check: bool = True,
) -> np.ndarray:
    """Copy ``buf`` of rank ``root`` into ``buf`` of every rank, in place.

    Parameters
    ----------
    buf, comm, trace, check
        As in :func:`allreduce`.
    root : int, optional
        The rank whose buffer is sent.
    algorithm : str or callable, optional
        ``"binomial"`` (default: short buffers), ``"scatter_allgather"`` (long
        buffers), ``"auto"`` (the model's pick), ``"mpi"`` (MPI's ``Bcast``),
        or a schedule of your own.

    Returns
    -------
    numpy.ndarray
        ``buf`` itself.
    """
    call = _validate("broadcast", buf, None, algorithm, root, comm, trace)
    _agree(call, check)
    _run(call, _schedule(call), buf, trace)
    return buf


def reduce(
    buf: np.ndarray,
    op: str = "sum",
    root: int = 0,
    algorithm: str | ScheduleFn = "binomial",
    comm: Any = None,
    trace: Trace | None = None,
    *,
    check: bool = True,
) -> np.ndarray:
    """Reduce ``buf`` over all ranks into ``buf`` of rank ``root``, in place.

    On the other ranks ``buf`` is used as workspace: afterwards it holds a
    partial reduction.

    Parameters
    ----------
    buf, op, comm, trace, check
        As in :func:`allreduce`.
    root : int, optional
        The rank that receives the result.
    algorithm : str or callable, optional
        ``"binomial"`` (default), ``"mpi"`` (MPI's ``Reduce``), or a schedule of your own.

    Returns
    -------
    numpy.ndarray
        ``buf`` itself.
    """
    call = _validate("reduce", buf, op, algorithm, root, comm, trace)
    _agree(call, check)
    _run(call, _schedule(call), buf, trace)
    return buf


def scatter(
    buf: np.ndarray,
    root: int = 0,
    algorithm: str | ScheduleFn = "binomial",
    comm: Any = None,
    trace: Trace | None = None,
    *,
    check: bool = True,
) -> np.ndarray:
    """Send chunk ``r`` of ``root``'s buffer to rank ``r``, in place: MPI's ``Scatter``.

    The flattened buffer is split into ``p`` chunks by
    :func:`~minidl.distributed.chunking.chunk_bounds` (any size, even fewer
    elements than ranks). Afterwards chunk ``r`` of ``buf`` on rank ``r``
    holds chunk ``r`` of ``root``'s ``buf``; ``root``'s buffer is unchanged, and
    the other chunks of the other ranks' buffers are workspace (a tree
    passes chunks on through them).

    Parameters
    ----------
    buf, comm, trace, check
        As in :func:`allreduce`.
    root : int, optional
        The rank whose chunks are sent.
    algorithm : str or callable, optional
        ``"binomial"`` (default: a binomial tree, ``ceil(lg p)`` rounds),
        ``"linear"`` (the root sends each rank its chunk), ``"auto"`` (the
        cost model's pick), ``"mpi"`` (MPI's ``Scatterv``), or a schedule of
        your own.

    Returns
    -------
    numpy.ndarray
        This rank's chunk: a 1-D view into ``buf``.
    """
    call = _validate("scatter", buf, None, algorithm, root, comm, trace)
    _agree(call, check)
    flat = _run(call, _schedule(call), buf, trace)
    bounds = chunk_bounds(call.n, call.p)
    return flat[bounds[call.rank] : bounds[call.rank + 1]]


def gather(
    buf: np.ndarray,
    root: int = 0,
    algorithm: str | ScheduleFn = "binomial",
    comm: Any = None,
    trace: Trace | None = None,
    *,
    check: bool = True,
) -> np.ndarray:
    """Collect chunk ``r`` of rank ``r``'s buffer into chunk ``r`` of ``root``'s, in place.

    The reverse of :func:`scatter`: MPI's ``Gather``. Afterwards ``root``'s
    ``buf`` holds every rank's chunk; the other ranks' buffers are
    workspace outside their own chunk.

    Parameters
    ----------
    buf, comm, trace, check
        As in :func:`allreduce`.
    root : int, optional
        The rank that collects.
    algorithm : str or callable, optional
        ``"binomial"`` (default), ``"linear"``, ``"auto"`` (the cost model's
        pick), ``"mpi"`` (MPI's ``Gatherv``), or a schedule of your own.

    Returns
    -------
    numpy.ndarray
        ``buf`` itself.
    """
    call = _validate("gather", buf, None, algorithm, root, comm, trace)
    _agree(call, check)
    _run(call, _schedule(call), buf, trace)
    return buf


def alltoall(
    buf: np.ndarray,
    algorithm: str | ScheduleFn = "pairwise",
    comm: Any = None,
    trace: Trace | None = None,
    *,
    check: bool = True,
) -> np.ndarray:
    """Every rank sends block ``j`` of its buffer to rank ``j``, in place: MPI's ``Alltoall``.

    The flattened buffer is ``p`` equal blocks. Afterwards block ``j`` of
    rank ``i``'s ``buf`` holds what rank ``j`` sent to rank ``i`` (its block
    ``i``): a transpose of blocks across the ranks, what expert and
    sequence parallelism are built on.

    Parameters
    ----------
    buf, comm, trace, check
        As in :func:`allreduce`; the size must be a multiple of ``p``.
    algorithm : str or callable, optional
        ``"pairwise"`` (default: ``p`` rounds, in each one exchange with one
        partner, one round idle on each rank), ``"bruck"`` (``ceil(lg p)``
        rounds of messages, for short blocks), ``"auto"`` (the cost model's
        pick), ``"mpi"`` (MPI's ``Alltoall``), or a schedule of your own.

    Returns
    -------
    numpy.ndarray
        ``buf`` itself.

    Raises
    ------
    ValueError
        As :func:`allreduce`, and if the size is not a multiple of ``p``.
    """
    call = _validate("alltoall", buf, None, algorithm, 0, comm, trace)
    _agree(call, check)
    _run(call, _schedule(call), buf, trace)
    return buf


def _validate(
    collective: str,
    buf: np.ndarray,
    op: str | None,
    algorithm: str | ScheduleFn,
    root: int,
    comm: Any,
    trace: Trace | None,
    name: str | None = None,
) -> Call:
    """Step 1: check every argument (the active executor does it), and the trace's clock.

    Also refuses a collective on a communicator where one of minidl's is
    still in flight (see :data:`minidl.distributed.request._STARTED`);
    ``name`` is what the error calls it (``"iallreduce"``), if not ``collective``.
    """
    call = executors.active.validate(collective, buf, op, algorithm, root, comm)
    if _STARTED and call.algorithm != MPI_BUILTIN:
        refuse_while_started(name or collective, call)
    if trace is not None:
        if trace.clock != "seconds":
            raise ValueError(
                f"{collective} on rank {call.rank}: a trace of real ranks is timed in seconds, "
                f"but this one has clock={trace.clock!r} (for simulate): pass Trace()"
            )
        trace.comm = call.comm
    return call


def _agree(call: Call, check: bool) -> None:
    """Step 2: make sure every rank made the same call (see :mod:`minidl.distributed.fingerprint`).

    Collective: a tiny one, skipped with ``check=False`` (on every rank alike).
    """
    if check:
        take_maximum = executors.active.maximum
        outer = WATCH.enter(call, "agreement check")  # for the watchdog, if one is set
        try:
            check_agreement(call.comm, call.collective, call.fields, call.hashed, take_maximum)
        finally:
            WATCH.leave(outer)


def _schedule(call: Call) -> Any:
    """Step 3: this rank's rounds, in the form the executor runs (None for MPI's own)."""
    if call.algorithm == MPI_BUILTIN:
        return None
    return executors.active.schedule(call)


def _run(call: Call, schedule: Any, buf: np.ndarray, trace: Trace | None) -> np.ndarray:
    """Step 4: perform the schedule on ``buf`` in place, blocking; returns the flat view.

    On the reference executor this is :func:`minidl.distributed.run.run`: the
    next file to read.
    """
    flat = buf if buf.ndim == 1 else buf.reshape(-1)
    # WATCH.enter(call) and WATCH.leave(outer), written out: this is every
    # blocking collective's path, and two method calls would cost a 4 KiB
    # all-reduce about 1% (benchmarks/bench_watchdog.py). The executor tells
    # the watchdog each round, too.
    watch = WATCH
    outer, watch.state, watch.round = watch.state, (call,), None
    try:
        if schedule is None:
            _mpi_builtin(call, flat)
        else:
            executors.active.run(schedule, flat, call.op, call.comm, trace)
    finally:
        watch.state = outer
    return flat


def _start(call: Call, schedule: Any, buf: np.ndarray, trace: Trace | None) -> CollectiveRequest:
    """Step 4 without blocking: start the schedule on ``buf`` and return its request."""
    flat = buf if buf.ndim == 1 else buf.reshape(-1)
    if schedule is None:
        mpi = mpi_module()
        request = call.comm.Iallreduce(mpi.IN_PLACE, flat, op=getattr(mpi, call.op.upper()))
        return CollectiveRequest(until_done(request), buf, what=call)
    steps = executors.active.start(schedule, flat, call.op, call.comm, trace)
    request = CollectiveRequest(steps, buf, call.comm, what=call)
    _STARTED[id(call.comm)] = request
    return request


def _mpi_builtin(call: Call, flat: np.ndarray) -> None:
    """The same collective, in place, done by MPI's own implementation."""
    MPI, comm, root, rank = mpi_module(), call.comm, call.root, call.rank
    op = getattr(MPI, call.op.upper()) if call.op is not None else None  # "sum": MPI.SUM
    bounds = np.array(chunk_bounds(call.n, call.p))
    counts, displacements = np.diff(bounds), bounds[:-1]
    if call.collective == "allreduce":
        comm.Allreduce(MPI.IN_PLACE, flat, op=op)
    elif call.collective == "broadcast":
        comm.Bcast(flat, root=root)
    elif call.collective == "reduce":
        if rank == root:
            comm.Reduce(MPI.IN_PLACE, flat, op=op, root=root)
        else:
            comm.Reduce(flat, None, op=op, root=root)
    elif call.collective == "allgather":
        comm.Allgatherv(MPI.IN_PLACE, [flat, (counts, displacements)])
    elif call.collective == "reduce_scatter":  # MPI puts this rank's chunk in a separate buffer
        mine = np.empty(counts[rank], dtype=flat.dtype)
        comm.Reduce_scatter(flat, mine, recvcounts=counts, op=op)
        flat[bounds[rank] : bounds[rank + 1]] = mine
    elif call.collective == "scatter":
        if rank == root:
            comm.Scatterv([flat, (counts, displacements)], MPI.IN_PLACE, root=root)
        else:
            comm.Scatterv(None, flat[bounds[rank] : bounds[rank + 1]], root=root)
    elif call.collective == "gather":
        if rank == root:
            comm.Gatherv(MPI.IN_PLACE, [flat, (counts, displacements)], root=root)
        else:
            comm.Gatherv(flat[bounds[rank] : bounds[rank + 1]], None, root=root)
    else:  # alltoall, on p equal blocks
        comm.Alltoall(MPI.IN_PLACE, flat)
