"""Parameter servers on real ranks: ``ps_cases.py SERVERS MODE STALENESS OPTIMIZER [STRAGGLER]``.

Every worker trains 5 steps (pull, forward and backward on its own batch of
4, push), pulls once more and closes; servers serve. Every rank also trains
one process on the union of the workers' batches, from the same weights.
STRAGGLER (a worker's rank) sleeps 50 ms before each push; STEPS (default 5).
"""

import sys
import time

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import nn, optim
from minidl.parallel import ParameterServer
from minidl.testing import report

servers, mode, staleness, optimizer = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
straggler = int(sys.argv[5]) if len(sys.argv) > 5 else -1
steps = int(sys.argv[6]) if len(sys.argv) > 6 else 5
comm = MPI.COMM_WORLD
workers = comm.size - servers


def model() -> nn.Sequential:
    minidl.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 3))


rng = np.random.default_rng(0)
batches = [(rng.standard_normal((4 * workers, 6)).astype(np.float32),
            rng.integers(0, 3, 4 * workers)) for _ in range(steps)]
hyper = dict(lr=0.1, momentum=0.9) if optimizer == "sgd" else dict(lr=0.01)

alone = model()
opt = (optim.SGD(alone.parameters(), **hyper) if optimizer == "sgd"
       else optim.Adam(alone.parameters(), **hyper))
for x, y in batches:
    opt.zero_grad()
    F.cross_entropy(alone(minidl.tensor(x)), y).backward()
    opt.step()

net = model()
ps = ParameterServer(net, servers=servers, mode=mode, staleness=staleness, optimizer=optimizer,
                     **hyper)
if ps.is_server:
    ps.serve()
    report({"role": "server", "staleness": ps.stats.staleness, "applied": ps.stats.applied,
            "by_worker": ps.stats.staleness_by_worker, "arrivals": ps.stats.arrivals,
            "pushes": ps.stats.pushes, "shard": ps.parameters().copy()})
else:
    w = comm.rank - servers
    mine = slice(4 * w, 4 * w + 4)  # this worker's part of each batch
    for x, y in batches:
        ps.pull()
        for q in net.parameters():
            q.grad = None
        F.cross_entropy(net(minidl.tensor(x[mine])), y[mine]).backward()
        if comm.rank == straggler:
            time.sleep(0.05)
        ps.push()
    ps.pull()
    ps.close()
    report({"role": "worker", "mine": {k: v.copy() for k, v in net.state_dict().items()},
            "single": {k: v.copy() for k, v in alone.state_dict().items()},
            "pushes": ps.stats.pushes})
