"""Measure the alpha-beta-gamma model on this machine, and let it pick algorithms.

:func:`calibrate` times a ping-pong between ranks 0 and 1 (alpha: a tiny
message; beta: the extra time per byte between two long ones) and the
reduction kernel (gamma: time per byte reduced). With those numbers,
:meth:`Calibration.choose` prices every algorithm with
:func:`~minidl.dist.cost.cost` and picks the cheapest: that is what
``algorithm="auto"`` does.

The model ``"auto"`` uses is one value per process: :data:`DEFAULT` until
:func:`calibrate` replaces it, on every rank at once (it is a collective and
broadcasts rank 0's measurements), so that every rank picks the same
algorithm.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from minidl import kernels
from minidl.dist.cost import cost
from minidl.dist.schedules import ALGORITHMS

_TAG = 27_172  # apart from the collectives' messages (see minidl.dist.executor.TAG)
_SMALL = 8  # bytes: a message whose time is all latency
_LONG = (4 << 20, 16 << 20)  # bytes: long messages, whose time difference is all bandwidth


@dataclass(frozen=True)
class Calibration:
    """The alpha-beta-gamma model of one machine (or cluster).

    Attributes
    ----------
    alpha : float
        Seconds per message (latency, including Python's per-call overhead).
    beta : float
        Seconds per byte sent.
    gamma : float
        Seconds per byte reduced by the compiled kernel.
    """

    alpha: float
    beta: float
    gamma: float

    def predict(self, algorithm: str, p: int, nbytes: int, collective: str = "allreduce") -> float:
        """Predicted seconds of ``algorithm`` on ``p`` ranks over ``nbytes`` bytes."""
        return cost(
            algorithm, p, nbytes, self.alpha, self.beta, self.gamma, collective=collective
        ).seconds

    def choose(self, p: int, nbytes: int, collective: str = "allreduce") -> str:
        """The algorithm of ``collective`` predicted fastest on ``p`` ranks for ``nbytes`` bytes.

        Examples
        --------
        >>> model = Calibration(alpha=5e-6, beta=2e-10, gamma=1e-10)
        >>> model.choose(8, 1024), model.choose(8, 64 << 20)
        ('recursive_doubling', 'rabenseifner')
        """
        return _fastest(collective, p, nbytes, self.alpha, self.beta, self.gamma)


DEFAULT = Calibration(alpha=3e-6, beta=2e-10, gamma=1e-10)
"""The model ``"auto"`` uses before :func:`calibrate` runs: two ranks of one
machine with MPICH from PyPI, Python overhead included (rounded)."""

_current = DEFAULT


def current() -> Calibration:
    """The model ``algorithm="auto"`` uses now: :data:`DEFAULT`, or the last :func:`calibrate`."""
    return _current


def calibrate(comm: Any = None, *, repeats: int = 20) -> Calibration:
    """Measure alpha, beta and gamma, and make them the model of ``algorithm="auto"``.

    Collective: every rank of ``comm`` must call it. Ranks 0 and 1 time a
    ping-pong of 8 bytes (alpha) and of 4 and 16 MiB (beta, from the
    difference); rank 0 times the sum kernel on 16 MiB (gamma), more than the
    caches hold, as the long buffers of real training are. Rank 0's numbers
    are broadcast, so every rank returns, and installs, the same model. On
    one rank there is no one to talk to: alpha and beta are 0.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm, optional
        ``None`` means ``MPI.COMM_WORLD``. On a cluster, ranks 0 and 1 should
        sit where the collectives' messages will go (on two nodes, to measure
        the network).
    repeats : int, optional
        Timings per size; their median is used.

    Returns
    -------
    Calibration
        The measured model, now also :func:`current`.
    """
    global _current
    from mpi4py import MPI  # imported here: importing minidl.dist must not start MPI

    comm = MPI.COMM_WORLD if comm is None else comm
    rank = comm.Get_rank()
    values = np.zeros(3)
    if rank < 2 and comm.Get_size() > 1:
        one_way = {nbytes: _ping_pong(comm, nbytes, repeats) for nbytes in (_SMALL, *_LONG)}
        values[0] = one_way[_SMALL]
        values[1] = max(one_way[_LONG[1]] - one_way[_LONG[0]], 0.0) / (_LONG[1] - _LONG[0])
    if rank == 0:
        values[2] = _reduce_time(_LONG[1], repeats) / _LONG[1]
    comm.Bcast(values, root=0)
    _current = Calibration(*values.tolist())
    return _current


def _ping_pong(comm: Any, nbytes: int, repeats: int) -> float:
    """Median one-way time of an ``nbytes`` message between ranks 0 and 1 (half a round trip)."""
    buf = np.zeros(nbytes, dtype=np.uint8)
    rank = comm.Get_rank()
    times = []
    for _ in range(repeats + 1):  # the first round trip sets up the connection: not counted
        started = time.perf_counter()
        if rank == 0:
            comm.Send(buf, 1, _TAG)
            comm.Recv(buf, 1, _TAG)
        else:
            comm.Recv(buf, 0, _TAG)
            comm.Send(buf, 0, _TAG)
        times.append((time.perf_counter() - started) / 2)
    return float(np.median(times[1:]))


def _reduce_time(nbytes: int, repeats: int) -> float:
    """Median time of the compiled sum kernel over ``nbytes`` bytes of float32."""
    dst = np.ones(nbytes // 4, dtype=np.float32)
    src = np.ones_like(dst)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        kernels.add_into(dst, src)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


@functools.lru_cache(maxsize=1024)
def _fastest(collective: str, p: int, nbytes: int, alpha: float, beta: float, gamma: float) -> str:
    """The cheapest algorithm by :func:`cost`; cached, as ``"auto"`` asks on every call."""
    algorithms = ALGORITHMS[collective]
    return min(
        algorithms,
        key=lambda a: cost(a, p, nbytes, alpha, beta, gamma, collective=collective).seconds,
    )
