"""Perform a schedule on real MPI ranks with mpi4py's buffer methods.

The executor knows nothing about algorithms. It works in two steps:

1. :func:`compile_plan` turns the rounds of one rank (from
   :func:`~minidl.dist.schedules.rounds_of`) into a :class:`Plan`: per round,
   flat tuples of the MPI messages to post, each with its element range, peer
   and tag, long messages already cut into segments, and the scratch space a
   call needs. :func:`plan_of` caches the plan per (collective, algorithm,
   ``p``, rank, ``n``, root, element size), so a training loop that reduces
   the same bucket every step walks the schedule generator once, not every
   step: looping over :class:`~minidl.dist.steps.Round` objects costs
   microseconds per round, as much as a short message itself.
2. :func:`execute` runs a plan on one buffer, blocking until it is done;
   :func:`start` runs it without blocking, as a generator that yields each
   MPI request it waits on, so that its caller can compute meanwhile (MPI's
   ``MPI_Iallreduce``, written in Python). Data always moves as raw NumPy
   buffers (``Sendrecv``, ``Isend``/``Irecv``), never pickled, and is reduced
   by the compiled kernel of :mod:`minidl.kernels`.

Two kinds of round
------------------
*Exchange*: one message out, one in (every round of the ring and the
butterfly on short buffers). :func:`execute` does it with one ``Sendrecv``,
which MPI pairs without deadlock, then the reduction: the fewest Python steps
for a short message. Started without blocking, it is an ``Irecv`` and an
``Isend``, then the reduction.

A plan of exchange rounds over a short buffer is *bound* to that buffer the
first time it runs on it: its messages become MPI persistent requests, set
up once and started again at each call (:class:`Bound`).

*Pipelined*: everything else. A message longer than :data:`SEGMENT_BYTES`
travels as segments. Receives that copy land straight in the buffer; receives
that reduce land in scratch, :data:`IN_FLIGHT` segments at a time: while the
kernel reduces segment ``i``, segment ``i + 1`` can already be arriving
(double buffering, as NCCL and Gloo cut long messages into slices). So the
reduction overlaps the transfer as far as MPI moves data meanwhile (between
two ranks of one machine, the sender copies the next segment in while the
receiver reduces), and the scratch, two segments, stays in cache where a
whole chunk of a long buffer would not.

Memory: scratch holds one message of an exchange round, or ``IN_FLIGHT``
segments of a pipelined one: never more than the longest reduced message
(``ceil(n / p)`` elements for the ring), nor more than 2 MiB. It is
allocated once per call, or kept with the plan for the next call when it is
short (:data:`POOLED_SCRATCH_BYTES`).
"""

from __future__ import annotations

import atexit
import functools
import time
import weakref
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from minidl import kernels
from minidl.dist.chunking import chunk_bounds
from minidl.dist.schedules import rounds_of
from minidl.dist.steps import Recv, Round, ScheduleFn, Send
from minidl.dist.trace import Event, Trace

TAG = 27_171
"""The MPI tag of the first message between two ranks in a round; the ``j``-th
gets ``TAG + j``. Apart from tags a program uses for its own messages (MPI
guarantees tags up to 32767). Sender and receiver number the messages between
them alike, since a schedule lists them in the same order on both sides."""

SEGMENT_BYTES = 1 << 20
"""Messages longer than this travel as segments of at most this many bytes, so
that the receiver can reduce one segment while the next arrives. Each segment
costs a few microseconds of Python and MPI, so segments must be long: on two
ranks of a 2-core machine, 64 KiB segments made the ring 1.3 to 1.4 times
slower than whole messages from 256 KiB to 16 MiB, while 1 MiB segments were
within 5% of whole messages up to 16 MiB and 1.5 times faster at 64 MiB
(``benchmarks/bench_allreduce.py --segment-kib``). Read at each call: set
``minidl.dist.executor.SEGMENT_BYTES`` to watch a short buffer pipelined (in a
trace) or to tune it for a machine. Every rank must use the same value."""

IN_FLIGHT = 2
"""Segments of a reduced message posted ahead: one being reduced, one arriving."""

BOUND_MAX_BYTES = 64 << 10
"""Plans of exchange rounds over buffers up to this size are bound to their
buffers with persistent requests (see :class:`Bound`): longer messages take
long enough that setting them up each time does not show."""

BOUND_PER_PLAN = 4
"""Buffers a plan stays bound to; binding one more frees the oldest."""

