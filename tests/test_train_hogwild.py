"""The main job with Hogwild!: ``python -m mpi4py -m minidl.train --parallel hogwild``."""

import json
import re

import pytest
from test_train_ddp import TRAIN, accuracy, train_on

from minidl import train
from minidl.testing import run_mpi


def updates(stdout):
    """``{rank: (updates, lock wait seconds)}`` from the table after the epochs."""
    return {int(r): (int(n), float(w)) for r, n, w in
            re.findall(r"^\s+(\d+)\s+(\d+)\s+[\d.]+\s+([\d.]+)$", stdout, re.MULTILINE)}


def epoch_lines(stdout):
    """Each epoch's losses and accuracy, without its seconds."""
    return [line.rsplit("  ", 1)[0] for line in stdout.splitlines() if line.startswith("epoch")]


@pytest.mark.mpi
def test_one_rank_trains_as_one_process():
    # Alone, nothing races: the shared memory is just where the parameters live.
    flags = ["--model", "mlp", "--epochs", "3"]
    one = train_on(1, *flags, "--parallel", "none")
    hogwild = train_on(1, *flags, "--parallel", "hogwild")
    assert epoch_lines(hogwild.stdout) == epoch_lines(one.stdout)
    assert len(epoch_lines(one.stdout)) == 3


@pytest.mark.mpi
def test_two_racing_ranks_reach_95_percent_on_the_digits():
    result = train_on(2, "--model", "mlp", "--parallel", "hogwild")
    assert accuracy(result.stdout) >= 0.95
    assert result.stdout.count("test accuracy:") == 1  # rank 0 alone prints
    assert "updates unlocked, racing" in result.stdout
    # 1442 digits, 721 a rank in batches of 32: 23 updates an epoch, 20 epochs, no lock.
    assert updates(result.stdout) == {0: (460, 0.0), 1: (460, 0.0)}


@pytest.mark.mpi
def test_the_lock_a_straggler_metrics_and_plot(tmp_path):
    metrics, plot = tmp_path / "m.jsonl", tmp_path / "curves.png"
    result = train_on(2, "--model", "mlp", "--parallel", "hogwild", "--lock", "--epochs", "2",
                      "--straggler", "1:0.002", "--metrics", str(metrics), "--plot", str(plot))
    assert "one at a time, under the lock" in result.stdout
    assert {r: n for r, (n, _) in updates(result.stdout).items()} == {0: 46, 1: 46}
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]  # rank 0 alone writes
    assert round(rows[-1]["accuracy"], 4) == accuracy(result.stdout)
    assert plot.stat().st_size > 0


@pytest.mark.mpi
@pytest.mark.parametrize("argv, message", [
    (["--staleness", "2"], "--staleness needs --parallel ps"),
    (["--servers", "1", "--ps-mode", "async"], "--ps-mode needs --parallel ps"),
    (["--trace", "t.json"], "--trace needs --parallel ddp or pipeline"),
])
def test_bad_combinations_end_every_rank_with_one_line(argv, message):
    result = train_on(2, "--model", "mlp", "--parallel", "hogwild", *argv, check=False)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    # One line per rank at most (mpiexec may end a rank before it writes its line, once
    # the other has exited), each of them the message.
    assert 1 <= len(lines) <= 2 and all(message in line for line in lines), result.stderr


@pytest.mark.mpi
def test_ranks_on_two_nodes_are_refused():
    # MPICH's debugging switch makes odd and even ranks two nodes for MPI itself; the
    # launcher still says both run here, so the check is the one after MPI starts.
    result = run_mpi(TRAIN, 2, args=["--no-progress", "--model", "mlp", "--parallel", "hogwild"],
                     env={"MPIR_CVAR_ODD_EVEN_CLIQUES": "1"}, timeout=120, check=False)
    assert result.returncode == 2, result.stderr
    ours = [line for line in result.stderr.splitlines() if "minidl.train: error" in line]
    assert ours and all("--parallel hogwild: Hogwild: comm has 2 ranks, but only 1 of them "
                        "share memory" in line for line in ours), result.stderr


def test_ranks_on_two_nodes_are_refused_before_mpi_starts(capsys, monkeypatch):
    # What MPICH's launcher says to each rank of a 2-rank job with one rank on this node.
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("MPI_LOCALNRANKS", "1")
    assert train.main(["--no-progress", "--parallel", "hogwild"]) == 2
    assert ("--parallel hogwild shares memory, so every rank must be on one node: mpiexec "
            "started 2 ranks, 1 of them on this node") in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--lock"], "--lock needs --parallel hogwild"),
    (["--parallel", "hogwild", "--staleness", "1"], "--staleness needs --parallel ps"),
    (["--parallel", "hogwild", "--checkpoint", "c.npz"],
     "--checkpoint is not supported with --parallel hogwild yet"),
])
def test_hogwild_flags_are_checked_before_anything_runs(capsys, monkeypatch, tmp_path, argv,
                                                       message):
    monkeypatch.chdir(tmp_path)  # where --checkpoint's folder is probed
    assert train.main(["--no-progress", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.mpi
@pytest.mark.parametrize("parallel", ["none", "ddp", "pipeline", "ps", "hogwild"])
def test_the_straggler_flag_runs_in_every_mode(parallel):
    # One Straggler (minidl.parallel.Straggler) serves every mode; rank 1 sleeps 1 ms a step.
    result = train_on(2, "--model", "mlp", "--epochs", "1", "--parallel", parallel,
                      "--straggler", "1:0.001")
    assert "test accuracy:" in result.stdout
