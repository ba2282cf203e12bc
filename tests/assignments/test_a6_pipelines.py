"""Assignment 6, pipelines: the 1F1B schedule as data.

Handout: docs/assignments/pipelines.rst. The student's schedule is graded
as plain data first, in one process, for 1 to 6 stages and 1 to 10
micro-batches: :func:`~minidl.parallel.pipeline_schedules.check_pipeline`
must accept every stage's actions, and
:func:`~minidl.parallel.pipeline_schedules.simulate_pipeline` must find
GPipe's bubble (with a forward as long as a backward) and at most
``stages - s`` micro-batches in flight on stage ``s``; the three phases,
:func:`~minidl.parallel.pipeline_schedules.one_forward_one_backward`, must
also serve the interleaved schedule, which stays written. Then a
:class:`~minidl.parallel.Pipeline` running it on 2 ranks under ``mpiexec``
(through :func:`minidl.testing.run_mpi`, with a timeout) must train exactly
as one process does, 3 steps of SGD written in the test (the backward is
the autograd assignment's).
"""

from __future__ import annotations

import numpy as np
import pytest

from minidl.parallel.pipeline_schedules import (
    check_pipeline,
    one_forward_one_backward,
    pipeline_schedule,
    simulate_pipeline,
)
from minidl.testing import run_mpi

TIMEOUT = 90
CASES = [(p, m) for p in range(1, 7) for m in range(1, 11)]


def schedules(p: int, m: int):
    return [pipeline_schedule("1f1b", p, m, s) for s in range(p)]


@pytest.mark.a6_1f1b_schedule
def test_every_stage_keeps_the_rules_of_a_valid_schedule():
    for p, m in CASES:
        check_pipeline(schedules(p, m))  # raises ScheduleError naming the stage and action


@pytest.mark.a6_1f1b_schedule
def test_the_bubble_is_gpipes_when_a_forward_takes_as_long_as_a_backward():
    for p, m in CASES:
        sim = simulate_pipeline(schedules(p, m), forward=1.0, backward=1.0)
        expected = (p - 1) / (m + p - 1)
        assert sim.bubble == pytest.approx(expected, abs=1e-12), (
            f"{p} stages, {m} micro-batches: bubble {sim.bubble:.4f}, expected "
            f"(p - 1) / (m + p - 1) = {expected:.4f}")


@pytest.mark.a6_1f1b_schedule
def test_stage_s_holds_at_most_stages_minus_s_micro_batches():
    for p, m in CASES:
        peak = simulate_pipeline(schedules(p, m)).peak_in_flight
        for s in range(p):
            assert peak[s] <= min(p - s, m), (
                f"{p} stages, {m} micro-batches: stage {s} holds {peak[s]} micro-batches' "
                f"activations at once; 1F1B holds at most p - s = {p - s} (count the forwards "
                f"before its first backward)")


@pytest.mark.a6_1f1b_schedule
def test_the_three_phases_serve_the_interleaved_schedule_too():
    # Megatron-LM's interleaved schedule ends in the same one_forward_one_backward,
    # with forwards and backwards of several model chunks each
    for p, chunks in ((2, 2), (3, 2), (4, 3)):
        for m in (p, 2 * p):
            check_pipeline([pipeline_schedule("interleaved", p, m, s, chunks=chunks)
                            for s in range(p)])


@pytest.mark.a6_1f1b_schedule
def test_the_three_phases_in_order():
    forwards, backwards = [f"F{i}" for i in range(4)], [f"B{i}" for i in range(4)]
    assert one_forward_one_backward(forwards, backwards, 0) == [
        "F0", "B0", "F1", "B1", "F2", "B2", "F3", "B3"]
    assert one_forward_one_backward(forwards, backwards, 2) == [
        "F0", "F1", "F2", "B0", "F3", "B1", "B2", "B3"]
    assert one_forward_one_backward(forwards, backwards, 4) == forwards + backwards


MPI_SCRIPT = """
import numpy as np
import minidl
import minidl.functional as F
from minidl import nn
from minidl.parallel import Pipeline
from minidl.testing import report


def model():
    minidl.manual_seed(0)  # the same weights on every rank and in the single process
    return nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 8), nn.ReLU(),
                         nn.Linear(8, 3))


rng = np.random.default_rng(7)
data = [(rng.standard_normal((7, 6)).astype(np.float32), rng.integers(0, 3, 7))
        for _ in range(3)]  # 7 rows in 3 micro-batches: 3 + 2 + 2


def sgd(params):  # by hand, so that this test does not need the layers assignment's SGD
    for q in params:
        q.data -= 0.1 * q.grad
        q.grad = None


alone = model()
for x, y in data:
    F.cross_entropy(alone(minidl.tensor(x)), y).backward()
    sgd(alone.parameters())
pipe = Pipeline(model(), micro_batches=3, schedule="1f1b")
for x, y in data:
    pipe.step(x, y, F.cross_entropy)
    sgd(pipe.parameters())
single = alone.state_dict()
report({"mine": {k: (v.copy(), single[k].copy()) for k, v in pipe.state_dict().items()},
        "names": sorted(single)})
"""


@pytest.mark.a6_1f1b_schedule
def test_a_1f1b_pipeline_on_two_ranks_trains_as_one_process():
    results = run_mpi(MPI_SCRIPT, 2, timeout=TIMEOUT).results
    held = sorted(key for r in results for key in r["mine"])
    assert held == results[0]["names"], f"the stages hold {held}, the model {results[0]['names']}"
    for rank, r in enumerate(results):
        assert r["mine"], f"stage {rank} holds no layers"
        for key, (pipelined, single) in r["mine"].items():
            np.testing.assert_allclose(pipelined, single, rtol=1e-5, atol=1e-6,
                                       err_msg=f"stage {rank}, {key} after 3 SGD steps")
