"""A collective started without blocking, and the rule that one runs at a time per communicator.

:func:`~minidl.distributed.iallreduce` returns a :class:`CollectiveRequest`:
the collective as a generator of what it waits on (an executor's
``start``), moved along by :meth:`~CollectiveRequest.test` and finished by
:meth:`~CollectiveRequest.wait`, like an MPI request.
"""

from __future__ import annotations

import atexit
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from minidl.distributed.watchdog import WATCH

_STARTED: dict[int, "CollectiveRequest"] = {}
"""The collective of minidl's started on each communicator (by ``id``) that
the program has not yet waited for. Its messages use the same tags as the
next collective's on that communicator, so if the ranks took two along in
different orders (one waits for the first, another for the second) messages
would meet the wrong receives and the sums come out wrong, silently: a second
one is refused instead. Only :meth:`~CollectiveRequest.wait` (or an error)
lets the next one start, never :meth:`~CollectiveRequest.test` returning
True: one rank's request may be done when its program tests it while
another's is still in flight, so "done" differs from rank to rank, where the
program's calls of ``wait()`` come in the same order on every rank. So every
rank refuses the same call, and a program that catches the error can go on
alike on every rank."""


def _refuse_while_started(collective: str, rank: int, started: CollectiveRequest) -> None:
    """Raise, naming the collective still in flight on the same communicator."""
    raise ValueError(
        f"{collective} on rank {rank}: an iallreduce started on this communicator "
        f"({started!r}) has not been waited for. minidl's collectives on one communicator run "
        "one at a time (their messages use the same tags): call its wait() first (also after "
        "test() returned True: only wait() is seen alike on every rank), or give each its own "
        "communicator with comm.Dup()"
    )


class CollectiveRequest:
    """A collective started without blocking (see :func:`iallreduce`).

    Parameters
    ----------
    steps : iterator
        The collective as a generator of what it waits on: anything with
        ``Test()`` and ``Wait()``, like an MPI request (see
        :func:`minidl.distributed.run.start`); each ``next()`` takes it as far
        as it can go without blocking.
    buf : numpy.ndarray
        The buffer it works in, returned by :meth:`wait`.
    comm : mpi4py.MPI.Intracomm, optional
        The communicator it runs on, for one of minidl's collectives: until
        :meth:`wait` has returned, no other of minidl's collectives may start
        there, even once :meth:`test` has returned True (see :data:`_STARTED`).
    what : Call or str, optional
        What it is, for the watchdog's report (:mod:`minidl.distributed.watchdog`).

    Attributes
    ----------
    buf : numpy.ndarray
        The buffer; it holds the result once :attr:`done`.

    Notes
    -----
    Finish every request started: one left behind leaves its messages
    posted, and they would meet the next collective's. One never waited for
    is named in a warning at exit (see :data:`_UNWAITED`).
    """

    def __init__(
        self, steps: Iterator[Any], buf: np.ndarray, comm: Any = None, what: Any = None
    ) -> None:
        self._steps = steps
        self._waiting: Any = None
        self._done = False
        self._error: BaseException | None = None
        self.buf = buf
        self.comm = comm
        self.what = what if what is not None else "a started collective"
        _UNWAITED[id(self)] = self  # until wait() returns, or it fails
        self._advance()  # post the first messages now

    @property
    def done(self) -> bool:
        """Whether the collective has finished (as of the last :meth:`test` or :meth:`wait`)."""
        return self._done

    def test(self) -> bool:
        """Move the collective along as far as it goes without blocking; True once it is done.

        Raises the error that stopped the collective, if one did (again at
        every later call: a failed collective is never done).
        """
        return self._advance()

    def _advance(self) -> bool:
        """Take the collective as far as it goes without blocking; whether it is done."""
        if self._error is not None:
            raise self._error
        if not self._done:
            try:
                self._waiting = next(self._steps)
            except StopIteration:
                self._done, self._waiting = True, None
            except BaseException as exc:
                self._error = exc
                self._seen_done()  # it raised on this rank: the caller sees it now
                raise
        return self._done

    def _seen_done(self) -> None:
        """Let other collectives start on its communicator again (see :data:`_STARTED`)."""
        _UNWAITED.pop(id(self), None)
        if self.comm is not None and _STARTED.get(id(self.comm)) is self:
            del _STARTED[id(self.comm)]

    def wait(self) -> np.ndarray:
        """Block until the collective is done; returns the buffer."""
        outer = WATCH.enter(self.what, WATCH.round)  # its round, as its last step said
        try:
            while not self._advance():
                self._waiting.Wait()
        finally:
            WATCH.leave(outer)
        self._seen_done()
        return self.buf

    # mpi4py's spelling, so that code written for MPI requests can wait on this one too.
    Test = test
    Wait = wait

    def __repr__(self) -> str:
        state = "done" if self._done else "in progress"
        return f"<CollectiveRequest {state}, {self.buf.size} x {self.buf.dtype}>"


def refuse_while_started(collective: str, call: Any) -> None:
    """Raise if one of minidl's collectives is still in flight on ``call.comm`` (see
    :data:`_STARTED`)."""
    started = _STARTED.get(id(call.comm))
    if started is not None:
        _refuse_while_started(collective, call.rank, started)


def until_done(request: Any) -> Iterator[Any]:
    """Yield ``request`` until it has completed: an MPI request as a generator of waits."""
    while not request.Test():
        yield request


_UNWAITED: dict[int, CollectiveRequest] = {}
"""Every request started and not yet waited for (nor failed), by ``id``: held,
so that one the program dropped is still named at exit."""


@atexit.register
def _warn_unwaited() -> None:
    """At exit, name each request never waited for: a warning, nothing collective.

    Its messages may still be posted, and MPI would only say "pending
    references" when it finalizes; waiting here could hang, since the other
    ranks may have left.
    """
    for request in _UNWAITED.values():
        print(
            f"minidl: warning: {request!r} was started (iallreduce) and never waited for; "
            "its result may be incomplete. Call its wait() on every rank before the program "
            "ends",
            file=sys.stderr,
        )
    _UNWAITED.clear()
