"""Loss functions: cross-entropy for classification, mean squared error for regression."""

from __future__ import annotations

from typing import Any

import numpy as np

from minidl.autograd.function import Function
from minidl.autograd.tensor import Tensor
from minidl.functional.activation import _log_softmax


class CrossEntropy(Function):
    """Mean over the batch of ``-log softmax(logits)[target]``, fused into one op.

    Its backward is the famous ``(softmax(logits) - one_hot(target)) / N``.
    """

    def __init__(self, targets: np.ndarray) -> None:
        self.targets = targets

    def forward(self, logits):
        n = logits.shape[0]
        self.log_probs = _log_softmax(logits, axis=1)
        return -self.log_probs[np.arange(n), self.targets].mean()

    def backward(self, g):
        n = self.log_probs.shape[0]
        grad = np.exp(self.log_probs)
        grad[np.arange(n), self.targets] -= 1
        return grad * (g / n)


def _check_targets(logits: Tensor, targets: Any) -> np.ndarray:
    targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if logits.ndim != 2:
        raise ValueError(
            f"cross_entropy expects logits of shape (batch, classes), got {logits.shape}"
        )
    if targets.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy expects integer class targets, got dtype {targets.dtype}")
    if targets.shape != (logits.shape[0],):
        raise ValueError(
            f"cross_entropy: targets of shape {targets.shape} do not match logits of shape "
            f"{logits.shape}; expected one class index per row, shape ({logits.shape[0]},)"
        )
    if targets.size and (targets.min() < 0 or targets.max() >= logits.shape[1]):
        bad = targets[(targets < 0) | (targets >= logits.shape[1])][0]
        raise ValueError(
            f"cross_entropy: target {bad} is out of range for {logits.shape[1]} classes"
        )
    return targets


def cross_entropy(logits: Tensor, targets: Any) -> Tensor:
    """Cross-entropy between ``logits`` and integer class ``targets``, averaged over the batch.

    Parameters
    ----------
    logits : Tensor
        Unnormalised scores of shape (batch, classes).
    targets : array_like of int
        The class of each row, shape (batch,), values in ``[0, classes)``.

    Returns
    -------
    Tensor
        A scalar.

    Examples
    --------
    >>> import numpy as np, minidl, minidl.functional as F
    >>> logits = minidl.tensor([[0.0, 0.0]])
    >>> round(F.cross_entropy(logits, [1]).item(), 4)  # log 2
    0.6931
    """
    return CrossEntropy.apply(logits, targets=_check_targets(logits, targets))


def mse_loss(input: Tensor, target: Any) -> Tensor:
    """Mean squared error ``mean((input - target) ** 2)``; the shapes must match."""
    target_shape = np.shape(target.data if isinstance(target, Tensor) else target)
    if tuple(input.shape) != tuple(target_shape):
        raise ValueError(
            f"mse_loss: input of shape {input.shape} and target of shape {target_shape} differ"
        )
    diff = input - target
    return (diff * diff).mean()
