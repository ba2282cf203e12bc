"""A record of what each rank did in each round, for reading, counting and Perfetto.

The simulator and the MPI executor append one :class:`Event` per message sent,
per message received and per reduction. :meth:`Trace.summary` tabulates them
per rank; :meth:`Trace.to_chrome` writes the Chrome trace-event JSON that
https://ui.perfetto.dev and ``chrome://tracing`` open, one row per rank.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from minidl.distributed.watchdog import watching

_LANES = ("send", "recv", "reduce")  # one timeline row per kind, within each rank


class Event(NamedTuple):
    """One thing one rank did in one round.

    A named tuple rather than a frozen dataclass: the MPI executor makes
    several per round while tracing, and a named tuple is made several times
    faster. Its fields, in order (each described in the API reference): rank,
    round, kind, peer, chunks, count, nbytes, start, end, segments.
    """

    rank: int
    """The rank that did it."""
    round: int
    """The round of the schedule."""
    kind: str
    """``"send"``, ``"recv"`` (the data arrived) or ``"reduce"`` (it was reduced in)."""
    peer: int
    """The rank at the other end of the message."""
    chunks: range
    """Which chunks of the algorithm's split moved."""
    count: int
    """Number of elements."""
    nbytes: int
    """Number of bytes."""
    start: float
    """When it began: seconds of ``time.perf_counter`` under MPI, the round in the simulator."""
    end: float
    """When it ended, on the same clock as ``start``."""
    segments: int = 1
    """How many MPI messages carried it: the MPI executor cuts a long message into
    segments, and a mid-length one of a short buffer into pieces (see
    :mod:`minidl.distributed.fast.executor`); 1 in the simulator."""


@dataclass
class RankStats:
    """What one rank did over a whole trace (see :meth:`Trace.stats`).

    Attributes
    ----------
    messages_sent, messages_received : int
    elements_sent, bytes_sent, bytes_received, bytes_reduced : int
    time : float
        From the start of its first event to the end of its last, in the trace's clock.
    """

    messages_sent: int = 0
    messages_received: int = 0
    elements_sent: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    bytes_reduced: int = 0
    time: float = 0.0


