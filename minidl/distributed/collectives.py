"""The collectives on real MPI ranks: allreduce and its building blocks.

Each function here checks its arguments, makes sure every rank called it the
same way (see :mod:`minidl.distributed.fingerprint`), looks its schedule up and hands
it to :func:`~minidl.distributed.executor.execute`; ``algorithm="mpi"`` calls MPI's
own implementation instead, the baseline to measure against.

Run scripts that use them as ``mpiexec -n P python -m mpi4py script.py``: if
one rank raises, ``-m mpi4py`` aborts every rank, where a plain ``python``
would leave the others waiting forever for its messages.

mpi4py is imported only when one of these functions runs, so ``import
minidl`` never starts MPI.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minidl.distributed import calibration, executor
from minidl.distributed.checks import DTYPES, OPS, check_dtype, check_op
from minidl.distributed.chunking import chunk_bounds
from minidl.distributed.executor import Plan, execute, mpi_module, plan_of, start, until_done
from minidl.distributed.fingerprint import check_agreement, digest
from minidl.distributed.schedules import ALGORITHMS, ROOTED, resolve
from minidl.distributed.steps import ScheduleFn
from minidl.distributed.trace import Trace

MPI_BUILTIN = "mpi"
"""The algorithm name that calls MPI's own collective (``Allreduce``, ``Bcast``, ...)."""

AUTO = "auto"
"""The algorithm name that lets the cost model choose (see :mod:`minidl.distributed.calibration`)."""


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
    _collective("allreduce", buf, op, algorithm, 0, comm, trace, check)
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
    one's ``test()`` has returned True or its ``wait()`` has returned.

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
    return _collective("allreduce", buf, op, algorithm, 0, comm, trace, check, blocking=False)[2]


_STARTED: dict[int, CollectiveRequest] = {}
"""The collective of minidl's started on each communicator (by ``id``) that
the program has not yet seen done. Its messages use the same tags as the next
collective's on that communicator, so if the ranks took two along in
different orders (one waits for the first, another for the second) messages
would meet the wrong receives and the sums come out wrong, silently: a second
one is refused instead. "Seen done" (:meth:`CollectiveRequest.test` returned
True, or :meth:`~CollectiveRequest.wait` returned), not "done": one rank's
request may finish before its program looks while another's is still in
flight, but every rank's program looks in the same order, so every rank
refuses the same call."""


def _refuse_while_started(collective: str, rank: int, started: CollectiveRequest) -> None:
    """Raise, naming the collective still in flight on the same communicator."""
    raise ValueError(
        f"{collective} on rank {rank}: an iallreduce started on this communicator "
        f"({started!r}) has not been waited for. minidl's collectives on one communicator run "
        "one at a time (their messages use the same tags): call its wait() first (or test() "
        "until it returns True), or give each its own communicator with comm.Dup()"
    )


