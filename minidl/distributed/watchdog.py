"""The watchdog: a rank that waits too long in minidl's communication says where, and ends the job.

A rank that never joins a collective (it skipped the call, called another
one, sleeps, or has exited) leaves the others waiting forever, silently, at
full CPU: MPI's waits have no timeout. So every place where minidl waits for
other ranks (each collective's agreement check and rounds, a started
collective's ``wait()``, DDP's end of backward and its step check) tells
:data:`WATCH` what it waits in, and each round which peers. With a timeout
set (:func:`set_timeout`, or the environment variable ``MINIDL_TIMEOUT`` in
seconds), a thread looks at it every so often; once the same wait has lasted
longer than the timeout, it prints one block naming the collective, its
size and algorithm, the round, the peers and the time, and aborts the whole
job with exit status :data:`EXIT_STATUS`.

The waits themselves stay MPI's own, blocking (polling in Python would cost
a microsecond a round): marking a wait costs tens of nanoseconds (see
:class:`Watch`), and the thread sleeps between looks, so a wait is
reported between the timeout and a tenth of it (or a second) later.

While the thread runs, Ctrl-C (which ``mpiexec`` passes on to every rank)
makes every rank print where it was, then end the job: a rank blocked inside
MPI never sees Python's ``KeyboardInterrupt``, so without this the first
Ctrl-C did nothing at all. The thread runs when a timeout is set, and when a
launcher started several ranks (see :data:`LAUNCHED_SIZE`); ``MINIDL_TIMEOUT=0``
keeps it from starting.

Off by default in library use (``set_timeout(None)``); the training job sets
``--timeout`` (default 300 s). Code of your own that waits for other ranks
(a pipeline stage's receive, a parameter server's) says so with
:func:`watching`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any, NamedTuple

EXIT_STATUS = 3
"""The exit status of a job the watchdog ended (Ctrl-C ends it with 130, as a shell would)."""

ENVIRONMENT_VARIABLE = "MINIDL_TIMEOUT"


class At(NamedTuple):
    """Where in a schedule a rank waits: the round's number and the round (its peers)."""

    index: int
    round: Any


class Watch:
    """What this process's main thread is waiting in, if anything: read by the watchdog.

    Marking a wait must cost next to nothing (a 4 KiB all-reduce takes a
    few microseconds), so it takes no time stamp: the watchdog's thread
    notes when it first sees a wait, and a wait is one object, a fresh
    one-element tuple, so that the thread tells one wait from the next even
    when both are the same remembered call.

    Attributes
    ----------
    state : tuple or None
        ``(what,)`` while waiting: a :class:`~minidl.distributed.call.Call`
        or a sentence; None otherwise.
    round : object
        Where in the schedule: an :class:`At`, or the fast executor's
        ``PlannedRound`` (both have ``index`` and ``round``), a sentence, or None.
    """

    __slots__ = ("state", "round")

    def __init__(self) -> None:
        self.state: tuple[Any] | None = None
        self.round: Any = None

    def enter(self, what: Any, where: Any = None) -> tuple[Any] | None:
        """Mark the start of a wait in ``what``; returns what to :meth:`leave` with."""
        outer = self.state
        self.state, self.round = (what,), where
        return outer

    def leave(self, outer: tuple[Any] | None) -> None:
        """Mark the end of the wait :meth:`enter` started (back to the one around it, if any)."""
        self.state = outer


WATCH = Watch()
"""The one :class:`Watch` (minidl's collectives run in the main thread)."""


@contextlib.contextmanager
def watching(what: Any) -> Iterator[None]:
    """Tell the watchdog that the code inside waits for other ranks, in ``what`` (a sentence).

    For waits of your own that may hang, such as a pipeline stage's receive::

        with watching("stage 2: receive activations from stage 1"):
            comm.Recv(buf, source=1)
    """
    outer = WATCH.enter(what)
    try:
        yield
    finally:
        WATCH.leave(outer)


_timeout: float | None = None
_watcher: _Watcher | None = None


