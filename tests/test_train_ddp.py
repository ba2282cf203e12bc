"""The main job under mpiexec: ``python -m mpi4py -m minidl.train --parallel ddp``."""

import json

import pytest

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
