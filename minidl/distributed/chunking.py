"""Split ``n`` elements into ``p`` balanced, contiguous chunks.

Every chunked algorithm (ring, Rabenseifner, scatter + allgather) uses this one
split, so that a sender and a receiver that compute a chunk's element range
independently always agree on it.
"""

from __future__ import annotations

import operator


def chunk_bounds(n: int, p: int) -> tuple[int, ...]:
    """Offsets of a balanced split of ``n`` elements into ``p`` chunks.

    Chunk ``i`` is the element range ``[bounds[i], bounds[i + 1])``. The first
    ``n % p`` chunks hold ``n // p + 1`` elements and the rest ``n // p``, the
    same split as :func:`numpy.array_split`; so no chunk is longer than
    ``ceil(n / p)``, and when ``n < p`` the last ``p - n`` chunks are empty.

    Parameters
    ----------
    n : int
        Number of elements, ``n >= 0``.
    p : int
        Number of chunks, ``p >= 1``.

    Returns
    -------
    tuple of int
        ``p + 1`` non-decreasing offsets from ``0`` to ``n``.

    Raises
    ------
    ValueError
        If ``n < 0`` or ``p < 1``.
    TypeError
        If ``n`` or ``p`` is not an integer.

    Examples
    --------
    >>> chunk_bounds(10, 4)
    (0, 3, 6, 8, 10)
    >>> chunk_bounds(2, 4)
    (0, 1, 2, 2, 2)
    >>> chunk_bounds(0, 3)
    (0, 0, 0, 0)
    """
    for value, name in ((n, "n"), (p, "p")):
        try:
            operator.index(value)
        except TypeError:
            raise TypeError(f"chunk_bounds: {name} must be an int, got {value!r}") from None
    if n < 0:
        raise ValueError(f"chunk_bounds: the number of elements must be >= 0, got n={n}")
    if p < 1:
        raise ValueError(f"chunk_bounds: the number of chunks must be >= 1, got p={p}")
    size, extra = divmod(n, p)
    return tuple(i * size + min(i, extra) for i in range(p + 1))


def chunk_range(n: int, p: int, i: int) -> tuple[int, int]:
    """The element range ``(start, stop)`` of chunk ``i`` of :func:`chunk_bounds`.

    Parameters
    ----------
    n : int
        Number of elements, ``n >= 0``.
    p : int
        Number of chunks, ``p >= 1``.
    i : int
        The chunk, ``0 <= i < p``.

    Returns
    -------
    tuple of int
        ``(start, stop)``, so the chunk is ``buf[start:stop]``.

    Raises
    ------
    ValueError
        If ``i`` is not a chunk of the split (or ``n``, ``p`` are invalid).
    TypeError
        If ``n``, ``p`` or ``i`` is not an integer.

    Examples
    --------
    >>> chunk_range(10, 4, 3)
    (8, 10)
    """
    try:
        operator.index(i)
    except TypeError:
        raise TypeError(f"chunk_range: the chunk i must be an int, got {i!r}") from None
    if not 0 <= i < p:
        raise ValueError(f"chunk_range: chunk {i} does not exist in a split into p={p} chunks")
    bounds = chunk_bounds(n, p)
    return bounds[i], bounds[i + 1]


def tree_depth(p: int) -> int:
    """``ceil(lg p)``: the rounds a binomial tree on ``p`` ranks needs (0 for ``p = 1``)."""
    return (p - 1).bit_length()
