"""The main job with parameter servers: ``python -m mpi4py -m minidl.train --parallel ps``."""

import re

import pytest
from test_train_ddp import accuracy, train_on

from minidl import train


def staleness(stdout):
    line = next(line for line in stdout.splitlines() if line.startswith("staleness of the"))
    return {int(a): int(n) for a, n in re.findall(r"(\d+): (\d+)", line.split("count):")[1])}


@pytest.mark.mpi
@pytest.mark.parametrize("schedule", [[], ["--schedule", "none"]])
def test_sync_with_one_worker_trains_as_one_process(schedule):
    # The servers step the schedule (default cosine) every 46 updates, as one process
    # steps it every epoch of 46 steps.
    flags = ["--model", "mlp", "--epochs", "3", *schedule]
    one = train_on(1, *flags, "--parallel", "none")
    ps = train_on(2, *flags, "--parallel", "ps")
    assert abs(accuracy(ps.stdout) - accuracy(one.stdout)) <= 0.006  # at most two test digits
    assert staleness(ps.stdout) == {0: 3 * 46}  # 1442 digits in batches of 32: 46 a epoch
    name = schedule[1] if schedule else "cosine"
    assert f"schedule {name} stepped every 46 updates of the servers" in ps.stdout


@pytest.mark.mpi
@pytest.mark.parametrize("mode", [["async"], ["ssp", "--staleness", "2"]])
def test_async_and_ssp_reach_95_percent_on_the_digits(mode):
    result = train_on(3, "--model", "mlp", "--parallel", "ps", "--ps-mode", *mode)
    assert accuracy(result.stdout) >= 0.95
    assert result.stdout.count("test accuracy:") == 1
    ages = staleness(result.stdout)
    # Each worker: 721 digits an epoch in batches of 16, 46 steps; 20 epochs; 2 workers.
    assert sum(ages.values()) == 20 * 46 * 2
    if mode[0] == "ssp":
        assert max(ages) <= 2


@pytest.mark.mpi
def test_a_straggler_makes_async_gradients_stale():
    result = train_on(3, "--model", "mlp", "--epochs", "2", "--parallel", "ps", "--ps-mode",
                      "async", "--straggler", "2:0.01")
    assert max(staleness(result.stdout)) >= 5  # worker 1 races ahead while worker 2 sleeps


@pytest.mark.mpi
@pytest.mark.parametrize("p, argv, message", [
    (3, ["--servers", "3"], "--servers 3 on 3 ranks leaves no worker"),
    (3, ["--staleness", "2"], "--staleness bounds --ps-mode ssp only (not sync)"),
    (3, ["--straggler", "5:0.1"], "--straggler 5:0.1: the rank must be one of the 3 ranks"),
])
def test_bad_combinations_end_every_rank_with_one_line(p, argv, message):
    result = train_on(p, "--model", "mlp", "--parallel", "ps", *argv, check=False)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(message in line for line in lines), result.stderr


@pytest.mark.parametrize("argv, message", [
    (["--ps-mode", "async"], "--ps-mode needs --parallel ps"),
    (["--straggler", "one"], "--straggler must be RANK:SECONDS"),
])
def test_ps_flags_are_checked_before_anything_runs(capsys, argv, message):
    assert train.main(["--no-progress", *argv]) == 2
    assert message in capsys.readouterr().err