class CollectiveRequest:
    """A collective started without blocking (see :func:`iallreduce`).

    Parameters
    ----------
    steps : iterator
        The collective as a generator of what it waits on: anything with
        ``Test()`` and ``Wait()``, like an MPI request (see
        :func:`minidl.distributed.executor.start`); each ``next()`` takes it as far
        as it can go without blocking.
    buf : numpy.ndarray
        The buffer it works in, returned by :meth:`wait`.
    comm : mpi4py.MPI.Intracomm, optional
        The communicator it runs on, for one of minidl's collectives: until
        :meth:`test` has returned True or :meth:`wait` has returned, no other
        of minidl's collectives may start there (see :data:`_STARTED`).

    Attributes
    ----------
    buf : numpy.ndarray
        The buffer; it holds the result once :attr:`done`.

    Notes
    -----
    Finish every request started: one left behind leaves its messages
    posted, and they would meet the next collective's.
    """

    def __init__(self, steps: Iterator[Any], buf: np.ndarray, comm: Any = None) -> None:
        self._steps = steps
        self._waiting: Any = None
        self._done = False
        self._error: BaseException | None = None
        self.buf = buf
        self.comm = comm
        self._advance()  # post the first messages now

    @property
    def done(self) -> bool:
        """Whether the collective has finished (as of the last :meth:`test` or :meth:`wait`)."""
        return self._done

    def test(self) -> bool:
        """Move the collective along as far as it goes without blocking; True once it is done.

        Raises the error that stopped the collective, if one did (again at
        every later call: a failed collective is never done).
        """
        if self._advance():
            self._seen_done()
            return True
        return False

    def _advance(self) -> bool:
        """:meth:`test` without letting the next collective start (see :data:`_STARTED`)."""
        if self._error is not None:
            raise self._error
        if not self._done:
            try:
                self._waiting = next(self._steps)
            except StopIteration:
                self._done, self._waiting = True, None
            except BaseException as exc:
                self._error = exc
                self._seen_done()  # it raised on this rank: the caller sees it now
                raise
        return self._done

    def _seen_done(self) -> None:
        """Let other collectives start on its communicator again."""
        if self.comm is not None and _STARTED.get(id(self.comm)) is self:
            del _STARTED[id(self.comm)]

    def wait(self) -> np.ndarray:
        """Block until the collective is done; returns the buffer."""
        while not self.test():
            self._waiting.Wait()
        return self.buf

    # mpi4py's spelling, so that code written for MPI requests can wait on this one too.
    Test = test
    Wait = wait

    def __repr__(self) -> str:
        state = "done" if self._done else "in progress"
        return f"<CollectiveRequest {state}, {self.buf.size} x {self.buf.dtype}>"


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
    flat, comm, _ = _collective("reduce_scatter", buf, op, algorithm, 0, comm, trace, check)
    bounds = chunk_bounds(flat.size, comm.Get_size())
    rank = comm.Get_rank()
    return flat[bounds[rank] : bounds[rank + 1]]


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
    _collective("allgather", buf, None, algorithm, 0, comm, trace, check)
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
    _collective("broadcast", buf, None, algorithm, root, comm, trace, check)
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
    _collective("reduce", buf, op, algorithm, root, comm, trace, check)
    return buf


def _collective(
    collective: str,
    buf: np.ndarray,
    op: str | None,
    algorithm: str | ScheduleFn,
    root: int,
    comm: Any,
    trace: Trace | None,
    check: bool,
    blocking: bool = True,
) -> tuple[np.ndarray, Any, CollectiveRequest | None]:
    """Check the call, agree on it across ranks, and run it (or start it, if not ``blocking``).

    Returns the flat view of ``buf`` that was reduced in place, the
    communicator, and the request of a collective started without blocking.
    Every call of every collective comes through here, and on a short buffer
    each microsecond of Python shows. A training loop reduces the same
    buckets with the same arguments at every step, so the call is remembered
    by its buffer (:class:`_Recent`): the next call on that buffer only
    compares its signature (the arguments, the buffer's dtype, size and
    flags, the executor's layout) with the last one's, and goes. Any other
    call is checked in full by :func:`_remember`.
    """
    recent = signature = flags = None
    if type(buf) is np.ndarray:
        flags = buf.flags
        # Types first: a tuple compares item by item, and 1.0 == 1 (but a root
        # must be an int) while an array == 1 raises. The communicator by
        # identity (an equal handle may be another type) and while not freed
        # (the entry holds it, so its id is not reused). The buffer's dtype,
        # size and flags: each can change in place. The executor's layout.
        signature = (
            collective, type(algorithm), type(op), type(root), algorithm, op, root,
            id(comm), comm is None or bool(comm),
            buf.dtype, buf.size, flags.c_contiguous, flags.writeable,
            executor.SEGMENT_BYTES, executor.PIECE_BYTES,
        )
        recent = _RECENT.get(id(buf))
        if recent is not None and recent.signature != signature:
            recent = None
        elif recent is not None and recent.model is not None:
            if recent.model is not calibration.current():  # "auto" chose with another model
                recent = None
    if recent is None:
        recent = _remember(collective, buf, op, algorithm, root, comm, signature, flags)
    flat = buf if buf.ndim == 1 else buf.reshape(-1)
    comm, call = recent.comm, recent.call
    if _STARTED and call.plan is not None and id(comm) in _STARTED:
        name = collective if blocking else f"i{collective}"
        _refuse_while_started(name, recent.rank, _STARTED[id(comm)])
    if check:
        check_agreement(comm, collective, call.fields, _names_a_rank_may_pass(), call.hashed)
    if trace is not None:
        if trace.clock != "seconds":
            raise ValueError(
                f"{collective} on rank {recent.rank}: a trace of real ranks is timed in seconds, "
                f"but this one has clock={trace.clock!r} (for simulate): pass Trace()"
            )
        trace.comm = comm
    if not blocking:
        assert collective == "allreduce", "only allreduce starts without blocking"
        if call.plan is None:
            steps = until_done(comm.Iallreduce(_mpi().IN_PLACE, flat, op=call.mpi_op))
            return flat, comm, CollectiveRequest(steps, buf)
        request = CollectiveRequest(start(call.plan, flat, op, comm, trace), buf, comm)
        _STARTED[id(comm)] = request
        return flat, comm, request
    if call.plan is None:
        _mpi_builtin(collective, flat, call.mpi_op, call.root, recent.rank, comm)
    else:
        execute(call.plan, flat, op, comm, trace)
    return flat, comm, None


