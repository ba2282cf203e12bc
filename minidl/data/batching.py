"""How samples become a batch: stack each field, then fix its dtype.

A sample is what ``dataset[i]`` returns: a tuple of fields such as
``(image, label)``, or a single array. :func:`collate` stacks field ``k`` of
every sample into one array with a new leading batch axis, and
:func:`batch_dtype` decides the dtype the batch is handed out in.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number
from typing import Any

import numpy as np

from minidl.autograd.creation import tensor
from minidl.autograd.tensor import Tensor


def batch_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype that data of ``dtype`` has once it is in a batch.

    Floats become float32 (the deep-learning default) except float64, which
    stays float64 so that float64 experiments such as gradient checks keep
    their precision; integers of any width become int64 (what
    :class:`~minidl.nn.CrossEntropyLoss` expects of class labels); bools stay
    bool.

    Parameters
    ----------
    dtype : numpy.dtype
        The dtype of the data in the dataset.

    Returns
    -------
    numpy.dtype

    Raises
    ------
    TypeError
        For dtypes a minidl Tensor cannot hold, such as strings or objects.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.data.batching import batch_dtype
    >>> batch_dtype(np.dtype(np.uint8)), batch_dtype(np.dtype(np.float16))
    (dtype('int64'), dtype('float32'))
    """
    dtype = np.dtype(dtype)
    if dtype == np.float64 or dtype == np.bool_:
        return dtype
    if dtype.kind == "f":
        return np.dtype(np.float32)
    if dtype.kind in "iu":
        return np.dtype(np.int64)
    raise TypeError(
        f"data of dtype {dtype} cannot go into a batch: "
        "minidl tensors hold floats, integers and bools"
    )


def as_batch(array: np.ndarray) -> np.ndarray:
    """Return ``array`` converted to :func:`batch_dtype` (the same array if it already is).

    Parameters
    ----------
    array : numpy.ndarray

    Returns
    -------
    numpy.ndarray
    """
    dtype = batch_dtype(array.dtype)
    return array if array.dtype == dtype else array.astype(dtype)


def _field_array(value: Any, field: int) -> np.ndarray | np.generic:
    """One field of one sample as NumPy data; Python numbers follow :func:`minidl.tensor`."""
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, (np.ndarray, np.generic)):
        return value
    # Python floats become float32 here, as in minidl.tensor, and not float64
    # as np.asarray would make them: a label of 0.5 should not turn a batch into float64.
    if isinstance(value, (Number, list)):
        return tensor(value).data
    raise TypeError(
        f"field {field} of a sample is a {type(value).__name__}: a sample's fields must be "
        "NumPy arrays, Tensors, numbers or lists of numbers"
    )


def collate(samples: Sequence[Any]) -> tuple[np.ndarray, ...]:
    """Stack a list of samples into one batch array per field.

    Parameters
    ----------
    samples : sequence
        What ``dataset[i]`` returned for each index of the batch: tuples of
        fields (arrays, Tensors, numbers), all with the same number of fields,
        or single values, which count as one field (a list is one field too,
        not a tuple of fields).

    Returns
    -------
    tuple of numpy.ndarray
        Field ``k`` of every sample stacked along a new first axis, converted
        to :func:`batch_dtype`.

    Raises
    ------
    ValueError
        If there are no samples, the samples have different numbers of
        fields, or one field has different shapes in different samples.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.data import collate
    >>> x, y = collate([(np.zeros(3), 1), (np.ones(3), 0)])
    >>> x.shape, y
    ((2, 3), array([1, 0]))
    """
    if len(samples) == 0:
        raise ValueError("collate needs at least one sample to make a batch")
    rows = [s if isinstance(s, tuple) else (s,) for s in samples]
    n_fields = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != n_fields:
            raise ValueError(
                f"sample 0 of the batch has {n_fields} fields but sample {i} has {len(row)}"
            )
    batch = []
    for k in range(n_fields):
        values = [_field_array(row[k], k) for row in rows]
        shapes = {np.shape(v) for v in values}
        if len(shapes) > 1:
            raise ValueError(
                f"field {k} has different shapes in the samples of one batch: {sorted(shapes)}; "
                "every sample must have the same shape to be stacked"
            )
        batch.append(as_batch(np.stack(values)))
    return tuple(batch)
