"""The catalogue of schedules, and :func:`schedule`, which prints one.

:data:`ALGORITHMS` maps each collective to its algorithms, each a schedule
generator ``fn(p, rank, n)`` (see :mod:`minidl.distributed.steps`; scatter's
and gather's also take the root, see :data:`TAKE_ROOT`). The simulator,
the cost model and the MPI executor all look algorithms up here, so adding
an algorithm is adding one generator and one line below.
"""

from __future__ import annotations

import functools
import inspect
import operator
from collections.abc import Iterator
from dataclasses import dataclass

from minidl.distributed.alltoall import bruck_alltoall, pairwise_alltoall
from minidl.distributed.butterfly import rabenseifner_allreduce, recursive_doubling_allreduce
from minidl.distributed.naive import naive_allreduce
from minidl.distributed.ring import ring_allgather, ring_allreduce, ring_reduce_scatter
from minidl.distributed.scatter import (
    binomial_gather,
    binomial_scatter,
    linear_gather,
    linear_scatter,
)
from minidl.distributed.steps import Round, ScheduleFn, check_rounds, rooted_at
from minidl.distributed.tree import (
    binomial_broadcast,
    binomial_reduce,
    scatter_allgather_broadcast,
    tree_allreduce,
)

ALGORITHMS: dict[str, dict[str, ScheduleFn]] = {
    "allreduce": {
        "naive": naive_allreduce,
        "tree": tree_allreduce,
        "recursive_doubling": recursive_doubling_allreduce,
        "ring": ring_allreduce,
        "rabenseifner": rabenseifner_allreduce,
    },
    "reduce_scatter": {"ring": ring_reduce_scatter},
    "allgather": {"ring": ring_allgather},
    "broadcast": {"binomial": binomial_broadcast, "scatter_allgather": scatter_allgather_broadcast},
    "reduce": {"binomial": binomial_reduce},
    "scatter": {"binomial": binomial_scatter, "linear": linear_scatter},
    "gather": {"binomial": binomial_gather, "linear": linear_gather},
    "alltoall": {"pairwise": pairwise_alltoall, "bruck": bruck_alltoall},
}
"""Every collective's algorithms, by name: ``ALGORITHMS[collective][algorithm]``."""

ROOTED = ("broadcast", "reduce", "scatter", "gather")
"""Collectives with a root."""

TAKE_ROOT = ("scatter", "gather")
"""Rooted collectives whose schedules take the root, ``fn(p, rank, n, root)``.

Chunk ``r`` belongs to rank ``r`` whoever the root is, so renumbering the
ranks (:func:`~minidl.distributed.steps.rooted_at`, which serves broadcast
and reduce) would deliver it to the wrong rank."""

REARRANGE = ("alltoall",)
"""Collectives whose messages may land at another place than they left (rule 2
of :mod:`minidl.distributed.steps`): block ``j`` of rank ``i`` becomes block
``i`` of rank ``j``. In all the others, data keeps its place."""


def resolve(collective: str, algorithm: str | ScheduleFn) -> tuple[str, ScheduleFn]:
    """Look up ``algorithm`` for ``collective``; a callable is taken as a schedule itself.

    Returns
    -------
    (str, callable)
        The algorithm's name (a callable's, see :func:`schedule_name`) and its schedule.

    Raises
    ------
    ValueError
        If the collective or the algorithm name is unknown; the message lists the known ones.
    """
    if collective not in ALGORITHMS:
        raise ValueError(f"unknown collective {collective!r}; expected one of {tuple(ALGORITHMS)}")
    if callable(algorithm):
        return schedule_name(algorithm), algorithm
    known = ALGORITHMS[collective]
    if not isinstance(algorithm, str) or algorithm not in known:
        message = f"unknown {collective} algorithm {algorithm!r}; expected one of {tuple(known)}"
        if isinstance(algorithm, str) and algorithm in ("auto", "mpi"):
            message += f" ({algorithm!r} is no schedule: only collectives on real ranks take it)"
        raise ValueError(message)
    return algorithm, known[algorithm]


