"""Tensor parallelism (Megatron-LM): one linear layer's weight split over the ranks.

A linear layer ``Y = X W^T + b`` (``W`` of shape ``(out, in)``) can be cut two ways:

- **by output features** (:class:`ColumnParallelLinear`): rank ``r`` holds rows
  ``r`` of ``W`` (a slice of the outputs) and computes ``Y_r = X W_r^T + b_r``
  from the whole input. Gathering the ``Y_r`` along the features gives ``Y``;
- **by input features** (:class:`RowParallelLinear`): rank ``r`` holds columns
  ``r`` of ``W`` and computes ``X_r W_r^T`` from its slice of the input. The
  sum over the ranks is ``X W^T``; the bias is added once, after it.

Two conjugate operators carry the gradients right (Shoeybi et al. 2019):

- ``f``: the identity forward, an **all-reduce of the gradient** backward. It
  stands before a column-parallel layer: every rank used the whole ``X``, so
  ``X``'s gradient is the sum of every rank's contribution;
- ``g``: an **all-reduce forward**, the identity backward. It ends a
  row-parallel layer: the partial products are summed, and each rank's
  part of the sum got the whole gradient.

So a column-parallel layer (``gather_output=False``) followed by a
row-parallel one (``input_is_parallel=True``), an MLP block, communicates
twice per step: ``g``'s all-reduce forward and ``f``'s backward, both with
minidl's own :func:`~minidl.distributed.allreduce`. Gathering a column
layer's output uses minidl's :func:`~minidl.distributed.allgather`. Splits
need not be even: rank ``r`` holds the features
:func:`~minidl.distributed.chunk_bounds` gives it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minidl.autograd import Function, Tensor
from minidl.distributed import allgather, allreduce
from minidl.distributed.chunking import chunk_bounds
from minidl.distributed.world import world
from minidl.functional import linear
from minidl.nn.layers import Linear, check_input_dtype
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter


class CopyToParallel(Function):
    """``f``: the identity forward; backward, the gradient all-reduced (summed) over ``comm``."""

    def __init__(self, comm: Any) -> None:
        self.comm = comm

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, grad: np.ndarray) -> np.ndarray:
        summed = np.ascontiguousarray(grad).copy()
        return allreduce(summed, comm=self.comm)


class ReduceFromParallel(Function):
    """``g``: forward, the partial results all-reduced (summed) over ``comm``; backward, as is."""

    def __init__(self, comm: Any) -> None:
        self.comm = comm

    def forward(self, x: np.ndarray) -> np.ndarray:
        return allreduce(np.ascontiguousarray(x).copy(), comm=self.comm)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad


class GatherFromParallel(Function):
    """Forward, every rank's slice of the last axis gathered (all-gather); backward, this
    rank's slice of the gradient."""

    def __init__(self, comm: Any, sizes: tuple[int, ...]) -> None:
        self.comm, self.sizes = comm, sizes  # each rank's number of features

    def forward(self, x: np.ndarray) -> np.ndarray:
        p, rank, widest = len(self.sizes), self.comm.Get_rank(), max(self.sizes)
        rows = x.shape[:-1]
        # minidl's allgather splits a flat buffer into p equal chunks: pad each
        # rank's slice to the widest, then cut the padding off.
        padded = np.zeros((p, *rows, widest), x.dtype)
        padded[rank, ..., : x.shape[-1]] = x
        allgather(padded.reshape(-1), comm=self.comm)
        return np.concatenate([padded[r, ..., : self.sizes[r]] for r in range(p)], axis=-1)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        start = sum(self.sizes[: self.comm.Get_rank()])
        return np.ascontiguousarray(grad[..., start : start + self.sizes[self.comm.Get_rank()]])


class ScatterToParallel(Function):
    """Forward, this rank's slice of the last axis; backward, the slices' gradients gathered."""

    def __init__(self, comm: Any, sizes: tuple[int, ...]) -> None:
        self.comm, self.sizes = comm, sizes

    def forward(self, x: np.ndarray) -> np.ndarray:
        start = sum(self.sizes[: self.comm.Get_rank()])
        return np.ascontiguousarray(x[..., start : start + self.sizes[self.comm.Get_rank()]])

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return GatherFromParallel(self.comm, self.sizes).forward(grad)


