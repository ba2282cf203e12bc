"""Pipelines on real ranks: every schedule equals one process, and a failing stage ends the job."""

from pathlib import Path

import numpy as np
import pytest

from minidl.testing import MPIJobError, run_mpi

SCRIPTS = Path(__file__).parent / "mpi_scripts"
pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("stages", [2, 3])
@pytest.mark.parametrize("schedule, chunks", [("naive", 1), ("gpipe", 1), ("1f1b", 1),
                                              ("interleaved", 2)])
def test_every_schedule_trains_as_one_process(stages, schedule, chunks):
    # Micro-batches 1, 3 and 4 of batches of 12 and 10 (10 = 4 + 3 + 3: uneven micro-batches,
    # whose losses must be weighed by their sizes), 5 steps of SGD with momentum.
    results = run_mpi(SCRIPTS / "pipeline_equal.py", stages,
                      args=[schedule, chunks, "1,3,4", "12,10"], timeout=120).results
    runs = len(results[0])
    assert runs == (6 if schedule != "interleaved" else 2)  # interleaved: m a multiple of stages
    for rank, per_rank in enumerate(results):
        for r in per_rank:
            where = f"stage {rank}, {r['m']} micro-batches, batch {r['batch']}"
            assert r["mine"], f"{where}: no layers"
            for key, value in r["mine"].items():
                np.testing.assert_allclose(value, r["single"][key], rtol=1e-5, atol=1e-6,
                                           err_msg=f"{where}: {key}")
            np.testing.assert_allclose(r["losses"], r["single_losses"], rtol=1e-5,
                                       err_msg=f"{where}: losses")
            np.testing.assert_allclose(r["output"], r["single_output"], rtol=1e-5, atol=1e-6,
                                       err_msg=f"{where}: forward")
    # Every layer is on exactly one stage, and rank 0 gathers them back under their own names.
    for run in range(runs):
        keys = [k for per_rank in results for k in per_rank[run]["mine"]]
        assert sorted(keys) == sorted(results[0][run]["single"]) and len(set(keys)) == len(keys)
        full = results[0][run]["full"]
        assert list(full) == list(results[0][run]["single"])
        assert all(results[r][run]["full"] is None for r in range(1, stages))


def test_a_stage_that_raises_ends_the_job():
    script = """
        import numpy as np
        import minidl.functional as F
        from minidl import nn
        from minidl.parallel import Pipeline

        def loss_fn(out, y):
            raise RuntimeError("the last stage failed on purpose")

        pipe = Pipeline(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)),
                        micro_batches=2)
        pipe.step(np.ones((4, 4), np.float32), np.zeros(4, np.int64), loss_fn)
    """
    with pytest.raises(MPIJobError, match="the last stage failed on purpose"):
        run_mpi(script, 2, timeout=60)


def test_stages_whose_shapes_do_not_fit_are_named():
    script = """
        import numpy as np
        import minidl.functional as F
        from minidl import nn
        from minidl.parallel import Pipeline

        model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(5, 2))  # 6 out, 5 in
        pipe = Pipeline(model, micro_batches=2, split=[2])
        pipe.step(np.ones((4, 4), np.float32), np.zeros(4, np.int64), F.cross_entropy)
    """
    result = run_mpi(script, 2, timeout=60, check=False)
    assert result.returncode != 0
    assert "Pipeline: stage 1 cannot take the activation stage 0 sent (micro-batch 0: shape " \
        "(2, 6), float32): its first layer, 2 (Linear(" in result.stderr


def test_ranks_that_cut_the_model_differently_are_told():
    script = """
        from mpi4py import MPI
        from minidl import nn
        from minidl.parallel import Pipeline

        m = 2 if MPI.COMM_WORLD.rank == 0 else 3
        Pipeline(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), micro_batches=m)
    """
    result = run_mpi(script, 2, timeout=60, check=False)
    assert result.returncode != 0
    assert "Pipeline: rank 1 has schedule '1f1b', 3 micro-batches" in result.stderr


@pytest.mark.parametrize("broken, rule", [
    # a steady state that runs a backward before its forward
    ("lambda forwards, backwards, warmup: [x for pair in zip(backwards, forwards) for x in pair]",
     "(backward 0): a backward needs its forward first"),
    # a warm-up that makes stage 0 wait for a gradient stage 1 waits to send: a deadlock
    ("lambda forwards, backwards, warmup: "
     "[x for pair in zip(forwards, backwards) for x in pair] if warmup else forwards + backwards",
     "deadlock"),
])
def test_a_broken_schedule_is_refused_before_anything_runs(broken, rule):
    # The kind of schedule a student's 1F1B can produce: every rank refuses it when the
    # Pipeline is built (check_pipeline, simulated), not with a KeyError or a hang mid-step.
    script = f"""
        from minidl import nn
        from minidl.parallel import Pipeline
        from minidl.parallel import pipeline_schedules

        pipeline_schedules.one_forward_one_backward = {broken}
        Pipeline(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), micro_batches=3)
        print("built")
    """
    result = run_mpi(script, 2, timeout=60, check=False)
    assert result.returncode != 0 and "built" not in result.stdout
    assert "ScheduleError" in result.stderr and rule in result.stderr, result.stderr[-2000:]
