"""Dropout (Srivastava et al., 2014) and flattening."""

from __future__ import annotations

from minidl.autograd.tensor import Tensor
from minidl.random import generator


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    The scaling keeps the expected value unchanged, so evaluation
    (``training=False``) is the identity. The mask comes from minidl's
    generator (:func:`minidl.manual_seed`).
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    keep = generator().random(x.shape) >= p
    return x * (keep.astype(x.dtype) / (1 - p)).astype(x.dtype)


def flatten(x: Tensor, start_dim: int = 1) -> Tensor:
    """Merge every axis from ``start_dim`` on into one: (N, C, H, W) -> (N, C*H*W)."""
    if not -x.ndim <= start_dim < max(x.ndim, 1):
        raise ValueError(f"flatten: start_dim {start_dim} is not an axis of a tensor of shape "
                         f"{x.shape} (expected {-x.ndim} <= start_dim < {max(x.ndim, 1)})")
    return x.reshape(*x.shape[:start_dim], -1)