def set_timeout(seconds: float | None) -> None:
    """End the job when a rank waits longer than ``seconds`` in minidl's communication.

    ``None`` (or 0) turns the watchdog off. The job ends with one block on
    standard error naming what the rank waited in, and exit status
    :data:`EXIT_STATUS`. While it is on, Ctrl-C makes every rank print where
    it was. The environment variable ``MINIDL_TIMEOUT`` sets it at import.

    Raises
    ------
    ValueError
        If ``seconds`` is negative or not a finite number.
    """
    global _timeout, _watcher
    if seconds is not None:
        try:
            seconds = float(seconds)
        except (TypeError, ValueError):
            raise ValueError(
                f"set_timeout: seconds must be a number of seconds or None, got {seconds!r}"
            ) from None
        if not (0 <= seconds < float("inf")):
            raise ValueError(f"set_timeout: seconds must be finite and >= 0, got {seconds!r}")
    _timeout = seconds or None
    if _timeout is not None and _watcher is None:
        _watcher = _Watcher()
        _watcher.start()


def get_timeout() -> float | None:
    """The watchdog's timeout in seconds, or None when it is off."""
    return _timeout


def describe(what: Any, where: Any = None) -> str:
    """A wait in words: the collective (or the sentence) and the round with its peers."""
    if hasattr(what, "collective"):  # a Call
        algorithm = what.algorithm if isinstance(what.algorithm, str) else getattr(
            what.algorithm, "__name__", repr(what.algorithm))
        text = (f"{what.collective} of {what.n} x {what.dtype} ({what.n * what.dtype.itemsize} "
                f"bytes), algorithm {algorithm!r}, on {what.p} ranks")
        if what.collective in ("broadcast", "reduce", "scatter", "gather"):
            text += f", root {what.root}"
    else:
        text = str(what)
    if where is None:
        return text
    if isinstance(where, str):
        return f"{text}, in its {where}"
    rnd = where.round
    text += f", round {where.index}"
    sources = sorted({r.peer for r in getattr(rnd, "recvs", ())})
    targets = sorted({s.peer for s in getattr(rnd, "sends", ())})
    if sources:
        text += f": waiting for a message from rank {_ranks(sources)}"
    if targets:
        text += f"{';' if sources else ':'} sending to rank {_ranks(targets)}"
    return text


def _ranks(ranks: list[int]) -> str:
    return ", ".join(str(r) for r in ranks)


def _rank() -> str:
    """This process's rank in MPI.COMM_WORLD, as words (without importing MPI)."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or not mpi.Is_initialized() or mpi.Is_finalized():
        return "this process"
    return f"rank {mpi.COMM_WORLD.Get_rank()}"


def _main_thread_at() -> str:
    """The main thread's innermost lines outside minidl, as a traceback shows them."""
    frame = sys._current_frames().get(threading.main_thread().ident)
    if frame is None:
        return ""
    stack = traceback.extract_stack(frame)
    theirs = [f for f in stack if not _ours(f.filename)]
    lines = traceback.format_list((theirs or stack)[-3:])
    return "".join("  " + line.replace("\n", "\n  ").rstrip(" ") for line in lines)


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # .../minidl/


def _ours(filename: str) -> bool:
    """Whether a frame is minidl's or the launcher's (runpy, mpi4py's runner), not the program's."""
    if filename.startswith("<"):  # <frozen runpy>
        return True
    path = os.path.abspath(filename)
    return path.startswith(_PACKAGE) or f"{os.sep}mpi4py{os.sep}" in path


def report(why: str, waited: float | None = None) -> str:
    """The block the watchdog prints: who waited, in what, for whom, how long, and from where."""
    state, where = WATCH.state, WATCH.round
    if state is None:
        lines = [f"minidl: {_rank()} {why}, not waiting in minidl's communication."]
    else:
        how_long = f" after waiting {waited:.1f} s or more" if waited else ""
        lines = [f"minidl: {_rank()} {why}{how_long} in {describe(state[0], where)}.",
                 "  A rank that never joins (it skipped this call, called another one, is "
                 "stuck computing, or has exited) leaves the others waiting."]
    at = _main_thread_at()
    if at:
        lines += ["  This rank's program was at:", at.rstrip("\n")]
    return "\n".join(lines) + "\n"