def _split(features: int, comm: Any, what: str, where: str) -> tuple[int, ...]:
    """Each rank's number of ``features`` (balanced); every rank must get at least one."""
    p = comm.Get_size()
    if isinstance(features, bool) or not isinstance(features, int) or features < 1:
        raise ValueError(f"{where}: {what} must be an integer >= 1, got {features!r}")
    if features < p:
        raise ValueError(f"{where}: {what}={features} cannot be split over {p} ranks: every "
                         "rank needs at least one")
    bounds = chunk_bounds(features, p)
    return tuple(b - a for a, b in zip(bounds[:-1], bounds[1:]))


class ColumnParallelLinear(Module):
    """A linear layer whose output features are split over the ranks of ``comm``.

    Rank ``r`` holds ``weight`` rows ``r`` (shape ``(out_r, in_features)``)
    and the matching slice of ``bias``. Collective: every rank of ``comm``
    runs forward and backward together.

    Parameters
    ----------
    in_features, out_features : int
        The whole layer's sizes.
    bias : bool, default True
    comm : mpi4py.MPI.Intracomm, optional
        The tensor-parallel ranks; None means ``MPI.COMM_WORLD``.
    gather_output : bool, default True
        Return the whole output on every rank (an all-gather); False returns
        this rank's slice, for a :class:`RowParallelLinear` with
        ``input_is_parallel=True`` to take.
    dtype : numpy dtype, default float32
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, comm: Any = None,
                 gather_output: bool = True, dtype: Any = np.float32) -> None:
        super().__init__()
        self.comm = world(comm, "ColumnParallelLinear")
        self.sizes = _split(out_features, self.comm, "out_features", "ColumnParallelLinear")
        self.in_features, self.out_features = in_features, out_features
        self.gather_output = gather_output
        mine = self.sizes[self.comm.Get_rank()]
        full = Linear(in_features, out_features, bias=bias, dtype=dtype)  # the same init rule
        a = sum(self.sizes[: self.comm.Get_rank()])
        self.weight = Parameter(full.weight.data[a : a + mine].copy())
        self.bias = Parameter(full.bias.data[a : a + mine].copy()) if bias else None

    @classmethod
    def from_linear(cls, layer: Linear, comm: Any = None, **kwargs: Any) -> ColumnParallelLinear:
        """This rank's shard of ``layer`` (rows of its weight): the same function, split."""
        out_features, in_features = layer.weight.shape
        shard = cls(in_features, out_features, bias=layer.bias is not None, comm=comm,
                    dtype=layer.weight.data.dtype, **kwargs)
        a = sum(shard.sizes[: shard.comm.Get_rank()])
        shard.weight.data[...] = layer.weight.data[a : a + shard.weight.shape[0]]
        if layer.bias is not None:
            shard.bias.data[...] = layer.bias.data[a : a + shard.weight.shape[0]]
        return shard

    def forward(self, x: Tensor) -> Tensor:
        check_input_dtype(self, x, self.weight)
        y = linear(CopyToParallel.apply(x, comm=self.comm), self.weight, self.bias)
        return GatherFromParallel.apply(y, comm=self.comm, sizes=self.sizes) \
            if self.gather_output else y

    def to_linear(self) -> Linear:
        """The whole layer, on every rank (collective: gathers every rank's rows)."""
        layer = Linear(self.in_features, self.out_features, bias=self.bias is not None,
                       dtype=self.weight.data.dtype)
        gather = GatherFromParallel(self.comm, self.sizes)
        layer.weight.data[...] = gather.forward(self.weight.data.T).T
        if self.bias is not None:
            layer.bias.data[...] = gather.forward(self.bias.data)
        return layer

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features} "
                f"(this rank: {self.weight.shape[0]}), gather_output={self.gather_output}")


