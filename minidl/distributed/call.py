"""What one call of a collective asks for, checked: the first step of every collective.

:func:`check_call` checks every argument a rank passed (the buffer, op,
algorithm, root, communicator), with an error that names what was wrong and
on which rank, and returns a :class:`Call`: everything the other steps need
(the agreement check, the schedule, the executor). ``algorithm="auto"`` is
settled here (the cost model picks), so the ranks then agree on a name.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minidl.distributed import calibration
from minidl.distributed.checks import check_dtype, check_op
from minidl.distributed.fingerprint import digest
from minidl.distributed.schedules import ROOTED, check_layout, resolve
from minidl.distributed.simulate import check_schedule
from minidl.distributed.steps import ScheduleFn
from minidl.distributed.world import world

MPI_BUILTIN = "mpi"
"""The algorithm name that calls MPI's own collective (``Allreduce``, ``Bcast``, ...)."""

REDUCING = ("allreduce", "reduce_scatter", "reduce")
"""The collectives that reduce, and so need an op (the others are called with None)."""

AUTO = "auto"
"""The algorithm name that lets the cost model choose (see
:mod:`minidl.distributed.calibration`)."""


@dataclass(frozen=True)
class Call:
    """One rank's call of a collective, checked.

    Its fields: ``collective`` (``"allreduce"``, ...); ``comm``, the
    communicator (``MPI.COMM_WORLD`` for None), with this ``rank`` and its
    size ``p``; ``n`` elements of type ``dtype`` in the buffer; ``op``, the
    reduction (None for collectives that do not reduce); ``algorithm``, the
    schedule to run: a name of :data:`~minidl.distributed.ALGORITHMS`
    (``"auto"`` already replaced by the model's pick), a schedule function,
    or ``"mpi"`` for MPI's own collective; ``root`` (0 for collectives
    without one); ``fields``, the call as the agreement check compares it
    across ranks (see :mod:`minidl.distributed.fingerprint`), with the
    executor's name, and ``hashed``, their digest, computed once; ``model``,
    for ``"auto"``, the model that chose; ``plan``, the fast executor's
    compiled schedule, kept with the call once made.
    """

    collective: str
    comm: Any
    rank: int
    p: int
    n: int
    dtype: np.dtype
    op: str | None
    algorithm: str | ScheduleFn
    root: int
    fields: tuple[tuple[str, int | str], ...]
    model: calibration.Calibration | None = None
    hashed: int = field(init=False)
    plan: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hashed", digest(self.fields))  # frozen: set once, here


def check_call(
    collective: str,
    buf: Any,
    op: str | None,
    algorithm: str | ScheduleFn,
    root: Any,
    comm: Any,
    executor: str,
) -> Call:
    """Check every argument of one call and return it as a :class:`Call`.

    ``executor`` (``"reference"`` or ``"fast"``) goes into the call's
    fingerprint: the two number their messages differently, so every rank
    must run the same one.
    """
    comm = world(comm, collective)
    rank = comm.Get_rank()
    root = root_index(root, collective, rank)
    flat = check_buffer(buf, collective, rank)
    return prepare_call(
        collective, algorithm, op, root, comm, rank, flat.size, flat.dtype, executor
    )


def prepare_call(
    collective: str,
    algorithm: str | ScheduleFn,
    op: str | None,
    root: int,
    comm: Any,
    rank: int,
    n: int,
    dtype: np.dtype,
    executor: str,
) -> Call:
    """Check the arguments other than the buffer itself; see :func:`check_call`."""
    where = f"{collective} on rank {rank}"
    p = comm.Get_size()
    check_dtype(dtype, f"{where}: buf")
    if op is not None or collective in REDUCING:  # op=None to a reduction is no op either
        check_op(op, where)
    if collective in ROOTED and not 0 <= root < p:
        raise ValueError(f"{where}: root {root} is not a rank of this communicator (size {p})")
    try:
        check_layout(p, n, root, collective)
    except ValueError as exc:  # its message may start with the collective's name: say it once
        raise ValueError(f"{where}: {str(exc).removeprefix(collective + ': ')}") from None
    model = None
    if algorithm == AUTO:
        model = calibration.current()
        algorithm = model.choose(p, n * dtype.itemsize, collective)
    if algorithm == MPI_BUILTIN:
        name = MPI_BUILTIN
    else:
        try:
            name, _ = resolve(collective, algorithm)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}, {AUTO!r} or {MPI_BUILTIN!r}") from None
        if callable(algorithm):
            # A schedule of one's own, first met with this p and n: every rank checks
            # every rank's rounds against each other (cached), and all raise alike
            # where a mismatch would hang.
            check_schedule(collective, algorithm, p, n, root)
    fields = (
        ("collective", collective),
        ("number of elements", n),
        ("dtype", dtype.name),
        ("op", op or "none"),
        ("algorithm", name),
        ("root", root),
        ("executor", executor),
    )
    return Call(collective, comm, rank, p, n, dtype, op, algorithm, root, fields, model)


def root_index(root: Any, collective: str, rank: int) -> int:
    """``root`` as an int, or a TypeError naming it."""
    try:
        return operator.index(root)
    except TypeError:
        raise TypeError(
            f"{collective} on rank {rank}: root must be an int, got {type(root).__name__}"
        ) from None


def check_buffer(buf: Any, collective: str, rank: int) -> np.ndarray:
    """A 1-D view of ``buf`` that an executor can send from and write into; else an error."""
    if not isinstance(buf, np.ndarray):
        raise TypeError(
            f"{collective} on rank {rank}: buf must be a NumPy array, got {type(buf).__name__}"
        )
    flags = buf.flags  # the dtype is checked by prepare_call
    if not flags.c_contiguous:
        raise ValueError(
            f"{collective} on rank {rank}: buf (shape {buf.shape}, strides {buf.strides}) is not "
            "C-contiguous, so it cannot be sent as one block of memory. Pass a contiguous copy, "
            "c = np.ascontiguousarray(buf), and copy the result back: buf[...] = c"
        )
    if not flags.writeable:
        raise ValueError(
            f"{collective} on rank {rank}: buf is read-only, but the collective writes its "
            "result into it. Pass a writable copy: buf.copy()"
        )
    return buf if buf.ndim == 1 else buf.reshape(-1)
