"""The step check: every rank must be at the same step before a pass's first all-reduce.

A rank that skips a backward pass (a ``continue`` on one rank, an ``if`` on
its own loss) would leave the others waiting forever inside an all-reduce it
never joins. So before a pass starts its first bucket's all-reduce, the
ranks exchange their step counts with one small ``Iallgather``, started
without blocking so that it travels while backward goes on; and closing
exchanges them once more, marked as the end. A rank that skipped a step
reaches its close while the others start one more pass: the exchange shows
it, and every rank raises, naming every rank's step, instead of hanging.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from minidl.parallel.comm import wait_politely

_PASS, _CLOSE = 0, 1  # what a rank is doing when it reports its step


class StepCheck:
    """Compare the step counts of every rank of ``comm``, once per synchronised pass and at close.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        The ranks to compare.
    wait : callable, default wait_politely
        ``wait(request, what)`` blocks until an MPI request is done; ``what``
        names the wait for the watchdog.

    Attributes
    ----------
    step : int
        Synchronised passes this rank has finished.
    """

    def __init__(self, comm: Any, wait: Callable[[Any, str], None] = wait_politely) -> None:
        self.comm, self._wait = comm, wait
        self.step = 0
        # Each rank's (step, _PASS or _CLOSE), as the last exchange brought them.
        self._everyone = np.empty((comm.Get_size(), 2), dtype=np.int64)
        self._request: Any = None  # this pass's exchange, once started
        self._passed = False  # whether it came back equal

    def test(self) -> bool:
        """Whether this pass's exchange is back, starting it if need be; raises if steps differ."""
        if self._passed:
            return True
        if self._request is None:
            self._request = self._start(_PASS)
        if not self._request.Test():
            return False
        self._passed = True
        self._verify()
        return True

    def wait(self) -> None:
        """Like :meth:`test`, but wait for the exchange to come back."""
        if not self._passed:
            if self._request is None:
                self._request = self._start(_PASS)
            self._wait(self._request, f"DistributedDataParallel's step check at step {self.step} "
                       "(every rank's step count, before the first bucket's all-reduce)")
            self._passed = True
            self._verify()

    def advance(self) -> None:
        """Count a finished pass: the next one exchanges the next step."""
        self.step += 1
        self._request, self._passed = None, False

    def at_close(self) -> None:
        """Exchange the step count one last time, as a rank that is closing (collective)."""
        self._wait(self._start(_CLOSE), "DistributedDataParallel.close(), after step "
                   f"{self.step} (every rank's step count)")
        self._verify()

    def _start(self, doing: int) -> Any:
        mine = np.array([self.step, doing], dtype=np.int64)
        return self.comm.Iallgather(mine, self._everyone)

    def _verify(self) -> None:
        everyone = self._everyone
        if (everyone != everyone[0]).any():
            listing = ", ".join(
                f"rank {r}: {'finished after' if doing == _CLOSE else 'at'} step {step}"
                for r, (step, doing) in enumerate(everyone))
            raise RuntimeError(
                f"DistributedDataParallel: ranks are at different steps ({listing}); "
                "a rank skipped a backward pass or ran an extra one")
