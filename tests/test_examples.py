"""Every script in examples/ runs the way its first line says, under mpiexec.

Each example starts with ``# Run: mpiexec -n P python -m mpi4py examples/NAME.py``;
the test takes P from that line and runs the script on P real ranks, with a
timeout that kills the whole job.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from minidl.testing import run_mpi

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))
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