class Trace:
    """Events of a collective, per rank and round.

    Pass one to :func:`minidl.distributed.allreduce` (or another collective) as
    ``trace=``; :func:`minidl.distributed.simulate` returns one.

    Parameters
    ----------
    clock : {"seconds", "rounds"}, optional
        What ``start`` and ``end`` of the events count: wall-clock seconds
        (under MPI) or rounds (in the simulator).

    Attributes
    ----------
    clock : str
    comm : mpi4py.MPI.Intracomm or None
        The communicator the events came from (set by the MPI executor);
        ``None`` for a simulated or already merged trace.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.distributed import simulate
    >>> inputs = [np.arange(8.0) * (rank + 1) for rank in range(4)]
    >>> outputs, trace = simulate("ring", inputs)
    >>> trace.stats()[0].messages_sent
    6
    """

    def __init__(self, clock: str = "seconds") -> None:
        if clock not in ("seconds", "rounds"):
            raise ValueError(f"Trace: clock must be 'seconds' or 'rounds', got {clock!r}")
        self.clock = clock
        self.comm: Any = None
        self._events: list[Event] = []
        self._later: list[tuple[Callable[..., Iterable[Event]], tuple[Any, ...]]] = []

    @property
    def events(self) -> list[Event]:
        """Every event recorded, in order; under MPI, this rank's only (:meth:`gather` merges)."""
        for make, args in self._later:
            self._events.extend(make(*args))
        self._later.clear()
        return self._events

    @events.setter
    def events(self, events: Iterable[Event]) -> None:
        self._events, self._later = list(events), []

    def record(self, event: Event) -> None:
        """Append one event."""
        self.events.append(event)

    def record_later(self, make: Callable[..., Iterable[Event]], *args: Any) -> None:
        """Append the events ``make(*args)`` returns, but only make them when they are read.

        The MPI executor records each round this way: while a traced
        collective runs, a round then costs one tuple, not several
        :class:`Event` objects (microseconds of Python per round, enough to
        slow a collective on a 1 MiB buffer by several percent).
        """
        self._later.append((make, args))

    def stats(self) -> dict[int, RankStats]:
        """Messages, elements, bytes and time of each rank that has events, by rank."""
        stats: dict[int, RankStats] = {}
        first: dict[int, float] = {}
        last: dict[int, float] = {}
        for e in sorted(self.events, key=lambda e: e.rank):
            s = stats.setdefault(e.rank, RankStats())
            first[e.rank] = min(first.get(e.rank, e.start), e.start)
            last[e.rank] = max(last.get(e.rank, e.end), e.end)
            if e.kind == "send":
                s.messages_sent += 1
                s.elements_sent += e.count
                s.bytes_sent += e.nbytes
            elif e.kind == "recv":
                s.messages_received += 1
                s.bytes_received += e.nbytes
            else:
                s.bytes_reduced += e.nbytes
        for rank, s in stats.items():
            s.time = last[rank] - first[rank]
        return stats

    def gather(self) -> Trace | None:
        """All ranks' events in one trace on rank 0 of :attr:`comm`: the one collective here.

        Collective when the trace came from MPI: every rank must call it, not
        under ``if rank == 0``. It returns the merged trace on rank 0 and
        ``None`` on the others; :meth:`summary` and :meth:`to_chrome` of the
        merged trace then show every rank. A trace without a communicator
        (simulated, or already merged) is returned as is.

        Examples
        --------
        Under ``mpiexec``::

            merged = trace.gather()          # on every rank
            if merged is not None:           # rank 0
                merged.summary()
                merged.to_chrome("ring.json")
        """
        if self.comm is None:
            return self
        # Trace events are a small, irregular Python list gathered once, after
        # the collective: pickling (lower-case gather) is the right tool here,
        # unlike for the data, which always moves as raw buffers.
        with watching("Trace.gather() (collective: every rank gathers its trace)"):
            everyone = self.comm.gather(self.events, root=0)
        if everyone is None:
            return None
        merged = Trace(self.clock)
        merged.events = [e for events in everyone for e in events]
        return merged

    def summary(self) -> str:
        """Print, and return, a table of messages, bytes and time per rank of this trace.

        Local: a trace of real ranks holds this rank's events only, so its
        table has one row; :meth:`gather` first (on every rank) for all of them.
        """
        row = "{:>4} {:>6} {:>12} {:>6} {:>12} {:>14} {:>12}".format
        lines = [row("rank", "sent", "bytes sent", "recvd", "bytes recvd", "bytes reduced", "time")]
        for rank, s in self.stats().items():
            lines.append(
                row(
                    rank,
                    s.messages_sent,
                    s.bytes_sent,
                    s.messages_received,
                    s.bytes_received,
                    s.bytes_reduced,
                    self._format_time(s.time),
                )
            )
        text = "\n".join(lines)
        print(text)
        return text

    def to_chrome(self, path: str | os.PathLike[str]) -> None:
        """Write the events as Chrome trace-event JSON, one process row per rank.

        Open the file in https://ui.perfetto.dev or ``chrome://tracing``. Each
        rank gets rows for its sends, receives and reductions. Local: it
        writes the events this trace holds, on real ranks this rank's alone;
        write a :meth:`gather`-ed trace (on rank 0) to see every rank's. Times
        count from the earliest event, so they line up across ranks on one
        machine (on a cluster, only as well as the nodes' clocks agree). A
        simulated trace draws each round as one millisecond.

        Parameters
        ----------
        path : str or os.PathLike
            The JSON file to write.
        """
        with open(path, "w") as f:
            json.dump(self._chrome_events(), f)

    def _chrome_events(self) -> dict[str, Any]:
        """The trace as a Chrome trace-event document (``"ph": "X"`` complete events)."""
        to_us = 1e6 if self.clock == "seconds" else 1e3
        t0 = min((e.start for e in self.events), default=0.0)
        out: list[dict[str, Any]] = []
        for rank in sorted({e.rank for e in self.events}):
            # Metadata events ("ph": "M") name the rows: one process per rank,
            # one thread per kind of event.
            out.append(_metadata("process_name", rank, {"name": f"rank {rank}"}))
            out.append(_metadata("process_sort_index", rank, {"sort_index": rank}))
            for tid, lane in enumerate(_LANES):
                out.append({**_metadata("thread_name", rank, {"name": lane}), "tid": tid})
        for e in self.events:
            arrow = "to" if e.kind == "send" else "from"
            out.append(
                {
                    "ph": "X",
                    "name": f"{e.kind} chunk {_chunk_text(e.chunks)} {arrow} {e.peer}",
                    "cat": e.kind,
                    "pid": e.rank,
                    "tid": _LANES.index(e.kind),
                    "ts": (e.start - t0) * to_us,
                    "dur": (e.end - e.start) * to_us,
                    "args": {
                        "round": e.round,
                        "peer": e.peer,
                        "elements": e.count,
                        "bytes": e.nbytes,
                        "segments": e.segments,
                    },
                }
            )
        return {"traceEvents": out, "displayTimeUnit": "ms"}

    def _format_time(self, t: float) -> str:
        if self.clock == "rounds":
            return f"{t:g} rounds"
        for unit, scale in (("s", 1.0), ("ms", 1e-3)):
            if t >= scale:
                return f"{t / scale:.3g} {unit}"
        return f"{t * 1e6:.3g} us"


def _metadata(name: str, pid: int, args: dict[str, Any]) -> dict[str, Any]:
    """A Chrome trace metadata event (it names or orders a row)."""
    return {"ph": "M", "name": name, "pid": pid, "args": args}


def _chunk_text(chunks: range) -> str:
    """``3`` or ``0-3``."""
    return str(chunks.start) if len(chunks) == 1 else f"{chunks.start}-{chunks.stop - 1}"
