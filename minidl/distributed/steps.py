"""The words every schedule is written in: what one rank does in one round.

A *schedule* is a plain Python generator. Called as ``fn(p, rank, n)``, it
yields, for that one rank of ``p`` working on a buffer of ``n`` elements, one
:class:`Round` per round of the collective: the sends (:class:`Send`) it starts
and the receives (:class:`Recv`) it expects, each naming a peer, the chunks
moved and their element range. A receive either *reduces* the arriving data
into the buffer or *copies* it there. Nothing else is in a schedule, so three
different engines can run the same one: the MPI executor, the simulator and
the cost model.

Rooted collectives are written for root 0. Broadcast and reduce move their
root with :func:`rooted_at`, which renumbers the ranks; scatter and gather
cannot, since chunk ``r`` belongs to rank ``r`` whoever the root is, so their
schedules take the root as a fourth argument, ``fn(p, rank, n, root)``
(see :mod:`minidl.distributed.scatter`).

The rules every schedule keeps (the simulator checks them and names the round
and ranks that break one):

1. Every rank yields the same number of rounds; a rank with nothing to do in a
   round yields an empty ``Round()``.
2. Every send from rank ``a`` to rank ``b`` in round ``k`` has a receive on
   ``b`` from ``a`` in round ``k`` of the same number of elements, listed in
   the same order as the other messages between ``a`` and ``b`` in that
   round. The data keeps its place (the receive names the send's element
   range: every collective here works in place), except in ``"alltoall"``,
   whose whole point is that block ``j`` of rank ``i`` becomes block ``i`` of
   rank ``j``.
3. Sends read the buffer as it was when the round began; receives land after
   every send of the round has left. So a rank may send a range and reduce
   into the same range in one round (recursive doubling does), or send a
   range and copy into it (the two ranks swap what they held there: the
   pairwise alltoall does). But a range a receive *copies* into must overlap
   no other receive of its round: which of the two would land last is not
   defined.
4. A peer is a rank ``0 <= peer < p``, and may be the rank itself: a send to
   oneself, matched by a copy from oneself in the same round, is a local copy
   (MPI's ``Isend``/``Irecv`` to oneself do it), which is how Bruck's
   alltoall rearranges its blocks between rounds. Such a receive must copy,
   not reduce; the cost model counts its bytes apart, as a local copy, and
   charges it no message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Send:
    """Send elements ``[start, stop)`` of this rank's buffer to ``peer``.

    Attributes
    ----------
    peer : int
        The receiving rank.
    chunks : range
        Which chunks of the algorithm's split these elements are (a label for
        printing and drawing; the element range is what moves).
    start, stop : int
        The element range, ``buf[start:stop]``.
    """

    peer: int
    chunks: range
    start: int
    stop: int

    @property
    def count(self) -> int:
        """Number of elements sent."""
        return self.stop - self.start

    def __str__(self) -> str:
        return f"send {_label(self.chunks)} [{self.start}:{self.stop}] to rank {self.peer}"


@dataclass(frozen=True)
class Recv:
    """Receive ``stop - start`` elements from ``peer`` into ``buf[start:stop]``.

    Attributes
    ----------
    peer : int
        The sending rank.
    chunks : range
        Which chunks of the algorithm's split arrive (a label, as in :class:`Send`).
    start, stop : int
        The element range the data lands in.
    reduce : bool
        True: combine with what is there, ``buf[start:stop] = buf[start:stop]
        op data``. False: overwrite it, ``buf[start:stop] = data``.
    """

    peer: int
    chunks: range
    start: int
    stop: int
    reduce: bool

    @property
    def count(self) -> int:
        """Number of elements received."""
        return self.stop - self.start

    def __str__(self) -> str:
        how = "reduce" if self.reduce else "copy"
        return f"{how} {_label(self.chunks)} [{self.start}:{self.stop}] from rank {self.peer}"


@dataclass(frozen=True)
class Round:
    """Everything one rank does in one round: its sends and its receives.

    Attributes
    ----------
    sends : tuple of Send
    recvs : tuple of Recv

    Examples
    --------
    >>> bounds = (0, 5, 10)  # two chunks of 5 elements
    >>> print(Round.of(send(1, bounds, 0), reduce_from(1, bounds, 1)))
    send chunk 0 [0:5] to rank 1; reduce chunk 1 [5:10] from rank 1
    >>> print(Round())
    idle
    """

    sends: tuple[Send, ...] = ()
    recvs: tuple[Recv, ...] = ()

    @classmethod
    def of(cls, *steps: Send | Recv) -> Round:
        """A round made of ``steps``, sends and receives in any mix, order kept."""
        return cls(
            sends=tuple(s for s in steps if isinstance(s, Send)),
            recvs=tuple(r for r in steps if isinstance(r, Recv)),
        )

    def __str__(self) -> str:
        return "; ".join(str(step) for step in (*self.sends, *self.recvs)) or "idle"

    def describe(self, rank: int) -> str:
        """``str(self)`` as seen by ``rank``: its messages to itself read as local copies.

        The ``i``-th send to itself pairs with the ``i``-th copy from itself
        (rule 2 of this module), and the pair is written ``local copy``.

        Examples
        --------
        >>> bounds = (0, 2, 4)
        >>> print(Round.of(send(0, bounds, 1), copy_from(0, bounds, 0)).describe(0))
        local copy [2:4] to [0:2]
        """
        own_sends = [s for s in self.sends if s.peer == rank]
        own_recvs = [r for r in self.recvs if r.peer == rank]
        if len(own_sends) != len(own_recvs):  # a broken schedule: show it as it is
            return str(self)
        others = [str(step) for step in (*self.sends, *self.recvs) if step.peer != rank]
        copies = [
            f"local copy [{s.start}:{s.stop}] to [{r.start}:{r.stop}]"
            for s, r in zip(own_sends, own_recvs)
        ]
        return "; ".join([*others, *copies]) or "idle"


ScheduleFn = Callable[[int, int, int], Iterable[Round]]
"""A schedule: ``fn(p, rank, n)`` yields the rounds of one rank.

