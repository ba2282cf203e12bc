"""benchmarks/bench_consistency.py runs end to end on real ranks and prints every table.

A smoke test of its ``--quick`` mode on 3 ranks: the timings mean nothing
here (never assert a timing in a unit test); what is checked is that every
row, ratio and timeline line is printed, that the JSON holds what the
tutorial draws, and the staleness the servers recorded obeys each mode's
rule (sync: always 0; SSP: never above its bound).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from minidl.testing import run_mpi

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_consistency.py"
ROWS = ("sync PS", "SSP s=1", "SSP s=4", "async PS", "DDP", "Hogwild", "Hogwild+lock")
SERVED = ROWS[:4]  # the rows with servers, hence staleness
CONDITIONS = ("none", "straggler", "jitter")


@pytest.mark.mpi
def test_the_quick_run_prints_every_row_ratio_and_timeline(tmp_path):
    out_json = tmp_path / "consistency.json"
    job = run_mpi(BENCH, 3, args=["--quick", "--json", out_json], timeout=120)
    out = job.stdout
    assert "3 ranks on" in out.splitlines()[0]
    training, staleness = out.split("\n1. ")[1].split("\n2. ")
    staleness, timelines = staleness.split("\n3. ")
    timelines, capacity = timelines.split("\n4. ")
    for row in ROWS:
        for condition in CONDITIONS:
            line = rf"^ *{re.escape(row)} +{condition} +(-|[\d.]+ \([\d.]+-[\d.]+\)) +\d/1 +0\.\d+ "
            assert len(re.findall(line, training, re.MULTILINE)) == 1, (row, condition)
            if row in SERVED:
                histogram = rf"^ *{re.escape(row)} +{condition}( +\d+){{9}} +[\d.]+ +\d+ +w1: "
                assert re.search(histogram + r"[\d.]+, w2: [\d.]+$", staleness, re.MULTILINE), (
                    row, condition)
            if row != "sync PS":
                ratio = rf"^ratio: {re.escape(row)} / sync PS time to 0\.40 accuracy, {condition}: "
                assert re.search(ratio + r"(\d+\.\d\dx \(median of 1|- \(not reached)", training,
                                 re.MULTILINE), (row, condition)
    assert len(re.findall(r"workers done at +\d+, +\d+ ms; waited in pulls", timelines)) == 6
    for servers, workers in ((1, 1), (1, 2), (2, 1)):  # on 3 ranks
        assert re.search(rf"^ +{servers} +{workers} +\d+ \(\d+-\d+\) +\d+% +[\d.]+$", capacity,
                         re.MULTILINE), (servers, workers)
    assert "ratio: 2 servers / 1 server pushes per second with 1 workers:" in capacity

    saved = json.loads(out_json.read_text())
    assert len(saved["training"]) == 21 and len(saved["timelines"]) == 6
    for row in saved["training"]:
        for run in row["runs"]:
            ages = [int(age) for age in run.get("staleness", {})]
            if row["mode"] == "sync":
                assert ages == [0]
            elif row["mode"] == "ssp":
                assert max(ages) <= row["staleness"]
    kinds = {event[0] for run in saved["timelines"] for events in run["ranks"]
             for event in events}
    assert {"pull", "compute", "straggle", "send", "recv", "apply"} <= kinds
