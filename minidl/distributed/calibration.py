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
import operator
import time
from collections.abc import Callable, Sequence
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

    def crossover(self, p: int, small: str = "recursive_doubling", large: str = "ring",
                  collective: str = "allreduce") -> float | None:
        """The buffer size from which ``large`` is predicted no slower than ``small``.

        Short buffers favour an algorithm of few rounds (recursive doubling:
        ``log2 p`` alphas, but every round sends the whole buffer), long ones
        an algorithm that moves few bytes (the ring: ``2 (p - 1)`` alphas, but
        only ``2 (p - 1) / p`` of the buffer on the wire). In the model each
        algorithm's time is a line in the buffer's size ``n``: a fixed part,
        its messages times alpha (plus the overhead, the same for both), and
        a slope, its bytes on the wire times beta plus its bytes reduced
        times gamma, per byte of buffer. The crossover is where the two lines
        meet: the size at which the model's choice switches.

        Parameters
        ----------
        p : int
            Number of ranks (>= 1).
        small, large : str, optional
            The algorithms compared, both of ``collective``; by default the
            all-reduce's recursive doubling and ring.
        collective : str, optional

        Returns
        -------
        float or None
            The size in bytes from which ``large`` is predicted no slower,
            at that size and every larger one: where the lines meet, or 0.0
            if ``large``'s line is nowhere above (parallel and lower, or
            meeting below 0). ``None`` if ``large`` is predicted slower on
            long buffers (a steeper line, or parallel and higher).

        Raises
        ------
        ValueError
            If ``p < 1`` or an algorithm is not one of ``collective``'s.

        Examples
        --------
        On 2 ranks the ring pays one more alpha and reduces half as many
        bytes (``2 alpha + n beta + n gamma / 2`` against
        ``alpha + n beta + n gamma``): it wins above ``n = 2 alpha / gamma``.

        >>> round(Calibration(alpha=5e-6, beta=1.2e-10, gamma=7e-11).crossover(2))
        142857
        >>> print(Calibration(alpha=5e-6, beta=1e-10, gamma=0.0).crossover(2))
        None
        """
        try:
            operator.index(p)  # ints and NumPy's, not 2.0
        except TypeError:
            raise TypeError(f"crossover: p must be an int, got {p!r}") from None
        if p < 1:
            raise ValueError(f"crossover: p must be >= 1, got {p}")
        for name in (small, large):
            if name not in ALGORITHMS.get(collective, ()):
                raise ValueError(f"crossover: {name!r} is not an algorithm of {collective!r}; "
                                 f"they are {', '.join(ALGORITHMS.get(collective, ())) or 'none'}")
        # BEGIN SOLUTION crossover
        # read each line (fixed, slope) off self.predict at two sizes, then intersect the lines
        # sizes that are multiples of p: no chunk is rounded to whole bytes
        n1, n2 = p << 10, p << 20
        lines = []
        for name in (small, large):
            t1, t2 = (self.predict(name, p, n, collective) for n in (n1, n2))
            slope = (t2 - t1) / (n2 - n1)
            lines.append((t1 - slope * n1, slope))
        (fixed_small, slope_small), (fixed_large, slope_large) = lines
        if slope_large == slope_small:  # parallel lines: one is below at every size, or never
            return 0.0 if fixed_large <= fixed_small else None
        if slope_large > slope_small:  # below for short buffers at most, never for long ones
            return None
        return max((fixed_large - fixed_small) / (slope_small - slope_large), 0.0)
        # END SOLUTION


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
            values[0] = swap_time(pair, _SMALL, repeats)
            values[1] = fit_per_byte(_LONG, _exchange_times(pair, _LONG, repeats), values[0])
        values[2] = fit_per_byte(_LONG, _reduce_times(_LONG, repeats), 0.0)
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


