"""``Dataset``, the interface every data set follows, and ``TensorDataset``, arrays in memory."""

from __future__ import annotations

from typing import Any

import numpy as np

from minidl.autograd.creation import tensor
from minidl.autograd.tensor import Tensor
from minidl.data.batching import batch_dtype


class Dataset:
    """Base class of data sets: ``len(dataset)`` samples, ``dataset[i]`` the i-th.

    Subclass it and define ``__len__`` and ``__getitem__``; a
    :class:`~minidl.data.DataLoader` then batches it. A sample is a tuple of
    fields, such as ``(image, label)``, each a NumPy array or a number.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.data import Dataset, DataLoader
    >>> class Squares(Dataset):
    ...     def __len__(self):
    ...         return 4
    ...     def __getitem__(self, i):
    ...         return np.array([float(i)]), i * i
    >>> [y.tolist() for _, y in DataLoader(Squares(), batch_size=2)]
    [[0, 1], [4, 9]]
    """

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__} does not define __len__()")

    def __getitem__(self, index: int) -> Any:
        raise TypeError(f"{type(self).__name__} does not define __getitem__()")


class TensorDataset(Dataset):
    """Samples held in memory as arrays: sample ``i`` is ``(arrays[0][i], arrays[1][i], ...)``.

    Parameters
    ----------
    *arrays : numpy.ndarray or Tensor
        One array per field (for example images and labels), all with the
        same length along the first axis. NumPy arrays and Tensors are kept
        as they are, not copied; other array-likes are converted as
        :func:`minidl.tensor` converts them.

    Raises
    ------
    ValueError
        If no array is given, one is a scalar, or their first dimensions differ.
    TypeError
        If an array's dtype cannot go into a batch (see
        :func:`minidl.data.batching.batch_dtype`).

    Notes
    -----
    Indexing with an array of indices returns whole batches, one array per
    field, by NumPy fancy indexing. :class:`~minidl.data.DataLoader` relies
    on that to build each batch with one indexing operation per field instead
    of a Python loop over samples.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.data import TensorDataset
    >>> data = TensorDataset(np.arange(6.0).reshape(3, 2), np.array([0, 1, 0]))
    >>> len(data)
    3
    >>> x, y = data[1]
    >>> x.tolist(), int(y)
    ([2.0, 3.0], 1)
    """

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError(
                "TensorDataset needs at least one array, e.g. TensorDataset(images, labels)"
            )
        self.arrays = tuple(_as_array(a) for a in arrays)
        for k, array in enumerate(self.arrays):
            if array.ndim == 0:
                raise ValueError(
                    f"array {k} of the TensorDataset is a scalar; "
                    "each array needs a first (sample) axis"
                )
            batch_dtype(array.dtype)
        lengths = {len(a) for a in self.arrays}
        if len(lengths) > 1:
            shapes = ", ".join(str(a.shape) for a in self.arrays)
            raise ValueError(
                "the arrays of a TensorDataset must have the same first dimension "
                f"(one row per sample), got shapes {shapes}"
            )

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: Any) -> tuple[Any, ...]:
        return tuple(array[index] for array in self.arrays)

    def __repr__(self) -> str:
        fields = ", ".join(f"{a.dtype}{list(a.shape)}" for a in self.arrays)
        return f"TensorDataset({fields})"


def _as_array(data: Any) -> np.ndarray:
    """NumPy arrays as they are, a Tensor's data, anything else through :func:`minidl.tensor`."""
    if isinstance(data, Tensor):
        return data.data
    if isinstance(data, np.ndarray):
        return data
    return tensor(data).data
