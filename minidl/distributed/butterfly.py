"""Butterfly algorithms: recursive doubling, and Rabenseifner's halving + doubling.

In round ``k`` every rank pairs with ``rank XOR 2^k``, so after ``lg p``
rounds information from every rank has reached every rank (Thakur,
Rabenseifner & Gropp 2005, "Optimization of collective communication
operations in MPICH"; Rabenseifner 2004, "Optimization of collective reduction
operations").

The butterfly needs a power of two. For other ``p`` the usual fix is a fold:
with ``p2`` the largest power of two below ``p``, the ``p - p2`` extra ranks
first hand their buffers to ranks ``0 .. p - p2 - 1`` (fold in), sit out the
butterfly, and get the result back at the end (fold out). That costs two extra
rounds of whole buffers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from minidl.distributed.chunking import chunk_bounds
from minidl.distributed.steps import Round, copy_from, reduce_from, send


def largest_power_of_two(p: int) -> int:
    """The largest power of two ``<= p`` (for ``p >= 1``)."""
    return 1 << (p.bit_length() - 1)


def fold_in(p: int, rank: int, bounds: Sequence[int]) -> Iterator[Round]:
    """Fold in: rank ``p2 + i`` sends its whole buffer to rank ``i``, which reduces it.

    One round, or none if ``p`` is a power of two. ``bounds`` is the
    algorithm's chunk split; the message is all of its chunks.
    """
    p2 = largest_power_of_two(p)
    everything = (0, len(bounds) - 1)
    if p == p2:
        return
    if rank >= p2:
        yield Round.of(send(rank - p2, bounds, *everything))
    elif rank < p - p2:
        yield Round.of(reduce_from(rank + p2, bounds, *everything))
    else:
        yield Round()


def fold_out(p: int, rank: int, bounds: Sequence[int]) -> Iterator[Round]:
    """Fold out: rank ``i`` sends the result back to rank ``p2 + i``, which copies it.

    One round, or none if ``p`` is a power of two.
    """
    p2 = largest_power_of_two(p)
    everything = (0, len(bounds) - 1)
    if p == p2:
        return
    if rank >= p2:
        yield Round.of(copy_from(rank - p2, bounds, *everything))
    elif rank < p - p2:
        yield Round.of(send(rank + p2, bounds, *everything))
    else:
        yield Round()


def recursive_doubling_allreduce(p: int, rank: int, n: int) -> Iterator[Round]:
    """Recursive-doubling allreduce: ``lg p`` exchanges of the whole buffer.

    In round ``k`` each rank swaps its whole buffer with ``rank XOR 2^k`` and
    both reduce, so each holds the reduction over a group twice as large as
    before. Cost ``lg p (alpha + n beta + n gamma)`` for a power of two: the
    fewest rounds, best for short buffers. Both partners compute ``a op b``
    with commutative ops, so every rank ends with the same bits.

    Parameters
    ----------
    p : int
        Number of ranks (any; non-powers of two fold in and out).
    rank : int
        This rank.
    n : int
        Number of elements in the buffer.

    Yields
    ------
    Round
        ``lg p2`` butterfly rounds, plus a fold-in and a fold-out round if
        ``p`` is not a power of two.
    """
    p2 = largest_power_of_two(p)
    whole = chunk_bounds(n, 1)
    yield from fold_in(p, rank, whole)
    distance = 1
    while distance < p2:
        if rank < p2:
            partner = rank ^ distance
            yield Round.of(send(partner, whole, 0), reduce_from(partner, whole, 0))
        else:
            yield Round()
        distance *= 2
    yield from fold_out(p, rank, whole)


def halving_reduce_scatter(p2: int, rank: int, bounds: Sequence[int]) -> Iterator[Round]:
    """Recursive-halving reduce-scatter on ``p2`` ranks (a power of two): chunk ``rank`` is reduced.

    Each rank starts responsible for all ``p2`` chunks. In each round it
    splits its range in two, sends the half that does not contain chunk
    ``rank`` to ``rank XOR distance`` (distance ``p2 / 2, p2 / 4, ..., 1``)
    and reduces the other half from it: ``n / 2, n / 4, ..., n / p2`` elements.
    """
    lo, hi = 0, p2
    distance = p2 // 2
    while distance >= 1:
        partner = rank ^ distance
        mid = lo + distance
        keep, give = ((mid, hi), (lo, mid)) if rank & distance else ((lo, mid), (mid, hi))
        yield Round.of(send(partner, bounds, *give), reduce_from(partner, bounds, *keep))
        lo, hi = keep
        distance //= 2


def doubling_allgather(p2: int, rank: int, bounds: Sequence[int]) -> Iterator[Round]:
    """Recursive-doubling allgather on a power of two ``p2``: chunk ``r`` starts on rank ``r``.

    In each round a rank swaps everything it has with ``rank XOR distance``
    (distance ``1, 2, ..., p2 / 2``), so the range it holds doubles: the
    mirror image of :func:`halving_reduce_scatter`.
    """
    lo, hi = rank, rank + 1
    distance = 1
    while distance < p2:
        partner = rank ^ distance
        theirs = (lo - distance, lo) if rank & distance else (hi, hi + distance)
        yield Round.of(send(partner, bounds, lo, hi), copy_from(partner, bounds, *theirs))
        lo, hi = min(lo, theirs[0]), max(hi, theirs[1])
        distance *= 2


def rabenseifner_allreduce(p: int, rank: int, n: int) -> Iterator[Round]:
    """Rabenseifner's allreduce: recursive-halving reduce-scatter, recursive-doubling allgather.

    The bandwidth of the ring (each rank sends ``2 (p - 1) / p * n``) in
    ``2 lg p`` rounds instead of ``2 (p - 1)``: cost ``2 lg p alpha +
    2 (p - 1) / p n beta + (p - 1) / p n gamma`` for a power of two.

    Parameters
    ----------
    p : int
        Number of ranks (any; non-powers of two fold in and out).
    rank : int
        This rank.
    n : int
        Number of elements in the buffer, split into ``p2`` chunks.

    Yields
    ------
    Round
        ``2 lg p2`` rounds, plus a fold-in and a fold-out round if ``p`` is not a power of two.
    """
    p2 = largest_power_of_two(p)
    bounds = chunk_bounds(n, p2)
    yield from fold_in(p, rank, bounds)
    if rank < p2:
        yield from halving_reduce_scatter(p2, rank, bounds)
        yield from doubling_allgather(p2, rank, bounds)
    else:
        for _ in range(2 * (p2.bit_length() - 1)):
            yield Round()
    yield from fold_out(p, rank, bounds)
