"""Embedding lookup: rows of a weight matrix picked by integer indices, as one op.

A lookup is a linear layer fed one-hot rows (``one_hot(i) @ weight`` is row
``i``) without ever building the one-hot matrix. Its backward is that linear
layer's weight gradient, again without the one-hot matrix: each output row's
gradient is added into the weight row it came from.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minidl.autograd.function import Function
from minidl.autograd.tensor import Tensor


class Embedding(Function):
    """``out[...] = weight[indices[...]]``; the weight's gradient is scattered back by index.

    ``np.add.at`` does the scatter because an index may appear more than once
    (the same word twice in a sentence): its rows' gradients must add up.
    ``grad[indices] += g`` would not do that, since NumPy's buffered fancy
    assignment keeps only the last write to a repeated index.
    """

    def __init__(self, indices: np.ndarray) -> None:
        self.indices = indices

    def forward(self, weight):
        self.weight_shape, self.dtype = weight.shape, weight.dtype
        return weight[self.indices]

    def backward(self, g):
        grad = np.zeros(self.weight_shape, dtype=self.dtype)
        np.add.at(grad, self.indices, g)
        return grad


def check_indices(owner: str, indices: Any, num_embeddings: int) -> np.ndarray:
    """``indices`` as an integer array with every value in ``[0, num_embeddings)``.

    Negative indices are refused, as PyTorch does: NumPy would quietly read
    them from the end of the table.

    Raises
    ------
    TypeError
        If the indices are not integers (float tensors are the usual mistake).
    IndexError
        Naming the first index out of range and the size of the table.
    """
    indices = np.asarray(indices.data if isinstance(indices, Tensor) else indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(
            f"{owner}: indices must be integers (int64, as PyTorch's Long), got dtype "
            f"{indices.dtype}"
        )
    outside = (indices < 0) | (indices >= num_embeddings)
    if outside.any():
        raise IndexError(
            f"{owner}: index {indices[outside][0]} is out of range for an embedding table of "
            f"{num_embeddings} rows (valid: 0 to {num_embeddings - 1})"
        )
    return indices


def embedding(input: Any, weight: Tensor) -> Tensor:
    """Look up rows of ``weight``: ``weight[input]``, differentiable in ``weight``.

    Parameters
    ----------
    input : Tensor or array_like of int
        Indices of any shape, each in ``[0, num_embeddings)``.
    weight : Tensor
        The table, shape (num_embeddings, embedding_dim).

    Returns
    -------
    Tensor
        Shape ``input.shape + (embedding_dim,)``.

    Raises
    ------
    TypeError
        If ``input`` is not integers.
    IndexError
        If an index is negative or not below ``num_embeddings``.
    ValueError
        If ``weight`` is not 2-D.

    Examples
    --------
    >>> import numpy as np, minidl, minidl.functional as F
    >>> table = minidl.tensor(np.arange(6.0).reshape(3, 2))
    >>> F.embedding(minidl.tensor([2, 0, 2]), table).data
    array([[4., 5.],
           [0., 1.],
           [4., 5.]])
    """
    if weight.ndim != 2:
        raise ValueError(
            f"embedding: weight must have shape (num_embeddings, embedding_dim), got {weight.shape}"
        )
    indices = check_indices("embedding", input, weight.shape[0])
    return Embedding.apply(weight, indices=indices)
