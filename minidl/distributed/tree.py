"""Binomial trees: reduce, broadcast, scatter; and the allreduce built from them.

A binomial tree on ``p`` ranks has depth ``ceil(lg p)``: in round ``k`` every
rank that already holds the data pairs with the rank ``2^k`` away, so the
number of ranks reached doubles each round (Thakur, Rabenseifner & Gropp 2005,
"Optimization of collective communication operations in MPICH": binomial
broadcast and reduce for short messages, scatter + allgather broadcast after
van de Geijn for long ones).

Everything here is written for root 0; :func:`~minidl.distributed.steps.rooted_at`
moves the root elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator

from minidl.distributed.chunking import chunk_bounds, tree_depth
from minidl.distributed.ring import ring_allgather
from minidl.distributed.scatter import binomial_scatter
from minidl.distributed.steps import Round, copy_from, reduce_from, send


def binomial_reduce(p: int, rank: int, n: int) -> Iterator[Round]:
    """Binomial-tree reduce to rank 0.

    In round ``k`` (distance ``2^k``), a rank whose bit ``k`` is its lowest set
    bit sends its partial result to ``rank - 2^k`` and is done; a rank whose
    low ``k + 1`` bits are all zero reduces the partial result of
    ``rank + 2^k`` into its own. Afterwards rank 0 holds the reduction; the
    other ranks hold partial reductions.

    Parameters
    ----------
    p : int
        Number of ranks.
    rank : int
        This rank (its virtual rank, for a root other than 0).
    n : int
        Number of elements in the buffer.

    Yields
    ------
    Round
        ``ceil(lg p)`` rounds; in each, a rank sends or reduces the whole buffer, or idles.
    """
    whole = chunk_bounds(n, 1)
    for k in range(tree_depth(p)):
        distance = 1 << k
        if rank % distance != 0:  # sent its partial result in an earlier round
            yield Round()
        elif rank & distance:
            yield Round.of(send(rank - distance, whole, 0))
        elif rank + distance < p:
            yield Round.of(reduce_from(rank + distance, whole, 0))
        else:
            yield Round()


def binomial_broadcast(p: int, rank: int, n: int) -> Iterator[Round]:
    """Binomial-tree broadcast from rank 0: :func:`binomial_reduce` run backwards.

    In round ``k`` (distance ``2^(K-1-k)``, halving), every rank that has the
    data and whose partner ``rank + distance`` exists sends it the whole
    buffer.

    Parameters
    ----------
    p : int
        Number of ranks.
    rank : int
        This rank (its virtual rank, for a root other than 0).
    n : int
        Number of elements in the buffer.

    Yields
    ------
    Round
        ``ceil(lg p)`` rounds; in each, a rank sends or copies the whole buffer, or idles.
    """
    # BEGIN SOLUTION binomial-broadcast
    # ceil(lg p) rounds, distance halving: a rank with the data sends it rank + distance away
    whole = chunk_bounds(n, 1)
    for k in reversed(range(tree_depth(p))):
        distance = 1 << k
        position = rank % (2 * distance)
        if position == 0 and rank + distance < p:
            yield Round.of(send(rank + distance, whole, 0))
        elif position == distance:
            yield Round.of(copy_from(rank - distance, whole, 0))
        else:
            yield Round()
    # END SOLUTION


def scatter_allgather_broadcast(p: int, rank: int, n: int) -> Iterator[Round]:
    """Broadcast from rank 0 as a binomial scatter, then a ring allgather (van de Geijn).

    The root sends each byte about twice instead of ``lg p`` times, so for
    long buffers this beats :func:`binomial_broadcast`: cost about
    ``(lg p + p - 1) alpha + 2 (p - 1) / p n beta``.

    Parameters
    ----------
    p : int
        Number of ranks.
    rank : int
        This rank (its virtual rank, for a root other than 0).
    n : int
        Number of elements in the buffer.

    Yields
    ------
    Round
        The rounds of :func:`~minidl.distributed.scatter.binomial_scatter`, then those of
        :func:`~minidl.distributed.ring.ring_allgather`.
    """
    yield from binomial_scatter(p, rank, n)
    yield from ring_allgather(p, rank, n)


def tree_allreduce(p: int, rank: int, n: int) -> Iterator[Round]:
    """Allreduce as a binomial reduce to rank 0, then a binomial broadcast from it.

    ``2 ceil(lg p)`` rounds of whole buffers: cost ``2 lg p (alpha + n beta) +
    lg p n gamma``. Few rounds, but every round moves all ``n`` elements.

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
        The rounds of :func:`binomial_reduce`, then those of :func:`binomial_broadcast`.
    """
    yield from binomial_reduce(p, rank, n)
    yield from binomial_broadcast(p, rank, n)
