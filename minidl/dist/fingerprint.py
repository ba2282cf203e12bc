"""Make sure every rank called the same collective the same way, before it starts.

If one rank passes 1000 elements and another 999, a collective built from
point-to-point messages deadlocks or silently corrupts data. So, before the
first message, every rank hashes its call (collective, element count, dtype,
op, algorithm, root) into one 62-bit number ``h``, and the ranks take the
maximum of ``(h, -h)`` in one ``Allreduce`` of two integers: they agree
exactly when the largest ``h`` is also the smallest. Only when they differ do
they exchange every field (an ``Allgather``), so that every rank raises the
same error naming who passed what.

Its cost is one tiny collective per call, as long as one short MPI
``Allreduce``; the hash of a call is computed once and cached. Benchmarks
switch the check off with ``check=False`` (on every rank alike).
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np


def _code(value: int | str) -> int:
    """An integer for ``value``: the value itself, or a string's checksum (equal on every rank)."""
    return value if isinstance(value, int) else zlib.crc32(value.encode())


@functools.cache
def _mpi_max() -> Any:
    """``MPI.MAX``, with mpi4py imported on first use: importing minidl.dist must not start MPI."""
    from mpi4py import MPI

    return MPI.MAX


@functools.lru_cache(maxsize=1024)
def _hash_pair(fields: tuple[tuple[str, int | str], ...]) -> np.ndarray:
    """``(h, -h)`` for a 62-bit hash ``h`` of ``fields``, read-only and cached.

    Their maximum over the ranks is the largest ``h`` and minus the smallest;
    62 bits, so that ``-h`` cannot overflow.
    """
    digest = hashlib.blake2b(repr(fields).encode(), digest_size=8).digest()
    h = int.from_bytes(digest, "little") >> 2
    pair = np.array([h, -h], dtype=np.int64)
    pair.flags.writeable = False  # shared by every call with these fields
    return pair


def check_agreement(
    comm: Any, what: str, fields: tuple[tuple[str, int | str], ...], names: Iterable[str]
) -> None:
    """Raise ValueError on every rank of ``comm`` unless all ranks passed equal ``fields``.

    Collective: every rank of ``comm`` must call it, with the same keys in the
    same order.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        The communicator of the collective.
    what : str
        The collective's name, to start the error message with.
    fields : tuple of (str, int or str) pairs
        What describes this rank's call, e.g. ``(("collective", "allreduce"),
        ("number of elements", 1000), ("dtype", "float32"), ...)``: Python
        integers or strings. A tuple, not a dict, so that its hash can be
        cached.
    names : iterable of str
        Strings other ranks may have passed (every known dtype, op and
        algorithm), so that the error can name them, not just their checksum.

    Raises
    ------
    ValueError
        On every rank, if any field differs between ranks: the message lists
        each differing field with the ranks that passed each value.
    """
    extremes = np.empty(2, dtype=np.int64)
    comm.Allreduce(_hash_pair(fields), extremes, op=_mpi_max())
    largest, minus_smallest = extremes.tolist()
    if largest == -minus_smallest:
        return
    mine = np.array([_code(v) for _, v in fields], dtype=np.int64)
    everyone = np.empty((comm.Get_size(), mine.size), dtype=np.int64)
    comm.Allgather(mine, everyone)
    decode = {_code(s): s for s in (*names, *(v for _, v in fields if isinstance(v, str)))}
    problems = []
    for column, (field, value) in enumerate(fields):
        column_values = everyone[:, column]
        if (column_values == column_values[0]).all():
            continue
        groups: dict[int, list[int]] = {}
        for rank, code in enumerate(column_values.tolist()):
            groups.setdefault(code, []).append(rank)
        parts = [
            f"{_decode(code, value, decode)} on rank{'s' if len(ranks) > 1 else ''} "
            + ", ".join(map(str, ranks))
            for code, ranks in groups.items()
        ]
        problems.append(f"{field}: " + "; ".join(parts))
    raise ValueError(
        f"{what} on rank {comm.Get_rank()}: the ranks did not call it alike, so it would "
        "deadlock or give wrong results. Every rank must pass the same "
        + ", ".join(field for field, _ in fields)
        + ". They differ in\n  "
        + "\n  ".join(problems)
    )


def _decode(code: int, like: int | str, decode: dict[int, str]) -> str:
    """The value behind ``code``, for a field whose value on this rank is ``like``."""
    if isinstance(like, int):
        return str(code)
    return repr(decode[code]) if code in decode else f"an unknown value (checksum {code})"
