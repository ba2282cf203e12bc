"""The main job, ``python -m minidl.train``: flags, outputs, resuming, errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

import minidl
from minidl import train


def run_main(capsys, *argv):
    status = train.main(["--no-progress", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_mlp_with_defaults_reaches_97_percent(capsys):
    status, out, _ = run_main(capsys, "--model", "mlp")
    assert status == 0
    accuracy = float(out.split("test accuracy: ")[1].split()[0])
    assert accuracy >= 0.97, out
    assert "time per epoch:" in out


def test_lenet_with_defaults_reaches_98_percent(capsys):
    status, out, _ = run_main(capsys)
    assert status == 0
    accuracy = float(out.split("test accuracy: ")[1].split()[0])
    assert accuracy >= 0.98, out


def test_metrics_and_plot(tmp_path, capsys):
    metrics, plot = tmp_path / "m.jsonl", tmp_path / "curves.png"
    status, _, _ = run_main(
        capsys, "--model", "mlp", "--epochs", "3", "--metrics", str(metrics), "--plot", str(plot)
    )
    assert status == 0
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert set(rows[0]) >= {"epoch", "loss", "accuracy", "seconds"}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_equals_training_without_stopping(tmp_path, capsys, optimizer):
    # A constant learning rate: a schedule's length depends on --epochs, which differs between
    # the runs.
    common = ["--model", "mlp", "--optimizer", optimizer, "--lr", "0.01", "--seed", "3",
              "--schedule", "none"]
    straight, resumed = tmp_path / "straight.npz", tmp_path / "resumed.npz"
    assert run_main(capsys, *common, "--epochs", "4", "--checkpoint", str(straight))[0] == 0
    assert run_main(capsys, *common, "--epochs", "2", "--checkpoint", str(resumed))[0] == 0
    status, out, _ = run_main(
        capsys, *common, "--epochs", "4", "--checkpoint", str(resumed), "--resume"
    )
    assert status == 0 and "resumed from" in out and "after epoch 2" in out
    a, b = minidl.load(straight), minidl.load(resumed)
    assert a["epoch"] == b["epoch"] == 4
    for key in a["model"]:
        np.testing.assert_array_equal(a["model"][key], b["model"][key])


def test_resume_restores_the_schedule(tmp_path, capsys):
    ckpt = tmp_path / "c.npz"
    common = ["--model", "mlp", "--epochs", "4", "--checkpoint", str(ckpt)]
    assert run_main(capsys, *common)[0] == 0
    state = minidl.load(ckpt)
    assert state["scheduler"]["last_epoch"] == 4
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0)


def test_numpy_kernels_flag(capsys):
    status, out, _ = run_main(capsys, "--model", "lenet", "--epochs", "1", "--kernels", "numpy")
    assert status == 0 and "test accuracy:" in out
    assert minidl.kernels.backend() == "numpy"
    minidl.kernels.use("cython")


@pytest.mark.parametrize("argv, message", [
    (["--model", "resnet"], "invalid choice: 'resnet'"),
    (["--lr", "-0.1"], "--lr must be positive"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--dataset", "mnist"], "--dataset mnist needs --data-root"),
    (["--dataset", "mnist", "--data-root", "/no/such/folder"], "is not a folder"),
    (["--resume"], "--resume needs --checkpoint"),
])
def test_bad_arguments_give_one_line_and_status_2(capsys, argv, message):
    status, _, err = run_main(capsys, *argv)
    assert status == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_unreadable_checkpoint_and_missing_mnist(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_text("not a checkpoint")
    status, _, err = run_main(capsys, "--checkpoint", str(bad), "--resume")
    assert status == 2 and "cannot resume from checkpoint" in err
    status, _, err = run_main(capsys, "--dataset", "mnist", "--data-root", str(tmp_path))
    assert status == 2 and "train-images-idx3-ubyte" in err and len(err.strip().splitlines()) == 1


def test_command_line_exit_status_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "minidl.train", "--batch-size", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        == "python -m minidl.train: error: --batch-size must be at least 1, got 0"
    )
