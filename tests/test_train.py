"""The main job, ``python -m minidl.train``: flags, outputs, resuming, errors."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

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
    default = minidl.kernels.backend()
    status, out, _ = run_main(capsys, "--model", "lenet", "--epochs", "1", "--kernels", "numpy")
    assert status == 0 and "test accuracy:" in out
    assert minidl.kernels.backend() == "numpy"
    minidl.kernels.use(default)


@pytest.mark.parametrize("argv, message", [
    (["--model", "resnet"], "invalid choice: 'resnet'"),
    (["--lr", "-0.1"], "--lr must be positive"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--dataset", "mnist"], "--dataset mnist needs --data-root"),
    (["--dataset", "mnist", "--data-root", "/no/such/folder"], "is not a folder"),
    (["--resume"], "--resume needs --checkpoint"),
    (["--timeout", "-1"], "--timeout must be a number of seconds >= 0 (0 = never), got -1.0"),
    (["--timeout", "inf"], "--timeout must be a number of seconds >= 0"),
    (["--no-overlap"], "--no-overlap needs --parallel ddp"),  # one process: --parallel none
    (["--trace", "t.json"], "--trace needs --parallel ddp or pipeline"),
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
    # (-W: where the compiled kernels are not built, import warns of it first.)
    command = [sys.executable, "-W", "ignore:minidl's compiled kernels", "-m", "minidl.train"]
    proc = subprocess.run([*command, "--batch-size", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        == "python -m minidl.train: error: --batch-size must be at least 1, got 0"
    )


def unwritable_folder(tmp_path):
    """A folder in which creating a file fails, even for root.

    The tests run as root here, and a read-only mode binds root to nothing, so
    after a read-only folder of our own come /sys and /proc, which refuse new
    files to everyone. Each is tried for real before it is used.
    """
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    for folder in (locked, Path("/sys"), Path("/proc")):
        try:
            with tempfile.NamedTemporaryFile(dir=folder):
                pass
        except OSError:
            return folder
    pytest.skip("no folder here refuses new files, not even /sys or /proc")


@pytest.mark.parametrize("case", ["missing folder", "under a file", "a folder", "not writable"])
def test_a_checkpoint_that_cannot_be_written_is_refused_before_training(tmp_path, capsys, case):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("")
    if case == "missing folder":
        path, message = tmp_path / "no" / "c.npz", f"the folder {tmp_path / 'no'} does not exist"
    elif case == "under a file":
        path, message = a_file / "c.npz", f"{a_file} is not a folder"
    elif case == "a folder":
        path, message = tmp_path, f"is a folder; name a file in it, e.g. --checkpoint {tmp_path}/"
    else:
        folder = unwritable_folder(tmp_path)
        path, message = folder / "c.npz", f"cannot write in the folder {folder} ("
    status, out, err = run_main(capsys, "--model", "mlp", "--epochs", "1",
                                "--checkpoint", str(path))
    assert status == 2
    assert err.startswith(f"python -m minidl.train: error: --checkpoint {path}")
    assert message in err and len(err.strip().splitlines()) == 1
    assert out == ""  # not one epoch was trained


def test_resume_without_a_checkpoint_says_so_and_starts_from_epoch_1(tmp_path, capsys):
    ckpt = tmp_path / "c.npz"
    status, out, _ = run_main(capsys, "--model", "mlp", "--epochs", "1",
                              "--checkpoint", str(ckpt), "--resume")
    assert status == 0
    assert out.startswith(f"no checkpoint at {ckpt}: starting from epoch 1\nepoch   1 ")
    assert os.listdir(tmp_path) == ["c.npz"]  # the write check left nothing behind
    assert minidl.load(ckpt)["epoch"] == 1


def test_resume_must_refuses_to_start_without_a_checkpoint(tmp_path, capsys):
    ckpt = tmp_path / "c.npz"
    common = ["--model", "mlp", "--schedule", "none", "--checkpoint", str(ckpt)]
    status, out, err = run_main(capsys, *common, "--epochs", "1", "--resume=must")
    assert status == 2 and out == ""
    assert err == f"python -m minidl.train: error: --resume=must: no checkpoint at {ckpt}\n"
    assert run_main(capsys, *common, "--epochs", "1")[0] == 0
    status, out, _ = run_main(capsys, *common, "--epochs", "2", "--resume", "must")
    assert status == 0 and out.startswith(f"resumed from {ckpt} after epoch 1\nepoch   2 ")


@pytest.mark.parametrize("schedule, epochs, before, after, lr", [
    # lr 0.05 * (1 + cos(pi * 2 / 4)) / 2 in epoch 3 of 4
    ("cosine", (2, 4), "a cosine over 2 epochs", "a cosine over 4 epochs", "0.025"),
    # step_size = epochs // 3: 0.05 * 0.1 ** (3 // 2) in epoch 4 of 6
    ("step", (3, 6), "x0.1 every epoch", "x0.1 every 2 epochs", "0.005"),
])
def test_resume_with_other_epochs_continues_on_this_runs_schedule(
    tmp_path, capsys, schedule, epochs, before, after, lr
):
    ckpt = tmp_path / "c.npz"
    common = ["--model", "mlp", "--schedule", schedule, "--checkpoint", str(ckpt)]
    assert run_main(capsys, *common, "--epochs", str(epochs[0]))[0] == 0
    status, out, _ = run_main(capsys, *common, "--epochs", str(epochs[1]), "--resume")
    assert status == 0
    assert out.startswith(
        f"resumed from {ckpt} after epoch {epochs[0]}\n"
        f"learning-rate schedule: the checkpoint's is {before}, this run's --epochs makes it "
        f"{after}; continuing on this run's, at lr {lr}\n"
    )
    state = minidl.load(ckpt)
    assert state["epoch"] == state["scheduler"]["last_epoch"] == epochs[1]
    final_lr = state["optimizer"]["param_groups"][0]["lr"]
    if schedule == "cosine":  # the new cosine ends at 0, where the old one would be back at 0.05
        assert state["scheduler"]["T_max"] == epochs[1] and final_lr == pytest.approx(0.0)
    else:
        assert state["scheduler"]["step_size"] == 2 and final_lr == pytest.approx(0.05 * 0.1**3)


def test_an_interrupted_run_resumed_with_its_own_epochs_ends_as_if_never_stopped(
    tmp_path, capsys
):
    straight, interrupted = tmp_path / "straight.npz", tmp_path / "interrupted.npz"
    common = ["--model", "mlp", "--seed", "1"]
    assert run_main(capsys, *common, "--epochs", "2", "--checkpoint", str(straight))[0] == 0
    # What a run of --epochs 2 killed after its first epoch leaves: epoch 1 on a 2-epoch cosine.
    assert run_main(capsys, *common, "--epochs", "1", "--checkpoint", str(interrupted))[0] == 0
    state = minidl.load(interrupted)
    state["scheduler"]["T_max"] = 2
    minidl.save(state, interrupted)
    status, out, _ = run_main(capsys, *common, "--epochs", "2", "--checkpoint", str(interrupted),
                              "--resume")
    assert status == 0 and "learning-rate schedule" not in out
    assert out.startswith(f"resumed from {interrupted} after epoch 1\nepoch   2 ")
    a, b = minidl.load(straight), minidl.load(interrupted)
    for key in a["model"]:
        np.testing.assert_array_equal(a["model"][key], b["model"][key])


def test_a_checkpoint_of_another_schedule_is_refused(tmp_path, capsys):
    ckpt = tmp_path / "c.npz"
    common = ["--model", "mlp", "--epochs", "2", "--checkpoint", str(ckpt)]
    assert run_main(capsys, *common, "--schedule", "none", "--epochs", "1")[0] == 0
    status, out, err = run_main(capsys, *common, "--resume")
    assert status == 2 and out == ""
    assert err == (
        f"python -m minidl.train: error: cannot resume from checkpoint {ckpt}: it was saved "
        "with --schedule none, this run has --schedule cosine (give --schedule none to "
        "continue it)\n"
    )


@pytest.mark.parametrize("launched, parallel, threads, world_size, expected", [
    (None, "none", None, 1, None),  # one process: the libraries' own defaults
    ("2", "none", None, 1, 1),  # mpiexec -n 2 ... --parallel none: one thread per rank
    ("2", "ddp", None, 2, 1),
    ("2", "none", 3, 1, 3),  # an explicit --threads wins
    (None, "none", 3, 1, 3),
])
def test_threads_per_process(monkeypatch, launched, parallel, threads, world_size, expected):
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE"):
        monkeypatch.delenv(var, raising=False)
    if launched:
        monkeypatch.setenv("PMI_SIZE", launched)
    args = train.build_parser().parse_args(["--parallel", parallel]
                                           + (["--threads", str(threads)] if threads else []))
    assert train.threads_per_process(args, world_size) == expected


@pytest.mark.parametrize("argv, environment, expected", [
    ([], None, 300.0),
    ([], "11", 11.0),
    (["--timeout", "7"], "11", 7.0),
    (["--timeout", "0"], None, 0.0),
])
def test_timeout_defaults_to_300_s_or_the_environment(monkeypatch, argv, environment, expected):
    if environment is None:
        monkeypatch.delenv("MINIDL_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("MINIDL_TIMEOUT", environment)
    args = train.build_parser().parse_args(argv)
    train.check_args(args)
    assert args.timeout == expected


def test_the_training_job_sets_the_watchdog(capsys, monkeypatch):
    from minidl.distributed import watchdog

    monkeypatch.setattr(watchdog, "_timeout", watchdog._timeout)  # put back afterwards
    status, _, _ = run_main(capsys, "--model", "mlp", "--epochs", "1", "--timeout", "7")
    assert status == 0 and minidl.distributed.get_timeout() == 7.0
    run_main(capsys, "--model", "mlp", "--epochs", "1", "--timeout", "0")
    assert minidl.distributed.get_timeout() is None
