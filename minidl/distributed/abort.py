"""End the whole MPI job when one rank dies of an uncaught exception.

Started as ``mpiexec -n P python -m mpi4py script.py``, a rank that raises
aborts every rank: mpi4py's runner calls ``MPI_Abort``. Started with a plain
``python script.py``, it would print its traceback and exit while the other
ranks wait forever for its messages, at 100% CPU (MPI's waits spin). So
importing :mod:`minidl.distributed` outside mpi4py's runner wraps ``sys.excepthook``:
after the usual traceback, if MPI is running with more than one rank, the
hook calls ``MPI.COMM_WORLD.Abort(1)``, as the runner would.

Under ``python -m mpi4py`` the runner aborts the job itself, after the exit
handlers have run; the hook then only notes that an exception escaped
(:data:`escaped`), so that no exit handler starts a collective that the
failed rank will never join. It stays out of the way in an interactive
session (an exception there ends a command, not the program), and when a
program has installed a hook of its own before importing minidl. It never
starts MPI: a program that did not import ``mpi4py.MPI`` has no job to abort.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

GRACE_S = 0.2
"""Seconds a rank waits after printing the error that will abort the job.
``MPI_Abort`` makes ``mpiexec`` kill every rank and exit, and it may do so
before it has passed on what the ranks printed last: when two ranks of a
:class:`~minidl.parallel.DistributedDataParallel` job both raised, one run
in six showed one line of a traceback between them."""

_previous: Any = None
"""The hook this one wraps (None until :func:`install`)."""

escaped = False
"""Whether an exception has reached the top level of this program (set by the
hook). Exit handlers read it: a program about to be aborted must not start
anything collective, since the other ranks are not coming."""


def install() -> bool:
    """Wrap ``sys.excepthook`` unless an interactive session or another hook is in charge.

    Returns whether the hook is in place (installing twice does nothing).
    Under mpi4py's runner the hook only notes :data:`escaped`: the runner
    aborts the job itself, once the exit handlers have run.
    """
    global _previous, _runner
    if sys.excepthook is _abort_after:
        return True
    interactive = hasattr(sys, "ps1") or "IPython" in sys.modules or sys.flags.interactive
    if interactive or sys.excepthook is not sys.__excepthook__:
        return False
    _runner = "mpi4py.run" in sys.modules  # python -m mpi4py imports it before the script
    _previous, sys.excepthook = sys.excepthook, _abort_after
    return True


_runner = False
"""Whether mpi4py's runner started this program (then it does the aborting)."""


def _abort_after(
    kind: type[BaseException], value: BaseException, traceback: TracebackType | None
) -> None:
    """Print the exception as before; then, on a rank of a job of several, abort the job."""
    global escaped
    escaped = True
    _previous(kind, value, traceback)
    sys.stderr.flush()
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or not mpi.Is_initialized() or mpi.Is_finalized():
        return
    if mpi.COMM_WORLD.Get_size() > 1:
        time.sleep(GRACE_S)  # let mpiexec pass on what this rank printed
        if not _runner:
            mpi.COMM_WORLD.Abort(1)
