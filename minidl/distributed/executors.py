"""Two executors, as the kernels have two backends: ``"reference"`` and ``"fast"``.

Every collective takes four steps (see :mod:`minidl.distributed.collectives`):
validate its arguments, agree with the other ranks, schedule, run. The
executor does them. The reference one does them plainly
(:func:`~minidl.distributed.call.check_call`, the plain dissemination of
:func:`~minidl.distributed.fingerprint.maximum`,
:func:`~minidl.distributed.schedules.rounds_of`, :mod:`minidl.distributed.run`);
the fast one (:mod:`minidl.distributed.fast`) does the same, tuned, with the
same results to the bit. The fast one is the default.

>>> import minidl.distributed as D
>>> D.backend()
'fast'
>>> with D.use("reference"):
...     D.backend()
'reference'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal, NamedTuple

from minidl.distributed import run as reference_run
from minidl.distributed.call import Call, check_call
from minidl.distributed.fingerprint import maximum as dissemination_maximum
from minidl.distributed.schedules import rounds_of


class Executor(NamedTuple):
    """What an executor does for a collective: its steps, as functions."""

    name: str
    """``"reference"`` or ``"fast"``."""
    validate: Callable[..., Call]
    """``validate(collective, buf, op, algorithm, root, comm)``: check the call."""
    maximum: Callable[[Any, int, int], tuple[int, int]]
    """``maximum(comm, a, b)``: the agreement check's collective (see
    :mod:`~minidl.distributed.fingerprint`)."""
    schedule: Callable[[Call], Any]
    """``schedule(call)``: this rank's rounds, in the form ``run`` takes."""
    run: Callable[..., None]
    """``run(schedule, flat, op, comm, trace)``: perform them, blocking."""
    start: Callable[..., Iterator[Any]]
    """``start(schedule, flat, op, comm, trace)``: perform them as a generator of waits."""


def _reference_validate(*args: Any) -> Call:
    return check_call(*args, executor="reference")


def _reference_schedule(call: Call) -> Any:
    return rounds_of(call.collective, call.algorithm, call.p, call.rank, call.n, call.root)


REFERENCE = Executor(
    "reference",
    _reference_validate,
    dissemination_maximum,
    _reference_schedule,
    reference_run.run,
    reference_run.start,
)


def _fast() -> Executor:
    from minidl.distributed import fast

    return Executor("fast", fast.validate, fast.maximum, fast.schedule, fast.run, fast.start)


EXECUTORS = ("reference", "fast")
"""The executors' names."""

_FAST = _fast()

active: Executor = _FAST
"""The active executor (the collectives read it at every call; set it with :class:`use`)."""


def backend() -> str:
    """The name of the active executor, ``"reference"`` or ``"fast"``."""
    return active.name


def current() -> Executor:
    """The active executor."""
    return active


class use:
    """Select the executor of every collective: ``"fast"`` (default) or ``"reference"``.

    Works as a plain call, which switches for good, and as a context manager,
    which switches back on exit. Every rank must use the same one (the
    agreement check compares it).

    Parameters
    ----------
    name : {"reference", "fast"}
        The executor to make active.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`EXECUTORS`.
    """

    def __init__(self, name: Literal["reference", "fast"]) -> None:
        global active
        if name not in EXECUTORS:
            raise ValueError(f"unknown executor {name!r}; expected one of {EXECUTORS}")
        self._previous = active
        active = REFERENCE if name == "reference" else _FAST

    def __enter__(self) -> use:
        return self

    def __exit__(self, *exc_info: object) -> None:
        global active
        active = self._previous
