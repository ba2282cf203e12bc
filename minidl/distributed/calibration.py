"""Measure the alpha-beta-gamma model on this machine, and let it pick algorithms.

:func:`calibrate` measures what the model's terms stand for, the way the
executor meets them:

- alpha from an *exchange*: ranks 0 and 1 ``Sendrecv`` 8 bytes to each other
  at once, as in every round of the ring and the butterfly (a rank that sends
  and receives in one round pays once, in the model).
- beta from the executor itself exchanging long buffers between ranks 0 and
  1 (a ring allgather on a communicator of the two: one round, each rank
  sending and receiving the same number of bytes), segments and all: the time
  per byte of exchanges from 1 to 64 MiB, fitted to all of them (see below).
- gamma from the reduction kernel, run as the executor runs it: segment by
  segment (:data:`~minidl.distributed.fast.executor.SEGMENT_BYTES`) into buffers of the
  same sizes, from one segment of scratch. Ranks 0 and 1 time it at the same
  moment, right after their last exchange, because in a collective every rank
  reduces at once: on one machine they share the memory bus, and one rank
  alone would reduce faster than either does in an allreduce.
- overhead, the time minidl's Python spends per call before and after its
  rounds (checking the arguments, finding the plan): an allreduce on one rank
  (``MPI.COMM_SELF``), which sends nothing. Without it the model would
  under-predict short buffers several times over.

The model has one beta and one gamma for every size, but a machine has
caches: a buffer that fits in them moves and reduces faster per byte than
one that does not (on the 2-core machine minidl is developed on, 64 MiB
costs 1.5 to 2 times as much per byte as 4 MiB). So beta and gamma are the
slopes that best fit every measured size, by least squares on the *relative*
error (each size weighted by one over its time squared): the prediction is
then about as far off, in percent, for a 1 MiB buffer as for a 64 MiB one,
where two sizes alone would fit those two and miss the rest. The sizes are
timed in turn, a few calls each, over and over, so that a machine whose
speed drifts slows all of them alike.

With those numbers, :meth:`Calibration.predict` prices an algorithm as
``overhead +`` :func:`~minidl.distributed.cost.cost`, and :meth:`Calibration.choose`
picks the cheapest: that is what ``algorithm="auto"`` does. The overhead is
the same for every algorithm, so it changes the predicted times, not the
choice.

The model ``"auto"`` uses is one value per process: :data:`DEFAULT` until
:func:`calibrate` replaces it, on every rank at once (it is a collective and
broadcasts rank 0's measurements), so that every rank picks the same
algorithm.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from minidl import kernels
from minidl.distributed.cost import cost
from minidl.distributed.fast import executor
from minidl.distributed.schedules import ALGORITHMS
from minidl.distributed.world import mpi_module, world

_TAG = executor.TAG - 2  # below the collectives' tags (TAG, TAG + 1, ...) and the check's
_SMALL = 8  # bytes: an exchange whose time is all latency
_LONG = tuple(1 << k for k in range(20, 27, 2))  # bytes, 1 to 64 MiB: in cache to memory


@dataclass(frozen=True)
class Calibration:
    """The alpha-beta-gamma model of one machine (or cluster), plus minidl's per-call overhead.

    Attributes
    ----------
    alpha : float
        Seconds per round of messages (latency).
    beta : float
        Seconds per byte a rank sends (and receives at the same time) in a round.
    gamma : float
        Seconds per byte reduced by the compiled kernel.
    overhead : float, optional
        Seconds of Python per call, whatever the algorithm (0 if not measured).
    """

    alpha: float
    beta: float
    gamma: float
    overhead: float = 0.0

    def predict(self, algorithm: str, p: int, nbytes: int, collective: str = "allreduce") -> float:
        """Predicted seconds of ``algorithm`` on ``p`` ranks over ``nbytes`` bytes.

        Examples
        --------
        >>> model = Calibration(alpha=5e-6, beta=2e-10, gamma=1e-10, overhead=2e-6)
        >>> round(model.predict("ring", 2, 1 << 20) * 1e6, 1)  # microseconds
        274.1
        """
        terms = cost(algorithm, p, nbytes, self.alpha, self.beta, self.gamma, collective=collective)
        return self.overhead + terms.seconds

    def choose(self, p: int, nbytes: int, collective: str = "allreduce") -> str:
        """The algorithm of ``collective`` predicted fastest on ``p`` ranks for ``nbytes`` bytes.

        Examples
        --------
        >>> model = Calibration(alpha=5e-6, beta=2e-10, gamma=1e-10)
        >>> model.choose(8, 1024), model.choose(8, 64 << 20)
        ('recursive_doubling', 'rabenseifner')
        """
        return _fastest(collective, p, nbytes, self.alpha, self.beta, self.gamma)


DEFAULT = Calibration(alpha=5e-6, beta=1.2e-10, gamma=7e-11, overhead=2e-6)
"""The model ``"auto"`` uses before :func:`calibrate` runs: two ranks of one
2-core machine with MPICH 5 from PyPI, calibrated and rounded."""

_current = DEFAULT


def current() -> Calibration:
    """The model ``algorithm="auto"`` uses now: :data:`DEFAULT`, or the last :func:`calibrate`."""
    return _current


def calibrate(comm: Any = None, *, repeats: int = 20) -> Calibration:
    """Measure alpha, beta, gamma and the overhead, and make them the model of ``"auto"``.

    Collective: every rank of ``comm`` must call it, and it takes a second or
    two. Ranks 0 and 1 time exchanges (alpha, beta) and the reduction kernel
    (gamma); rank 0 times an allreduce on one rank (overhead); see
    :mod:`minidl.distributed.calibration` for how each is measured. Rank 0's numbers
    are broadcast, so every rank returns, and installs, the same model. On
    one rank there is no one to talk to: alpha and beta are 0.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm, optional
        ``None`` means ``MPI.COMM_WORLD``. On a cluster, ranks 0 and 1 should
        sit where the collectives' messages will go (on two nodes, to measure
        the network).
    repeats : int, optional
        Timings per measurement; their median is used.

    Returns
    -------
    Calibration
        The measured model, now also what
        :func:`minidl.distributed.calibration.current` returns.
    """
    global _current
    MPI = mpi_module()
    comm = world(comm, "calibrate")
    rank = comm.Get_rank()
    values = np.zeros(4)
    pair = comm.Split(0 if rank < 2 else MPI.UNDEFINED, rank)  # ranks 0 and 1 alone
    if pair != MPI.COMM_NULL:
        if pair.Get_size() == 2:
            values[0] = _swap_time(pair, _SMALL, repeats)
            values[1] = _per_byte(_LONG, _exchange_times(pair, _LONG, repeats), values[0])
        values[2] = _per_byte(_LONG, _reduce_times(_LONG, repeats), 0.0)
        pair.Free()
    if rank == 0:
        values[3] = _overhead(MPI.COMM_SELF, repeats)
    _wait_politely(comm.Ibcast(values, root=0))
    _current = Calibration(*values.tolist())
    return _current


def _wait_politely(request: Any) -> None:
    """Wait for ``request`` with ``Test`` and a growing sleep, not a spinning ``Wait``.

    The other ranks wait here while ranks 0 and 1 measure; oversubscribed,
    a spinning rank would steal the core they are timing on.
    """
    pause = 1e-5
    while not request.Test():
        time.sleep(pause)
        pause = min(2 * pause, 1e-2)


def _per_byte(sizes: tuple[int, ...], times: list[float], fixed: float) -> float:
    """The seconds per byte ``b`` for which ``fixed + b * size`` best fits ``times``.

    Least squares on the relative error: each size is weighted by one over
    its time squared, so that a short size counts as much as a long one.
    """
    m, t = np.array(sizes, dtype=float), np.array(times)
    weight = 1.0 / t**2
    return max(float(np.sum(weight * m * (t - fixed)) / np.sum(weight * m * m)), 0.0)


def _median_time(call: Callable[[], Any], repeats: int) -> float:
    """Median seconds of ``call()`` over ``repeats`` timings (see :func:`_median_times`)."""
    return _median_times([call], repeats)[0]


def _median_times(calls: list[Callable[[], Any]], repeats: int, sweeps: int = 4) -> list[float]:
    """Median seconds of each of ``calls`` over ``repeats`` timings, in ``sweeps`` sweeps.

    Each sweep times every call in turn, ``repeats / sweeps`` times in a row
    after one untimed warm-up (so that each is timed with its buffers in
    cache, as a loop calling it would find them). The sweeps spread each
    call's timings over the whole measurement, so that a machine whose
    speed drifts (shared, throttled) slows all of them alike instead of the
    one it was timing then: the slopes fitted to them would bend.
    """
    times: list[list[float]] = [[] for _ in calls]
    per_sweep = max(1, -(-repeats // sweeps))
    for _ in range(sweeps):
        for i, call in enumerate(calls):
            for timed in [False] + [True] * per_sweep:
                started = time.perf_counter()
                call()
                if timed:
                    times[i].append(time.perf_counter() - started)
    return [float(np.median(t)) for t in times]


def _swap_time(pair: Any, nbytes: int, repeats: int) -> float:
    """Median time for the two ranks of ``pair`` to swap ``nbytes`` bytes with one ``Sendrecv``."""
    out, into = np.zeros(nbytes, dtype=np.uint8), np.empty(nbytes, dtype=np.uint8)
    peer = 1 - pair.Get_rank()

    def swap() -> None:
        pair.Sendrecv(out, peer, _TAG, into, peer, _TAG)

    return _median_time(swap, repeats)


def _exchange_times(pair: Any, sizes: tuple[int, ...], repeats: int) -> list[float]:
    """Median times for the executor to swap each of ``sizes`` bytes between ``pair``'s ranks."""
    # Imported here: minidl.distributed.collectives imports this module, for "auto".
    from minidl.distributed.collectives import allgather

    # Each rank's half of a buffer goes to the other. Ones, not zeros: a fresh
    # array of zeros that is never written reads from the kernel's one shared
    # page of zeros, which is always in cache (64 MiB then moved 1.4 times
    # faster than from memory that holds data).
    buffers = [np.ones(2 * nbytes // 4, dtype=np.float32) for nbytes in sizes]
    calls = [lambda both=both: allgather(both, comm=pair, check=False) for both in buffers]
    return _median_times(calls, repeats)


def _reduce_times(sizes: tuple[int, ...], repeats: int) -> list[float]:
    """Median times of the sum kernel over each of ``sizes`` bytes of float32, by segments."""
    segment = executor.SEGMENT_BYTES // 4
    scratch = np.ones(segment, dtype=np.float32)

    def reduce(dst: np.ndarray) -> None:
        for start in range(0, dst.size, segment):
            part = dst[start : start + segment]
            kernels.add_into(part, scratch[: part.size])

    buffers = [np.ones(nbytes // 4, dtype=np.float32) for nbytes in sizes]
    return _median_times([lambda dst=dst: reduce(dst) for dst in buffers], repeats)


def _overhead(comm_self: Any, repeats: int) -> float:
    """Median time of an allreduce of one element on one rank: all Python, no message."""
    # Imported here: minidl.distributed.collectives imports this module, for "auto".
    from minidl.distributed.collectives import allreduce

    one = np.zeros(1, dtype=np.float32)
    batch = 100  # calls per timing: one call is too short for the clock to time alone

    def calls() -> None:
        for _ in range(batch):
            allreduce(one, algorithm="ring", comm=comm_self, check=False)

    return _median_time(calls, repeats) / batch


@functools.lru_cache(maxsize=1024)
def _fastest(collective: str, p: int, nbytes: int, alpha: float, beta: float, gamma: float) -> str:
    """The cheapest algorithm by :func:`cost`; cached, as ``"auto"`` asks on every call."""
    algorithms = ALGORITHMS[collective]
    return min(
        algorithms,
        key=lambda a: cost(a, p, nbytes, alpha, beta, gamma, collective=collective).seconds,
    )
