"""minidl.save / minidl.load: every supported type round-trips, writes are atomic, errors are
clear."""

from __future__ import annotations

import json
import math
import os
import pickle
import stat
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import minidl
import minidl.checkpoint
import minidl.nn as nn
import minidl.optim as optim
from minidl.data import DataLoader, make_blobs


def assert_same(got, expected, where: str = "state") -> None:
    """Equal values of exactly the same types (tuple stays tuple, float32 stays float32)."""
    if isinstance(expected, minidl.Tensor):
        expected = expected.data
    if isinstance(expected, OrderedDict):
        expected = dict(expected)
    assert type(got) is type(expected), (
        f"{where}: got {type(got).__name__}, expected {type(expected).__name__}"
    )
    if isinstance(expected, dict):
        assert list(got) == list(expected), f"{where}: keys {list(got)} != {list(expected)}"
        for key in expected:
            assert_same(got[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), where
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_same(g, e, f"{where}[{i}]")
    elif isinstance(expected, (np.ndarray, np.generic)):
        assert got.dtype == expected.dtype and np.shape(got) == np.shape(expected), where
        np.testing.assert_array_equal(got, expected, err_msg=where)
    elif isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(got), where
    else:
        assert got == expected, where


def round_trip(state, tmp_path):
    path = tmp_path / "state.ckpt"
    minidl.save(state, path)
    return minidl.load(path)


# ------------------------------------------------------------- round trips
@pytest.mark.parametrize("value", [
    0, -7, 2**127 + 1, -(2**100), 0.1, -0.0, float("inf"), float("nan"), 1e-300, True, False, None,
    "", "état ✓", [], (), {}, [1, 2.5, "x"], (0.9, 0.999), [(1, 2), [3, (4,)]],
], ids=repr)
def test_python_values_round_trip(value, tmp_path):
    assert_same(round_trip({"v": value}, tmp_path)["v"], value)


@pytest.mark.parametrize("array", [
    np.arange(12, dtype=np.float32).reshape(3, 4),
    np.linspace(0, 1, 7),
    np.array([-128, 0, 127], dtype=np.int8),
    np.array([2**64 - 1], dtype=np.uint64),
    np.array([True, False]),
    np.array([1 + 2j]),
    np.array(3.5),
    np.zeros((0, 3), dtype=np.float32),
    np.arange(24.0).reshape(2, 3, 4).transpose(2, 0, 1),
    np.asfortranarray(np.arange(6).reshape(2, 3)),
    np.arange(10)[::3],
    np.array(["cat", "dog"]),
], ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_arrays_round_trip_exactly(array, tmp_path):
    assert_same(round_trip({"a": array}, tmp_path)["a"], array)


@pytest.mark.parametrize(
    "scalar", [np.float32(0.25), np.float64(1.5), np.int64(-3), np.uint8(200), np.bool_(True)],
    ids=lambda s: type(s).__name__,
)
def test_numpy_scalars_keep_their_type(scalar, tmp_path):
    assert_same(round_trip({"s": scalar}, tmp_path)["s"], scalar)


def test_tensors_are_stored_as_arrays(tmp_path):
    t = minidl.tensor([[1.0, 2.0]], requires_grad=True)
    got = round_trip({"t": t, "t64": minidl.tensor(np.arange(3.0))}, tmp_path)
    assert_same(got, {"t": t.data, "t64": np.arange(3.0)})


def test_nested_state_keeps_structure_and_key_order(tmp_path):
    state = OrderedDict(z=1, a={"y": [np.ones(2), {"deep": (None, "s")}], "b": 2.0},
                        m=[{"k": np.int32(4)}], **{"with/slash": 1, "": "empty key", "a.npy": 0})
    assert_same(round_trip(state, tmp_path), state)


def test_any_value_may_be_the_top_level(tmp_path):
    assert_same(round_trip([np.arange(3), 4], tmp_path), [np.arange(3), 4])
    assert round_trip(5, tmp_path) == 5


def test_generator_state_round_trips_and_resumes_the_stream(tmp_path):
    rng = np.random.default_rng(2024)
    rng.standard_normal(5)
    state = rng.bit_generator.state
    assert state["state"]["state"] > 2**64  # PCG64 keeps 128-bit integers
    restored = np.random.default_rng()
    restored.bit_generator.state = round_trip({"rng": state}, tmp_path)["rng"]
    np.testing.assert_array_equal(restored.standard_normal(4), rng.standard_normal(4))


def test_model_state_dict_round_trips(tmp_path):
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    minidl.manual_seed(1)
    fresh = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    state = round_trip({"model": model.state_dict()}, tmp_path)["model"]
    assert_same(state, model.state_dict())
    fresh.load_state_dict(state)
    x = minidl.randn(5, 4)
    np.testing.assert_array_equal(fresh(x).data, model(x).data)


def make_sgd(seed: int):
    minidl.manual_seed(seed)
    model = nn.Linear(3, 2)
    return model, optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True
    )


def sgd_step(model, optimizer, x, y):
    optimizer.zero_grad()
    nn.CrossEntropyLoss()(model(x), y).backward()
    optimizer.step()


def test_sgd_momentum_state_round_trips_and_resumes(tmp_path):
    x = minidl.tensor(np.arange(12.0).reshape(4, 3) / 10, dtype=np.float32)  # the model's dtype
    y = minidl.tensor(np.array([0, 1, 1, 0]))
    model, optimizer = make_sgd(0)
    for _ in range(2):
        sgd_step(model, optimizer, x, y)
    saved = round_trip({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp_path)
    assert_same(saved["optimizer"], optimizer.state_dict())
    assert set(saved["optimizer"]["state"]) == {"0", "1"}

    resumed, resumed_optimizer = make_sgd(1)
    resumed.load_state_dict(saved["model"])
    resumed_optimizer.load_state_dict(saved["optimizer"])
    for _ in range(3):
        sgd_step(model, optimizer, x, y)
        sgd_step(resumed, resumed_optimizer, x, y)
    for a, b in zip(resumed.parameters(), model.parameters()):
        np.testing.assert_array_equal(a.data, b.data)


def test_adam_and_scheduler_state_round_trip(tmp_path):
    model = nn.Linear(3, 2)
    adam = optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.99))
    model(minidl.ones(1, 3)).sum().backward()
    adam.step()
    scheduler = optim.StepLR(adam, step_size=2, gamma=0.5)
    scheduler.step()
    state = {"optimizer": adam.state_dict(), "scheduler": scheduler.state_dict()}
    got = round_trip(state, tmp_path)
    assert_same(got, state)
    assert got["optimizer"]["param_groups"][0]["betas"] == (0.8, 0.99)