@dataclass(frozen=True)
class _Call:
    """What a call's arguments decide, once checked: see :func:`_prepare`.

    Attributes
    ----------
    fields : tuple of (str, int or str) pairs
        The call's fingerprint (see :mod:`minidl.distributed.fingerprint`).
    plan : Plan or None
        This rank's compiled schedule; None for MPI's own collective.
    root : int
        The root, as a Python int (0 for collectives without one).
    mpi_op : mpi4py.MPI.Op or None
        For MPI's own collective, the op (``MPI.SUM``, ...); else None.
    model : Calibration or None
        For ``"auto"``, the model that chose the algorithm; else None.
    hashed : int
        ``digest(fields)``, the hash that the fingerprint check exchanges, computed once.
    """

    fields: tuple[tuple[str, int | str], ...]
    plan: Plan | None
    root: int
    mpi_op: Any = None
    model: calibration.Calibration | None = None
    hashed: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hashed", digest(self.fields))  # frozen: set once, here


_PREPARED: dict[tuple[Any, ...], _Call] = {}
""":func:`_prepare`'s answers by their key (see :func:`_remember`). A plain dict: on a 1 KiB
buffer, where MPI's own allreduce takes 6 us, ``functools.lru_cache`` with
nine arguments cost a third of a microsecond more."""

_PREPARED_MAX = 1024


RECENT_BUFFERS = 64
"""How many buffers :func:`_collective` remembers its last call on (the
oldest remembered is forgotten first)."""


class _Recent:
    """The last call on one buffer, checked: what the next call with the same signature reuses.

    Found by the buffer's ``id``, but the buffer itself plays no part: a
    new array that got the ``id`` of a dead one reuses the entry only if its
    call has the same signature, compared in full at every call: the
    arguments, the buffer's dtype and size and whether it is contiguous and
    writable, and the executor's layout. Measured on two ranks, finding the
    call this way instead of checking every argument and looking the plan up
    by a key of ten fields took a 1 KiB allreduce from 6.7 to 6.1 us (MPI's
    own: 5.5).

    Attributes
    ----------
    signature : tuple
        Everything the call depends on, as :func:`_collective` puts it together.
    comm, rank : Any, int
        The communicator (``MPI.COMM_WORLD`` for None) and this rank in it.
        Held: the signature names a communicator by its ``id``.
    call : _Call
        What :func:`_prepare` decided.
    model : Calibration or None
        For ``"auto"``, the model that chose the algorithm: the entry serves
        only while that model is :func:`~minidl.distributed.calibration.current`.
    """

    __slots__ = ("signature", "comm", "rank", "call", "model")

    def __init__(
        self, signature: tuple[Any, ...] | None, comm: Any, rank: int, call: _Call
    ) -> None:
        self.signature, self.comm, self.rank, self.call = signature, comm, rank, call
        self.model = call.model


