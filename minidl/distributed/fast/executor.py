"""Perform a schedule on real MPI ranks with mpi4py's buffer methods.

The executor knows nothing about algorithms. It works in two steps:

1. :func:`compile_plan` turns the rounds of one rank (from
   :func:`~minidl.distributed.schedules.rounds_of`) into a :class:`Plan`: per round,
   flat tuples of the MPI messages to post, each with its element range, peer
   and tag, long messages already cut into segments (mid-length ones of
   short buffers into pieces), and the scratch space a call needs.
   :func:`plan_of` caches the plan per (collective, algorithm, ``p``, rank,
   ``n``, root, element size, :data:`SEGMENT_BYTES`, :data:`PIECE_BYTES`),
   so a training loop that reduces the same bucket every step walks the
   schedule generator once, not every step: looping over
   :class:`~minidl.distributed.steps.Round` objects costs microseconds per round, as
   much as a short message itself.
2. :func:`execute` runs a plan on one buffer, blocking until it is done;
   :func:`start` runs it without blocking, as a generator that yields what
   it waits on (an MPI request, or an :class:`AllOf` of a round's requests:
   either has ``Test()`` and ``Wait()``), so that its caller can compute
   meanwhile (MPI's ``MPI_Iallreduce``, written in Python). Data always
   moves as raw NumPy buffers (``Sendrecv``, ``Isend``/``Irecv``), never
   pickled, and is reduced by the compiled kernel of :mod:`minidl.kernels`.

Two kinds of round
------------------
*Exchange*: one step out, one in (every round of the ring and the
butterfly on short buffers). :func:`execute` does it with one ``Sendrecv``,
which MPI pairs without deadlock, then the reduction: the fewest Python steps
for a short message. Started without blocking, it is an ``Irecv`` and an
``Isend``, then the reduction. On a buffer of at most 64 KiB whose plan is
exchanges on every rank, a step of 8 KiB or more travels as *pieces* under
8 KiB (:data:`PIECE_BYTES`), each an ``Irecv`` and an ``Isend`` of its
own: MPI moves those faster (see there).

A plan of exchange rounds over a buffer of up to 4 MiB is *bound* to that
buffer the second time it runs on it, blocking or started: its messages
become MPI persistent requests, set up once and started again at each call
(:class:`Bound`).

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
(``ceil(n / p)`` elements for the ring), nor more than 4 MiB. It is
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
from minidl.distributed.chunking import chunk_bounds
from minidl.distributed.request import until_done
from minidl.distributed.run import TAG, AllOf
from minidl.distributed.schedules import rounds_of
from minidl.distributed.steps import Recv, Round, ScheduleFn, Send
from minidl.distributed.trace import Event, Trace
from minidl.distributed.watchdog import WATCH
from minidl.distributed.world import mpi_module

# Tags: the ``j``-th message between two ranks in a round gets ``TAG + j``
# (its pieces, if any, ``TAG + j + i m``: see :func:`_messages`), where the
# reference executor sends every message with ``TAG`` and relies on MPI's
# order. Persistent requests may be started in any order, so here each
# message of a round between two ranks needs a tag of its own.

SEGMENT_BYTES = 2 << 20
"""Messages longer than this travel as segments of at most this many bytes, so
that the receiver can reduce one segment while the next arrives, into scratch
that stays in cache. Each segment costs a few microseconds of Python and MPI,
and a segmented round is never bound (:class:`Bound`), so segments must be
long: on two ranks of a 2-core machine (2 MiB of L2 cache per core), 64 KiB
segments made the ring 1.3 to 1.4 times slower than whole messages from
256 KiB to 16 MiB, and whole messages were 1.1 to 1.5 times slower than segments
at 64 MiB. Between 1 and 8 MiB segments, only a buffer cut into few segments
shows a difference: 1 MiB segments cut the ring's 2 MiB messages over a 4 MiB
buffer in two, and took it at 0.90 and 0.93 times MPI's ``Allreduce`` where
whole (and bound) messages took 0.84 to 0.87; from 8 to 64 MiB, 1, 2, 4 and
8 MiB segments were all within a few percent of each other, in an order that
changed from run to run. Read at each call: set
``minidl.distributed.fast.executor.SEGMENT_BYTES`` to watch a short buffer pipelined (in a
trace) or to tune it for a machine (``benchmarks/bench_allreduce.py
--segment-kib``). Every rank must use the same value."""

PIECE_BYTES = 8191
"""On a buffer of at most :data:`PIECED_UP_TO_BYTES`, by a plan of exchanges
on every rank (so that each rank may bind it), a step longer than this
travels as the fewest even pieces of at most this many bytes, each its own
message with a tag of its own. Why: between two ranks of one machine, MPICH sends a message of
8 KiB or more with a *single copy*, the receiver reading the sender's memory
(``process_vm_readv``; the threshold is MPICH's
``MPIR_CVAR_CH4_IPC_CMA_P2P_THRESHOLD``), and shorter ones through
shared-memory cells, a copy in and a copy out. When the sender has just
written the data, as it has in a collective (the result of its last
reduction, or a gradient), the single copy is the slower: measured on two
ranks, one exchange of float32 right after writing them took 13.6 us whole
and 7.7 us in pieces at 8 KiB, 31 and 16 us at 32 KiB, 43 and 29 us at
64 KiB; from 128 KiB on, the single copy wins. Bound plans start every piece
with one ``Startall``, so pieces cost no Python there. A call that is not
bound (on a view, the first on a buffer) posts an ``Isend`` and an
``Irecv`` per piece, which costs more than the pieces save from 32 KiB on
(a ring on 2 ranks, traced and so not bound then: 1.9 to 2.7 times MPI's
``Allreduce`` at 32 KiB);
and plans that are never bound (naive, tree, ...) send every step whole. 0
sends every step whole; else at least 1024 (tags stay under 32767). Read when
a plan is compiled (:func:`plan_of` takes it); every rank must use the same
value."""

PIECED_UP_TO_BYTES = 64 << 10
"""The longest buffer whose steps travel in pieces (see :data:`PIECE_BYTES`).
A constant: cached plans do not see a new value."""

IN_FLIGHT = 2
"""Segments of a reduced message posted ahead: one being reduced, one arriving."""

BOUND_MAX_BYTES = 4 << 20
"""Plans of exchange rounds over buffers up to this size are bound to their
buffers with persistent requests (see :class:`Bound`). Measured on 2 ranks,
the ring bound and not: 1.04 and 1.19 times MPI's ``Allreduce`` at 128 KiB,
1.00 and 1.10 at 256 KiB, 0.96 and 1.01 at 1 MiB, 0.89 and 0.93 at 2 MiB (a
call not bound describes its messages to MPI again, in Python). Longer
buffers on few ranks have segmented rounds, never bound."""

BOUND_HELD_BYTES = 64 << 20
"""The most memory bindings hold at once (their buffers and scratch); binding
more unbinds the oldest not in flight."""

BOUND_PER_PLAN = 4
"""Buffers a plan stays bound to; binding one more frees the oldest not in
flight (if every one is, the call runs unbound)."""

BOUND_PLANS = 64
"""Plans that stay bound at once; binding one more unbinds the one bound
longest ago (but not its bindings in flight)."""

POOLED_SCRATCH_BYTES = 64 << 10
"""Scratch up to this size is kept with its plan for the next call; longer
scratch is allocated per call, which costs little next to the messages that
need it."""

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
    """A round of one step out and one in, ready to unpack at once.

    Each step is one message, or several pieces (see :data:`PIECE_BYTES`).
    """

    sends: tuple[Message, ...]
    """The step out: its message, or its pieces in order."""
    recvs: tuple[Message, ...]
    """The step in: its message, or its pieces in order."""
    reduce: bool
    """Whether the step in is reduced into the buffer (else copied there)."""
    staged: bool
    """Whether the step in lands in scratch first: when it is reduced, or when
    it is copied into a range the round also sends (a swap)."""
    whole: tuple[bool, bool]
    """Whether the step out, and the step in, are one message spanning the
    whole buffer: then they need no slice of it (slicing costs as much as a
    1 KiB copy)."""
    span: tuple[int, int, int, int]
    """``(a, b, c, d)``: the step out carries elements ``[a, b)``, the step in ``[c, d)``."""


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
        Receives that land in scratch and are then reduced into the buffer
        (or copied there: see ``copied``).
    waits : tuple of tuple of int
        For each message of ``reduces``, the sends whose range it reduces
        into: they must have left before it is reduced (recursive doubling
        sends and reduces the same range).
    exchange : Exchange or None
        For a round of one step out and one in, the two, done with a single
        ``Sendrecv`` (or their pieces); None for the other rounds.
    slot : int
        Elements of scratch per reduced message in flight (for an exchange:
        for the whole step in).
    """

    index: int
    round: Round
    sends: tuple[Message, ...]
    copies: tuple[Message, ...]
    reduces: tuple[Message, ...]
    waits: tuple[tuple[int, ...], ...]
    exchange: Exchange | None
    slot: int
    copied: tuple[bool, ...] = ()
    """For each message of ``reduces``, whether it is copied in, not reduced:
    a receive into a range the round also sends lands in scratch like a
    reduced one, and is copied in once those sends have left (a swap)."""
    in_flight: int = IN_FLIGHT
    """How many messages of ``reduces`` are received into scratch at once.
    All of them in a round that copies some (alltoall's), or where a message
    waits for a send to another peer (or to itself) before it is reduced:
    that send may need a receive that its peer posts only once its own
    window moves on, while the peer waits for ours, and neither completes."""


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
    """Whether every round is an exchange (then :func:`execute` and :func:`start`
    may bind it, see :class:`Bound`)."""
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
    again), and a call skips the Python that describes its messages. A
    training loop reduces the same bucket every step, and a benchmark the
    same buffer every call, so :func:`execute` and :func:`start` bind each
    plan of exchanges to the buffers it meets (up to :data:`BOUND_MAX_BYTES`),
    a few per plan (:data:`BOUND_PER_PLAN`). Only buffers that own their
    memory are bound, the second time the plan meets them: they are looked up
    by identity (a view's says nothing about where it points), and a buffer
    used once is not worth it. Binding holds the buffer and a scratch of its
    own until the plan binds others (or the bindings hold more than
    :data:`BOUND_HELD_BYTES`); a binding in flight (started, not done) is
    never freed, and one left in flight by a started collective that was
    abandoned stays so until exit. The executor is
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
        Per round, ``(requests, into, landing, reduce, planned)``: the
        persistent requests of the messages in, then out (pieces and all), the
        buffer range the step in is reduced into, where it lands, whether it
        is reduced (else it landed in place), and the round of the plan (what
        a trace records).
    """

    buf: np.ndarray
    comm: Any
    scratch: np.ndarray
    rounds: list[tuple[list[Any], np.ndarray, np.ndarray, bool, PlannedRound]]
    busy: bool = False
    """Whether a started collective runs on it now: then it must not be freed."""
    startall: Callable[[list[Any]], None] = field(init=False, repr=False)
    """MPI's ``Prequest.Startall``, and below ``Request.Waitall``."""
    waitall: Callable[[list[Any]], Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        mpi = mpi_module()  # looked up once: a short call must not pay for it
        self.startall, self.waitall = mpi.Prequest.Startall, mpi.Request.Waitall

    @property
    def nbytes(self) -> int:
        """The memory it holds: its buffer and its scratch."""
        return self.buf.nbytes + self.scratch.nbytes

    def free(self) -> None:
        """Free the requests (MPI warns about requests still allocated when it finalizes)."""
        for requests, *_ in self.rounds:
            for request in requests:
                request.Free()
        self.rounds = []


def compile_plan(
    rounds: Sequence[Round],
    segment: int,
    n: int | None = None,
    piece: int = 0,
    pieced_up_to: int = 0,
) -> Plan:
    """Compile one rank's ``rounds`` into a :class:`Plan` with segments of ``segment`` elements.

    Parameters
    ----------
    rounds : sequence of Round
        The schedule of this rank.
    segment : int
        The longest message, in elements; longer ones are cut into the fewest
        segments of at most this length, split evenly (as
        :func:`~minidl.distributed.chunking.chunk_bounds` splits a buffer).
    n : int, optional
        The number of elements of the buffer, if known: an exchange of the
        whole buffer then skips slicing it.
    piece, pieced_up_to : int, optional
        A step longer than ``piece`` elements and at most ``pieced_up_to``
        (and not cut into segments) travels in pieces of at most ``piece``
        (see :data:`PIECE_BYTES`); 0: never.

    Returns
    -------
    Plan

    Examples
    --------
    Recursive doubling on 2 ranks over 10 elements, in segments of 4: three
    segments each way, and each reduced segment waits for the send of the
    same range.

    >>> from minidl.distributed import schedule
    >>> plan = compile_plan(schedule("recursive_doubling", 2, 0, 10).rounds, segment=4)
    >>> [(m.start, m.stop) for m in plan.rounds[0].sends]
    [(0, 4), (4, 7), (7, 10)]
    >>> plan.rounds[0].waits, plan.scratch
    (((0,), (1,), (2,)), 8)

    The same exchange in pieces of at most 4: one step each way, in three
    messages with tags of their own, received into one slot of scratch.

    >>> plan = compile_plan(schedule("recursive_doubling", 2, 0, 10).rounds, 100, 10, 4, 100)
    >>> [(m.start, m.stop, m.tag - TAG) for m in plan.rounds[0].exchange.sends]
    [(0, 4, 0), (4, 7, 1), (7, 10, 2)]
    >>> plan.scratch
    10
    """
    planned = []
    for k, rnd in enumerate(rounds):
        if not (rnd.sends or rnd.recvs):
            continue
        sends = _messages(rnd.sends, segment, piece, pieced_up_to)
        received = _messages(rnd.recvs, segment, piece, pieced_up_to)
        exchange = None
        if len(rnd.sends) == 1 and len(rnd.recvs) == 1:
            out, into = rnd.sends[0], rnd.recvs[0]
            if max(out.count, into.count) <= segment:  # no segments: one step each way at once
                size = n if n is not None else -1
                whole = (
                    len(sends) == 1 and out.count == size,
                    len(received) == 1 and into.count == size,
                )
                span = (out.start, out.start + out.count, into.start, into.start + into.count)
                staged = into.reduce or _overlaps_a_send(into, rnd)
                exchange = Exchange(sends, received, into.reduce, staged, whole, span)
        staged_parts = [r.reduce or _overlaps_a_send(r, rnd) for r in rnd.recvs]
        copies = tuple(m for m in received if not staged_parts[m.part])
        reduces = tuple(m for m in received if staged_parts[m.part])
        copied = tuple(not rnd.recvs[m.part].reduce for m in reduces)
        waits = tuple(
            tuple(i for i, s in enumerate(sends) if s.start < r.stop and r.start < s.stop)
            for r in reduces
        )
        if exchange is not None:
            slot = rnd.recvs[0].count if exchange.staged else 0
        else:
            slot = max((r.stop - r.start for r in reduces), default=0)
        # A message that must wait for a send to another peer before it is
        # reduced: that send may need the peer's receive,
        # which the peer posts only once its own window moves on, and it waits
        # for us. Posting every receive at once breaks the cycle.
        crossed = any(sends[j].peer != m.peer for m, w in zip(reduces, waits) for j in w)
        in_flight = len(reduces) if any(copied) or crossed else IN_FLIGHT
        planned.append(
            PlannedRound(k, rnd, sends, copies, reduces, waits, exchange, slot, copied, in_flight)
        )
    scratch = max(
        (r.slot * (1 if r.exchange else min(r.in_flight, len(r.reduces))) for r in planned),
        default=0,
    )
    bindable = bool(planned) and all(r.exchange is not None for r in planned)
    return Plan(tuple(planned), scratch, bindable)


def _overlaps_a_send(recv: Recv, rnd: Round) -> bool:
    """Whether ``recv`` lands in a range that its round also sends (then it must wait for it)."""
    return any(s.start < recv.stop and recv.start < s.stop for s in rnd.sends)


def _messages(
    steps: Sequence[Send] | Sequence[Recv], segment: int, piece: int = 0, pieced_up_to: int = 0
) -> tuple[Message, ...]:
    """The MPI messages of a round's sends (or receives), in order.

    A step longer than ``segment`` is cut into segments that share its tag
    (``TAG + j`` for the ``j``-th step between the same two ranks in the
    round: MPI keeps their order); one longer than ``piece`` and at most
    ``pieced_up_to`` into pieces with tags of their own (``TAG + j + i m``
    for piece ``i``, with ``m`` steps between the two ranks: MPI may start
    persistent requests in any order). Either cut depends on the step's
    length alone, so sender and receiver make the same one.
    """
    per_peer: dict[int, int] = {}
    for step in steps:
        per_peer[step.peer] = per_peer.get(step.peer, 0) + 1
    numbered: dict[int, int] = {}
    messages = []
    for part, step in enumerate(steps):
        j = numbered[step.peer] = numbered.get(step.peer, -1) + 1
        if step.count > segment:
            cuts, stride = chunk_bounds(step.count, -(-step.count // segment)), 0
        elif 0 < piece < step.count <= pieced_up_to:
            cuts, stride = chunk_bounds(step.count, -(-step.count // piece)), per_peer[step.peer]
        else:
            cuts, stride = (0, step.count), 0
        for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
            tag = TAG + j + i * stride
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
    piece_bytes: int,
) -> Plan:
    """The compiled plan of one rank's schedule; cached, since every call needs it.

    Parameters are those of :func:`~minidl.distributed.schedules.schedule`, the size
    of one element in bytes, :data:`SEGMENT_BYTES` and :data:`PIECE_BYTES`.
    """
    if 0 < piece_bytes < 1024:
        raise ValueError(f"PIECE_BYTES must be 0 or at least 1024, not {piece_bytes}")
    rounds = rounds_of(collective, algorithm, p, rank, n, root)
    segment = max(1, segment_bytes // itemsize)
    # Pieces only where every rank may bind its plan: elsewhere, each piece
    # costs an Isend or Irecv in Python (on 2 ranks, a 128 KiB ring took 80 us
    # in pieces, 40 us whole). Every rank must decide alike, so not by its own plan.
    pieced = piece_bytes > 0 and n * itemsize <= PIECED_UP_TO_BYTES
    if pieced and _every_rank_exchanges(collective, algorithm, p, n, root, segment):
        piece, pieced_up_to = piece_bytes // itemsize, PIECED_UP_TO_BYTES // itemsize
    else:
        piece = pieced_up_to = 0
    return compile_plan(rounds, segment, n, piece, pieced_up_to)


@functools.lru_cache(maxsize=1024)
def _every_rank_exchanges(
    collective: str, algorithm: str | ScheduleFn, p: int, n: int, root: int, segment: int
) -> bool:
    """Whether the plan of every rank is exchange rounds only (so that each may bind it)."""
    return all(
        compile_plan(rounds_of(collective, algorithm, p, r, n, root), segment, n).bindable
        for r in range(p)
    )


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
        same schedule (and :data:`SEGMENT_BYTES`, :data:`PIECE_BYTES`) at the same time.
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
    reduce_into = kernels.REDUCE_KERNELS[op] if op is not None else None
    bound = plan.bound.get((id(flat), id(comm)))
    if bound is None or bound.busy or bound.scratch.dtype is not flat.dtype:
        bound = _bound(plan, flat, comm)  # binds, unbinds, or finds it may not be used
    if bound is not None and trace is None:  # the shortest path: a training loop's
        startall, waitall = bound.startall, bound.waitall
        watch = WATCH
        for requests, into, landing, reduce, planned in bound.rounds:
            watch.round = planned  # where this rank waits, should the watchdog ask
            startall(requests)
            waitall(requests)
            if reduce:
                reduce_into(into, landing)
            elif landing is not into:  # a swap: it landed in scratch
                into[...] = landing
        return
    if bound is not None:
        steps = _started_bound(bound, reduce_into, comm, trace, blocking=True)
    else:
        steps = _rounds(plan, flat, reduce_into, comm, trace, blocking=True)
    for request in steps:  # a bound plan, blocking, waits itself: nothing comes
        request.Wait()


def _bound(plan: Plan, flat: np.ndarray, comm: Any) -> Bound | None:
    """``plan``'s persistent requests on ``flat``, if it may be bound to it (see :class:`Bound`).

    None if the binding is in flight: a second collective on a buffer
    before the first is done is wrong anyway, and runs unbound.
    """
    key = (id(flat), id(comm))
    bound = plan.bound.get(key)
    if bound is not None:
        if bound.busy:
            return None
        if bound.scratch.dtype is flat.dtype:
            return bound
        # The array's dtype was assigned in place (the same itemsize, so the
        # same plan): the binding's views of it still read the old one.
        plan.bound.pop(key).free()
    # Only a plan of exchanges, on a buffer that owns its memory, is bound.
    if plan.bindable and flat.base is None and flat.nbytes <= BOUND_MAX_BYTES:
        return _bind_the_second_time(plan, flat, comm)
    return None


def _started_bound(
    bound: Bound,
    reduce_into: Callable[..., Any] | None,
    comm: Any,
    trace: Trace | None,
    blocking: bool = False,
) -> Iterator[Any]:
    """Perform a bound plan as a generator of the requests it waits on: :func:`_rounds`, bound.

    Marks ``bound`` busy at once (before the generator first runs), so that
    binding other buffers does not free its requests; only running to the
    end makes it idle again (a collective abandoned half-way may leave
    requests active, which must be neither started again nor freed before
    they complete). Recorded into ``trace`` if given, as :func:`_rounds` records.
    When ``blocking``, it waits for each round itself and yields nothing.
    """
    bound.busy = True
    return _bound_rounds(bound, reduce_into, comm, trace, blocking)


def _bound_rounds(
    bound: Bound,
    reduce_into: Callable[..., Any] | None,
    comm: Any,
    trace: Trace | None,
    blocking: bool,
) -> Iterator[Any]:
    """The generator behind :func:`_started_bound`."""
    mpi = mpi_module()
    rank = comm.Get_rank() if trace is not None else -1
    for requests, into, landing, reduce, planned in bound.rounds:
        spans: dict[int, tuple[float, float]] | None = {} if trace is not None else None
        started = time.perf_counter() if trace is not None else 0.0
        WATCH.round = planned  # where this rank waits, should the watchdog ask
        mpi.Prequest.Startall(requests)
        if blocking:
            mpi.Request.Waitall(requests)
        else:
            yield from until_all_done(requests)  # persistent requests stay, inactive, once done
        done = _reduce_arrived(reduce, into, landing, reduce_into, spans)
        if trace is not None:
            trace.record_later(_events, rank, planned, bound.buf.itemsize, started, done, spans)
    bound.busy = False


def _sendrecv(
    planned: PlannedRound,
    flat: np.ndarray,
    scratch: np.ndarray,
    reduce_into: Callable[..., Any] | None,
    comm: Any,
    spans: dict[int, tuple[float, float]] | None,
) -> float:
    """A round of one step each way, blocking: one ``Sendrecv``, then the reduction.

    MPI pairs the two messages without deadlock (steps in pieces: every
    piece posted, then all waited for). The reduction comes only after both
    (recursive doubling reduces into the range it has just sent); its span
    goes into ``spans`` when it is a dict, and the time the messages were
    done is returned (0 without ``spans``: the clock costs, too).
    """
    into, landing = _into_and_landing(planned.exchange, flat, scratch)
    receives, outs = _exchange_buffers(planned.exchange, flat, landing)
    if len(receives) == 1 and len(outs) == 1:
        comm.Sendrecv(*outs[0], *receives[0])
    else:
        mpi_module().Request.Waitall(_post(comm, receives, outs))
    return _reduce_arrived(planned.exchange.reduce, into, landing, reduce_into, spans)


def _post(comm: Any, receives: list[tuple[Any, ...]], outs: list[tuple[Any, ...]]) -> list[Any]:
    """Post a round's messages without blocking: every ``Irecv``, then every ``Isend``.

    Receives first, so that the first messages to arrive have a place to go.
    """
    return [comm.Irecv(*m) for m in receives] + [comm.Isend(*m) for m in outs]


def _reduce_arrived(
    reduce: bool,
    into: np.ndarray,
    landing: np.ndarray,
    reduce_into: Callable[..., Any] | None,
    spans: dict[int, tuple[float, float]] | None,
) -> float:
    """The end of an exchange round: reduce ``landing`` into ``into`` if ``reduce``.

    Records the reduction's span into ``spans`` when it is a dict, and returns
    the time the messages were done (0 without ``spans``: the clock costs, too).
    """
    if spans is None:
        if reduce:
            reduce_into(into, landing)
        elif landing is not into:  # a swap: it landed in scratch, its range has been sent
            into[...] = landing
        return 0.0
    arrived = time.perf_counter()
    if reduce:
        reduce_into(into, landing)
        spans[0] = (arrived, time.perf_counter())
    elif landing is not into:
        into[...] = landing
    return arrived


def _into_and_landing(
    exchange: Exchange, flat: np.ndarray, scratch: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where in ``flat`` the step in goes, and where it lands: scratch if reduced, else there."""
    c, d = exchange.span[2:]
    into = flat if exchange.whole[1] else flat[c:d]
    if not exchange.staged:
        return into, into
    return into, scratch if scratch.size == d - c else scratch[: d - c]


def _exchange_buffers(
    exchange: Exchange, flat: np.ndarray, landing: np.ndarray
) -> tuple[list[tuple[np.ndarray, int, int]], list[tuple[np.ndarray, int, int]]]:
    """``(buffer, peer, tag)`` of each message in (into ``landing``), then of each message out."""
    a, b, c, _ = exchange.span
    if len(exchange.recvs) == 1:
        receives = [(landing, exchange.recvs[0].peer, exchange.recvs[0].tag)]
    else:
        receives = [(landing[m.start - c : m.stop - c], m.peer, m.tag) for m in exchange.recvs]
    if len(exchange.sends) == 1:
        out = exchange.sends[0]
        outs = [(flat if exchange.whole[0] else flat[a:b], out.peer, out.tag)]
    else:
        outs = [(flat[m.start : m.stop], m.peer, m.tag) for m in exchange.sends]
    return receives, outs


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


def _bind(plan: Plan, flat: np.ndarray, comm: Any) -> Bound | None:
    """Bind ``plan``, all exchange rounds, to ``flat`` and ``comm`` with persistent requests.

    Frees the plan's oldest binding not in flight to make room; None if
    every one is in flight (started and not yet done): this call runs unbound.
    """
    if not _unbind_oldest(plan.bound, BOUND_PER_PLAN - 1):
        return None
    scratch = np.empty(plan.scratch, flat.dtype)
    rounds = []
    for planned in plan.rounds:
        into, landing = _into_and_landing(planned.exchange, flat, scratch)
        receives, outs = _exchange_buffers(planned.exchange, flat, landing)
        requests = [comm.Recv_init(*m) for m in receives] + [comm.Send_init(*m) for m in outs]
        rounds.append((requests, into, landing, planned.exchange.reduce, planned))
    bound = plan.bound[(id(flat), id(comm))] = Bound(flat, comm, scratch, rounds)
    _BOUND_PLANS.pop(id(plan), None)
    _BOUND_PLANS[id(plan)] = plan  # now the newest
    _trim_bindings(keep=bound)
    return bound


def _trim_bindings(keep: Bound) -> None:
    """Unbind the oldest bindings not in flight (never ``keep``) until at most
    :data:`BOUND_PLANS` plans hold any, and they hold :data:`BOUND_HELD_BYTES` at most."""
    held = sum(b.nbytes for plan in _BOUND_PLANS.values() for b in plan.bound.values())

    def within() -> bool:
        return held <= BOUND_HELD_BYTES and len(_BOUND_PLANS) <= BOUND_PLANS

    for key in list(_BOUND_PLANS):  # the plans bound longest ago first
        bindings = _BOUND_PLANS[key].bound
        for where, binding in list(bindings.items()):
            if within():
                return
            if binding is not keep and not binding.busy:
                held -= binding.nbytes
                bindings.pop(where).free()
        if not bindings:
            del _BOUND_PLANS[key]


def _unbind_oldest(bound: dict[tuple[int, int], Bound], keep: int) -> bool:
    """Free the oldest of ``bound`` not in flight until ``keep`` remain; whether they do."""
    for key in list(bound)[: max(0, len(bound) - keep)]:
        if not bound[key].busy:
            bound.pop(key).free()
    return len(bound) <= keep


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


def start(
    plan: Plan,
    flat: np.ndarray,
    op: str | None,
    comm: Any,
    trace: Trace | None = None,
) -> Iterator[Any]:
    """Perform ``plan`` without blocking: a generator of what it waits on.

    Each ``next()`` runs the plan as far as it can go (posting messages,
    reducing what has arrived) and yields what it must wait for next: an MPI
    request, or an :class:`AllOf` of a round's requests (both have ``Test()``
    and ``Wait()``); when it stops, ``flat`` holds the result. Whoever drives
    it may do other work between two ``next()`` calls (backward, in
    :class:`~minidl.parallel.DistributedDataParallel`) or call ``Wait()`` on
    what was yielded; :class:`~minidl.distributed.collectives.CollectiveRequest`
    does both. Parameters as in :func:`execute`.
    """
    reduce_into = kernels.REDUCE_KERNELS[op] if op is not None else None
    bound = _bound(plan, flat, comm)
    if bound is not None:
        return _started_bound(bound, reduce_into, comm, trace)
    return _rounds(plan, flat, reduce_into, comm, trace)


def _rounds(
    plan: Plan,
    flat: np.ndarray,
    reduce_into: Callable[..., Any] | None,
    comm: Any,
    trace: Trace | None,
    blocking: bool = False,
) -> Iterator[Any]:
    """Every round of ``plan``, yielding what it waits on (see :func:`start`); traced if asked.

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
        WATCH.round = planned  # where this rank waits, should the watchdog ask
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


def until_all_done(requests: list[Any]) -> Iterator[Any]:
    """Yield an :class:`AllOf` ``requests`` until every one of them has completed."""
    waiting = AllOf(requests)
    while not waiting.Test():
        yield waiting


def _exchange(
    planned: PlannedRound,
    flat: np.ndarray,
    scratch: np.ndarray,
    reduce_into: Callable[..., Any] | None,
    comm: Any,
    spans: dict[int, tuple[float, float]] | None,
) -> Generator[Any, None, float]:
    """A round of one step each way, without blocking: :func:`_pipelined` made short.

    The same messages as the ``Sendrecv`` of :func:`execute` (or its
    pieces), posted as ``Irecv`` and ``Isend``; the reduction comes after all
    are done (recursive doubling reduces into the range it sends).
    """
    into, landing = _into_and_landing(planned.exchange, flat, scratch)
    receives, outs = _exchange_buffers(planned.exchange, flat, landing)
    yield from until_all_done(_post(comm, receives, outs))
    return _reduce_arrived(planned.exchange.reduce, into, landing, reduce_into, spans)


def _pipelined(
    planned: PlannedRound,
    flat: np.ndarray,
    scratch: np.ndarray,
    reduce_into: Callable[..., Any] | None,
    comm: Any,
    spans: dict[int, tuple[float, float]] | None,
) -> Generator[Any, None, float]:
    """One round: post its copies and sends, then receive and reduce segments, a few at a time.

    At most ``planned.in_flight`` segments (:data:`IN_FLIGHT`, unless the round
    copies some into scratch) are received into scratch at once. A
    generator: it yields each MPI request it must wait for (the caller
    ``Wait()``s on it, or does something else and comes back), and returns
    when every message was done. Each reduction's span, from its first
    segment to its last, goes into ``spans`` when it is a dict.
    """
    reduces, slot, ahead = planned.reduces, planned.slot, planned.in_flight

    def post(i: int) -> tuple[Any, np.ndarray]:
        """Receive reduced segment ``i`` into its slot of scratch."""
        m = reduces[i]
        offset = (i % ahead) * slot
        landing = scratch[offset : offset + m.stop - m.start]
        return comm.Irecv(landing, m.peer, m.tag), landing

    # Receives first, so that the first messages to arrive have a place to go.
    requests = [comm.Irecv(flat[m.start : m.stop], m.peer, m.tag) for m in planned.copies]
    in_flight = deque(post(i) for i in range(min(ahead, len(reduces))))
    sends = [comm.Isend(flat[m.start : m.stop], m.peer, m.tag) for m in planned.sends]
    for i, m in enumerate(reduces):
        request, landing = in_flight.popleft()
        yield from until_done(request)
        for j in planned.waits[i]:  # the round's sends read the buffer as it was
            yield from until_done(sends[j])
        if planned.copied[i]:  # a swap: copied in once the sends of its range have left
            flat[m.start : m.stop] = landing
        elif spans is None:
            reduce_into(flat[m.start : m.stop], landing)
        else:
            begun = time.perf_counter()
            reduce_into(flat[m.start : m.stop], landing)
            spans[m.part] = (spans.get(m.part, (begun,))[0], time.perf_counter())
        if i + ahead < len(reduces):
            in_flight.append(post(i + ahead))  # into the slot just reduced from
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