def test_resuming_from_a_checkpoint_equals_training_without_stopping(tmp_path):
    """The issue's promise, for the pieces this file owns: model, optimizer, epoch and RNG state."""
    data = make_blobs(n=60, centers=3, seed=0)

    def build():
        minidl.manual_seed(7)
        model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
        return model, optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def train(model, optimizer, loader, epochs):
        for _ in epochs:
            for x, y in loader:
                optimizer.zero_grad()
                nn.CrossEntropyLoss()(model(x), y).backward()
                optimizer.step()

    # Shuffling draws from minidl's generator (no seed), as dropout does:
    # saving that generator's state is what makes the resumed epochs repeat.
    model, optimizer = build()
    train(model, optimizer, DataLoader(data, batch_size=8, shuffle=True), range(2))
    minidl.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 2,
                 "rng": minidl.random.generator().bit_generator.state}, tmp_path / "ckpt")

    resumed, resumed_optimizer = build()
    checkpoint = minidl.load(tmp_path / "ckpt")
    resumed.load_state_dict(checkpoint["model"])
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    minidl.random.generator().bit_generator.state = checkpoint["rng"]
    train(resumed, resumed_optimizer, DataLoader(data, batch_size=8, shuffle=True),
          range(checkpoint["epoch"], 4))

    model, optimizer = build()
    train(model, optimizer, DataLoader(data, batch_size=8, shuffle=True), range(4))
    for a, b in zip(resumed.parameters(), model.parameters()):
        np.testing.assert_array_equal(a.data, b.data)


# ----------------------------------------------------------------- the file
def test_file_is_a_plain_npz_with_a_json_manifest(tmp_path):
    path = tmp_path / "run.ckpt"
    minidl.save({"w": np.ones(2), "epoch": 3}, path)
    assert os.listdir(tmp_path) == ["run.ckpt"]  # exactly the name given, no suffix added
    with np.load(path, allow_pickle=False) as archive:
        manifest = json.loads(archive[minidl.checkpoint.MANIFEST].tobytes())
        assert manifest["state"] == {"dict": {"w": {"array": "array_0"}, "epoch": 3}}
        np.testing.assert_array_equal(archive["array_0"], np.ones(2))


def test_the_file_gets_the_usual_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    minidl.save({"epoch": 1}, tmp_path / "ckpt")
    assert stat.S_IMODE(os.stat(tmp_path / "ckpt").st_mode) == 0o666 & ~umask


def test_save_replaces_an_existing_checkpoint(tmp_path):
    path = tmp_path / "ckpt.npz"
    minidl.save({"epoch": 1}, path)
    minidl.save({"epoch": 2}, str(path))
    assert minidl.load(str(path)) == {"epoch": 2}
    assert os.listdir(tmp_path) == ["ckpt.npz"]


# -------------------------------------------------------------- atomicity
def failing_savez(file, **arrays):
    """Write part of an archive, then fail as a full disk or a crash would."""
    file.write(b"PK\x03\x04 half a checkpoint")
    raise OSError("No space left on device")


