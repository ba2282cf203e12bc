"""Alltoall: every rank sends a block of its own to every rank.

The buffer is ``p`` equal blocks of ``n / p`` elements, and block ``j`` of
rank ``i`` is meant for rank ``j``. Afterwards block ``j`` of rank ``i``
holds what rank ``j`` meant for rank ``i`` (its block ``i``): stack the ``p``
buffers as a ``p x p`` matrix of blocks, and alltoall transposes it. It is
the exchange behind a distributed matrix transpose (and FFT), and behind
sending tokens to their experts in a mixture-of-experts layer.

Both algorithms work in place, and both need rules 2 to 4 of
:mod:`minidl.distributed.steps` at their widest: a message lands in another
block than it left (block ``j`` of rank ``i`` becomes block ``i`` of rank
``j``), a rank copies into the very block it sends (the two ranks swap), and
Bruck's algorithm moves blocks within one buffer by sending them to itself.
``n`` must be a multiple of ``p``; :func:`~minidl.distributed.schedule`,
:func:`~minidl.distributed.simulate` and :func:`~minidl.distributed.cost`
refuse other sizes.

The two are the two ends of the alpha-beta trade-off (Thakur, Rabenseifner &
Gropp 2005, "Optimization of collective communication operations in MPICH",
who use Bruck's for short messages and pairwise exchanges for long ones):
pairwise sends every byte once but pays a latency per peer; Bruck's pays
``ceil(lg p)`` latencies but sends about half the buffer in each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from minidl.distributed.chunking import chunk_bounds, tree_depth
from minidl.distributed.steps import Round, copy_from, send


def block_bounds(n: int, p: int) -> tuple[int, ...]:
    """Offsets of the ``p`` equal blocks of ``n // p`` elements each.

    :func:`~minidl.distributed.schedules.check_layout` makes sure ``p``
    divides ``n``; a schedule called directly with another ``n`` leaves the
    last ``n % p`` elements, which are in no block, where they are.

    Examples
    --------
    >>> block_bounds(6, 3)
    (0, 2, 4, 6)
    """
    return chunk_bounds(n - n % p, p)


def pairwise_alltoall(p: int, rank: int, n: int) -> Iterator[Round]:
    """Alltoall as ``p - 1`` swaps of one block with each other rank in turn.

    In round ``k`` the partner is ``(k - rank) % p`` (and its partner is
    ``rank`` again, so the two agree): this rank sends its block
    ``partner`` and copies the partner's block ``rank`` into that same block
    ``partner``, a swap that rule 3 of :mod:`minidl.distributed.steps`
    allows. In the round where the partner would be the rank itself it idles.
    Works for any ``p``.

    Parameters
    ----------
    p : int
        Number of ranks.
    rank : int
        This rank.
    n : int
        Number of elements in the buffer: ``p`` blocks of ``n / p``.

    Yields
    ------
    Round
        ``p`` rounds, ``p - 1`` of them an exchange of one block each way.
        One rank's own exchanges take ``(p - 1) (alpha + n / p beta)``, but
        each rank idles in a different round, so for ``p >= 3`` every round
        has a busy rank and the cost model's critical path is ``p (alpha +
        n / p beta)`` (for ``p = 2``, one exchange).

    Examples
    --------
    >>> from minidl.distributed import schedule
    >>> print(schedule("pairwise", 3, 1, 6, collective="alltoall"))
    pairwise alltoall on rank 1 of 3, n=6: 3 rounds
      round 0: send chunk 2 [4:6] to rank 2; copy chunk 2 [4:6] from rank 2
      round 1: send chunk 0 [0:2] to rank 0; copy chunk 0 [0:2] from rank 0
      round 2: idle
    """
    blocks = block_bounds(n, p)
    for k in range(p):
        partner = (k - rank) % p
        if partner == rank:
            yield Round()
        else:
            yield Round.of(send(partner, blocks, partner), copy_from(partner, blocks, partner))


def bruck_alltoall(p: int, rank: int, n: int) -> Iterator[Round]:
    """Bruck's alltoall: ``ceil(lg p)`` messages per rank, each about half the buffer.

    Bruck, Ho, Kipnis, Upfal & Weathersby 1997, "Efficient algorithms for
    all-to-all communications in multiport message-passing systems", the
    index algorithm (section 3). Call the block this rank means for rank
    ``rank + t`` the block of *distance* ``t``. In communication round ``k``
    every block whose distance has bit ``k`` set moves ``2^k`` ranks on, all
    in one message: after the ``ceil(lg p)`` rounds each block has moved
    its distance, the sum of its bits, and is home. In the paper the blocks
    are rotated locally before and after, and packed into one message
    before each round and unpacked after it; here those local steps are
    rounds of messages to the rank itself (rule 4 of
    :mod:`minidl.distributed.steps`): before communication round ``k``, the
    blocks are laid out so that those to move sit together at the end of the
    buffer (see :func:`bruck_layout`), and the message is that one range.

    Parameters
    ----------
    p : int
        Number of ranks.
    rank : int
        This rank.
    n : int
        Number of elements in the buffer: ``p`` blocks of ``n / p``.

    Yields
    ------
    Round
        ``2 ceil(lg p) + 1`` rounds (none for ``p = 1``): a local round, then
        each communication round followed by a local one. Cost ``ceil(lg p)
        alpha + (sum over k of c_k) n / p beta``, with ``c_k`` the distances
        ``0 <= t < p`` with bit ``k`` set: ``lg p alpha + lg p n / 2 beta``
        for ``p`` a power of two, against the pairwise ``p alpha + n beta``.
        Chunk numbers in its messages are positions in the buffer, not ranks.
    """
    if p == 1:
        return
    blocks = block_bounds(n, p)
    # where[t]: the position of the block of distance t. At first, the block
    # for rank + t is where the caller put it, at position rank + t.
    where = [(rank + t) % p for t in range(p)]
    for k in range(tree_depth(p)):
        bit = 1 << k
        packed = bruck_layout(p, bit)
        yield _rearrange(rank, blocks, where, packed)
        moving = sum(1 for t in range(p) if t & bit)
        first = p - moving
        # The blocks of distance t with the bit set go bit ranks on; from
        # rank - bit come its blocks of the same distances, into the same
        # positions: a swap, by rule 3.
        yield Round.of(
            send((rank + bit) % p, blocks, first, p),
            copy_from((rank - bit) % p, blocks, first, p),
        )
        where = packed
    # Now the block at distance t came from rank - t and is meant for this
    # rank: it belongs in block rank - t.
    yield _rearrange(rank, blocks, where, [(rank - t) % p for t in range(p)])


def bruck_layout(p: int, bit: int) -> list[int]:
    """Where each distance's block sits before Bruck's round on ``bit``: those with it set last.

    Parameters
    ----------
    p : int
        Number of ranks (and blocks).
    bit : int
        ``2^k`` for communication round ``k``.

    Returns
    -------
    list of int
        ``layout[t]`` is the position of the block of distance ``t``: the
        distances without ``bit`` first, then those with it, each in order.

    Examples
    --------
    >>> bruck_layout(5, 2)  # distances 2 and 3 have bit 2: positions 3 and 4
    [0, 1, 3, 4, 2]
    """
    order = [t for t in range(p) if not t & bit] + [t for t in range(p) if t & bit]
    layout = [0] * p
    for position, t in enumerate(order):
        layout[t] = position
    return layout


def _rearrange(
    rank: int, blocks: Sequence[int], source: Sequence[int], target: Sequence[int]
) -> Round:
    """A local round moving the block at ``source[t]`` to ``target[t]``, for every ``t``.

    Every block that moves is a message to the rank itself; ``target`` is a
    permutation, so no two copies land on one block (rule 3). The ``i``-th
    send pairs with the ``i``-th copy (rule 2).
    """
    moves = [(a, b) for a, b in zip(source, target) if a != b]
    return Round.of(
        *(send(rank, blocks, a) for a, _ in moves),
        *(copy_from(rank, blocks, b) for _, b in moves),
    )
