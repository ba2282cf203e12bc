"""The all-reduce a data-parallel strategy runs: checked before any message is sent, and named."""

from __future__ import annotations

from minidl.distributed import ALGORITHMS, ScheduleFn
from minidl.distributed.schedules import schedule_name

ON_REAL_RANKS = ("auto", "mpi")
"""The algorithms that are no schedule: the cost model's pick, and MPI's own all-reduce."""


def check_algorithm(algorithm: str | ScheduleFn, who: str) -> str:
    """The name of ``algorithm``, if :func:`minidl.distributed.allreduce` takes it; else raise.

    It takes the names in ``ALGORITHMS["allreduce"]``, ``"auto"``, ``"mpi"``
    and a schedule function ``fn(p, rank, n)`` of your own, whose name is
    its name (:func:`~minidl.distributed.schedules.schedule_name`): ranks
    compare names to make sure they run the same one.

    Parameters
    ----------
    algorithm : str or callable
        The algorithm to check.
    who : str
        The caller, to start the error message with.

    Raises
    ------
    ValueError
        Naming the algorithm and every known one.
    """
    if callable(algorithm):
        return schedule_name(algorithm)
    known = [*ALGORITHMS["allreduce"], *ON_REAL_RANKS]
    if isinstance(algorithm, str) and algorithm in known:
        return algorithm
    raise ValueError(f"{who}: unknown all-reduce algorithm {algorithm!r}; expected one of "
                     f"{', '.join(known)}, or a schedule function fn(p, rank, n) of your own")