@pytest.mark.parametrize("where", ["savez", "replace"])
def test_a_failed_write_keeps_the_old_checkpoint_and_leaves_no_temporary(
    tmp_path, monkeypatch, where
):
    path = tmp_path / "ckpt"
    minidl.save({"epoch": 1, "w": np.arange(3.0)}, path)
    if where == "savez":
        monkeypatch.setattr(minidl.checkpoint.np, "savez", failing_savez)
    else:
        def failing_replace(src, dst):
            raise OSError("crash before the rename")
        monkeypatch.setattr(minidl.checkpoint.os, "replace", failing_replace)
    with pytest.raises(OSError):
        minidl.save({"epoch": 2, "w": np.zeros(3)}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt"]
    assert_same(minidl.load(path), {"epoch": 1, "w": np.arange(3.0)})


def test_an_interrupt_mid_write_leaves_no_temporary(tmp_path, monkeypatch):
    def interrupted(file, **arrays):
        raise KeyboardInterrupt

    monkeypatch.setattr(minidl.checkpoint.np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        minidl.save({"epoch": 2}, tmp_path / "ckpt")
    assert os.listdir(tmp_path) == []


def test_the_write_is_flushed_to_disk_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        minidl.checkpoint.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))
    )
    monkeypatch.setattr(minidl.checkpoint.os, "replace",
                        lambda src, dst: (events.append("replace"), real_replace(src, dst)))
    minidl.save({"epoch": 1}, tmp_path / "ckpt")
    assert events[:2] == ["fsync", "replace"]


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("state, where, what", [
    ({"model": {"layers": [1, {3, 4}]}}, r"state\['model'\]\['layers'\]\[1\]", "type set"),
    ({"opt": {"fn": print}}, r"state\['opt'\]\['fn'\]", "builtin_function_or_method"),
    ({"a": np.array([object()])}, r"state\['a'\]", "dtype object"),
    ({"state": {0: np.ones(2)}}, r"state\['state'\]", "int key 0"),
    ({"b": b"bytes"}, r"state\['b'\]", "type bytes"),
])
def test_unsupported_values_are_named_by_their_key_path(tmp_path, state, where, what):
    with pytest.raises(TypeError, match=f"cannot save {where}:.*{what}"):
        minidl.save(state, tmp_path / "ckpt")
    assert os.listdir(tmp_path) == []


def test_a_failed_encode_keeps_the_old_checkpoint(tmp_path):
    minidl.save({"epoch": 1}, tmp_path / "ckpt")
    with pytest.raises(TypeError):
        minidl.save({"epoch": {1, 2}}, tmp_path / "ckpt")
    assert minidl.load(tmp_path / "ckpt") == {"epoch": 1}


def test_saving_into_a_missing_folder_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder .*nowhere.* does not exist"):
        minidl.save({}, tmp_path / "nowhere" / "ckpt")


def test_loading_a_missing_file_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*missing.ckpt"):
        minidl.load(tmp_path / "missing.ckpt")


def write_npy(path):
    with open(path, "wb") as f:
        np.save(f, np.arange(3))


def write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def write_truncated(path):
    minidl.save({"w": np.arange(1000.0)}, path)
    path.write_bytes(path.read_bytes()[:500])


@pytest.mark.parametrize(
    "write, reason",
    [
        (lambda p: p.write_bytes(b""), "not an .npz archive"),
        (lambda p: p.write_text("epoch: 3\n"), "not an .npz archive"),
        (lambda p: p.write_bytes(pickle.dumps({"epoch": 1})), "not an .npz archive"),
        (write_truncated, "not an .npz archive, or it is truncated"),
        (write_npy, "single array"),
        (lambda p: write_npz(p, w=np.arange(3)), "without a '__minidl_checkpoint__' entry"),
        (
            lambda p: write_npz(p, __minidl_checkpoint__=np.frombuffer(b"[1]", np.uint8)),
            "not a minidl manifest",
        ),
    ],
    ids=["empty", "text", "pickle", "truncated", "npy", "npz", "foreign-manifest"],
)
def test_files_that_are_not_checkpoints_are_refused(tmp_path, write, reason):
    path = tmp_path / "ckpt"
    write(path)
    with pytest.raises(ValueError, match=f"is not a minidl checkpoint.*{reason}"):
        minidl.load(path)


def test_damaged_checkpoints_are_reported(tmp_path):
    path = tmp_path / "ckpt"
    minidl.save({"w": np.arange(3.0)}, path)
    with zipfile.ZipFile(path) as original, zipfile.ZipFile(tmp_path / "damaged", "w") as damaged:
        damaged.writestr("__minidl_checkpoint__.npy", original.read("__minidl_checkpoint__.npy"))
    with pytest.raises(ValueError, match="damaged: .*'array_0', which is missing"):
        minidl.load(tmp_path / "damaged")


def test_a_newer_format_version_is_refused(tmp_path):
    manifest = json.dumps({"format": "minidl checkpoint", "version": 99, "state": 1}).encode()
    write_npz(tmp_path / "ckpt", __minidl_checkpoint__=np.frombuffer(manifest, np.uint8))
    with pytest.raises(ValueError, match="format version 99"):
        minidl.load(tmp_path / "ckpt")