BOUND_PLANS = 64
"""Plans that stay bound at once; binding one more unbinds the one bound longest ago."""

POOLED_SCRATCH_BYTES = 64 << 10
"""Scratch up to this size is kept with its plan for the next call; longer
scratch is allocated per call, which costs little next to the messages that
need it."""

REDUCE_KERNELS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "sum": kernels.add_into,
    "prod": kernels.prod_into,
    "max": kernels.max_into,
    "min": kernels.min_into,
}
"""The kernel of each op (they dispatch to the active backend at each call)."""


class Message(NamedTuple):
    """One MPI message of a plan: elements ``[start, stop)`` to or from ``peer``."""

    peer: int
    """The rank at the other end."""
    start: int
    """The first element of the buffer it carries."""
    stop: int
    """One past the last element it carries."""
    tag: int
    """Its MPI tag (see :data:`TAG`)."""
    part: int
    """The position, among its round's sends (or receives), of the schedule step
    this message is all or a segment of."""


class Exchange(NamedTuple):
    """A round of one message out and one in, ready to unpack in a single step."""

    send: Message
    """The message out."""
    recv: Message
    """The message in."""
    reduce: bool
    """Whether the message in is reduced into the buffer (else copied there)."""
    whole: tuple[bool, bool]
    """Whether the message out, and the message in, span the whole buffer: then
    they need no slice of it (slicing costs as much as a 1 KiB copy)."""


@dataclass(frozen=True)
class PlannedRound:
    """One round of a :class:`Plan`, as the messages MPI will see.

    Attributes
    ----------
    index : int
        The round's number in the schedule.
    round : Round
        The schedule's round itself (what a trace records).
    sends : tuple of Message
        Every message to send, segments of one step in order.
    copies : tuple of Message
        Receives that land straight in the buffer.
    reduces : tuple of Message
        Receives that land in scratch and are then reduced into the buffer.
    waits : tuple of tuple of int
        For each message of ``reduces``, the sends whose range it reduces
        into: they must have left before it is reduced (recursive doubling
        sends and reduces the same range).
    exchange : Exchange or None
        For a round of one message out and one in, the two, done with a
        single ``Sendrecv``; None for the other rounds.
    slot : int
        Elements of scratch per reduced message in flight.
    """

    index: int
    round: Round
    sends: tuple[Message, ...]
    copies: tuple[Message, ...]
    reduces: tuple[Message, ...]
    waits: tuple[tuple[int, ...], ...]
    exchange: Exchange | None
    slot: int


@dataclass(frozen=True)
class Plan:
    """A schedule compiled for the executor: its busy rounds, and the scratch a call needs.

    Attributes
    ----------
    rounds : tuple of PlannedRound
        The rounds in which this rank sends or receives; idle rounds are left out.
    scratch : int
        Elements of scratch :func:`execute` needs for the reduced messages.
    spare : dict
        A scratch array of up to :data:`POOLED_SCRATCH_BYTES` per dtype, that
        an earlier call gave back for the next one: allocating costs as much
        as a short message. A call in another thread meanwhile allocates its own.
    """

    rounds: tuple[PlannedRound, ...]
    scratch: int
    bindable: bool = False
    """Whether every round is an exchange (then :func:`execute` may bind it, see :class:`Bound`)."""
    spare: dict[np.dtype, np.ndarray] = field(default_factory=dict, compare=False)
    bound: dict[tuple[int, int], Bound] = field(default_factory=dict, compare=False)
    """The plan's persistent messages on the buffers it ran on last (see :class:`Bound`)."""
    seen: dict[tuple[int, int], Any] = field(default_factory=dict, compare=False)
    """Weak references to the buffers it ran on once, not yet bound."""


