"""Scatter and gather: chunk ``r`` of the root's buffer to rank ``r``, and back.

Both work in place on a buffer split by
:func:`~minidl.distributed.chunking.chunk_bounds` into ``p`` chunks. Scatter
copies chunk ``r`` of the root's buffer into chunk ``r`` of rank ``r``'s
buffer; gather copies chunk ``r`` of rank ``r``'s buffer into chunk ``r`` of
the root's buffer.

Unlike broadcast and reduce, these are not written for root 0 and moved with
:func:`~minidl.distributed.steps.rooted_at`. That renumbers the ranks (rank
``r`` plays rank ``(r - root) % p``), which is harmless when every chunk
goes everywhere, but here chunk ``r`` belongs to rank ``r`` itself: the
renumbered ranks below one in the tree would own chunks that wrap around the
end of the buffer, two element ranges instead of one. So the schedules here
take the root, ``fn(p, rank, n, root=0)``, and build their tree on the real
ranks, where every subtree is a run of consecutive ranks and so owns one
contiguous range of chunks.

The binomial tree, for any root (after the binomial scatter and gather of
Thakur, Rabenseifner & Gropp 2005, "Optimization of collective communication
operations in MPICH"): at first the root *holds* the chunks of the run of
ranks ``[0, p)``. In each of the ``ceil(lg p)`` rounds, with ``j`` rounds
left, every holder whose run is longer than ``2^(j - 1)`` ranks cuts it in
two. It keeps ``2^(j - 1)`` ranks, the first ones of the run if it is among
them, else the last ones; the rest is a run of consecutive ranks too, and
the holder hands their chunks, one contiguous range, to the rest's first
rank, which holds them from then on. Each chunk leaves the root once, and
what a holder keeps halves every round, so the largest messages of the
rounds add up to ``p - 1`` chunks: ``(p - 1) / p n`` on the critical path,
for any ``p`` and any root. For root 0 this is the classic binomial tree
of :func:`~minidl.distributed.tree.binomial_broadcast`, each rank passing on
only its subtree's chunks; the long-buffer broadcast
(:func:`~minidl.distributed.tree.scatter_allgather_broadcast`) starts with
it. Gather is the same rounds played backwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from minidl.distributed.chunking import chunk_bounds, tree_depth
from minidl.distributed.steps import Round, copy_from, send


class Handover(NamedTuple):
    """In one round of the scatter tree: ``giver`` passes chunks ``[first, stop)`` to ``taker``."""

    giver: int
    taker: int
    first: int
    stop: int


def handovers(p: int, rank: int, root: int) -> Iterator[Handover | None]:
    """The binomial scatter tree as ``rank`` takes part in it, round by round.

    Parameters
    ----------
    p : int
        Number of ranks.
    rank : int
        This rank.
    root : int
        The rank holding every chunk at the start.

    Yields
    ------
    Handover or None
        For each of the ``ceil(lg p)`` rounds, the handover ``rank`` gives or
        takes, or None if it idles.

    Examples
    --------
    Root 2 of 4: first it hands chunks 0-1 to rank 0, then chunk 3 to rank 3.

    >>> list(handovers(4, 2, root=2))
    [Handover(giver=2, taker=0, first=0, stop=2), Handover(giver=2, taker=3, first=3, stop=4)]
    """
    low, high, holder = 0, p, root  # the run of ranks [low, high) that rank is in, and its holder
    for after in reversed(range(tree_depth(p))):
        kept = 1 << after  # as many ranks as the rounds after this one can still reach
        if high - low <= kept:
            yield None
            continue
        if holder < low + kept:
            first, stop = low + kept, high
            high = first
        else:
            first, stop = low, high - kept
            low = stop
        step = Handover(holder, first, first, stop)
        if first <= rank < stop:
            low, high, holder = first, stop, first
        yield step if rank in (step.giver, step.taker) else None


def binomial_scatter(p: int, rank: int, n: int, root: int = 0) -> Iterator[Round]:
    """Binomial-tree scatter from ``root``: afterwards rank ``r`` holds chunk ``r`` of the root's.

    Each round, every holder passes on the chunks of the part of its run of
    ranks that it does not keep (see the module's introduction), so the
    messages halve, and the root sends every chunk but its own once.

    Parameters
    ----------
    p : int
        Number of ranks.
    rank : int
        This rank.
    n : int
        Number of elements in the buffer, split into ``p`` chunks.
    root : int, optional
        The rank whose buffer is scattered.

    Yields
    ------
    Round
        ``ceil(lg p)`` rounds; in each, a rank sends or copies one run of
        chunks, or idles. Cost ``ceil(lg p) alpha + (p - 1) / p n beta``
        for any ``p`` and root, when ``p`` divides ``n``.

    Notes
    -----
    The root's buffer is left as it was. A rank other than the root has
    chunk ``r`` of the root's buffer in its chunk ``r`` for every rank
    ``r`` it passed chunks on to (the ranks below it in the tree); its other
    chunks keep what it had.

    Examples
    --------
    >>> from minidl.distributed import schedule
    >>> print(schedule("binomial", 4, 2, 8, collective="scatter", root=2))
    binomial scatter on rank 2 of 4, root 2, n=8: 2 rounds
      round 0: send chunks 0-1 [0:4] to rank 0
      round 1: send chunk 3 [6:8] to rank 3
    """
    bounds = chunk_bounds(n, p)
    for step in handovers(p, rank, root):
        if step is None:
            yield Round()
        elif rank == step.giver:
            yield Round.of(send(step.taker, bounds, step.first, step.stop))
        else:
            yield Round.of(copy_from(step.giver, bounds, step.first, step.stop))


def binomial_gather(p: int, rank: int, n: int, root: int = 0) -> Iterator[Round]:
    """Binomial-tree gather to ``root``: :func:`binomial_scatter` played backwards.

    Each round, the first rank of each run passes the chunks it has gathered
    from the run so far to the rank that handed it the run in the scatter, so
    the messages double.

    Parameters
    ----------
    p : int
        Number of ranks.
    rank : int
        This rank.
    n : int
        Number of elements in the buffer, split into ``p`` chunks.
    root : int, optional
        The rank that gathers.

    Yields
    ------
    Round
        ``ceil(lg p)`` rounds. Cost ``ceil(lg p) alpha + (p - 1) / p n beta``
        for any ``p`` and root, when ``p`` divides ``n``.

    Notes
    -----
    Afterwards chunk ``r`` of the root's buffer holds chunk ``r`` of rank
    ``r``'s. A rank other than the root also holds, in their places, the
    chunks of the ranks below it in the tree (it gathered them on their way
    to the root); its other chunks keep what it had.
    """
    bounds = chunk_bounds(n, p)
    for step in reversed(list(handovers(p, rank, root))):
        if step is None:
            yield Round()
        elif rank == step.taker:
            yield Round.of(send(step.giver, bounds, step.first, step.stop))
        else:
            yield Round.of(copy_from(step.taker, bounds, step.first, step.stop))


def linear_scatter(p: int, rank: int, n: int, root: int = 0) -> Iterator[Round]:
    """Scatter in one round: the root sends every other rank its chunk at once.

    The version anyone would write first. All ``p - 1`` messages leave the
    root in one round (posted together, as the last round of
    :func:`~minidl.distributed.naive.naive_allreduce` does), so its one link
    carries all of them: cost ``(p - 1) alpha + (p - 1) / p n
    beta``, the same bytes as the binomial tree but ``p - 1`` latencies
    instead of ``ceil(lg p)``.

    Parameters
    ----------
    p : int
        Number of ranks.
    rank : int
        This rank.
    n : int
        Number of elements in the buffer, split into ``p`` chunks.
    root : int, optional
        The rank whose buffer is scattered.

    Yields
    ------
    Round
        One round (none for ``p = 1``). Only chunk ``rank`` of a rank's
        buffer changes; the root's buffer is left as it was.
    """
    if p == 1:
        return
    bounds = chunk_bounds(n, p)
    if rank == root:
        yield Round.of(*(send(r, bounds, r) for r in range(p) if r != root))
    else:
        yield Round.of(copy_from(root, bounds, rank))


def linear_gather(p: int, rank: int, n: int, root: int = 0) -> Iterator[Round]:
    """Gather in one round: every rank sends the root its chunk at once.

    :func:`linear_scatter` backwards: the root takes ``p - 1`` messages in one
    round, cost ``(p - 1) alpha + (p - 1) / p n beta``.

    Parameters
    ----------
    p : int
        Number of ranks.
    rank : int
        This rank.
    n : int
        Number of elements in the buffer, split into ``p`` chunks.
    root : int, optional
        The rank that gathers.

    Yields
    ------
    Round
        One round (none for ``p = 1``). Only the root's buffer changes.
    """
    if p == 1:
        return
    bounds = chunk_bounds(n, p)
    if rank == root:
        yield Round.of(*(copy_from(r, bounds, r) for r in range(p) if r != root))
    else:
        yield Round.of(send(root, bounds, rank))
