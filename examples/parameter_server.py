# Run: mpiexec -n 3 python -m mpi4py examples/parameter_server.py
"""One server, two workers: sync equals one process; async lets a fast worker race ahead.

Rank 0 serves: it holds the parameters and applies the gradients pushed to it.
Ranks 1 and 2 work: each step they pull the parameters, compute a gradient on
their own half of the batch, and push it. In ``"sync"`` mode the server
averages one gradient from each worker per step, so after five steps the
workers hold what one process training on the whole batches holds. Then the
same in ``"async"`` mode with rank 2 sleeping 30 ms a step: rank 1 no longer
waits for it, and the server counts how stale each gradient was when applied.
"""

import time

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import nn, optim
from minidl.parallel import ParameterServer

comm = MPI.COMM_WORLD
rng = np.random.default_rng(0)
batches = [(rng.standard_normal((8, 4)).astype(np.float32), rng.integers(0, 3, 8))
           for _ in range(5)]


def model() -> nn.Sequential:
    minidl.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def train(mode: str, straggle: float) -> tuple[ParameterServer, nn.Module]:
    net = model()
    ps = ParameterServer(net, mode=mode, lr=0.1, momentum=0.9)  # collective: every rank
    if ps.is_server:
        ps.serve()  # until both workers have closed
        return ps, net
    half = slice(4 * (comm.rank - 1), 4 * comm.rank)  # this worker's half of each batch
    for x, y in batches:
        ps.pull()
        net.zero_grad()
        F.cross_entropy(net(minidl.tensor(x[half])), y[half]).backward()
        if comm.rank == 2:
            time.sleep(straggle)
        ps.push()
    ps.pull()  # the final parameters
    ps.close()
    return ps, net


# 1. Sync: the workers end where one process ends.
ps, net = train("sync", straggle=0.0)
alone = model()
opt = optim.SGD(alone.parameters(), lr=0.1, momentum=0.9)
for x, y in batches:
    opt.zero_grad()
    F.cross_entropy(alone(minidl.tensor(x)), y).backward()
    opt.step()
if ps.is_worker:
    whole = alone.state_dict()
    worst = max(float(np.abs(v - whole[k]).max()) for k, v in net.state_dict().items())
    print(f"sync, worker {comm.rank}: largest difference from one process {worst:.1e}", flush=True)
    assert worst < 1e-5, "sync drifted from one process"

# 2. Async with a straggler: the server records each applied gradient's staleness.
ps, _ = train("async", straggle=0.03)
if ps.is_server:
    print(f"async, server: order of the pushes {ps.stats.arrivals}")
    print(f"async, server: staleness per worker {ps.stats.staleness_by_worker}")
    assert max(ps.stats.staleness_by_worker[2]) > max(ps.stats.staleness_by_worker[1])
