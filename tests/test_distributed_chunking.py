"""minidl.distributed.chunking: the one balanced split every chunked algorithm uses."""

from __future__ import annotations

import numpy as np
import pytest

from minidl.distributed import chunk_bounds, chunk_range


@pytest.mark.parametrize("p", [1, 2, 3, 4, 7, 8, 64])
@pytest.mark.parametrize("n", [0, 1, 2, 6, 7, 8, 9, 13, 1000, 10**6 + 3])
def test_split_is_balanced_contiguous_and_complete(n, p):
    bounds = chunk_bounds(n, p)
    sizes = np.diff(bounds)
    assert len(bounds) == p + 1 and bounds[0] == 0 and bounds[-1] == n
    assert sizes.min() >= 0 and sizes.max() - sizes.min() <= 1
    assert sizes.max() == -(-n // p)  # no chunk longer than ceil(n / p)
    # The same split as NumPy's, so students can check one against the other.
    assert [len(c) for c in np.array_split(np.arange(n), p)] == sizes.tolist()


def test_fewer_elements_than_chunks_leaves_the_last_chunks_empty():
    assert chunk_bounds(2, 4) == (0, 1, 2, 2, 2)
    assert chunk_bounds(0, 3) == (0, 0, 0, 0)
    assert chunk_range(2, 4, 3) == (2, 2)


def test_chunk_range_is_one_chunk_of_the_split():
    assert chunk_range(10, 4, 0) == (0, 3)
    assert chunk_range(10, 4, 3) == (8, 10)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: chunk_bounds(-1, 2), "n=-1"),
        (lambda: chunk_bounds(4, 0), "p=0"),
        (lambda: chunk_range(4, 2, 2), "chunk 2"),
    ],
)
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