class RowParallelLinear(Module):
    """A linear layer whose input features are split over the ranks of ``comm``.

    Rank ``r`` holds ``weight`` columns ``r`` (shape ``(out_features, in_r)``);
    the bias is whole on every rank and added once, after the sum.
    Collective: every rank of ``comm`` runs forward and backward together.

    Parameters
    ----------
    in_features, out_features : int
        The whole layer's sizes.
    bias : bool, default True
    comm : mpi4py.MPI.Intracomm, optional
        The tensor-parallel ranks; None means ``MPI.COMM_WORLD``.
    input_is_parallel : bool, default True
        The input is already this rank's slice of the features (a
        :class:`ColumnParallelLinear`'s with ``gather_output=False``); False
        takes the whole input and slices it.
    dtype : numpy dtype, default float32
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, comm: Any = None,
                 input_is_parallel: bool = True, dtype: Any = np.float32) -> None:
        super().__init__()
        self.comm = world(comm, "RowParallelLinear")
        self.sizes = _split(in_features, self.comm, "in_features", "RowParallelLinear")
        self.in_features, self.out_features = in_features, out_features
        self.input_is_parallel = input_is_parallel
        mine = self.sizes[self.comm.Get_rank()]
        full = Linear(in_features, out_features, bias=bias, dtype=dtype)
        a = sum(self.sizes[: self.comm.Get_rank()])
        self.weight = Parameter(full.weight.data[:, a : a + mine].copy())
        self.bias = Parameter(full.bias.data.copy()) if bias else None

    @classmethod
    def from_linear(cls, layer: Linear, comm: Any = None, **kwargs: Any) -> RowParallelLinear:
        """This rank's shard of ``layer`` (columns of its weight): the same function, split."""
        out_features, in_features = layer.weight.shape
        shard = cls(in_features, out_features, bias=layer.bias is not None, comm=comm,
                    dtype=layer.weight.data.dtype, **kwargs)
        a = sum(shard.sizes[: shard.comm.Get_rank()])
        shard.weight.data[...] = layer.weight.data[:, a : a + shard.weight.shape[1]]
        if layer.bias is not None:
            shard.bias.data[...] = layer.bias.data
        return shard

    def forward(self, x: Tensor) -> Tensor:
        check_input_dtype(self, x, self.weight)
        if not self.input_is_parallel:
            x = ScatterToParallel.apply(x, comm=self.comm, sizes=self.sizes)
        y = ReduceFromParallel.apply(linear(x, self.weight, None), comm=self.comm)
        return y + self.bias if self.bias is not None else y

    def to_linear(self) -> Linear:
        """The whole layer, on every rank (collective: gathers every rank's columns)."""
        layer = Linear(self.in_features, self.out_features, bias=self.bias is not None,
                       dtype=self.weight.data.dtype)
        layer.weight.data[...] = GatherFromParallel(self.comm, self.sizes).forward(
            self.weight.data)
        if self.bias is not None:
            layer.bias.data[...] = self.bias.data
        return layer

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features} (this rank: {self.weight.shape[1]}), "
                f"out_features={self.out_features}, input_is_parallel={self.input_is_parallel}")


ELEMENTWISE = ("ReLU", "Tanh", "Sigmoid", "GELU", "Identity")
"""Layers that act on each feature alone: a column-parallel layer's slices pass through them."""


def parallelize_linears(model: Module, comm: Any = None) -> Module:
    """``model`` (an ``nn.Sequential``) with each pair of linear layers made tensor-parallel.

    Each ``Linear`` followed (after elementwise layers only, such as
    ``ReLU``) by another ``Linear`` becomes a :class:`ColumnParallelLinear`
    that keeps its output sliced and a :class:`RowParallelLinear` that takes
    the slices: Megatron's MLP block, two all-reduces per step. Other layers
    stay whole, computed alike on every rank. The same weights: the result
    computes what ``model`` computes. Collective only in forward and backward.
    """
    from minidl.nn.containers import Sequential

    layers = list(model)
    out, i = [], 0
    while i < len(layers):
        j = i + 1
        while j < len(layers) and type(layers[j]).__name__ in ELEMENTWISE:
            j += 1
        pair = (isinstance(layers[i], Linear) and j < len(layers)
                and isinstance(layers[j], Linear))
        if pair and layers[i].weight.shape[0] >= world(comm).Get_size():
            out.append(ColumnParallelLinear.from_linear(layers[i], comm, gather_output=False))
            out += layers[i + 1 : j]
            out.append(RowParallelLinear.from_linear(layers[j], comm, input_is_parallel=True))
            i = j + 1
        else:
            out.append(layers[i])
            i += 1
    return Sequential(*out)
