"""Ways a rank can leave the others waiting; with a timeout set, each ends the job, naming where.

Run as ``mpiexec -n 2 python -m mpi4py watchdog_cases.py CASE``, with
``MINIDL_TIMEOUT`` set by the test (or ``set_timeout`` below).
"""

import sys
import time

import numpy as np
from mpi4py import MPI

import minidl
import minidl.distributed as dist
import minidl.functional as F
from minidl import models, optim
from minidl.parallel import DistributedDataParallel

case = sys.argv[1]
comm = MPI.COMM_WORLD
rank = comm.Get_rank()
buf = np.ones(1000, np.float32)
dist.allreduce(buf)  # every rank gets this far together

if case == "sleeps":  # rank 1 is stuck computing
    if rank == 1:
        time.sleep(60)
    dist.allreduce(buf, algorithm="recursive_doubling")

elif case == "exits":  # rank 1 leaves early, cleanly
    if rank == 1:
        sys.exit(0)
    dist.allreduce(buf)

elif case == "skips_unchecked":  # rank 1 skips a call that skips the agreement check
    dist.set_timeout(2)  # the function, not only the environment variable
    if rank == 0:
        dist.allreduce(buf, algorithm="ring", check=False)

elif case == "iallreduce":  # rank 1 never starts its part
    if rank == 0:
        request = dist.iallreduce(buf, algorithm="ring", check=False)
        request.wait()

elif case == "ddp_skipped_last_step":  # rank 1 runs one step fewer, and never closes
    ddp = DistributedDataParallel(models.mlp(), overlap=sys.argv[2] == "overlap")
    opt = optim.SGD(ddp.parameters(), lr=0.1)
    x, y = minidl.randn(4, 64), np.arange(4)
    for step in range(3 if rank == 0 else 2):
        opt.zero_grad()
        F.cross_entropy(ddp(x), y).backward()
        opt.step()

elif case == "ready_then_stuck":  # for Ctrl-C: rank 1 blocked in a receive of its own
    print(f"ready {rank}", flush=True)
    if rank == 1:
        comm.Recv(buf, source=0, tag=5)
    dist.allreduce(buf, algorithm="ring", check=False)

else:
    raise SystemExit(f"unknown case {case!r}")
