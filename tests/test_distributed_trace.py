"""minidl.distributed.Trace: counting, summarising and exporting what the ranks did."""

from __future__ import annotations

import json

import numpy as np
import pytest

from minidl.distributed import Trace, simulate


def ring_trace(p: int = 4, n: int = 8) -> Trace:
    inputs = [np.arange(n, dtype=np.float32) + rank for rank in range(p)]
    return simulate("ring", inputs).trace


def test_stats_count_messages_bytes_and_rounds_per_rank():
    stats = ring_trace().stats()
    assert sorted(stats) == [0, 1, 2, 3]
    s = stats[0]
    assert (s.messages_sent, s.messages_received, s.elements_sent) == (6, 6, 12)
    assert (s.bytes_sent, s.bytes_received, s.bytes_reduced) == (48, 48, 24)
    assert s.time == 6  # the simulator's clock counts rounds


def test_summary_prints_one_row_per_rank(capsys):
    text = ring_trace().summary()
    assert capsys.readouterr().out.strip() == text
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["rank", "sent", "bytes"]
    assert len(lines) == 5
    assert lines[1].split() == ["0", "6", "48", "6", "48", "24", "6", "rounds"]


def test_to_chrome_writes_trace_event_json(tmp_path):
    path = tmp_path / "ring.json"
    trace = ring_trace()
    trace.to_chrome(path)
    document = json.loads(path.read_text())
    events = [e for e in document["traceEvents"] if e["ph"] == "X"]
    assert len(events) == len(trace.events)
    assert {e["pid"] for e in events} == {0, 1, 2, 3}
    names = {e["args"]["name"] for e in document["traceEvents"] if e["name"] == "process_name"}
    assert names == {"rank 0", "rank 1", "rank 2", "rank 3"}
    first_send = next(e for e in events if e["cat"] == "send" and e["pid"] == 0)
    assert first_send["name"] == "send chunk 3 to 1"
    assert first_send["args"] == {
        "round": 0,
        "peer": 1,
        "elements": 2,
        "bytes": 8,
        "segments": 1,
    }
    assert first_send["ts"] == 0 and first_send["dur"] == 1000  # a round draws as 1 ms


def test_seconds_are_formatted_for_people():
    trace = Trace()
    assert trace._format_time(2.5) == "2.5 s"
    assert trace._format_time(0.0031) == "3.1 ms"
    assert trace._format_time(4e-6) == "4 us"


def test_unknown_clock_is_refused():
    with pytest.raises(ValueError, match="clock must be 'seconds' or 'rounds'"):
        Trace(clock="ticks")
