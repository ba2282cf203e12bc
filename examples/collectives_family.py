# Run: mpiexec -n 3 python -m mpi4py examples/collectives_family.py
"""Scatter, gather and alltoall from point-to-point messages, on both executors.

Each collective here is a schedule (print one with ``minidl.distributed.schedule``),
run on real ranks by the reference executor (``minidl/distributed/run.py``) or
the fast one (``minidl/distributed/fast/``). They give the same bits; this
script checks each result against MPI's own collective and prints what rank 0
sees.
"""

import numpy as np
from mpi4py import MPI

import minidl.distributed as D

comm = MPI.COMM_WORLD
rank, p = comm.rank, comm.size
n = 2 * p + 1  # not a multiple of p: chunk_bounds splits it as evenly as it can
bounds = D.chunk_bounds(n, p)

# scatter: chunk r of the root's buffer lands in chunk r of rank r's.
data = np.arange(n, dtype=np.float64) * 10 if rank == 0 else np.zeros(n)
mine = D.scatter(data.copy(), root=0)
want = np.empty(len(mine))
comm.Scatterv([data, (np.diff(bounds), bounds[:-1])] if rank == 0 else None, want, root=0)
assert np.array_equal(mine, want)

# gather: the reverse, every rank's chunk into the root's buffer.
piece = np.full(n, rank + 1.0)
gathered = D.gather(piece.copy(), root=0)
if rank == 0:
    print("gathered on rank 0:", gathered)

# alltoall: block j of rank i goes to rank j; a transpose of blocks across the ranks.
blocks = np.array([10 * rank + j for j in range(p)], dtype=np.int64)
for executor in ("reference", "fast"):
    with D.use(executor):
        for algorithm in ("pairwise", "bruck"):
            out = D.alltoall(blocks.copy(), algorithm)
            want = np.empty_like(blocks)
            comm.Alltoall(blocks, want)
            assert np.array_equal(out, want), (executor, algorithm)
if rank == 0:
    print("alltoall on rank 0:", blocks, "->", out)
    print(D.schedule("pairwise", p, 0, p, collective="alltoall"))
