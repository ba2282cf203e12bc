"""Every script in examples/ runs the way its first line says, under mpiexec.

Each example starts with ``# Run: mpiexec -n P python -m mpi4py examples/NAME.py``;
the test takes P from that line and runs the script on P real ranks, with a
timeout that kills the whole job.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from minidl.testing import run_mpi

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))
COMMAND = re.compile(r"^# Run: mpiexec -n (\d+) python -m mpi4py examples/(\S+\.py)$")

pytestmark = pytest.mark.mpi


def test_there_are_examples():
    assert EXAMPLES


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.name)
def test_the_example_runs_as_its_first_line_says(script):
    first = script.read_text().splitlines()[0]
    match = COMMAND.match(first)
    assert match, f"{script.name}: the first line must be '# Run: mpiexec -n P python -m ...'"
    assert match.group(2) == script.name
    job = run_mpi(script, int(match.group(1)), timeout=120)
    assert job.returncode == 0


def test_ring_allreduce_writes_a_chrome_trace_where_asked(tmp_path):
    path = tmp_path / "ring.json"
    job = run_mpi(EXAMPLES_DIR / "ring_allreduce.py", 4, args=["--trace", path],
                  timeout=120)
    assert str(path) in job.stdout
    document = json.loads(path.read_text())
    spans = [e for e in document["traceEvents"] if e["ph"] == "X"]
    # Every rank of the ring sends, receives and reduces: 2 (p - 1) sends each.
    assert {e["pid"] for e in spans} == {0, 1, 2, 3}
    for rank in range(4):
        sends = [e for e in spans if e["pid"] == rank and e["cat"] == "send"]
        assert len(sends) == 6
        assert {e["args"]["peer"] for e in sends} == {(rank + 1) % 4}
