"""The bundled handwritten digits (UCI optical digits, 8×8), with a fixed train/test split."""

from __future__ import annotations

from importlib import resources

import numpy as np

from minidl.data.dataset import TensorDataset

#: Every TEST_EVERY-th sample of each class goes to the test split (20%).
TEST_EVERY = 5
#: The images hold counts of set pixels in 4×4 blocks: 0 to 16.
MAX_PIXEL = 16


def load_digits(flatten: bool = False) -> tuple[TensorDataset, TensorDataset]:
    """Load the 1,797 bundled 8×8 handwritten digits, split into train and test.

    The data are the UCI "Optical Recognition of Handwritten Digits" set
    (Alpaydin and Kaynak, 1998; CC BY 4.0), shipped inside minidl, so
    nothing is downloaded.

    Parameters
    ----------
    flatten : bool, default False
        Give each image as a vector of 64 pixels (for an MLP) instead of a
        1×8×8 image (for a CNN).

    Returns
    -------
    train, test : TensorDataset
        Samples ``(image, label)``: images float32 in [0, 1] (the raw 0–16
        counts divided by 16), of shape (N, 1, 8, 8), or (N, 64) with
        ``flatten=True``; labels int64 from 0 to 9. ``len(train) == 1442``
        and ``len(test) == 355``.

    Notes
    -----
    The split is stratified and fixed: counting the samples of each class in
    file order, the 5th, 10th, 15th, ... go to the test split, so 20% of
    every class (rounded down) is test and both splits have the same class
    proportions. Within a split the samples keep their order in the file.
    No random numbers are involved, so the split is the same on every run,
    machine and NumPy version, and :func:`minidl.manual_seed` does not
    change it.

    Examples
    --------
    >>> from minidl.data import load_digits
    >>> train, test = load_digits()
    >>> image, label = train[0]
    >>> image.shape, image.dtype, label.dtype
    ((1, 8, 8), dtype('float32'), dtype('int64'))
    """
    with resources.files(__package__).joinpath("digits.npz").open("rb") as f, np.load(f) as npz:
        images, labels = npz["images"], npz["labels"]
    images = images.astype(np.float32) / MAX_PIXEL
    images = images.reshape(-1, 64) if flatten else images.reshape(-1, 1, 8, 8)
    labels = labels.astype(np.int64)
    train_index, test_index = _stratified_split(labels)
    return (TensorDataset(images[train_index], labels[train_index]),
            TensorDataset(images[test_index], labels[test_index]))


def _stratified_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the train and test samples: every fifth sample of each class goes to test."""
    is_test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        is_test[members[TEST_EVERY - 1::TEST_EVERY]] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)
