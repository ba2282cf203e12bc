"""A timeline of one training run on every rank, for Perfetto or ``chrome://tracing``.

A :class:`Timeline` records named spans (forward, backward, each bucket's
all-reduce) on this rank; :meth:`Timeline.to_chrome` merges every rank's spans,
and the rounds of the collectives from a :class:`minidl.distributed.Trace`, into one
Chrome trace-event file written by rank 0. Each rank is a process row; its
lanes are the main thread (forward, backward, waiting), the buckets'
all-reduces (each from its start to its end: with overlap, backward runs
meanwhile) and the messages of each round.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any, Iterator, NamedTuple

from minidl.distributed import Trace, watching

LANES = ("main", "comm", "send", "recv", "reduce")


class Span(NamedTuple):
    """Something one rank did, from ``start`` to ``end`` (``time.perf_counter`` seconds)."""

    rank: int
    lane: str
    name: str
    start: float
    end: float
    args: dict


class Timeline:
    """Record spans on this rank; merge all ranks' spans into one Chrome trace.

    Parameters
    ----------
    rank : int
        This rank, the process row its spans go in.
    enabled : bool, default True
        Record nothing while False (switch it on for the steps worth seeing).
    """

    def __init__(self, rank: int, enabled: bool = True) -> None:
        self.rank, self.enabled = rank, enabled
        self.spans: list[Span] = []

    def add(self, lane: str, name: str, start: float, end: float, **args: Any) -> None:
        """Record a span that has already happened."""
        if self.enabled:
            self.spans.append(Span(self.rank, lane, name, start, end, args))

    @contextlib.contextmanager
    def span(self, name: str, lane: str = "main", **args: Any) -> Iterator[None]:
        """Record the time the ``with`` block takes."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(lane, name, start, time.perf_counter(), **args)

    def to_chrome(self, path: str | os.PathLike, comm: Any, trace: Trace | None = None) -> None:
        """Write every rank's spans (and ``trace``'s messages) to ``path`` on rank 0.

        Collective: every rank of ``comm`` must call it.
        """
        # Spans are small, irregular Python objects gathered once: pickling is fine here.
        messages = [] if trace is None else [
            Span(e.rank, e.kind, f"{e.kind} {'to' if e.kind == 'send' else 'from'} {e.peer}",
                 e.start, e.end, {"round": e.round, "peer": e.peer, "bytes": e.nbytes})
            for e in trace.events]
        with watching("Timeline.to_chrome() (collective: every rank gathers its spans)"):
            everyone = comm.gather(self.spans + messages, root=0)
        if everyone is None:
            return
        spans = [s for rank_spans in everyone for s in rank_spans]
        with open(path, "w") as f:
            json.dump(chrome_document(spans), f)


def chrome_document(spans: list[Span]) -> dict[str, Any]:
    """Spans as a Chrome trace-event document: complete events (``"ph": "X"``) in microseconds."""
    t0 = min((s.start for s in spans), default=0.0)
    events: list[dict[str, Any]] = []
    for rank in sorted({s.rank for s in spans}):
        events.append(
            {"ph": "M", "name": "process_name", "pid": rank, "args": {"name": f"rank {rank}"}}
        )
        events.append(
            {"ph": "M", "name": "process_sort_index", "pid": rank, "args": {"sort_index": rank}}
        )
        for tid, lane in enumerate(LANES):
            events.append(
                {"ph": "M", "name": "thread_name", "pid": rank, "tid": tid, "args": {"name": lane}}
            )
    for s in spans:
        events.append(
            {
                "ph": "X",
                "name": s.name,
                "cat": s.lane,
                "pid": s.rank,
                "tid": LANES.index(s.lane),
                "ts": (s.start - t0) * 1e6,
                "dur": (s.end - s.start) * 1e6,
                "args": s.args,
            }
        )
    return {"traceEvents": events, "displayTimeUnit": "ms"}
