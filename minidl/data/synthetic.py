"""Small two-dimensional data sets made on the spot, for tutorials and quick tests.

Both draw from their own generator, seeded by ``seed``: the same call always
gives the same data, whatever minidl's generator is doing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minidl.data.dataset import TensorDataset


def make_spirals(n_per_class: int = 100, classes: int = 3, noise: float = 0.2,
                 seed: int = 0) -> TensorDataset:
    """Interleaved spiral arms, one per class: a classic that no linear model can separate.

    Point ``i`` of arm ``c`` sits at radius ``r = i / (n_per_class - 1)`` and
    angle ``4 * (c + r)`` radians plus Gaussian noise, at ``(r sin t, r cos t)``
    (the construction of the CS231n notes on neural networks, case study).

    Parameters
    ----------
    n_per_class : int, default 100
        Points in each arm, at least 2.
    classes : int, default 3
        Number of arms (classes), at least 1.
    noise : float, default 0.2
        Standard deviation of the noise on the angle, in radians.
    seed : int, default 0
        Seed of the noise.

    Returns
    -------
    TensorDataset
        Samples ``(point, label)``: points float32 of shape
        (n_per_class * classes, 2), labels int64, grouped by class (shuffle
        them with a :class:`DataLoader`).

    Examples
    --------
    >>> from minidl.data import make_spirals
    >>> points, labels = make_spirals(n_per_class=50).arrays
    >>> points.shape, labels.tolist().count(2)
    ((150, 2), 50)
    """
    if n_per_class < 2 or classes < 1 or noise < 0:
        raise ValueError(
            f"make_spirals needs n_per_class >= 2, classes >= 1 and noise >= 0, "
            f"got n_per_class={n_per_class}, classes={classes}, noise={noise}"
        )
    rng = np.random.default_rng(seed)
    radius = np.tile(np.linspace(0.0, 1.0, n_per_class), classes)
    labels = np.repeat(np.arange(classes), n_per_class)
    angle = 4.0 * (labels + radius) + noise * rng.standard_normal(len(labels))
    points = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    return TensorDataset(points.astype(np.float32), labels.astype(np.int64))


def make_blobs(n: int = 300, centers: Any = 3, dim: int | None = None, std: float = 1.0,
               center_box: tuple[float, float] = (-10.0, 10.0), seed: int = 0) -> TensorDataset:
    """Gaussian clusters, one per class: ``n`` points shared out as evenly as possible.

    Parameters
    ----------
    n : int, default 300
        Total number of points, at least one per cluster.
    centers : int or array_like, default 3
        Either the number of clusters, whose centres are then drawn
        uniformly from ``center_box`` in every coordinate, or the centres
        themselves, an array of shape (clusters, dim).
    dim : int, optional
        Dimension of the points: 2 when ``centers`` is a number, the width of
        ``centers`` when it is an array. Give it to make points of higher
        dimension around drawn centres.
    std : float, default 1.0
        Standard deviation of every cluster, in every coordinate.
    center_box : (float, float), default (-10.0, 10.0)
        Bounds of the drawn centres.
    seed : int, default 0
        Seed of the centres and the points.

    Returns
    -------
    TensorDataset
        Samples ``(point, label)``: points float32 of shape (n, dim), labels
        int64, grouped by class; the first ``n % clusters`` clusters have one
        point more than the others.

    Raises
    ------
    ValueError
        If ``dim`` disagrees with the width of ``centers``, or a size is out
        of range.

    Examples
    --------
    >>> from minidl.data import make_blobs
    >>> points, labels = make_blobs(n=10, centers=[[0, 0], [5, 5]], std=0.1).arrays
    >>> points.dtype, labels.tolist()
    (dtype('float32'), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    """
    rng = np.random.default_rng(seed)
    if np.ndim(centers) == 0:
        dim = 2 if dim is None else dim
        if centers < 1 or dim < 1:
            raise ValueError(
                f"make_blobs needs centers >= 1 and dim >= 1, got centers={centers}, dim={dim}"
            )
        low, high = center_box
        centres = rng.uniform(low, high, size=(int(centers), dim))
    else:
        centres = np.asarray(centers, dtype=np.float64)
        if centres.ndim != 2 or len(centres) == 0:
            raise ValueError(
                "centers must be a number or an array of shape (clusters, dim), "
                f"got shape {centres.shape}"
            )
        if dim is not None and dim != centres.shape[1]:
            raise ValueError(
                f"dim={dim} but the given centers are points of dimension {centres.shape[1]}"
            )
    k = len(centres)
    if n < k or std < 0:
        raise ValueError(
            f"make_blobs needs n >= the number of clusters ({k}) and std >= 0, got n={n}, std={std}"
        )
    sizes = n // k + (np.arange(k) < n % k)
    labels = np.repeat(np.arange(k), sizes)
    points = centres[labels] + std * rng.standard_normal((n, centres.shape[1]))
    return TensorDataset(points.astype(np.float32), labels.astype(np.int64))