One for scatter or gather may take a fourth argument, ``root``, to serve any
root; without it, it serves root 0 only."""


def send(peer: int, bounds: Sequence[int], first: int, stop: int | None = None) -> Send:
    """Send chunks ``first, ..., stop - 1`` (only ``first`` if ``stop`` is None) to ``peer``.

    ``bounds`` is the split from :func:`~minidl.distributed.chunking.chunk_bounds`;
    the chunks must be consecutive, so they are one contiguous element range.
    """
    chunks = range(first, first + 1 if stop is None else stop)
    return Send(peer, chunks, bounds[chunks.start], bounds[chunks.stop])


def reduce_from(peer: int, bounds: Sequence[int], first: int, stop: int | None = None) -> Recv:
    """Receive chunks ``first, ..., stop - 1`` from ``peer`` and reduce them into the buffer."""
    chunks = range(first, first + 1 if stop is None else stop)
    return Recv(peer, chunks, bounds[chunks.start], bounds[chunks.stop], reduce=True)


def copy_from(peer: int, bounds: Sequence[int], first: int, stop: int | None = None) -> Recv:
    """Receive chunks ``first, ..., stop - 1`` from ``peer`` and copy them into the buffer."""
    chunks = range(first, first + 1 if stop is None else stop)
    return Recv(peer, chunks, bounds[chunks.start], bounds[chunks.stop], reduce=False)


def rooted_at(root: int, p: int, rounds: Iterable[Round]) -> Iterator[Round]:
    """Turn the rounds of a schedule written for root 0 into those for ``root``.

    Broadcast and reduce are written for root 0. For another root, rank ``r``
    plays the part of rank ``(r - root) % p`` (its *virtual rank*), so each
    peer named in ``rounds`` is shifted back by ``root``. The element ranges
    stay: what a broadcast or reduce does to chunk ``c`` does not depend on
    which rank holds it. Scatter and gather are not moved this way (see the
    module's introduction).
    """
    for rnd in rounds:
        yield Round(
            sends=tuple(replace(s, peer=(s.peer + root) % p) for s in rnd.sends),
            recvs=tuple(replace(r, peer=(r.peer + root) % p) for r in rnd.recvs),
        )


def _label(chunks: range) -> str:
    """``chunk 3`` or ``chunks 0-3``."""
    if len(chunks) == 1:
        return f"chunk {chunks.start}"
    return f"chunks {chunks.start}-{chunks.stop - 1}"


class ScheduleError(Exception):
    """A schedule broke one of the rules of :mod:`minidl.distributed.steps`.

    Under MPI the same mistake would deadlock or corrupt data; the checks
    here (on every rank's rounds, before anything runs) and the simulator
    (across ranks) say which round and ranks broke it instead.
    """


def check_rounds(name: str, rank: int, rounds: Sequence[Round], p: int, n: int) -> None:
    """Check the rounds of one rank on their own: what a rank can know without the others.

    Every round is a :class:`Round`, and :func:`check_round` holds for it.
    Every schedule is checked so before it runs, on real ranks too, where a
    peer outside ``0 .. p - 1`` would otherwise name one of MPI's special
    ranks (``-1`` is ``MPI_PROC_NULL`` in MPICH: a receive that completes at
    once, with no data) and give wrong results silently.

    Raises
    ------
    ScheduleError
        Naming the schedule, the round and the step.
    """
    for k, rnd in enumerate(rounds):
        if not isinstance(rnd, Round):
            raise ScheduleError(
                f"{name}: rank {rank} yielded {rnd!r} as round {k}; a schedule yields Round "
                "objects, e.g. Round.of(send(...), reduce_from(...)), or Round() to idle"
            )
        check_round(k, rank, rnd, p, n)


def check_round(k: int, rank: int, rnd: Round, p: int, n: int) -> None:
    """Peers and ranges in bounds, and no copy into a range another receive of the round writes.

    A copy may overlap a send of its round: the send has read the buffer
    before anything lands (rule 3 of :mod:`minidl.distributed.steps`).
    """
    for step in (*rnd.sends, *rnd.recvs):
        if not 0 <= step.peer < p:
            raise ScheduleError(
                f"round {k}: rank {rank} does '{step}', but the peer must be a rank of p={p} "
                f"(0 <= peer < {p})"
            )
        if not 0 <= step.start <= step.stop <= n:
            raise ScheduleError(
                f"round {k}: rank {rank} does '{step}', outside the buffer of n={n} elements"
            )
    for r in rnd.recvs:
        if r.reduce and r.peer == rank:
            raise ScheduleError(
                f"round {k}: rank {rank} does '{r}', a message from itself; a message to "
                "oneself is a local copy, so its receive must copy (copy_from), not reduce"
            )
        if r.reduce:
            continue
        for other in rnd.recvs:
            if other is not r and r.start < other.stop and other.start < r.stop:
                raise ScheduleError(
                    f"round {k}: rank {rank} does '{r}', which overlaps '{other}' in the same "
                    "round; a copy must land where no other receive of its round lands (it "
                    "may overlap a send: sends read the buffer before anything lands)"
                )