def fit_per_byte(sizes: Sequence[float], times: Sequence[float], fixed: float = 0.0) -> float:
    """The seconds per byte ``b`` for which ``fixed + b * size`` best fits ``times``.

    This is how :func:`calibrate` turns timed exchanges into beta (``fixed``
    is then alpha, what every message costs whatever its size) and timed
    reductions into gamma (``fixed = 0``). The fit is least squares on the
    *relative* error, that is, ``b`` minimises

        ``sum over i of ((fixed + b * sizes[i] - times[i]) / times[i]) ** 2``

    so that a short size counts as much as a long one: plain least squares
    would let the longest time decide ``b`` alone, and the model would then
    be off by a large factor on short buffers. Times that fall as sizes grow
    (noise, nothing real) would give a negative slope; the fit returns 0
    instead, since no byte costs less than nothing.

    Parameters
    ----------
    sizes : sequence of float
        Bytes, each > 0.
    times : sequence of float
        Seconds, one per size, each > 0.
    fixed : float, optional
        Seconds every timing contains whatever its size (>= 0).

    Returns
    -------
    float
        Seconds per byte, >= 0.

    Raises
    ------
    ValueError
        If the sequences are empty or differ in length, or a size, time or
        ``fixed`` is not a finite number in range.

    Examples
    --------
    Times that lie on a line give back its slope:

    >>> fit_per_byte([1e6, 4e6], [1e-5 + 2e-10 * 1e6, 1e-5 + 2e-10 * 4e6], fixed=1e-5)
    2e-10
    """
    m, t = np.asarray(sizes, dtype=float), np.asarray(times, dtype=float)
    if m.ndim != 1 or m.size == 0 or m.shape != t.shape:
        raise ValueError(f"fit_per_byte: sizes and times must be two flat sequences of the "
                         f"same non-zero length, got shapes {m.shape} and {t.shape}")
    for values, what in ((m, "sizes"), (t, "times")):
        if not np.all(np.isfinite(values) & (values > 0)):
            raise ValueError(f"fit_per_byte: every one of {what} must be a finite number > 0, "
                             f"got {values.tolist()}")
    if not (np.isfinite(fixed) and fixed >= 0):
        raise ValueError(f"fit_per_byte: fixed must be a finite number >= 0 seconds, got {fixed}")
    # BEGIN SOLUTION fit-per-byte
    # minimise the sum of squared *relative* errors over b (by hand: it is a parabola in b)
    weight = 1.0 / t**2
    return max(float(np.sum(weight * m * (t - fixed)) / np.sum(weight * m * m)), 0.0)
    # END SOLUTION


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


def swap_time(pair: Any, nbytes: int, repeats: int) -> float:
    """Median seconds for the two ranks of ``pair`` to swap ``nbytes`` bytes with one ``Sendrecv``.

    Collective over ``pair``, a communicator of exactly two ranks: both call
    it at once, and each message goes both ways in the same call, as in
    every round of the ring and the butterfly. :func:`calibrate` takes alpha
    from it with 8 bytes: a message whose bytes cost nothing next to its
    latency.

    Parameters
    ----------
    pair : mpi4py.MPI.Intracomm
        Two ranks.
    nbytes : int
        Bytes each rank sends (and receives) per swap.
    repeats : int
        Swaps timed; the median of their times is returned.

    Returns
    -------
    float
        Seconds per swap (the median over ``repeats``, not their total).
    """
    if pair.Get_size() != 2:
        raise ValueError(f"swap_time: pair must have exactly 2 ranks, got {pair.Get_size()}")
    if nbytes < 0 or repeats < 1:
        raise ValueError(f"swap_time: need nbytes >= 0 and repeats >= 1, "
                         f"got nbytes={nbytes}, repeats={repeats}")
    # BEGIN SOLUTION measure-alpha
    # each rank Sendrecv's nbytes to the other (tag _TAG); time each call, return the median
    out, into = np.zeros(nbytes, dtype=np.uint8), np.empty(nbytes, dtype=np.uint8)
    peer = 1 - pair.Get_rank()

    def swap() -> None:
        pair.Sendrecv(out, peer, _TAG, into, peer, _TAG)

    return _median_time(swap, repeats)
    # END SOLUTION


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