def schedule_name(fn: ScheduleFn) -> str:
    """The name of a schedule function, the same in every process: how ranks compare it.

    Its ``__name__``; for a ``functools.partial``, ``partial(name)``; else its
    type's name (never a ``repr``, which holds an address that differs from
    process to process).
    """
    name = getattr(fn, "__name__", None)
    if isinstance(name, str):
        return name
    inner = getattr(fn, "func", None)  # functools.partial
    if inner is not None:
        return f"{type(fn).__name__}({schedule_name(inner)})"
    return type(fn).__name__


@functools.lru_cache(maxsize=4096)
def rounds_of(
    collective: str, algorithm: str | ScheduleFn, p: int, rank: int, n: int, root: int = 0
) -> tuple[Round, ...]:
    """The rounds of one rank, as a tuple; cached, since every call of a collective needs them.

    Parameters are those of :func:`schedule`; the arguments are checked there
    and by the callers, not here. The rounds are checked
    (:func:`~minidl.distributed.steps.check_rounds`: each a Round, peers and
    ranges in bounds), on real ranks as in the simulator. A scatter or gather
    schedule of your own that takes no ``root`` is refused for a root other than 0.
    """
    name, fn = resolve(collective, algorithm)
    if collective in TAKE_ROOT:
        if root == 0:
            rounds = tuple(fn(p, rank, n))
        elif not _takes_root(fn):
            raise ValueError(
                f"{collective} from root {root}: the schedule {name!r} takes no root, so it "
                f"serves root 0 only; give it a fourth parameter, def {name}(p, rank, n, root=0)"
            )
        else:
            rounds = tuple(fn(p, rank, n, root))
    elif collective in ROOTED:
        virtual_rank = (rank - root) % p
        rounds = tuple(rooted_at(root, p, fn(p, virtual_rank, n)))
    else:
        rounds = tuple(fn(p, rank, n))
    check_rounds(name, rank, rounds, p, n)
    return rounds


def _takes_root(fn: ScheduleFn) -> bool:
    """Whether ``fn`` can be called as ``fn(p, rank, n, root)``."""
    try:
        inspect.signature(fn).bind(0, 0, 0, 0)
    except TypeError:
        return False
    except ValueError:  # no signature to inspect (some builtins): let the call decide
        return True
    return True


@dataclass(frozen=True)
class Schedule:
    """The rounds one rank performs in one collective: plain data to print or inspect.

    Attributes
    ----------
    collective : str
        A key of :data:`ALGORITHMS`: ``"allreduce"``, ``"reduce_scatter"``,
        ``"allgather"``, ``"broadcast"``, ``"reduce"``, ``"scatter"``,
        ``"gather"`` or ``"alltoall"``.
    algorithm : str
        The algorithm's name.
    p, rank, n, root : int
        Number of ranks, this rank, number of elements, and the root (0 if the collective has none).
    rounds : tuple of Round
        What this rank does in each round; ``len(rounds)`` is the same on every rank.
    """

    collective: str
    algorithm: str
    p: int
    rank: int
    n: int
    root: int
    rounds: tuple[Round, ...]

    def __iter__(self) -> Iterator[Round]:
        return iter(self.rounds)

    def __len__(self) -> int:
        return len(self.rounds)

    def __str__(self) -> str:
        root = f", root {self.root}" if self.collective in ROOTED else ""
        head = (
            f"{self.algorithm} {self.collective} on rank {self.rank} of {self.p}{root}, "
            f"n={self.n}: {len(self.rounds)} round{'' if len(self.rounds) == 1 else 's'}"
        )
        width = len(str(max(len(self.rounds) - 1, 0)))
        lines = [
            f"  round {k:>{width}}: {rnd.describe(self.rank)}" for k, rnd in enumerate(self.rounds)
        ]
        return "\n".join([head, *lines])


