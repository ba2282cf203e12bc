"""benchmarks/bench_allreduce.py runs end to end on real ranks and prints its tables and targets.

A smoke test, with the shortest sizes and a tiny budget: the timings mean
nothing here (never assert a timing in a unit test); what is checked is that
the script runs, prints a row per algorithm and each target, and draws its
plot.
"""

from __future__ import annotations

import re
from pathlib import Path

from minidl.distributed import ALGORITHMS
from minidl.testing import run_mpi

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_allreduce.py"


def test_the_benchmark_prints_every_row_and_target(tmp_path):
    plot = tmp_path / "allreduce.png"
    args = ["--max-mib", 1, "--budget", 0.02, "--passes", 3, "--plot", plot, "--piece-bytes", 4000]
    job = run_mpi(BENCH, 2, args=args, timeout=240)
    out = job.stdout
    for algorithm in [*ALGORITHMS["allreduce"], "ring +check+trace", "ring, reference executor",
                      "MPI Allreduce"]:
        rows = re.findall(rf"^  {re.escape(algorithm)} +\d", out, re.MULTILINE)
        assert len(rows) == 11, algorithm  # a row at each size, 1 KiB to 1 MiB
    for row in ("ring, written first", "MPI Allreduce, written first"):
        assert len(re.findall(rf"^  {row} +\d", out, re.MULTILINE)) == 1, row  # at 1 MiB only
    assert "auto (" in out
    for target in ("ring x MPI", "best of ours x MPI, <= 4 KiB", "auto x best of ours"):
        assert target in out
    assert "ring beats recursive doubling from" in out
    assert "ring, reference x MPI, >= 1 MiB" in out
    assert "(the same, buffer written first" in out
    assert plot.stat().st_size > 0
