"""Issue 13's loop: DDP wrappers built in a loop, one rank collecting garbage, exit at once.

``mpiexec -n 2 python -m mpi4py ddp_loop_exit.py GC OVERLAP TRAIN``: GC is
"gc" (rank 0 calls gc.collect() in the loop) or "nogc"; OVERLAP "overlap"
or "no_overlap"; TRAIN "train" (each wrapper takes one step, never closed)
or "idle".
"""

import gc
import sys

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import nn
from minidl.parallel import DistributedDataParallel

collect, overlap, train = sys.argv[1] == "gc", sys.argv[2] == "overlap", sys.argv[3] == "train"
rank = MPI.COMM_WORLD.Get_rank()
for i in range(3):
    ddp = DistributedDataParallel(nn.Sequential(nn.Linear(4, 3)), overlap=overlap)
    if train:
        F.mse_loss(ddp(minidl.randn(2, 4)), np.zeros((2, 3), np.float32)).backward()
    if rank == 0 and collect:
        gc.collect()
print(f"rank {rank} done", flush=True)
