"""The naive allreduce: everyone sends to rank 0, rank 0 reduces and sends back.

The version anyone would write first, and the baseline the others beat: rank
0 handles ``2 (p - 1)`` whole buffers one after another while the other ranks
wait.
"""

from __future__ import annotations

from collections.abc import Iterator

from minidl.distributed.chunking import chunk_bounds
from minidl.distributed.steps import Round, copy_from, reduce_from, send


def naive_allreduce(p: int, rank: int, n: int) -> Iterator[Round]:
    """Gather-and-reduce at rank 0, one sender per round, then one round of sends back.

    Rank 0 reduces the buffers in rank order, each in a round of its own, so
    it needs room for only one incoming buffer at a time; then it sends the
    result to all ``p - 1`` ranks in one round. Cost ``2 (p - 1) (alpha + n
    beta) + (p - 1) n gamma``: all of it on rank 0's single link.

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
        ``p - 1`` gather rounds, then one broadcast round (none for ``p = 1``).
    """
    whole = chunk_bounds(n, 1)
    for sender in range(1, p):
        if rank == 0:
            yield Round.of(reduce_from(sender, whole, 0))
        elif rank == sender:
            yield Round.of(send(0, whole, 0))
        else:
            yield Round()
    if p == 1:
        return
    if rank == 0:
        yield Round.of(*(send(peer, whole, 0) for peer in range(1, p)))
    else:
        yield Round.of(copy_from(0, whole, 0))
