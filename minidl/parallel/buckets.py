"""Flat gradient buckets: where each parameter's ``.grad`` lives during data parallelism.

One all-reduce per parameter pays the per-message cost once per tensor; a
LeNet has ten of them, a ResNet hundreds. Packing the gradients into a few
flat arrays ("buckets") lets one all-reduce serve many parameters, and making
each ``.grad`` a *view* into its bucket means backward writes the gradient
straight into the buffer that is sent: nothing is copied before or after.

Buckets fill in reverse parameter order because backward produces gradients
in roughly that order (the last layer's first), so the first bucket is ready
early and its all-reduce overlaps the rest of backward (Li et al., "PyTorch
Distributed", VLDB 2020, section 3.2.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from minidl.nn.parameter import Parameter


@dataclass
class Bucket:
    """One flat gradient buffer and the parameters whose gradients are views into it.

    Attributes
    ----------
    index : int
        Position in launch order (0 is all-reduced first).
    data : numpy.ndarray
        The flat buffer, 1-D, of the parameters' dtype.
    params : list of (str, Parameter)
        Names and parameters, in the order their views sit in ``data``.
    offsets : list of int
        Where each parameter's gradient starts in ``data``.
    pending : int
        Parameters whose gradient is not final yet in this backward pass.
    """

    index: int
    data: np.ndarray
    params: list[tuple[str, Parameter]] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    pending: int = 0

    def view(self, i: int) -> np.ndarray:
        """Parameter ``i``'s gradient: a view of ``data`` in the parameter's shape."""
        _, p = self.params[i]
        return self.data[self.offsets[i] : self.offsets[i] + p.size].reshape(p.shape)

    @property
    def nbytes(self) -> int:
        """Size of the buffer in bytes."""
        return self.data.nbytes


def assign_buckets(named_params: list[tuple[str, Parameter]], cap_bytes: float) -> list[Bucket]:
    """Group parameters, last first, into buckets of at most ``cap_bytes`` (at least one
    parameter each).

    Parameters
    ----------
    named_params : list of (str, Parameter)
        In the model's order; buckets take them in reverse.
    cap_bytes : float
        ``0``: one bucket per parameter (the naive scheme); ``inf``: one
        bucket per dtype. A new bucket also starts where the dtype changes.

    Returns
    -------
    list of Bucket
        With zeroed buffers; nothing is attached to the parameters yet.
    """
    # BEGIN SOLUTION buckets
    # walk the parameters last first; start a new bucket when the cap or the dtype says so
    groups: list[list[tuple[str, Parameter]]] = []
    size = 0
    for name, p in reversed(named_params):
        fits = groups and size + p.data.nbytes <= cap_bytes and groups[-1][-1][1].dtype == p.dtype
        if not fits:
            groups.append([])
            size = 0
        groups[-1].append((name, p))
        size += p.data.nbytes
    buckets = []
    for index, group in enumerate(groups):
        offsets = list(np.cumsum([0] + [p.size for _, p in group[:-1]]))
        total = sum(p.size for _, p in group)
        buckets.append(
            Bucket(
                index, np.zeros(total, dtype=group[0][1].dtype), group, [int(o) for o in offsets]
            )
        )
    return buckets
    # END SOLUTION
