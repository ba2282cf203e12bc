"""make_spirals and make_blobs: shapes, dtypes, balance, determinism, the geometry promised."""

from __future__ import annotations

import numpy as np
import pytest

import minidl
from minidl.data import make_blobs, make_spirals


def test_spirals_shapes_dtypes_and_classes():
    points, labels = make_spirals(n_per_class=40, classes=4).arrays
    assert points.shape == (160, 2) and points.dtype == np.float32
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(labels), [40] * 4)


def test_spirals_without_noise_lie_on_the_arms():
    points, labels = make_spirals(n_per_class=5, classes=2, noise=0.0).arrays
    radius = np.tile(np.linspace(0, 1, 5), 2)
    angle = 4.0 * (labels + radius)
    expected = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    np.testing.assert_allclose(points, expected, atol=1e-6)


def test_blobs_shapes_dtypes_and_balance():
    points, labels = make_blobs(n=301, centers=3).arrays
    assert points.shape == (301, 2) and points.dtype == np.float32
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(labels), [101, 100, 100])


def test_blobs_gather_around_given_centres():
    centres = np.array([[0.0, 0.0, 0.0], [10.0, -10.0, 5.0]])
    points, labels = make_blobs(n=2000, centers=centres, std=0.5).arrays
    assert points.shape == (2000, 3)
    for k, centre in enumerate(centres):
        cluster = points[labels == k]
        np.testing.assert_allclose(cluster.mean(axis=0), centre, atol=0.1)
        np.testing.assert_allclose(cluster.std(axis=0), 0.5, atol=0.05)


def test_blobs_draw_centres_in_the_box_in_any_dimension():
    points, labels = make_blobs(n=500, centers=4, dim=5, std=0.0, center_box=(2.0, 3.0)).arrays
    assert points.shape == (500, 5)
    assert len(np.unique(points, axis=0)) == 4
    assert points.min() >= 2.0 and points.max() <= 3.0


@pytest.mark.parametrize("make", [make_spirals, make_blobs])
def test_same_seed_same_data_whatever_minidl_generator_does(make):
    minidl.manual_seed(0)
    first = make(seed=3).arrays
    minidl.manual_seed(1)
    second = make(seed=3).arrays
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(make(seed=4).arrays[0], first[0])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="n_per_class >= 2"):
        make_spirals(n_per_class=1)
    with pytest.raises(ValueError, match="noise=-1"):
        make_spirals(noise=-1)
    with pytest.raises(ValueError, match="centers >= 1"):
        make_blobs(centers=0)
    with pytest.raises(ValueError, match=r"n >= the number of clusters \(3\)"):
        make_blobs(n=2, centers=3)
    with pytest.raises(ValueError, match="dim=3 but the given centers are points of dimension 2"):
        make_blobs(centers=[[0, 0], [1, 1]], dim=3)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        make_blobs(centers=[1.0, 2.0])
