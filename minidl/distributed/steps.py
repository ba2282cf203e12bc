"""The words every schedule is written in: what one rank does in one round.

A *schedule* is a plain Python generator. Called as ``fn(p, rank, n)``, it
yields, for that one rank of ``p`` working on a buffer of ``n`` elements, one
:class:`Round` per round of the collective: the sends (:class:`Send`) it starts
and the receives (:class:`Recv`) it expects, each naming a peer, the chunks
moved and their element range. A receive either *reduces* the arriving data
into the buffer or *copies* it there. Nothing else is in a schedule, so three different
engines can run the same one: the MPI executor, the simulator and the cost
model.

The rules every schedule keeps (the simulator checks them and names the round
and ranks that break one):

1. Every rank yields the same number of rounds; a rank with nothing to do in a
   round yields an empty ``Round()``.
2. Every send from rank ``a`` to rank ``b`` in round ``k`` has a receive on
   ``b`` from ``a`` in round ``k`` for the same element range (data keeps its
   place: every collective here works in place), listed in the same order as
   the other messages between ``a`` and ``b`` in that round.
3. Sends read the buffer as it was when the round began; receives land after
   every send of the round has left. So a rank may send a range and reduce
   into the same range in one round (recursive doubling does), but a range a
   receive *copies* into must overlap no send and no other receive of its
   round.
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


ScheduleFn = Callable[[int, int, int], Iterable[Round]]
"""A schedule: ``fn(p, rank, n)`` yields the rounds of one rank."""


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

    Rooted collectives (broadcast, reduce) are written for root 0. For another
    root, rank ``r`` plays the part of rank ``(r - root) % p`` (its *virtual
    rank*), so each peer named in ``rounds`` is shifted back by ``root``.
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
