"""The bundled digits: shapes, scaling, and a fixed, stratified, disjoint split."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

import minidl
from minidl.data import DataLoader, load_digits
from minidl.data.digits import _stratified_split


@pytest.fixture(scope="module")
def raw():
    """The bundled file as it is: images (1797, 64) uint8 in 0..16, labels uint8."""
    with resources.files("minidl.data").joinpath("digits.npz").open("rb") as f, np.load(f) as npz:
        return npz["images"], npz["labels"]


@pytest.fixture(scope="module")
def split():
    return load_digits()


def test_bundled_file_is_the_uci_test_set(raw):
    images, labels = raw
    assert images.shape == (1797, 64) and labels.shape == (1797,)
    assert images.min() == 0 and images.max() == 16
    assert sorted(set(labels.tolist())) == list(range(10))


def test_sizes_shapes_and_dtypes(split):
    train, test = split
    assert (len(train), len(test)) == (1442, 355)
    for data in split:
        images, labels = data.arrays
        assert images.shape == (len(data), 1, 8, 8) and images.dtype == np.float32
        assert labels.dtype == np.int64
        assert images.min() == 0.0 and images.max() == 1.0


def test_flatten_gives_the_same_pixels_as_vectors(split):
    for flat, image in zip(load_digits(flatten=True), split):
        assert flat.arrays[0].shape == (len(image), 64)
        np.testing.assert_array_equal(flat.arrays[0], image.arrays[0].reshape(-1, 64))
        np.testing.assert_array_equal(flat.arrays[1], image.arrays[1])


def test_split_is_a_partition_of_the_file(raw, split):
    # Train and test together hold every (image, label) of the file exactly once.
    images, labels = raw
    rows = np.concatenate(
        [np.column_stack([d.arrays[0].reshape(-1, 64) * 16, d.arrays[1]]) for d in split]
    )
    expected = np.column_stack([images, labels]).astype(np.float64)
    np.testing.assert_array_equal(
        rows[np.lexsort(rows.T[::-1])], expected[np.lexsort(expected.T[::-1])]
    )


def test_split_indices_are_disjoint_and_cover_everything(raw):
    train_index, test_index = _stratified_split(raw[1])
    assert np.intersect1d(train_index, test_index).size == 0
    np.testing.assert_array_equal(
        np.sort(np.concatenate([train_index, test_index])), np.arange(1797)
    )


def test_split_is_stratified(raw, split):
    per_class = np.bincount(raw[1], minlength=10)
    test_counts = np.bincount(split[1].arrays[1], minlength=10)
    np.testing.assert_array_equal(test_counts, per_class // 5)
    np.testing.assert_array_equal(
        np.bincount(split[0].arrays[1], minlength=10), per_class - test_counts
    )


def test_split_is_the_same_every_time_and_ignores_manual_seed(split):
    minidl.manual_seed(123)
    state = minidl.random.generator().bit_generator.state
    again = load_digits()
    assert minidl.random.generator().bit_generator.state == state
    for a, b in zip(split, again):
        for x, y in zip(a.arrays, b.arrays):
            np.testing.assert_array_equal(x, y)


def test_split_is_pinned(raw):
    # Positions in the file of the test samples, written down once: a change
    # to the split would make results from before it incomparable.
    _, test_index = _stratified_split(raw[1])
    assert test_index[:10].tolist() == [33, 36, 37, 40, 44, 47, 51, 58, 59, 64]
    assert int(test_index.sum()) == 322086


def test_digits_batch_straight_into_a_loader(split):
    images, labels = next(iter(DataLoader(split[0], batch_size=16, shuffle=True, seed=0)))
    assert images.shape == (16, 1, 8, 8) and images.dtype == np.float32
    assert labels.shape == (16,) and labels.dtype == np.int64
