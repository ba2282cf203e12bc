# Run: mpiexec -n 4 python -m mpi4py examples/hybrid_grid.py
"""Four ranks as a grid: two data-parallel replicas of a two-stage pipeline.

``ProcessGrid(dp=2, pp=2)`` splits the ranks: ranks 0 and 1 are the stages of
replica 0, ranks 2 and 3 those of replica 1. Each replica trains on its half
of every global batch; after the last micro-batch's backward, each stage
averages its gradients with its twin in the other replica (once a step).
The result equals one process training on the whole batches.
"""

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import nn, optim
from minidl.parallel import Pipeline, ProcessGrid

comm = MPI.COMM_WORLD
grid = ProcessGrid(dp=2, pp=2)
print(f"rank {comm.rank}: {grid}", flush=True)


def model() -> nn.Sequential:
    minidl.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                         nn.Linear(16, 4))


pipe = Pipeline(model(), comm=grid.pp_comm, micro_batches=2, dp_comm=grid.dp_comm)
alone = model()
rng = np.random.default_rng(0)
batches = [(rng.standard_normal((8, 8)).astype(np.float32), rng.integers(0, 4, 8))
           for _ in range(5)]
half = slice(4 * grid.dp_rank, 4 * grid.dp_rank + 4)  # this replica's half of each batch
opts = [optim.SGD(pipe.parameters(), lr=0.1), optim.SGD(alone.parameters(), lr=0.1)]
for x, y in batches:
    for opt in opts:
        opt.zero_grad()
    loss = pipe.step(x[half], y[half], F.cross_entropy)  # the mean over both replicas
    F.cross_entropy(alone(minidl.tensor(x)), y).backward()
    for opt in opts:
        opt.step()

whole = alone.state_dict()
worst = max(float(np.abs(v - whole[k]).max()) for k, v in pipe.state_dict().items())
worst = comm.allreduce(worst, op=MPI.MAX)
if comm.rank == 0:
    print(f"last loss {loss:.4f}; largest difference from one process: {worst:.1e}")
assert worst < 1e-5, "the grid drifted from one process"
