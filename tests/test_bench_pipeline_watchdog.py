"""benchmarks/bench_pipeline.py and bench_watchdog.py run end to end on real ranks.

Smoke tests with tiny sizes: the timings mean nothing here (never assert a
timing in a unit test); what is checked is that each script runs and prints
every row and ratio line.
"""

from __future__ import annotations

import re
from pathlib import Path

from minidl.testing import run_mpi

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_the_pipeline_benchmark_prints_every_row_and_ratio():
    args = ["--width", 16, "--layers", 4, "--batch", 16, "--steps", 1, "--passes", 2]
    job = run_mpi(BENCHMARKS / "bench_pipeline.py", 2, args=args, timeout=120)
    out = job.stdout
    for schedule in ("gpipe", "1f1b"):
        for m in (1, 2, 4, 8):
            assert re.search(rf"^ +{schedule} +{m} +[\d.]+ +-?[\d.]+% +[\d.]+% +[\d.]+% ", out,
                             re.MULTILINE), (schedule, m)
    assert " 1f1b   1 " in out and "50.0%" in out  # 2 stages, 1 micro-batch: half idle
    assert "ratio: 1f1b holds" in out and "ratio: pipeline (1f1b, 4 micro-batches)" in out
    assert "never closed" not in job.stderr  # the DDP row is closed, explicitly


def test_the_watchdog_benchmark_prints_the_marks_share_and_its_target():
    args = ["--budget", 0.05, "--passes", 3]
    out = run_mpi(BENCHMARKS / "bench_watchdog.py", 2, args=args, timeout=120).stdout
    for row in ("ring", "recursive_doubling", "ring +check"):
        assert re.search(rf"^  {re.escape(row)} +[\d.]+ us per call; the marks: [\d.]+% alone, "
                         r"paired [+-][\d.]+% \(range ",
                         out, re.MULTILINE), row
    assert "target: the marks cost at most 2% of a 4 KiB all-reduce:" in out
