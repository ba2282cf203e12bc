"""Loss functions: cross-entropy and negative log-likelihood for classification, mean squared
error for regression.

Every loss takes ``reduction``, as in PyTorch: ``"mean"`` (the default)
averages the per-sample losses, ``"sum"`` adds them up, and ``"none"`` returns
them one by one, so that you can weight or mask them yourself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minidl.autograd.function import Function
from minidl.autograd.tensor import Tensor
from minidl.functional.activation import _log_softmax

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(loss: str, reduction: Any) -> str:
    """``reduction`` itself, or a ValueError naming the loss and the values it may take."""
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(
            f"{loss}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}"
        )
    return reduction


def _reduce(losses: np.ndarray, reduction: str) -> np.ndarray:
    """Combine the per-sample ``losses`` as ``reduction`` says."""
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


def _share(g: np.ndarray, reduction: str, n: int) -> np.ndarray:
    """The backward of :func:`_reduce`: the gradient that reaches each of the ``n`` losses.

    A mean hands each sample ``g / n``, a sum hands each ``g``, and with no
    reduction ``g`` already holds one value per sample.
    """
    return g / n if reduction == "mean" else g


class NLLLoss(Function):
    """``-log_probs[i, target[i]]`` for each row ``i``, then the reduction.

    Only the target's entry of each row gets a gradient: ``-1`` times that
    row's share of ``g``.
    """

    def __init__(self, targets: np.ndarray, reduction: str = "mean") -> None:
        self.targets, self.reduction = targets, reduction

    def forward(self, log_probs):
        self.shape, self.dtype = log_probs.shape, log_probs.dtype
        rows = np.arange(log_probs.shape[0])
        return _reduce(-log_probs[rows, self.targets], self.reduction)

    def backward(self, g):
        n = self.shape[0]
        grad = np.zeros(self.shape, dtype=self.dtype)
        grad[np.arange(n), self.targets] = -_share(g, self.reduction, n)
        return grad


class CrossEntropy(Function):
    """``-log softmax(logits)[i, target[i]]`` for each row ``i``, then the reduction, as one op.

    Fusing softmax, log and the pick into one op gives the famous backward
    ``softmax(logits) - one_hot(target)``, times each row's share of ``g``
    (``g / N`` for the mean).
    """

    def __init__(self, targets: np.ndarray, reduction: str = "mean") -> None:
        self.targets, self.reduction = targets, reduction

    def forward(self, logits):
        n = logits.shape[0]
        self.log_probs = _log_softmax(logits, axis=1)
        return _reduce(-self.log_probs[np.arange(n), self.targets], self.reduction)

    def backward(self, g):
        n = self.log_probs.shape[0]
        grad = np.exp(self.log_probs)
        grad[np.arange(n), self.targets] -= 1
        share = _share(g, self.reduction, n)
        # One share per row with reduction="none": stand it up as a column to scale each row.
        return grad * (share[:, None] if share.ndim == 1 else share)


# What each classification loss calls its first argument, for its error messages.
_SCORES = {"cross_entropy": "logits", "nll_loss": "log-probabilities"}


def _check_targets(loss: str, scores: Tensor, targets: Any) -> np.ndarray:
    """The class ``targets`` as an integer array of shape (N,) that indexes ``scores`` (N, C)."""
    targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if scores.ndim != 2:
        raise ValueError(
            f"{loss} expects {_SCORES[loss]} of shape (batch, classes), got {scores.shape}"
        )
    if targets.dtype.kind not in "iu":
        raise TypeError(f"{loss} expects integer class targets, got dtype {targets.dtype}")
    if targets.shape != (scores.shape[0],):
        raise ValueError(
            f"{loss}: targets of shape {targets.shape} do not match {_SCORES[loss]} of shape "
            f"{scores.shape}; expected one class index per row, shape ({scores.shape[0]},)"
        )
    if targets.size and (targets.min() < 0 or targets.max() >= scores.shape[1]):
        bad = targets[(targets < 0) | (targets >= scores.shape[1])][0]
        raise ValueError(f"{loss}: target {bad} is out of range for {scores.shape[1]} classes")
    return targets


def cross_entropy(logits: Tensor, targets: Any, reduction: str = "mean") -> Tensor:
    """Cross-entropy between ``logits`` and integer class ``targets``.

    The same as ``nll_loss(log_softmax(logits, axis=1), targets)``, computed as
    one op.

    Parameters
    ----------
    logits : Tensor
        Unnormalised scores of shape (batch, classes).
    targets : array_like of int
        The class of each row, shape (batch,), values in ``[0, classes)``.
    reduction : {"mean", "sum", "none"}, default "mean"
        Average the rows' losses, add them up, or return one per row.

    Returns
    -------
    Tensor
        A scalar, or shape (batch,) with ``reduction="none"``.

    Raises
    ------
    ValueError
        If ``logits`` is not 2-D, ``targets`` is not (batch,), a target is not a
        class, or ``reduction`` is not one of the three.
    TypeError
        If ``targets`` are not integers.

    Examples
    --------
    >>> import numpy as np, minidl, minidl.functional as F
    >>> logits = minidl.tensor([[0.0, 0.0]])
    >>> round(F.cross_entropy(logits, [1]).item(), 4)  # log 2
    0.6931
    >>> F.cross_entropy(minidl.tensor([[0.0, 0.0], [0.0, 9.0]]), [1, 1], reduction="none").shape
    (2,)
    """
    reduction = check_reduction("cross_entropy", reduction)
    targets = _check_targets("cross_entropy", logits, targets)
    return CrossEntropy.apply(logits, targets=targets, reduction=reduction)


def nll_loss(log_probs: Tensor, targets: Any, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of integer class ``targets`` under ``log_probs``.

    Feed it :func:`~minidl.functional.log_softmax` of the logits (along axis 1);
    the pair is what :func:`cross_entropy` does in one op.

    Parameters
    ----------
    log_probs : Tensor
        Log-probabilities of shape (batch, classes).
    targets : array_like of int
        The class of each row, shape (batch,), values in ``[0, classes)``.
    reduction : {"mean", "sum", "none"}, default "mean"
        Average the rows' losses, add them up, or return one per row.

    Returns
    -------
    Tensor
        A scalar, or shape (batch,) with ``reduction="none"``.

    Raises
    ------
    ValueError, TypeError
        As :func:`cross_entropy`.
    """
    reduction = check_reduction("nll_loss", reduction)
    targets = _check_targets("nll_loss", log_probs, targets)
    return NLLLoss.apply(log_probs, targets=targets, reduction=reduction)


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Squared error ``(input - target) ** 2``, averaged (by default), summed, or elementwise.

    Parameters
    ----------
    input : Tensor
    target : Tensor or array_like
        The same shape as ``input`` (minidl does not broadcast here, where
        PyTorch warns and does).
    reduction : {"mean", "sum", "none"}, default "mean"

    Returns
    -------
    Tensor
        A scalar, or the shape of ``input`` with ``reduction="none"``.

    Raises
    ------
    ValueError
        If the shapes differ or ``reduction`` is not one of the three.
    """
    reduction = check_reduction("mse_loss", reduction)
    target_shape = np.shape(target.data if isinstance(target, Tensor) else target)
    if tuple(input.shape) != tuple(target_shape):
        raise ValueError(
            f"mse_loss: input of shape {input.shape} and target of shape {target_shape} differ"
        )
    diff = input - target
    squares = diff * diff
    if reduction == "mean":
        return squares.mean()
    return squares.sum() if reduction == "sum" else squares
