"""Make sure every rank called the same collective the same way, before it starts.

If one rank passes 1000 elements and another 999, a collective built from
point-to-point messages deadlocks or silently corrupts data. So, before the
first message, every rank hashes its call (collective, element count, dtype,
op, algorithm, root, executor) into one 62-bit number ``h``, and the ranks
take the maximum of ``(h, -h)``, two integers: they agree exactly when the
largest ``h`` is also the smallest. Only when they differ do they exchange
every field (an ``Allgather``), so that every rank raises the same error
naming who passed what.

Its cost is one tiny collective per call: the maximum by *dissemination*
(:func:`maximum`), ``ceil(lg p)`` exchanges of 16 bytes. The fast path sends
the same messages on persistent requests
(:mod:`minidl.distributed.fast.agreement`), so that a rank on one executor
and a rank on the other still meet, and the check then tells them so.
Benchmarks switch the check off with ``check=False`` (on every rank alike).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from minidl.distributed.run import TAG
from minidl.distributed.world import mpi_module


def _code(value: int | str) -> int:
    """An integer for ``value``: the value itself, or a string's checksum (equal on every rank)."""
    return value if isinstance(value, int) else zlib.crc32(value.encode())


def digest(fields: tuple[tuple[str, int | str], ...]) -> int:
    """A 62-bit hash of ``fields``, the same on every rank (62 bits: ``-h`` fits an int64 too)."""
    raw = hashlib.blake2b(repr(fields).encode(), digest_size=8).digest()
    return int.from_bytes(raw, "little") >> 2


def check_agreement(
    comm: Any,
    what: str,
    fields: tuple[tuple[str, int | str], ...],
    hashed: int | None = None,
    take_maximum: Callable[[Any, int, int], tuple[int, int]] | None = None,
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
        integers or strings: a tuple, so that a caller can keep its hash.
    hashed : int, optional
        ``digest(fields)``, if the caller keeps it (even finding it in a
        cache by ``fields`` costs a few percent of the check).
    take_maximum : callable, optional
        ``f(comm, a, b)``, the maximum over the ranks of two int64s:
        :func:`maximum` (default), or the fast path's, which sends the same messages.

    Raises
    ------
    ValueError
        On every rank, if any field differs between ranks: the message lists
        each differing field with the ranks that passed each value.
    """
    h = digest(fields) if hashed is None else hashed
    largest, minus_smallest = (take_maximum or maximum)(comm, h, -h)
    if largest == -minus_smallest:
        return
    mine = np.array([_code(v) for _, v in fields], dtype=np.int64)
    everyone = np.empty((comm.Get_size(), mine.size), dtype=np.int64)
    comm.Allgather(mine, everyone)
    # Every rank's strings too, so that every rank names every value (a schedule of
    # one's own has a name no list holds), and all raise the same error.
    theirs = comm.allgather([v for _, v in fields if isinstance(v, str)])  # rare, small
    decode = {_code(s): s for values in theirs for s in values}
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
        "deadlock or give wrong results. Every rank must call it with the same "
        + ", ".join(field for field, _ in fields)
        + ". They differ in\n  "
        + "\n  ".join(problems)
    )


CHECK_TAG = TAG - 1
"""The MPI tag of the check's messages: one below the collectives'
:data:`~minidl.distributed.run.TAG`, whose tags count upwards, so that a
check never matches a collective's message."""


def maximum(comm: Any, a: int, b: int) -> tuple[int, int]:
    """The maximum over the ranks of ``comm`` of ``a`` and that of ``b`` (int64s): collective.

    By dissemination: in round ``k`` every rank ``r`` sends the largest
    values it has seen so far to rank ``r + 2**k`` and takes the maximum with
    what rank ``r - 2**k`` sent it (modulo ``p``). After ``ceil(lg p)``
    rounds every rank has seen every rank's values, some of them twice,
    which a maximum does not mind: unlike recursive doubling it needs no
    extra rounds when ``p`` is not a power of two, but it only works for
    idempotent operations. The values travel as 16 bytes, as the fast
    path's do.
    """
    mpi = mpi_module()
    p, r = comm.Get_size(), comm.Get_rank()
    seen = np.array([a, b], dtype=np.int64)
    arrived = np.empty(2, dtype=np.int64)
    distance = 1
    while distance < p:
        out, into = (r + distance) % p, (r - distance) % p
        comm.Sendrecv([seen, mpi.BYTE], out, CHECK_TAG, [arrived, mpi.BYTE], into, CHECK_TAG)
        np.maximum(seen, arrived, out=seen)
        distance *= 2
    return int(seen[0]), int(seen[1])


def _decode(code: int, like: int | str, decode: dict[int, str]) -> str:
    """The value behind ``code``, for a field whose value on this rank is ``like``."""
    if isinstance(like, int):
        return str(code)
    return repr(decode[code])


