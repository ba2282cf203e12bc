"""Watching a reducer: the points it reports, and the observer that keeps DDP's statistics.

A :class:`~minidl.parallel.reducer.Reducer` tells its observer what it does
at a few named points: it is communicating, a bucket's all-reduce started or
is done, it is waiting for the all-reduces or for its peers. The
:class:`Observer` here ignores them; :class:`Recorder`, the one
:class:`~minidl.parallel.DistributedDataParallel` uses, sums them up into
:class:`CommStats` and, given a :class:`~minidl.parallel.timeline.Timeline`,
records each as a span. Subclass :class:`Observer` to watch a reducer your
own way: the reducer's code stays the algorithm alone.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, ContextManager

from minidl.distributed import ScheduleFn, schedule
from minidl.parallel.algorithm import ON_REAL_RANKS
from minidl.parallel.buckets import Bucket
from minidl.parallel.timeline import Timeline


@dataclass
class CommStats:
    """Where a rank's time and bytes went, summed over the steps since the last reset.

    Attributes
    ----------
    steps : int
        Synchronised backward passes.
    allreduces : int
        Bucket all-reduces done.
    comm_seconds : float
        Time this rank spent inside calls that move messages: moving the
        all-reduces in flight along from the gradient hooks (inside
        backward), and at backward's end moving them along and running the
        blocking all-reduces left (inside ``wait_seconds``). Time spent
        waiting for another rank between those calls is not in it. It
        overlaps the other times rather than adding to them.
    wait_seconds : float
        Time backward's end took, from its last gradient hook until every
        bucket is averaged: waiting for the slowest rank to finish its
        backward (the step check before bucket 0, the barrier before the
        last bucket), waiting politely for all-reduces that overlap did not
        hide, and the blocking all-reduces left at the end (also counted in
        ``comm_seconds``). Because it includes the time blocked on the
        slowest rank, it can exceed ``comm_seconds``, on every rank.
    bytes_sent : int
        Bytes this rank sent, counted from the schedules.
    """

    steps: int = 0
    allreduces: int = 0
    comm_seconds: float = 0.0
    wait_seconds: float = 0.0
    bytes_sent: int = 0


_NOTHING = contextlib.nullcontext()


class Observer:
    """The points at which a reducer reports what it does; this one ignores them all."""

    def communicating(self) -> ContextManager[None]:
        """A ``with`` block around calls that move messages (start, move along, finish)."""
        return _NOTHING

    def bucket_started(self, bucket: Bucket) -> None:
        """``bucket``'s all-reduce is about to start."""

    def bucket_done(self, bucket: Bucket) -> None:
        """``bucket`` holds the average over the ranks."""

    def waiting(self, what: str, bucket: Bucket | None = None) -> ContextManager[None]:
        """A ``with`` block in which backward's end waits.

        ``what`` is ``"all-reduces"`` (the whole end of a synchronised pass,
        once per pass) or ``"peers"`` (every rank to finish backward, before
        ``bucket``'s blocking all-reduce).
        """
        return _NOTHING


class Recorder(Observer):
    """Sum a reducer's reports into :class:`CommStats`, and record them in a timeline if given one.

    Parameters
    ----------
    bytes_sent : list of int
        Bytes this rank sends in one all-reduce of each bucket (see :func:`bytes_sent`).
    timeline : Timeline, optional
        Where to record each bucket's all-reduce (lane ``"comm"``, from its
        start to its end) and each wait (lane ``"main"``) as spans.

    Attributes
    ----------
    stats : CommStats
        Since the last :meth:`reset`.
    timeline : Timeline or None
    """

    def __init__(self, bytes_sent: list[int], timeline: Timeline | None = None) -> None:
        self.stats, self.timeline = CommStats(), timeline
        self._bytes_sent = bytes_sent
        self._started = [0.0] * len(bytes_sent)  # when each bucket's all-reduce started
        # One timer for each kind of block, reused: blocks of one kind never nest.
        self._communicating = _Timed(self._communicated)
        self._waits = {"all-reduces": _Timed(self._waited_for_all_reduces),
                       "peers": _Timed(self._waited_for_peers)}
        self._bucket: Bucket | None = None  # the one whose peers are waited for

    def reset(self) -> CommStats:
        """Return the statistics so far and start counting afresh."""
        stats, self.stats = self.stats, CommStats()
        return stats

    def communicating(self) -> ContextManager[None]:
        return self._communicating

    def _communicated(self, start: float, end: float) -> None:
        self.stats.comm_seconds += end - start

    def bucket_started(self, bucket: Bucket) -> None:
        self._started[bucket.index] = time.perf_counter()

    def bucket_done(self, bucket: Bucket) -> None:
        self.stats.allreduces += 1
        self.stats.bytes_sent += self._bytes_sent[bucket.index]
        if self.timeline is not None and self.timeline.enabled:
            started, ended = self._started[bucket.index], time.perf_counter()
            self.timeline.add("comm", f"all-reduce bucket {bucket.index}", started, ended,
                              bytes=bucket.nbytes, parameters=[name for name, _ in bucket.params])

    def waiting(self, what: str, bucket: Bucket | None = None) -> ContextManager[None]:
        self._bucket = bucket
        return self._waits[what]

    def _waited_for_all_reduces(self, start: float, end: float) -> None:
        self.stats.wait_seconds += end - start
        self.stats.steps += 1
        if self.timeline is not None:
            self.timeline.add("main", "wait for all-reduces", start, end)

    def _waited_for_peers(self, start: float, end: float) -> None:
        if self.timeline is not None and end - start > 1e-6:  # else they were there already
            self.timeline.add("main", "wait for peers", start, end, bucket=self._bucket.index)


class _Timed:
    """A ``with`` block that hands its start and end (``time.perf_counter``) to ``record``.

    Nothing is recorded if the block raises.
    """

    __slots__ = ("record", "start")

    def __init__(self, record: Callable[[float, float], None]) -> None:
        self.record, self.start = record, 0.0

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if kind is None:
            self.record(self.start, time.perf_counter())


def bytes_sent(algorithm: str | ScheduleFn, p: int, rank: int, n: int, itemsize: int) -> int:
    """Bytes ``rank`` of ``p`` sends in one all-reduce of ``n`` elements, read off the schedule.

    ``"mpi"`` and ``"auto"`` do not say what they send: a ring's bytes are
    counted for them. A schedule function of your own is read like the others.
    """
    if p == 1:
        return 0
    if isinstance(algorithm, str) and algorithm in ON_REAL_RANKS:
        return 2 * (p - 1) * math.ceil(n / p) * itemsize
    rounds = schedule(algorithm, p, rank, n)
    return sum(s.count for rnd in rounds for s in rnd.sends) * itemsize
