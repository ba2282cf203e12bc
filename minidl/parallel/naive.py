"""The data-parallel gradient exchange a student writes first: one all-reduce per parameter.

Compare it with :class:`~minidl.parallel.DistributedDataParallel`, whose
:class:`~minidl.parallel.reducer.Reducer` packs gradients into a few flat
buckets and starts each bucket's all-reduce while backward is still running.
Both give the same result; the difference is the number of messages and
whether communication hides behind compute.
"""

from __future__ import annotations

from typing import Any

from minidl.distributed import ScheduleFn, allreduce
from minidl.distributed.world import world
from minidl.nn.module import Module
from minidl.parallel.algorithm import check_algorithm


def allreduce_gradients(model: Module, comm: Any = None, algorithm: str | ScheduleFn = "ring",
                        average: bool = True) -> None:
    """Sum (and by default average) every parameter's ``.grad`` over all ranks, in place.

    Call it after ``loss.backward()`` and before ``optimizer.step()``. With
    each rank's loss the mean over its own ``b / p`` samples, averaging gives
    exactly the gradient of the mean loss over all ``b`` samples.

    Parameters
    ----------
    model : Module
        Every parameter that requires grad must have a ``.grad`` on every rank.
    comm : mpi4py.MPI.Intracomm, optional
        ``None`` means ``MPI.COMM_WORLD``.
    algorithm : str or callable, default "ring"
        Any all-reduce algorithm of :func:`minidl.distributed.allreduce`: a
        name in ``ALGORITHMS["allreduce"]``, ``"auto"``, ``"mpi"``, or a
        schedule function ``fn(p, rank, n)`` of your own.
    average : bool, default True
        Divide by the number of ranks after summing.

    Raises
    ------
    ValueError
        If ``algorithm`` is unknown, or a parameter has no gradient.
    """
    check_algorithm(algorithm, "allreduce_gradients")
    comm = world(comm)
    p = comm.Get_size()
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.grad is None:
            raise ValueError(
                f"allreduce_gradients: {name!r} has no gradient on rank {comm.Get_rank()}; "
                "call loss.backward() first, on every rank"
            )
        allreduce(param.grad, algorithm=algorithm, comm=comm)
        if average:
            param.grad /= p
