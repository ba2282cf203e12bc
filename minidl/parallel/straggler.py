"""``Straggler``: make one rank slow on purpose, to watch what the others do about it.

A straggler is a rank that takes longer than the others for each step (a
busier machine, a slower GPU, a noisy neighbour). Synchronous training waits
for it every step; asynchronous training runs on without it, at the price of
stale gradients; stale-synchronous training waits only when it falls too far
behind. To see that happen on one machine, put ``straggler.step()`` in every
rank's loop: it sleeps on the named rank and returns at once on the others::

    straggler = Straggler(rank=1, seconds=0.01)
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        straggler.step()        # rank 1 sleeps 10 ms here, every step
        optimizer.step()

``python -m minidl.train --straggler RANK:SECONDS`` does exactly this, in every
``--parallel`` mode.
"""

from __future__ import annotations

import math
import numbers
import time
from typing import Any

from minidl.distributed.world import world


class Straggler:
    """Sleep ``seconds`` at every :meth:`step` on rank ``rank`` of ``comm``; nothing elsewhere.

    Not collective: it only asks ``comm`` for this rank's number.

    Parameters
    ----------
    rank : int
        The slow rank, in ``comm``.
    seconds : float
        How long it sleeps at each step, >= 0.
    comm : mpi4py.MPI.Intracomm, optional
        None means ``MPI.COMM_WORLD``.

    Attributes
    ----------
    rank : int
    seconds : float
    is_straggler : bool
        Whether this rank is the slow one.
    steps : int
        Steps this rank has delayed (0 on every other rank).
    slept : float
        Seconds this rank has slept in :meth:`step`, measured.

    Raises
    ------
    ValueError
        If ``rank`` is not a rank of ``comm``, or ``seconds`` is negative or
        not finite.

    Examples
    --------
    >>> straggler = Straggler(rank=0, seconds=0.0)   # doctest: +SKIP
    >>> straggler.step()                              # doctest: +SKIP
    """

    def __init__(self, rank: int, seconds: float, comm: Any = None) -> None:
        comm = world(comm, "Straggler")
        size = comm.Get_size()
        if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) \
                or not 0 <= rank < size:
            raise ValueError(f"Straggler: rank must be one of the {size} ranks of comm "
                             f"(0 to {size - 1}), got {rank!r}")
        if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) \
                or not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"Straggler: seconds must be a finite number >= 0, got {seconds!r}")
        self.rank, self.seconds = int(rank), float(seconds)
        self.is_straggler = comm.Get_rank() == self.rank
        self.steps, self.slept = 0, 0.0

    def step(self) -> None:
        """Sleep ``seconds`` if this rank is the straggler; return at once otherwise."""
        if not self.is_straggler:
            return
        started = time.perf_counter()
        time.sleep(self.seconds)
        self.slept += time.perf_counter() - started
        self.steps += 1

    def __repr__(self) -> str:
        return (f"<Straggler: rank {self.rank} sleeps {self.seconds:g} s a step"
                f"{' (this rank)' if self.is_straggler else ''}>")
