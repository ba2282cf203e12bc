"""The main job under mpiexec: ``python -m mpi4py -m minidl.train --parallel ddp``."""

import json

import pytest
from test_train import unwritable_folder

import minidl
from minidl.testing import run_mpi

pytestmark = pytest.mark.mpi

TRAIN = (
    "import runpy, sys; sys.argv[0] = 'minidl.train'; "
    "runpy.run_module('minidl.train', run_name='__main__')"
)


def train_on(p, *argv, timeout=240, check=True):
    return run_mpi(TRAIN, p, args=["--no-progress", *argv], timeout=timeout, check=check)


def accuracy(stdout):
    return float(stdout.split("test accuracy: ")[1].split()[0])


def test_four_ranks_reach_the_accuracy_of_one_process():
    """The ranks train on exactly one process's global batches, so they end where it ends."""
    one = train_on(1, "--parallel", "ddp")
    four = train_on(4, "--parallel", "ddp")
    assert accuracy(four.stdout) >= 0.98
    assert abs(accuracy(four.stdout) - accuracy(one.stdout)) <= 0.006  # at most two test digits
    assert four.stdout.count("test accuracy:") == 1  # rank 0 alone prints
    assert "per-rank breakdown of one step" in four.stdout
    assert [line.split()[0] for line in four.stdout.splitlines() if line[:4].strip().isdigit()
            and "epoch" not in line] == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    "algorithm", ["tree", "recursive_doubling", "rabenseifner", "naive", "mpi"]
)
def test_every_algorithm_trains(algorithm):
    result = train_on(2, "--parallel", "ddp", "--model", "mlp", "--epochs", "3",
                      "--algorithm", algorithm, "--bucket-cap-mb", "0", "--no-overlap")
    assert accuracy(result.stdout) > 0.8
    assert f"algorithm {algorithm}, 6 buckets, overlap off" in result.stdout


def test_trace_metrics_checkpoint_and_resume_on_every_rank(tmp_path):
    trace, metrics, ckpt = tmp_path / "trace.json", tmp_path / "m.jsonl", tmp_path / "c.npz"
    common = ["--parallel", "ddp", "--model", "mlp", "--bucket-cap-mb", "0.01",
              "--checkpoint", str(ckpt), "--metrics", str(metrics)]
    train_on(2, *common, "--epochs", "2", "--trace", str(trace))
    events = json.loads(trace.read_text())["traceEvents"]
    names = {e["name"] for e in events if e["ph"] == "X"}
    assert {"forward", "backward"} <= names
    assert any(n.startswith("all-reduce bucket") for n in names)
    assert any(n.startswith("send to") for n in names)
    assert {e["pid"] for e in events} == {0, 1}
    assert len(metrics.read_text().splitlines()) == 2  # rank 0 alone writes
    result = train_on(2, *common, "--epochs", "3", "--resume")
    assert "resumed from" in result.stdout and "after epoch 2" in result.stdout
    assert len(metrics.read_text().splitlines()) == 3


def test_a_batch_that_does_not_split_is_refused():
    result = train_on(3, "--parallel", "ddp", "--batch-size", "32", check=False, timeout=60)
    assert result.returncode != 0
    assert "--batch-size 32 does not split evenly over 3 ranks" in result.stderr


@pytest.mark.parametrize("case", ["missing folder", "not writable"])
def test_a_checkpoint_that_cannot_be_written_ends_every_rank_before_training(tmp_path, case):
    if case == "missing folder":
        path, message = tmp_path / "no" / "c.npz", f"the folder {tmp_path / 'no'} does not exist"
    else:
        folder = unwritable_folder(tmp_path)
        path, message = folder / "c.npz", f"cannot write in the folder {folder} ("
    result = train_on(2, "--parallel", "ddp", "--model", "mlp", "--epochs", "1",
                      "--checkpoint", str(path), check=False, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""  # not one epoch was trained
    lines = result.stderr.strip().splitlines()
    # One line per rank, the same, no Abort; mpiexec ends the other rank as soon as one
    # exits non-zero, so the second line may be cut off before it is written.
    assert 1 <= len(lines) <= 2 and len(set(lines)) == 1, result.stderr
    assert lines[0].startswith(f"python -m minidl.train: error: --checkpoint {path}: ")
    assert message in lines[0]


def test_resume_without_a_checkpoint_on_every_rank(tmp_path):
    ckpt = tmp_path / "c.npz"
    common = ["--parallel", "ddp", "--model", "mlp", "--schedule", "none",
              "--checkpoint", str(ckpt)]
    result = train_on(2, *common, "--epochs", "1", "--resume", timeout=120)
    assert result.stdout.startswith(f"no checkpoint at {ckpt}: starting from epoch 1\nepoch   1 ")
    assert result.stdout.count("no checkpoint at") == 1  # rank 0 alone says it
    ckpt.unlink()
    refused = train_on(2, *common, "--epochs", "1", "--resume=must", check=False, timeout=60)
    assert refused.returncode == 2 and refused.stdout == ""
    line = f"python -m minidl.train: error: --resume=must: no checkpoint at {ckpt}"
    assert refused.stderr.strip().splitlines() == [line, line]


def test_resume_with_other_epochs_continues_on_this_runs_cosine_on_every_rank(tmp_path):
    ckpt = tmp_path / "c.npz"
    common = ["--parallel", "ddp", "--model", "mlp", "--checkpoint", str(ckpt)]
    train_on(2, *common, "--epochs", "2", timeout=120)
    result = train_on(2, *common, "--epochs", "4", "--resume", timeout=120)
    assert (
        "learning-rate schedule: the checkpoint's is a cosine over 2 epochs, this run's --epochs "
        "makes it a cosine over 4 epochs; continuing on this run's, at lr 0.025\n"
    ) in result.stdout
    assert result.stdout.count("learning-rate schedule") == 1
    state = minidl.load(ckpt)
    assert state["scheduler"]["T_max"] == 4 and state["scheduler"]["last_epoch"] == 4
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0)


THREADS = """
import sys
from threadpoolctl import threadpool_info
from minidl import kernels, train
from minidl.testing import report
status = train.main(sys.argv[1:])
blas = {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}
report((status, kernels.get_num_threads(), sorted(blas)))
"""


@pytest.mark.parametrize("argv, threads", [
    (["--parallel", "none"], 1),  # each rank trains alone, on one thread
    (["--parallel", "ddp"], 1),
    (["--parallel", "none", "--threads", "2"], 2),  # an explicit --threads wins
])
def test_each_rank_defaults_to_one_thread_under_mpiexec(argv, threads):
    # The environment asks for two threads, as "all cores" would on this two-core machine.
    result = run_mpi(THREADS, 2, args=["--no-progress", "--model", "mlp", "--epochs", "1", *argv],
                     env={"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}, timeout=120)
    assert result.results == [(0, threads, [threads])] * 2
