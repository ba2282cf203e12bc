"""The main job as a pipeline: ``python -m mpi4py -m minidl.train --parallel pipeline``."""

import pytest
from test_train_ddp import accuracy, train_on

from minidl import train


@pytest.mark.mpi
@pytest.mark.parametrize("schedule", ["gpipe", "1f1b", "interleaved"])
def test_a_two_stage_pipeline_reaches_the_accuracy_of_one_process(schedule):
    # Batches of 28 of the 1442 training digits end with one of 14: every batch, the last
    # too, is cut into 4 micro-batches, so the pipeline trains on one process's batches.
    flags = ["--model", "mlp", "--epochs", "2", "--batch-size", "28"]
    one = train_on(1, *flags, "--parallel", "none")
    two = train_on(2, *flags, "--parallel", "pipeline", "--pipeline-schedule", schedule,
                   "--micro-batches", "4")
    assert abs(accuracy(two.stdout) - accuracy(one.stdout)) <= 0.006  # at most two test digits
    assert two.stdout.count("test accuracy:") == 1
    assert f"{schedule} schedule, 4 micro-batches, dp 1 x stages 2 x tp 1" in two.stdout


@pytest.mark.mpi
@pytest.mark.parametrize("grid, rows", [(["--dp", "2"], ["0 0 0", "0 1 0", "1 0 0", "1 1 0"]),
                                        (["--tp", "2"], ["0 0 0", "0 0 1", "0 1 0", "0 1 1"])])
def test_a_grid_of_four_ranks_trains_and_reports_every_rank(grid, rows):
    result = train_on(4, "--model", "mlp", "--epochs", "2", "--parallel", "pipeline", *grid)
    assert accuracy(result.stdout) > 0.85
    table = [line.split() for line in result.stdout.splitlines()
             if line.split() and line.split()[0].isdigit() and "epoch" not in line]
    assert [" ".join(row[1:4]) for row in table] == rows


@pytest.mark.mpi
@pytest.mark.parametrize("p, argv, message", [
    (3, ["--dp", "2"], "mpiexec started 3 ranks, which --dp 2 x --tp 1 = 2 does not divide"),
    (2, ["--pipeline-schedule", "interleaved", "--micro-batches", "3"],
     r"micro_batches (3) must be a multiple of stages (2)"),
    (4, ["--pipeline-schedule", "interleaved"],
     "4 stages x 2 chunks = 8 pieces, but --model mlp has only 6 layers"),
    (2, ["--split", "9"], "--split must list 1 increasing layer indices in (0, 6), where "),
])
def test_bad_combinations_end_every_rank_with_one_line(p, argv, message):
    result = train_on(p, "--model", "mlp", "--parallel", "pipeline", *argv, check=False)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(message in line for line in lines), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("argv, message", [
    (["--micro-batches", "3"], "--micro-batches needs --parallel pipeline"),
    (["--dp", "2", "--tp", "2"], "--dp, --tp need --parallel pipeline"),
    (["--parallel", "pipeline", "--micro-batches", "0"], "--micro-batches must be at least 1"),
])
def test_pipeline_flags_are_checked_before_anything_runs(capsys, argv, message):
    assert train.main(["--no-progress", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