_RECENT: dict[int, _Recent] = {}
"""The last call on each of the :data:`RECENT_BUFFERS` buffers used last, by
the buffer's ``id``, the oldest first."""


def _remember(
    collective: str,
    buf: np.ndarray,
    op: str | None,
    algorithm: str | ScheduleFn,
    root: int,
    comm: Any,
    signature: tuple[Any, ...] | None,
    flags: Any = None,
) -> _Recent:
    """Check a call in full, prepare it, and remember it by its buffer (if it has a ``signature``).

    The buffer is checked by :func:`_flat_view` (unless its ``flags`` say
    it is fine), the other arguments by :func:`_prepare`, whose answer is
    cached by its key: a program that passes a new array at every call (new
    gradients at every step) finds its plan there.
    """
    comm = _intracomm(comm, collective)
    rank, p = comm.Get_rank(), comm.Get_size()
    if type(root) is not int:
        root = _root_index(root, collective, rank)
    if flags is not None and flags.c_contiguous and flags.writeable:  # the usual case, quickly
        flat = buf if buf.ndim == 1 else buf.reshape(-1)
    else:
        flat = _flat_view(buf, collective, rank)
    model = id(calibration.current()) if algorithm == AUTO else 0
    layout = (executor.SEGMENT_BYTES, executor.PIECE_BYTES)
    key = (collective, algorithm, op, root, p, rank, flat.size, flat.dtype, layout, model)
    try:
        call = _PREPARED.get(key)
    except TypeError:  # an unhashable op or algorithm: _prepare names it
        call = _prepare(*key[:-1])
    if call is None:
        call = _prepare(*key[:-1])
        if len(_PREPARED) >= _PREPARED_MAX:  # a program cycling through sizes: start afresh
            _PREPARED.clear()
        _PREPARED[key] = call
    recent = _Recent(signature, comm, rank, call)
    if signature is not None:  # an ndarray's: a subclass's is checked in full every time
        _RECENT.pop(id(buf), None)
        if len(_RECENT) >= RECENT_BUFFERS:
            _RECENT.pop(next(iter(_RECENT)))  # the oldest
        _RECENT[id(buf)] = recent
    return recent


def _prepare(
    collective: str,
    algorithm: str | ScheduleFn,
    op: str | None,
    root: int,
    p: int,
    rank: int,
    n: int,
    dtype: np.dtype,
    layout: tuple[int, int],
) -> _Call:
    """Check the arguments other than the buffer's shape and compile the plan.

    :func:`_remember` keeps the answer in :data:`_PREPARED`. A bad argument
    raises (exceptions are not kept), so every bad call gets its error.
    """
    where = f"{collective} on rank {rank}"
    check_dtype(dtype, f"{where}: buf")
    if op is not None:
        check_op(op, where)
    model = None
    if algorithm == AUTO:
        model = calibration.current()
        algorithm = model.choose(p, n * dtype.itemsize, collective)
    if algorithm == MPI_BUILTIN:
        name = MPI_BUILTIN
    else:
        try:
            name, _ = resolve(collective, algorithm)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}, {AUTO!r} or {MPI_BUILTIN!r}") from None
    root = _root_index(root, collective, rank)
    if collective in ROOTED and not 0 <= root < p:
        raise ValueError(f"{where}: root {root} is not a rank of this communicator (size {p})")
    fields = (
        ("collective", collective),
        ("number of elements", n),
        ("dtype", dtype.name),
        ("op", op or "none"),
        ("algorithm", name),
        ("root", root),
    )
    if name == MPI_BUILTIN:
        mpi_op = getattr(_mpi(), op.upper()) if op is not None else None  # MPI.SUM, ...
        return _Call(fields, None, root, mpi_op, model)
    plan = plan_of(collective, algorithm, p, rank, n, root, dtype.itemsize, *layout)
    return _Call(fields, plan, root, None, model)