def schedule(
    algorithm: str | ScheduleFn,
    p: int,
    rank: int,
    n: int,
    *,
    collective: str = "allreduce",
    root: int = 0,
) -> Schedule:
    """What ``rank`` of ``p`` does in each round of a collective on ``n`` elements.

    Parameters
    ----------
    algorithm : str or callable
        An algorithm of ``collective`` (see :data:`ALGORITHMS`), or a schedule
        generator ``fn(p, rank, n)`` of your own (for scatter and gather from
        a root other than 0, ``fn(p, rank, n, root)``).
    p : int
        Number of ranks, ``p >= 1``.
    rank : int
        The rank to show, ``0 <= rank < p``.
    n : int
        Number of elements in the buffer, ``n >= 0``; for ``"alltoall"``, a
        multiple of ``p`` (``p`` equal blocks).
    collective : str, optional
        ``"allreduce"`` (default), ``"reduce_scatter"``, ``"allgather"``,
        ``"broadcast"``, ``"reduce"``, ``"scatter"``, ``"gather"`` or
        ``"alltoall"``.
    root : int, optional
        The root of ``"broadcast"``, ``"reduce"``, ``"scatter"`` and
        ``"gather"``; must be 0 for the others.

    Returns
    -------
    Schedule
        Its ``rounds`` list, per round, the sends (peer, chunks, element
        range) and receives (peer, chunks, element range, reduce or copy).

    Raises
    ------
    ValueError
        If ``p``, ``rank``, ``n`` or ``root`` is out of range (or ``p`` does
        not divide ``n`` in an alltoall), or the algorithm is unknown.
    TypeError
        If ``p``, ``rank``, ``n`` or ``root`` is not an integer.

    Examples
    --------
    >>> print(schedule("ring", 4, 0, 8))
    ring allreduce on rank 0 of 4, n=8: 6 rounds
      round 0: send chunk 3 [6:8] to rank 1; reduce chunk 2 [4:6] from rank 3
      round 1: send chunk 2 [4:6] to rank 1; reduce chunk 1 [2:4] from rank 3
      round 2: send chunk 1 [2:4] to rank 1; reduce chunk 0 [0:2] from rank 3
      round 3: send chunk 0 [0:2] to rank 1; copy chunk 3 [6:8] from rank 3
      round 4: send chunk 3 [6:8] to rank 1; copy chunk 2 [4:6] from rank 3
      round 5: send chunk 2 [4:6] to rank 1; copy chunk 1 [2:4] from rank 3

    An alltoall swaps one block with each other rank in turn:

    >>> print(schedule("pairwise", 4, 0, 8, collective="alltoall"))
    pairwise alltoall on rank 0 of 4, n=8: 4 rounds
      round 0: idle
      round 1: send chunk 1 [2:4] to rank 1; copy chunk 1 [2:4] from rank 1
      round 2: send chunk 2 [4:6] to rank 2; copy chunk 2 [4:6] from rank 2
      round 3: send chunk 3 [6:8] to rank 3; copy chunk 3 [6:8] from rank 3
    """
    name, _ = resolve(collective, algorithm)
    check_layout(p, n, root, collective)
    _check_int(rank, "schedule: rank")
    if not 0 <= rank < p:
        raise ValueError(f"schedule: rank {rank} is not a rank of p={p} (0 <= rank < p)")
    return Schedule(
        collective, name, p, rank, n, root, rounds_of(collective, algorithm, p, rank, n, root)
    )


def _check_int(value: object, what: str) -> None:
    """Raise a TypeError naming ``what`` unless ``value`` is an integer (NumPy's too)."""
    try:
        operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, got {value!r}") from None


def check_layout(p: int, n: int, root: int, collective: str) -> None:
    """Raise ValueError unless ``p >= 1``, ``n >= 0`` and ``root`` fits ``collective``.

    An alltoall also needs ``n`` to be a multiple of ``p``: its blocks are equal.
    A TypeError if one of the three is not an integer (a root of 1.5 would
    otherwise reach the schedules, and their error would blame them).
    """
    _check_int(p, "the number of ranks p")
    _check_int(n, "the number of elements n")
    _check_int(root, f"{collective}: root")
    if p < 1:
        raise ValueError(f"the number of ranks must be >= 1, got p={p}")
    if n < 0:
        raise ValueError(f"the number of elements must be >= 0, got n={n}")
    if collective == "alltoall" and n % p:
        below, above = n - n % p, n - n % p + p
        raise ValueError(
            f"alltoall: n={n} elements do not split into p={p} equal blocks; n must be a "
            f"multiple of p, such as {below} or {above}"
        )
    if collective in ROOTED and not 0 <= root < p:
        raise ValueError(f"{collective}: root {root} is not a rank of p={p}")
    if collective not in ROOTED and root != 0:
        raise ValueError(f"{collective} has no root, but root={root} was given")
