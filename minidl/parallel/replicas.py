"""Keeping replicas identical: same architecture, same starting weights, same weights after
each step."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from minidl.distributed import broadcast
from minidl.distributed.world import world
from minidl.nn.module import Module


def describe(model: Module) -> list[tuple[str, tuple[int, ...], str]]:
    """``(name, shape, dtype)`` of every parameter and buffer, in order: the model's
    architecture."""
    entries = [(name, tuple(p.shape), str(p.dtype)) for name, p in model.named_parameters()]
    entries += [
        (name, tuple(np.shape(b)), str(np.asarray(b).dtype)) for name, b in model.named_buffers()
    ]
    return entries


def check_same_architecture(model: Module, comm: Any = None) -> None:
    """Raise on every rank unless every rank's model has the same parameters and buffers.

    Compares names, shapes and dtypes with rank 0's and names the first
    difference and the rank that has it.

    Raises
    ------
    ValueError
        On every rank, if any rank differs.
    """
    comm = world(comm)
    # Architecture descriptions are small irregular Python lists, exchanged
    # once: pickling (lower-case allgather) is the right tool here.
    everyone = comm.allgather(describe(model))
    reference = everyone[0]
    for rank, entries in enumerate(everyone[1:], start=1):
        problem = _first_difference(reference, entries)
        if problem:
            raise ValueError(f"the model differs between ranks: rank {rank} vs rank 0: {problem}")


def _first_difference(ref: list, other: list) -> str | None:
    for i, (a, b) in enumerate(zip(ref, other)):
        if a != b:
            return (
                f"entry {i} is {b[0]!r} of shape {b[1]} and dtype {b[2]}, "
                f"but {a[0]!r} of shape {a[1]} and dtype {a[2]} on rank 0"
            )
    if len(ref) != len(other):
        return f"{len(other)} parameters and buffers, but {len(ref)} on rank 0"
    return None


def broadcast_parameters(model: Module, root: int = 0, comm: Any = None) -> None:
    """Copy rank ``root``'s parameters and buffers into every rank's model, in place.

    After this, replicas started from different seeds are identical.
    """
    comm = world(comm)
    for _, p in model.named_parameters():
        broadcast(p.data, root=root, comm=comm)
    for module in model.modules():
        for key, buf in module._buffers.items():
            if buf is None:
                continue
            if isinstance(buf, np.ndarray) and buf.ndim and buf.flags.c_contiguous:
                broadcast(buf, root=root, comm=comm)
            else:
                module._buffers[key] = comm.bcast(np.asarray(buf), root=root)


def parameters_hash(model: Module) -> str:
    """A SHA-256 hex digest of every parameter and buffer's bytes, names and shapes.

    Equal on all ranks exactly when the replicas are bit-for-bit identical:
    print it after each step to watch data parallelism keep them in sync.
    """
    digest = hashlib.sha256()
    for name, p in model.named_parameters():
        digest.update(f"{name}{p.shape}{p.dtype}".encode())
        digest.update(np.ascontiguousarray(p.data).tobytes())
    for name, b in model.named_buffers():
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(b).tobytes())
    return digest.hexdigest()