def _names_a_rank_may_pass() -> Iterator[str]:
    """Every collective, op, dtype and algorithm name: how a mismatch error names them.

    A generator, so that the names are only listed when there is a mismatch.
    """
    yield from ALGORITHMS
    yield from OPS
    yield from (dtype.name for dtype in DTYPES)
    yield MPI_BUILTIN
    for algorithms in ALGORITHMS.values():
        yield from algorithms


_mpi = mpi_module  # mpi4py, imported on first use


def _root_index(root: Any, collective: str, rank: int) -> int:
    """``root`` as an int, or a TypeError naming it."""
    try:
        return operator.index(root)
    except TypeError:
        raise TypeError(
            f"{collective} on rank {rank}: root must be an int, got {type(root).__name__}"
        ) from None


def _intracomm(comm: Any, collective: str) -> Any:
    """``comm``, or ``MPI.COMM_WORLD`` for None, after checking it is an intra-communicator."""
    MPI = _mpi()
    if comm is None:
        return MPI.COMM_WORLD
    if not isinstance(comm, MPI.Intracomm):
        raise TypeError(
            f"{collective}: comm must be an mpi4py intra-communicator (MPI.COMM_WORLD or one "
            f"made from it with Split or Dup), got {type(comm).__name__}"
        )
    return comm


def _flat_view(buf: np.ndarray, collective: str, rank: int) -> np.ndarray:
    """A 1-D view of ``buf`` that the executor can send from and write into."""
    if not isinstance(buf, np.ndarray):
        raise TypeError(
            f"{collective} on rank {rank}: buf must be a NumPy array, got {type(buf).__name__}"
        )
    flags = buf.flags  # the dtype is checked by _prepare, once per key
    if not flags.c_contiguous:
        raise ValueError(
            f"{collective} on rank {rank}: buf (shape {buf.shape}, strides {buf.strides}) is not "
            "C-contiguous, so it cannot be sent as one block of memory. Pass a contiguous copy, "
            "c = np.ascontiguousarray(buf), and copy the result back: buf[...] = c"
        )
    if not flags.writeable:
        raise ValueError(
            f"{collective} on rank {rank}: buf is read-only, but the collective writes its "
            "result into it. Pass a writable copy: buf.copy()"
        )
    return buf if buf.ndim == 1 else buf.reshape(-1)


def _mpi_builtin(
    collective: str, flat: np.ndarray, mpi_op: Any, root: int, rank: int, comm: Any
) -> None:
    """The same collective, in place, done by MPI's own implementation with ``mpi_op``."""
    MPI = _mpi()
    if collective == "allreduce":
        comm.Allreduce(MPI.IN_PLACE, flat, op=mpi_op)
    elif collective == "broadcast":
        comm.Bcast(flat, root=root)
    elif collective == "reduce":
        if rank == root:
            comm.Reduce(MPI.IN_PLACE, flat, op=mpi_op, root=root)
        else:
            comm.Reduce(flat, None, op=mpi_op, root=root)
    else:
        bounds = np.array(chunk_bounds(flat.size, comm.Get_size()))
        counts, displacements = np.diff(bounds), bounds[:-1]
        if collective == "allgather":
            comm.Allgatherv(MPI.IN_PLACE, [flat, (counts, displacements)])
        else:  # reduce_scatter: MPI puts this rank's chunk in a separate buffer
            mine = np.empty(counts[rank], dtype=flat.dtype)
            comm.Reduce_scatter(flat, mine, recvcounts=counts, op=mpi_op)
            flat[bounds[rank] : bounds[rank + 1]] = mine