@dataclass
class Bound:
    """A plan of exchange rounds bound to one buffer and communicator with persistent requests.

    MPI can set a message up once (``Send_init``, ``Recv_init``) and start it
    any number of times: each start skips reading the buffer's description,
    which is what a ``Sendrecv`` of a short message spends its time on
    (measured on 2 ranks, 1 KiB: 4.0 us per ``Sendrecv``, 2.9 us started
    again). A training loop reduces the same bucket every step, and a
    benchmark the same buffer every call, so :func:`execute` binds each short
    plan to the buffers it meets, a few per plan (:data:`BOUND_PER_PLAN`).
    Only buffers that own their memory are bound, the second time the plan
    meets them: they are looked up by identity (a view's says nothing about
    where it points), and a buffer used once is not worth it. Binding holds
    the buffer (short ones only) until the plan binds others. The executor is
    not for threads: two threads running one plan could, among other things,
    free each other's requests.

    Attributes
    ----------
    buf, comm
        The buffer and the communicator, held so that the identities they
        are looked up by are not given to other objects meanwhile.
    scratch : numpy.ndarray
        Where reduced messages land.
    rounds : list of tuple
        Per round, ``(requests, into, landing, reduce)``: the receive's and
        the send's persistent requests, the
        buffer range the message in is reduced into, where it lands, and
        whether it is reduced (else it landed in place).
    """

    buf: np.ndarray
    comm: Any
    scratch: np.ndarray
    rounds: list[tuple[list[Any], np.ndarray, np.ndarray, bool]]

    def free(self) -> None:
        """Free the requests (MPI warns about requests still allocated when it finalizes)."""
        for requests, *_ in self.rounds:
            for request in requests:
                request.Free()
        self.rounds = []


def compile_plan(rounds: Sequence[Round], segment: int, n: int | None = None) -> Plan:
    """Compile one rank's ``rounds`` into a :class:`Plan` with segments of ``segment`` elements.

    Parameters
    ----------
    rounds : sequence of Round
        The schedule of this rank.
    segment : int
        The longest message, in elements; longer ones are cut into the fewest
        segments of at most this length, split evenly (as
        :func:`~minidl.dist.chunking.chunk_bounds` splits a buffer).
    n : int, optional
        The number of elements of the buffer, if known: an exchange of the
        whole buffer then skips slicing it.

    Returns
    -------
    Plan

    Examples
    --------
    Recursive doubling on 2 ranks over 10 elements, in segments of 4: three
    segments each way, and each reduced segment waits for the send of the
    same range.

    >>> from minidl.dist import schedule
    >>> plan = compile_plan(schedule("recursive_doubling", 2, 0, 10).rounds, segment=4)
    >>> [(m.start, m.stop) for m in plan.rounds[0].sends]
    [(0, 4), (4, 7), (7, 10)]
    >>> plan.rounds[0].waits, plan.scratch
    (((0,), (1,), (2,)), 8)
    """
    planned = []
    for k, rnd in enumerate(rounds):
        if not (rnd.sends or rnd.recvs):
            continue
        sends = _messages(rnd.sends, segment)
        received = _messages(rnd.recvs, segment)
        copies = tuple(m for m in received if not rnd.recvs[m.part].reduce)
        reduces = tuple(m for m in received if rnd.recvs[m.part].reduce)
        waits = tuple(
            tuple(i for i, s in enumerate(sends) if s.start < r.stop and r.start < s.stop)
            for r in reduces
        )
        slot = max((r.stop - r.start for r in reduces), default=0)
        exchange = None
        if len(sends) == 1 and len(received) == 1:
            (out, into), size = (sends[0], received[0]), n if n is not None else -1
            whole = (out.stop - out.start == size, into.stop - into.start == size)
            exchange = Exchange(out, into, bool(reduces), whole)
        planned.append(PlannedRound(k, rnd, sends, copies, reduces, waits, exchange, slot))
    scratch = max((r.slot * min(IN_FLIGHT, len(r.reduces)) for r in planned), default=0)
    bindable = bool(planned) and all(r.exchange is not None for r in planned)
    return Plan(tuple(planned), scratch, bindable)


