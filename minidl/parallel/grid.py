"""``ProcessGrid``: the ranks as a grid of data × pipeline × tensor parallelism.

``P = dp * pp * tp`` ranks are laid out with tensor parallelism fastest,
then the pipeline, then data parallelism: rank ``r`` has coordinates
``tp_rank = r % tp``, ``pp_rank = (r // tp) % pp``, ``dp_rank = r // (tp * pp)``.
The ranks of one tensor-parallel group are neighbours (on a cluster, one
node: they talk twice per layer), a pipeline's stages come next, and the
data-parallel replicas, which talk once per step, are farthest apart.
"""

from __future__ import annotations

from typing import Any

from minidl.distributed.watchdog import watching
from minidl.distributed.world import world


class ProcessGrid:
    """Split ``comm`` into data-parallel, pipeline and tensor-parallel communicators.

    Collective to construct. Every rank passes the same sizes (checked by
    the product, and each group's size).

    Parameters
    ----------
    dp, pp, tp : int, default 1
        Data-parallel replicas, pipeline stages, tensor-parallel ranks.
    comm : mpi4py.MPI.Intracomm, optional
        None means ``MPI.COMM_WORLD``; its size must be ``dp * pp * tp``.

    Attributes
    ----------
    dp_comm, pp_comm, tp_comm : mpi4py.MPI.Intracomm
        This rank's replicas (same stage and tensor slice), its pipeline (same
        replica and slice, ordered by stage), and its tensor-parallel group.
    dp_rank, pp_rank, tp_rank : int
        This rank's coordinates (its rank in each of the three).
    """

    def __init__(self, dp: int = 1, pp: int = 1, tp: int = 1, comm: Any = None) -> None:
        comm = world(comm, "ProcessGrid")
        for name, size in (("dp", dp), ("pp", pp), ("tp", tp)):
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(f"ProcessGrid: {name} must be an integer >= 1, got {size!r}")
        if dp * pp * tp != comm.Get_size():
            raise ValueError(
                f"ProcessGrid: dp * pp * tp = {dp} * {pp} * {tp} = {dp * pp * tp}, but the "
                f"communicator has {comm.Get_size()} ranks: the product must equal it")
        self.dp, self.pp, self.tp = dp, pp, tp
        r = comm.Get_rank()
        self.tp_rank, self.pp_rank, self.dp_rank = r % tp, (r // tp) % pp, r // (tp * pp)
        with watching("ProcessGrid's construction (collective: comm.Split, three times)"):
            # Split's colour picks the group, its key the order within it.
            self.tp_comm = comm.Split(self.dp_rank * pp + self.pp_rank, self.tp_rank)
            self.pp_comm = comm.Split(self.dp_rank * tp + self.tp_rank, self.pp_rank)
            self.dp_comm = comm.Split(self.pp_rank * tp + self.tp_rank, self.dp_rank)

    def __repr__(self) -> str:
        return (f"ProcessGrid(dp={self.dp}, pp={self.pp}, tp={self.tp}; this rank: "
                f"dp_rank={self.dp_rank}, pp_rank={self.pp_rank}, tp_rank={self.tp_rank})")
