"""load_mnist on tiny IDX files written by the tests: plain, gzipped, and broken."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from minidl.data import load_mnist

NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes, written out by hand from the format's description."""
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write(path: Path, content: bytes, gz: bool) -> None:
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(content)
    else:
        path.write_bytes(content)


def make_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
    return images, rng.integers(0, 10, size=n).astype(np.uint8)


@pytest.fixture
def arrays():
    return {"train": make_split(5, 0), "t10k": make_split(3, 1)}


def write_all(root: Path, arrays, gz) -> None:
    for prefix, (images, labels) in arrays.items():
        write(root / f"{prefix}-images-idx3-ubyte", idx_bytes(images), gz)
        write(root / f"{prefix}-labels-idx1-ubyte", idx_bytes(labels), gz)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("kind", ["mnist", "fashion-mnist"])
def test_reads_plain_and_gzipped_files(tmp_path, arrays, gz, kind):
    write_all(tmp_path, arrays, gz)
    train, test = load_mnist(tmp_path, kind=kind)
    for data, (images, labels) in zip((train, test), arrays.values()):
        x, y = data.arrays
        assert x.shape == (len(images), 1, 28, 28) and x.dtype == np.float32
        assert y.dtype == np.int64
        np.testing.assert_allclose(x[:, 0], images / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(y, labels)


def test_accepts_a_string_path_and_a_mix_of_plain_and_gz(tmp_path, arrays):
    write_all(tmp_path, arrays, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(arrays["t10k"][1]), gz=False)
    _, test = load_mnist(str(tmp_path))
    np.testing.assert_array_equal(test.arrays[1], arrays["t10k"][1])


def test_missing_files_are_named_with_where_to_put_them(tmp_path, arrays):
    write_all(tmp_path, {"train": arrays["train"]}, gz=False)
    with pytest.raises(FileNotFoundError) as error:
        load_mnist(tmp_path, kind="fashion-mnist")
    message = str(error.value)
    assert str(tmp_path / "t10k-images-idx3-ubyte") in message
    assert str(tmp_path / "t10k-labels-idx1-ubyte") in message
    assert "train-images" not in message
    assert "zalandoresearch/fashion-mnist" in message


def test_an_absent_folder_lists_all_four_files(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_mnist(tmp_path / "nowhere")
    for name in NAMES:
        assert str(tmp_path / "nowhere" / name) in str(error.value)
    assert "MNIST database" in str(error.value)


def test_wrong_magic_number_is_reported(tmp_path, arrays):
    write_all(tmp_path, arrays, gz=False)
    # Labels where images belong: magic 2049 instead of 2051.
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(arrays["train"][1]))
    with pytest.raises(ValueError, match="magic number 2049.*starts with 2051"):
        load_mnist(tmp_path)


def test_an_html_page_saved_as_the_file_is_reported(tmp_path, arrays):
    write_all(tmp_path, arrays, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"<html><body>404 Not Found</body></html>")
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte starts with magic number"):
        load_mnist(tmp_path)


@pytest.mark.parametrize(
    "cut, problem", [(-10, "truncated"), (None, "longer than its header says")]
)
def test_wrong_size_is_reported(tmp_path, arrays, cut, problem):
    write_all(tmp_path, arrays, gz=False)
    content = idx_bytes(arrays["train"][0])
    content = content[:cut] if cut else content + b"\0"
    (tmp_path / "train-images-idx3-ubyte").write_bytes(content)
    with pytest.raises(ValueError, match=problem):
        load_mnist(tmp_path)


def test_too_short_for_a_header_is_reported(tmp_path, arrays):
    write_all(tmp_path, arrays, gz=False)
    # The right magic number for labels, then only half of the size field.
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 0x08, 1, 0, 0]))
    with pytest.raises(ValueError, match="too short"):
        load_mnist(tmp_path)


def test_a_broken_gzip_file_is_reported(tmp_path, arrays):
    write_all(tmp_path, arrays, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match="not a complete gzip file"):
        load_mnist(tmp_path)


def test_images_and_labels_must_agree_in_number(tmp_path, arrays):
    write_all(tmp_path, arrays, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4)))
    with pytest.raises(ValueError, match="3 images but .* 4 labels"):
        load_mnist(tmp_path)


def test_train_and_test_images_must_have_the_same_size(tmp_path, arrays):
    write_all(tmp_path, arrays, gz=False)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((3, 14, 14))))
    with pytest.raises(ValueError, match="28×28 pixels but .* 14×14"):
        load_mnist(tmp_path)


def test_unknown_kind_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of"):
        load_mnist(tmp_path, kind="emnist")