def _messages(steps: Sequence[Send] | Sequence[Recv], segment: int) -> tuple[Message, ...]:
    """The MPI messages of a round's sends (or receives): tags numbered per peer, long ones cut."""
    per_peer: dict[int, int] = {}
    messages = []
    for part, step in enumerate(steps):
        tag = TAG + per_peer.get(step.peer, 0)
        per_peer[step.peer] = per_peer.get(step.peer, 0) + 1
        pieces = max(1, -(-step.count // segment))
        cuts = chunk_bounds(step.count, pieces)
        for a, b in zip(cuts, cuts[1:]):
            messages.append(Message(step.peer, step.start + a, step.start + b, tag, part))
    return tuple(messages)


@functools.lru_cache(maxsize=1024)
def plan_of(
    collective: str,
    algorithm: str | ScheduleFn,
    p: int,
    rank: int,
    n: int,
    root: int,
    itemsize: int,
    segment_bytes: int,
) -> Plan:
    """The compiled plan of one rank's schedule; cached, since every call needs it.

    Parameters are those of :func:`~minidl.dist.schedules.schedule`, the size
    of one element in bytes, and :data:`SEGMENT_BYTES`.
    """
    rounds = rounds_of(collective, algorithm, p, rank, n, root)
    return compile_plan(rounds, max(1, segment_bytes // itemsize), n)


def execute(
    plan: Plan,
    flat: np.ndarray,
    op: str | None,
    comm: Any,
    trace: Trace | None = None,
) -> None:
    """Perform ``plan`` on this rank's buffer ``flat``, in place.

    Parameters
    ----------
    plan : Plan
        This rank's plan; every rank of ``comm`` must run its own plan of the
        same schedule (and :data:`SEGMENT_BYTES`) at the same time.
    flat : numpy.ndarray
        The buffer: 1-D, C-contiguous, writable, of a dtype the kernels support.
    op : str or None
        The reduction applied by receives that reduce (None if there are none).
    comm : mpi4py.MPI.Intracomm
        The communicator whose ranks the schedule's peers are.
    trace : Trace, optional
        Receives one event per send, receive and reduction of the schedule
        (not per segment), timed with :func:`time.perf_counter`.
    """
    reduce_into = REDUCE_KERNELS[op] if op is not None else None
    if plan.bindable and trace is None and flat.base is None and flat.nbytes <= BOUND_MAX_BYTES:
        # A short buffer that owns its memory, and a plan of exchanges: persistent requests.
        bound = plan.bound.get((id(flat), id(comm))) or _bind_the_second_time(plan, flat, comm)
        if bound is not None:
            mpi = mpi_module()
            for requests, into, landing, reduce in bound.rounds:
                mpi.Prequest.Startall(requests)
                mpi.Request.Waitall(requests)
                if reduce:
                    reduce_into(into, landing)
            return
    for request in _rounds(plan, flat, reduce_into, comm, trace, blocking=True):
        request.Wait()


def _sendrecv(
    planned: PlannedRound,
    flat: np.ndarray,
    scratch: np.ndarray,
    reduce_into: Callable[..., Any] | None,
    comm: Any,
    spans: dict[int, tuple[float, float]] | None,
) -> float:
    """A round of one message each way, blocking: one ``Sendrecv``, then the reduction.

    MPI pairs the two messages without deadlock. The reduction comes only
    after both (recursive doubling reduces into the range it has just sent);
    its span goes into ``spans`` when it is a dict, and the time the messages
    were done is returned (0 without ``spans``: the clock costs, too).
    """
    (to, a, b, out_tag, _), (source, c, d, in_tag, part), reduce, whole = planned.exchange
    into = flat if whole[1] else flat[c:d]
    landing = (scratch if scratch.size == d - c else scratch[: d - c]) if reduce else into
    comm.Sendrecv(flat if whole[0] else flat[a:b], to, out_tag, landing, source, in_tag)
    if spans is None:
        if reduce:
            reduce_into(into, landing)
        return 0.0
    arrived = time.perf_counter()
    if reduce:
        reduce_into(into, landing)
        spans[part] = (arrived, time.perf_counter())
    return arrived


def _bind_the_second_time(plan: Plan, flat: np.ndarray, comm: Any) -> Bound | None:
    """Bind ``plan`` to ``flat`` and ``comm`` if it met that very buffer before; else remember it.

    A buffer used once (a fresh array per call) is not worth binding: setting
    up persistent requests costs more than one ``Sendrecv``.
    """
    key = (id(flat), id(comm))
    earlier = plan.seen.pop(key, None)
    if earlier is not None and earlier() is flat:
        return _bind(plan, flat, comm)
    if len(plan.seen) >= 2 * BOUND_PER_PLAN:
        plan.seen.pop(next(iter(plan.seen)))  # the oldest
    plan.seen[key] = weakref.ref(flat)
    return None


def _bind(plan: Plan, flat: np.ndarray, comm: Any) -> Bound:
    """Bind ``plan``, all exchange rounds, to ``flat`` and ``comm`` with persistent requests."""
    scratch = np.empty(plan.scratch, flat.dtype)
    rounds = []
    for planned in plan.rounds:
        (to, a, b, out_tag, _), (source, c, d, in_tag, _), reduce, _ = planned.exchange
        into = flat[c:d]
        landing = scratch[: d - c] if reduce else into
        requests = [comm.Recv_init(landing, source, in_tag), comm.Send_init(flat[a:b], to, out_tag)]
        rounds.append((requests, into, landing, reduce))
    if len(plan.bound) >= BOUND_PER_PLAN:
        plan.bound.pop(next(iter(plan.bound))).free()  # the oldest
    _BOUND_PLANS.pop(id(plan), None)
    _BOUND_PLANS[id(plan)] = plan  # now the newest
    if len(_BOUND_PLANS) > BOUND_PLANS:
        oldest = _BOUND_PLANS.pop(next(iter(_BOUND_PLANS)))
        while oldest.bound:
            oldest.bound.popitem()[1].free()
    bound = plan.bound[(id(flat), id(comm))] = Bound(flat, comm, scratch, rounds)
    return bound


_BOUND_PLANS: dict[int, Plan] = {}
"""The plans that hold persistent requests, oldest first: held here, so that
their requests are freed even once the plan caches have let them go."""


@atexit.register
def _free_bound() -> None:
    """At exit, before MPI finalizes (mpi4py does it later): free every persistent request."""
    if not _BOUND_PLANS or mpi_module().Is_finalized():
        return
    while _BOUND_PLANS:
        plan = _BOUND_PLANS.popitem()[1]
        while plan.bound:
            plan.bound.popitem()[1].free()


@functools.cache
def mpi_module() -> Any:
    """mpi4py's ``MPI`` module, imported on first use: importing minidl.dist must not start MPI."""
    from mpi4py import MPI

    return MPI


def start(
    plan: Plan,
    flat: np.ndarray,
    op: str | None,
    comm: Any,
    trace: Trace | None = None,
) -> Iterator[Any]:
    """Perform ``plan`` without blocking: a generator of the MPI requests it waits on.

    Each ``next()`` runs the plan as far as it can go (posting messages,
    reducing what has arrived) and yields the MPI request it must wait for
    next; when it stops, ``flat`` holds the result. Whoever drives it may do
    other work between two ``next()`` calls (backward, in
    :class:`~minidl.parallel.DistributedDataParallel`) or call ``Wait()`` on
    the request yielded; :class:`~minidl.dist.collectives.CollectiveRequest`
    does both. Parameters as in :func:`execute`.
    """
    reduce_into = REDUCE_KERNELS[op] if op is not None else None
    return _rounds(plan, flat, reduce_into, comm, trace)


def _rounds(
    plan: Plan,
    flat: np.ndarray,
    reduce_into: Callable[..., Any] | None,
    comm: Any,
    trace: Trace | None,
    blocking: bool = False,
) -> Iterator[Any]:
    """Every round of ``plan``, yielding each MPI request it waits on; recorded into ``trace`` if given.

    Exchange rounds are one blocking ``Sendrecv`` when ``blocking`` (what
    :func:`execute` wants), else an ``Isend`` and an ``Irecv``. Scratch comes
    from the plan's pool and goes back to it once every round is done.
    """
    scratch = plan.spare.pop(flat.dtype, None)
    if scratch is None:
        scratch = np.empty(plan.scratch, flat.dtype)
    rank = comm.Get_rank() if trace is not None else -1
    for planned in plan.rounds:
        spans: dict[int, tuple[float, float]] | None = {} if trace is not None else None
        started = time.perf_counter() if trace is not None else 0.0
        if planned.exchange is None:
            done = yield from _pipelined(planned, flat, scratch, reduce_into, comm, spans)
        elif blocking:
            done = _sendrecv(planned, flat, scratch, reduce_into, comm, spans)
        else:
            done = yield from _exchange(planned, flat, scratch, reduce_into, comm, spans)
        if trace is not None:
            trace.record_later(_events, rank, planned, flat.itemsize, started, done, spans)
    if plan.scratch * flat.itemsize <= POOLED_SCRATCH_BYTES:
        plan.spare[flat.dtype] = scratch


def until_done(request: Any) -> Iterator[Any]:
    """Yield ``request`` until it has completed (``Test`` frees it once it has)."""
    while not request.Test():
        yield request


def _exchange(
    planned: PlannedRound,
    flat: np.ndarray,
    scratch: np.ndarray,
    reduce_into: Callable[..., Any] | None,
    comm: Any,
    spans: dict[int, tuple[float, float]] | None,
) -> Generator[Any, None, float]:
    """A round of one message each way, without blocking: :func:`_pipelined` made short.

    The same messages as the ``Sendrecv`` of :func:`execute`, posted as an
    ``Irecv`` and an ``Isend``; the reduction comes after both are done
    (recursive doubling reduces into the range it sends).
    """
    (to, a, b, out_tag, _), (source, c, d, in_tag, part), reduce, whole = planned.exchange
    into = flat if whole[1] else flat[c:d]
    landing = (scratch if scratch.size == d - c else scratch[: d - c]) if reduce else into
    received = comm.Irecv(landing, source, in_tag)
    sent = comm.Isend(flat if whole[0] else flat[a:b], to, out_tag)
    while not received.Test():
        yield received
    while not sent.Test():
        yield sent
    if reduce:
        if spans is None:
            reduce_into(into, landing)
            return 0.0
        arrived = time.perf_counter()
        reduce_into(into, landing)
        spans[part] = (arrived, time.perf_counter())
        return arrived
    return time.perf_counter() if spans is not None else 0.0


def _pipelined(
    planned: PlannedRound,
    flat: np.ndarray,
    scratch: np.ndarray,
    reduce_into: Callable[..., Any] | None,
    comm: Any,
    spans: dict[int, tuple[float, float]] | None,
) -> Generator[Any, None, float]:
    """One round: post every copy and send, then receive and reduce :data:`IN_FLIGHT` segments at a time.

    A generator: it yields each MPI request it must wait for (the caller
    ``Wait()``s on it, or does something else and comes back), and returns
    when every message was done. Each reduction's span, from its first
    segment to its last, goes into ``spans`` when it is a dict.
    """
    reduces, slot = planned.reduces, planned.slot

    def post(i: int) -> tuple[Any, np.ndarray]:
        """Receive reduced segment ``i`` into its slot of scratch."""
        m = reduces[i]
        offset = (i % IN_FLIGHT) * slot
        landing = scratch[offset : offset + m.stop - m.start]
        return comm.Irecv(landing, m.peer, m.tag), landing

    # Receives first, so that the first messages to arrive have a place to go.
    requests = [comm.Irecv(flat[m.start : m.stop], m.peer, m.tag) for m in planned.copies]
    in_flight = deque(post(i) for i in range(min(IN_FLIGHT, len(reduces))))
    sends = [comm.Isend(flat[m.start : m.stop], m.peer, m.tag) for m in planned.sends]
    for i, m in enumerate(reduces):
        request, landing = in_flight.popleft()
        yield from until_done(request)
        for j in planned.waits[i]:  # the round's sends read the buffer as it was
            yield from until_done(sends[j])
        if spans is None:
            reduce_into(flat[m.start : m.stop], landing)
        else:
            begun = time.perf_counter()
            reduce_into(flat[m.start : m.stop], landing)
            spans[m.part] = (spans.get(m.part, (begun,))[0], time.perf_counter())
        if i + IN_FLIGHT < len(reduces):
            in_flight.append(post(i + IN_FLIGHT))  # into the slot just reduced from
    for request in requests + sends:
        yield from until_done(request)
    return time.perf_counter() if spans is not None else 0.0


def _events(
    rank: int,
    planned: PlannedRound,
    itemsize: int,
    started: float,
    done: float,
    spans: dict[int, tuple[float, float]],
) -> list[Event]:
    """The trace events of one round: one per send and receive of the schedule, and per reduction.

    Messages span [started, done]; a reduction spans its first to last segment.
    """
    k, rnd = planned.index, planned.round
    sent = [m.part for m in planned.sends]
    received = [m.part for m in planned.copies + planned.reduces]
    events = []
    for part, s in enumerate(rnd.sends):
        pieces, nbytes = sent.count(part), s.count * itemsize
        events.append(
            Event(rank, k, "send", s.peer, s.chunks, s.count, nbytes, started, done, pieces)
        )
    for part, r in enumerate(rnd.recvs):
        pieces, nbytes = received.count(part), r.count * itemsize
        events.append(
            Event(rank, k, "recv", r.peer, r.chunks, r.count, nbytes, started, done, pieces)
        )
        if r.reduce:
            begun, ended = spans[part]
            events.append(
                Event(rank, k, "reduce", r.peer, r.chunks, r.count, nbytes, begun, ended, pieces)
            )
    return events
