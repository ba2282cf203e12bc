"""Make sure every rank called the same collective the same way, before it starts.

If one rank passes 1000 elements and another 999, a collective built from
point-to-point messages deadlocks or silently corrupts data. So, before the
first message, every rank hashes its call (collective, element count, dtype,
op, algorithm, root) into one 62-bit number ``h``, and the ranks take the
maximum of ``(h, -h)``, two integers: they agree exactly when the largest
``h`` is also the smallest. Only when they differ do they exchange every
field (an ``Allgather``), so that every rank raises the same error naming
who passed what.

Its cost is one tiny collective per call, and on two ranks that shows: done
with MPI's ``Allreduce``, the check slowed a 1 MiB allreduce by 5-9%, about
twice the check's own time (measured, not explained). So the maximum is
taken by *dissemination* (see :class:`_Dissemination`) on persistent
requests made once per communicator: on two ranks, one exchange of 16 bytes
and a few lines of Python, about 4 us where ``Allreduce`` and its NumPy
arrays took 6 (measured on two ranks only: on more, each of its ``ceil(lg
p)`` rounds costs a little Python, where MPI's rounds run in C). The hash of
a call is computed once, with its plan (the collectives keep it).
Benchmarks switch the check off with ``check=False`` (on every rank alike).
"""

from __future__ import annotations

import atexit
import hashlib
import struct
import zlib
from collections.abc import Iterable
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
    names: Iterable[str],
    hashed: int | None = None,
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
    names : iterable of str
        Strings other ranks may have passed (every known dtype, op and
        algorithm), so that the error can name them, not just their checksum.
    hashed : int, optional
        ``digest(fields)``, if the caller keeps it (even finding it in a
        cache by ``fields`` costs a few percent of the check).

    Raises
    ------
    ValueError
        On every rank, if any field differs between ranks: the message lists
        each differing field with the ranks that passed each value.
    """
    h = digest(fields) if hashed is None else hashed
    largest, minus_smallest = _dissemination(comm).maximum(h, -h)
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


CHECK_TAG = TAG - 1
"""The MPI tag of the check's messages: one below the executor's
:data:`~minidl.distributed.run.TAG`, whose tags count upwards, so that a
check never matches a collective's message."""

DISSEMINATIONS = 64
"""How many communicators keep their check's persistent requests (those of
the communicator checked first are freed first)."""


_PAIR = struct.Struct("<2q")
"""Two int64s, as :class:`_Dissemination` sends them."""


class _Dissemination:
    """The maximum over the ranks of ``comm`` of two int64s, by dissemination.

    In round ``k`` every rank ``r`` sends the largest values it has seen so
    far to rank ``r + 2**k`` and takes the maximum with what rank ``r - 2**k``
    sent it (modulo ``p``). After ``ceil(lg p)`` rounds every rank has seen
    every rank's values, some of them twice, which a maximum does not mind:
    unlike recursive doubling it needs no extra rounds when ``p`` is not a
    power of two, but it only works for idempotent operations.

    The communicator stays alive while this holds requests on it, even after
    a program frees it, until the oldest are freed (see
    :data:`DISSEMINATIONS`) or the program exits.

    Every microsecond counts here, so the requests are persistent (made once,
    started every call: on 16 bytes, setting a request up costs as much as
    sending it) and the values travel in plain bytes, packed and unpacked
    with :mod:`struct` (a NumPy call costs more than the whole arithmetic).
    """

    def __init__(self, comm: Any) -> None:
        p, r = comm.Get_size(), comm.Get_rank()
        mpi = mpi_module()
        self._startall, self._waitall = mpi.Prequest.Startall, mpi.Request.Waitall
        self.comm = comm  # held, so that the id it is cached under stays its own
        self.seen = bytearray(_PAIR.size)  # what every round sends
        distances = [1 << k for k in range((p - 1).bit_length())]  # ceil(lg p) rounds
        self.arrived = [bytearray(_PAIR.size) for _ in distances]
        self.rounds = [
            [
                comm.Recv_init([arrived, mpi.BYTE], (r - d) % p, CHECK_TAG),
                comm.Send_init([self.seen, mpi.BYTE], (r + d) % p, CHECK_TAG),
            ]
            for arrived, d in zip(self.arrived, distances)
        ]
        self.steps = list(zip(self.rounds, self.arrived))

    def maximum(self, a: int, b: int) -> tuple[int, int]:
        """The maximum over the ranks of ``a`` and that of ``b`` (int64s)."""
        seen, startall, waitall = self.seen, self._startall, self._waitall
        for requests, arrived in self.steps:
            _PAIR.pack_into(seen, 0, a, b)
            startall(requests)
            waitall(requests)
            their_a, their_b = _PAIR.unpack_from(arrived)
            if their_a > a:
                a = their_a
            if their_b > b:
                b = their_b
        return a, b

    def free(self) -> None:
        """Free the persistent requests (all inactive: :meth:`maximum` waits for them)."""
        for requests in self.rounds:
            for request in requests:
                request.Free()
        self.rounds, self.steps = [], None  # used after this, it fails rather than agree


_DISSEMINATIONS: dict[int, _Dissemination] = {}
"""Each communicator's :class:`_Dissemination`, by ``id``, the oldest first."""


def _dissemination(comm: Any) -> _Dissemination:
    """``comm``'s :class:`_Dissemination`, made on its first check."""
    found = _DISSEMINATIONS.get(id(comm))
    if found is None:
        if len(_DISSEMINATIONS) >= DISSEMINATIONS:
            _DISSEMINATIONS.pop(next(iter(_DISSEMINATIONS))).free()
        found = _DISSEMINATIONS[id(comm)] = _Dissemination(comm)
    return found


@atexit.register
def _free_disseminations() -> None:
    """At exit, before MPI finalizes (mpi4py does it later): free every persistent request."""
    if _DISSEMINATIONS and not mpi_module().Is_finalized():
        while _DISSEMINATIONS:
            _DISSEMINATIONS.popitem()[1].free()
