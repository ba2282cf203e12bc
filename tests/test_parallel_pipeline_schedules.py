"""Pipeline schedules as data: printed, checked, simulated; broken ones named, not run."""

import pytest

from minidl.distributed import ScheduleError
from minidl.parallel import (
    SCHEDULES,
    Action,
    check_pipeline,
    pipeline_schedule,
    simulate_pipeline,
)


def every_stage(name, stages, m, chunks=1):
    return [pipeline_schedule(name, stages, m, s, chunks) for s in range(stages)]


def cases():
    for name in SCHEDULES:
        for stages in range(1, 9):
            for m in range(1, 17):
                if name != "interleaved":
                    yield name, stages, m, 1
                elif m % stages == 0:
                    yield name, stages, m, 2


def test_every_schedule_keeps_the_rules_and_never_deadlocks():
    count = 0
    for name, stages, m, chunks in cases():
        check_pipeline(every_stage(name, stages, m, chunks))
        count += 1
    assert count == 3 * 8 * 16 + sum(16 // p for p in range(1, 9))


@pytest.mark.parametrize("name", ["gpipe", "1f1b"])
def test_gpipe_and_1f1b_simulate_to_the_formulas_bubble(name):
    for stages in range(1, 9):
        for m in range(1, 17):
            sim = simulate_pipeline(name, stages, m, forward=1.0, backward=1.0)
            assert sim.bubble == pytest.approx((stages - 1) / (m + stages - 1), abs=1e-12), \
                (stages, m)
            assert sim.makespan == pytest.approx(2.0 * (m + stages - 1))


def test_1f1b_holds_at_most_stages_minus_s_micro_batches_and_gpipe_all_of_them():
    for stages in range(1, 9):
        for m in range(1, 17):
            one_f_one_b = simulate_pipeline("1f1b", stages, m).peak_in_flight
            assert all(one_f_one_b[s] <= stages - s for s in range(stages)), (stages, m)
            assert one_f_one_b[0] == min(stages, m)
            assert simulate_pipeline("gpipe", stages, m).peak_in_flight == [m] * stages


def test_interleaving_shrinks_the_bubble_and_naive_idles_all_but_one_stage():
    for stages, m in [(2, 4), (4, 8), (4, 16)]:
        plain = simulate_pipeline("1f1b", stages, m).bubble
        interleaved = simulate_pipeline("interleaved", stages, m, chunks=2).bubble
        assert interleaved < plain
    assert simulate_pipeline("naive", 4, 8, forward=1, backward=1).bubble == pytest.approx(0.75)


def test_a_schedule_prints_as_a_table():
    assert str(pipeline_schedule("1f1b", 2, 3, stage=1)).splitlines() == [
        "1f1b pipeline, stage 1 of 2, 3 micro-batches: 13 actions",
        "   0: recv activation 0 from stage 0",
        "   1: forward 0",
        "   2: backward 0",
        "   3: send gradient 0 to stage 0",
        "   4: recv activation 1 from stage 0",
        "   5: forward 1",
        "   6: backward 1",
        "   7: send gradient 1 to stage 0",
        "   8: recv activation 2 from stage 0",
        "   9: forward 2",
        "  10: backward 2",
        "  11: send gradient 2 to stage 0",
        "  12: optimizer step",
    ]
    interleaved = str(pipeline_schedule("interleaved", 2, 2, stage=0, chunks=2))
    assert "2 chunks per stage" in interleaved
    assert "recv activation 0 (chunk 1) from stage 1" in interleaved


def test_the_timeline_has_every_action_with_its_times():
    sim = simulate_pipeline("gpipe", 2, 2, forward=1.0, backward=2.0)
    first = sim.timeline[1][0]
    assert (first.kind, first.micro_batch, first.start, first.end) == ("recv_forward", 0, 0.0, 1.0)
    computes = [(s.kind, s.micro_batch, s.start, s.end) for s in sim.timeline[0]
                if s.kind in ("forward", "backward")]
    assert computes == [("forward", 0, 0.0, 1.0), ("forward", 1, 1.0, 2.0),
                        ("backward", 0, 5.0, 7.0), ("backward", 1, 7.0, 9.0)]
    assert sim.makespan == 9.0


@pytest.mark.parametrize("args, message", [
    (("pipedream", 2, 4, 0), "unknown pipeline schedule 'pipedream'"),
    (("1f1b", 0, 4, 0), "stages must be an integer >= 1"),
    (("1f1b", 2, 0, 0), "micro_batches must be an integer >= 1"),
    (("1f1b", 2, 4, 2), r"stage must be an integer in \[0, 2\)"),
    (("gpipe", 2, 4, 0, 2), "chunks must be 1"),
    (("interleaved", 2, 4, 0, 1), "chunks must be at least 2"),
    (("interleaved", 2, 3, 0, 2), r"micro_batches \(3\) must be a multiple of stages \(2\)"),
])
def test_bad_arguments_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        pipeline_schedule(*args)


def test_a_schedule_that_waits_for_itself_is_named_before_it_runs():
    # Stage 1 asks for micro-batch 1's activation before micro-batch 0's gradient goes back,
    # while stage 0 (GPipe reversed) waits for that gradient before sending micro-batch 1.
    stage0 = [Action("forward", 0), Action("send_forward", 0, peer=1),
              Action("recv_backward", 0, peer=1), Action("backward", 0),
              Action("forward", 1), Action("send_forward", 1, peer=1),
              Action("recv_backward", 1, peer=1), Action("backward", 1), Action("step")]
    stage1 = [Action("recv_forward", 0, peer=0), Action("forward", 0),
              Action("recv_forward", 1, peer=0), Action("forward", 1),
              Action("backward", 0), Action("send_backward", 0, peer=0),
              Action("backward", 1), Action("send_backward", 1, peer=0), Action("step")]
    with pytest.raises(ScheduleError, match=r"pipeline deadlock: stage 0 waits at action 2 "
                       r"\(recv gradient 0 from stage 1\).*stage 1 waits at action 2 "
                       r"\(recv activation 1 from stage 0\)"):
        check_pipeline([stage0, stage1])


@pytest.mark.parametrize("break_it, message", [
    (lambda s: s[0].remove(Action("send_forward", 0, 0, 1)),
     r"stage 0, action 0 \(forward 0\): it needs a send_forward of micro-batch 0 after it"),
    (lambda s: s[1].insert(0, s[1].pop(s[1].index(Action("backward", 0))))
     or s[1].insert(1, s[1].pop(s[1].index(Action("recv_forward", 0, 0, 0)))),
     "a backward needs its forward first"),
    (lambda s: s[0].append(s[0].pop(0)), "optimizer step must be the last action"),
    (lambda s: s[1].__setitem__(0, Action("recv_forward", 0, 0, 1)),
     "names stage 1, but piece 0 of the model is on stage 0"),
    (lambda s: s[0].__setitem__(s[0].index(Action("forward", 1)), Action("forward", 2)),
     "forwards of chunk 0 must come in micro-batch order: expected micro-batch 1"),
])
def test_a_broken_schedule_is_named(break_it, message):
    stages = [list(s) for s in every_stage("1f1b", 2, 3)]
    break_it(stages)
    with pytest.raises(ScheduleError, match=message):
        check_pipeline(stages)


def test_the_docstrings_examples_hold():
    import doctest

    from minidl.parallel import pipeline_schedules

    assert doctest.testmod(pipeline_schedules).failed == 0