def _abort(status: int) -> None:
    """End the whole job: ``MPI_Abort`` when MPI runs, else this process."""
    sys.stderr.flush()
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        time.sleep(0.2)  # let mpiexec pass on what was printed (see abort.GRACE_S)
        mpi.COMM_WORLD.Abort(status)
    os._exit(status)


class _Watcher(threading.Thread):
    """The thread that looks at :data:`WATCH` every so often, and hears Ctrl-C.

    Ctrl-C reaches it through :func:`signal.set_wakeup_fd` (Python writes the
    signal's number into a pipe, at C level, even while the main thread is
    blocked inside MPI); it is taken only if nobody else uses it, and only
    from the main thread.
    """

    def __init__(self) -> None:
        super().__init__(name="minidl-watchdog", daemon=True)
        self._signals = self._hear_signals()

    @staticmethod
    def _hear_signals() -> int | None:
        if threading.current_thread() is not threading.main_thread() or os.name != "posix":
            return None
        read, write = os.pipe()
        os.set_blocking(write, False)
        try:
            previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        except ValueError:
            previous = None
        if previous != -1:  # in use (an event loop's), or not settable: leave it alone
            if previous is not None:
                signal.set_wakeup_fd(previous)
            os.close(read)
            os.close(write)
            return None
        return read

    def run(self) -> None:
        import select

        seen, seen_at = None, 0.0  # the wait last seen, and when it was first seen
        while True:
            interval = 1.0 if _timeout is None else min(1.0, max(0.05, _timeout / 10))
            if self._signals is not None:
                ready, _, _ = select.select([self._signals], [], [], interval)
            else:
                ready = time.sleep(interval)
            state, now = WATCH.state, time.monotonic()
            if state is not seen:
                seen, seen_at = state, now
            waited = now - seen_at if state is not None else None
            if ready and signal.SIGINT in os.read(self._signals, 64):
                self._interrupted(state, waited)
            timeout = _timeout
            if timeout is not None and waited is not None and waited > timeout:
                print(report(f"timed out (timeout {timeout:g} s)", waited)
                      + "  If this wait is legitimate, allow it longer (set_timeout, "
                      f"{ENVIRONMENT_VARIABLE}, the training job's --timeout).\n"
                      f"  Ending the job (exit status {EXIT_STATUS}).",
                      file=sys.stderr, flush=True)
                _abort(EXIT_STATUS)

    def _interrupted(self, state: tuple[Any] | None, waited: float | None) -> None:
        """Ctrl-C: say where this rank was; if blocked in minidl's wait, end the job."""
        print(report("was interrupted (Ctrl-C)", waited), end="", file=sys.stderr, flush=True)
        if state is None:
            return  # the main thread runs Python: KeyboardInterrupt reaches it
        time.sleep(0.5)
        if WATCH.state is state:  # still blocked in MPI, where KeyboardInterrupt never comes
            _abort(130)


LAUNCHED_SIZE = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS")
"""Environment variables in which launchers (MPICH's and Intel's ``mpiexec``, Open MPI's,
Slurm's ``srun``) tell each process how many ranks the job has."""


def _from_environment() -> None:
    """At import: apply ``MINIDL_TIMEOUT`` if set; else, if launched as one of several ranks,
    start the thread for Ctrl-C alone (``MINIDL_TIMEOUT=0`` turns both off)."""
    global _watcher
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if value:
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(
                f"{ENVIRONMENT_VARIABLE} must be a number of seconds (0 for off), got {value!r}"
            ) from None
        set_timeout(seconds)
        return
    if _watcher is None and any(_int(os.environ.get(v)) > 1 for v in LAUNCHED_SIZE):
        _watcher = _Watcher()
        _watcher.start()


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0
