"""Ring algorithms: reduce-scatter, allgather, and allreduce as the two in a row.

The ranks sit on a ring and each only ever talks to its two neighbours: it
sends to ``rank + 1`` and receives from ``rank - 1``. The buffer is cut into
``p`` chunks, and in each of ``p - 1`` rounds every rank passes one chunk on,
so every link is busy in every round and each rank sends ``(p - 1) / p`` of
the buffer per phase, the least any allreduce can (Patarasuk & Yuan 2009;
Thakur, Rabenseifner & Gropp 2005, "Optimization of collective communication
operations in MPICH", who use the ring for allgather).
"""

from __future__ import annotations

from collections.abc import Iterator

from minidl.distributed.chunking import chunk_bounds
from minidl.distributed.steps import Round, copy_from, reduce_from, send


def ring_reduce_scatter(p: int, rank: int, n: int) -> Iterator[Round]:
    """Ring reduce-scatter: afterwards chunk ``rank`` holds the reduction of all ranks.

    In round ``s`` each rank sends chunk ``rank - s - 1`` to its right and
    reduces chunk ``rank - s - 2`` from its left into its own copy, so a chunk
    picks up one more rank's contribution per round as it travels; after
    ``p - 1`` rounds chunk ``rank`` has visited every rank and stops at
    ``rank``. The other chunks are left holding partial reductions.

    Parameters
    ----------
    p : int
        Number of ranks.
    rank : int
        This rank.
    n : int
        Number of elements in the buffer.

    Yields
    ------
    Round
        ``p - 1`` rounds, each one send and one reduce of ``n / p`` elements.
    """
    # BEGIN SOLUTION ring-reduce-scatter
    # p - 1 rounds: send one chunk to the right, reduce the next from the left
    bounds = chunk_bounds(n, p)
    right, left = (rank + 1) % p, (rank - 1) % p
    for s in range(p - 1):
        yield Round.of(
            send(right, bounds, (rank - s - 1) % p),
            reduce_from(left, bounds, (rank - s - 2) % p),
        )
    # END SOLUTION


def ring_allgather(p: int, rank: int, n: int) -> Iterator[Round]:
    """Ring allgather: chunk ``r`` starts on rank ``r`` and ends up on every rank.

    In round ``s`` each rank forwards chunk ``rank - s`` (its own in round 0,
    then the one it has just received) to its right and copies chunk
    ``rank - s - 1`` from its left.

    Parameters
    ----------
    p : int
        Number of ranks.
    rank : int
        This rank.
    n : int
        Number of elements in the buffer.

    Yields
    ------
    Round
        ``p - 1`` rounds, each one send and one copy of ``n / p`` elements.
    """
    # BEGIN SOLUTION ring-allgather
    # p - 1 rounds: forward one chunk to the right, copy the next from the left
    bounds = chunk_bounds(n, p)
    right, left = (rank + 1) % p, (rank - 1) % p
    for s in range(p - 1):
        yield Round.of(
            send(right, bounds, (rank - s) % p),
            copy_from(left, bounds, (rank - s - 1) % p),
        )
    # END SOLUTION


def ring_allreduce(p: int, rank: int, n: int) -> Iterator[Round]:
    """Ring allreduce: a ring reduce-scatter, then a ring allgather.

    ``2 (p - 1)`` rounds; each rank sends ``2 (p - 1) / p * n`` elements and
    reduces ``(p - 1) / p * n``. Cost ``2 (p - 1) alpha + 2 (p - 1) / p n beta
    + (p - 1) / p n gamma``: bandwidth-optimal, but its ``p - 1`` latencies per
    phase make it slow for short buffers.

    Parameters
    ----------
    p : int
        Number of ranks.
    rank : int
        This rank.
    n : int
        Number of elements in the buffer.

    Yields
    ------
    Round
        The rounds of :func:`ring_reduce_scatter`, then those of :func:`ring_allgather`.
    """
    yield from ring_reduce_scatter(p, rank, n)
    yield from ring_allgather(p, rank, n)
