"""Make sure every rank called the same collective the same way, before it starts.

If one rank passes 1000 elements and another 999, a collective built from
point-to-point messages deadlocks or silently corrupts data. So, before the
first message, every rank shares a small fingerprint of its call (collective,
element count, dtype, op, algorithm, root) with one ``Allgather`` of a few
integers, and if any differ, every rank raises the same error naming who
passed what. Its cost is one small collective per call; benchmarks switch it
off with ``check=False`` (on every rank alike).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np


def _code(value: int | str) -> int:
    """An integer for ``value``: the value itself, or a string's checksum (equal on every rank)."""
    return value if isinstance(value, int) else zlib.crc32(value.encode())


def check_agreement(
    comm: Any, what: str, fields: dict[str, int | str], names: Iterable[str]
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
    fields : dict
        What describes this rank's call, e.g. ``{"collective": "allreduce",
        "number of elements": 1000, "dtype": "float32", ...}``: integers, or
        strings, which travel as checksums.
    names : iterable of str
        Strings other ranks may have passed (every known dtype, op and
        algorithm), so that the error can name them, not just their checksum.

    Raises
    ------
    ValueError
        On every rank, if any field differs between ranks: the message lists
        each differing field with the ranks that passed each value.
    """
    mine = np.array([_code(v) for v in fields.values()], dtype=np.int64)
    everyone = np.empty((comm.Get_size(), mine.size), dtype=np.int64)
    comm.Allgather(mine, everyone)
    if (everyone == mine).all():
        return
    decode = {_code(s): s for s in (*names, *(v for v in fields.values() if isinstance(v, str)))}
    problems = []
    for column, (field, value) in enumerate(fields.items()):
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
        + ", ".join(fields)
        + ". They differ in\n  "
        + "\n  ".join(problems)
    )


def _decode(code: int, like: int | str, decode: dict[int, str]) -> str:
    """The value behind ``code``, for a field whose value on this rank is ``like``."""
    if isinstance(like, int):
        return str(code)
    return repr(decode[code]) if code in decode else f"an unknown value (checksum {code})"
