"""Ways a data-parallel job can go wrong; each must end the job with a clear error, never a hang."""

import sys

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import models, nn, optim
from minidl.parallel import DistributedDataParallel

case = sys.argv[1]
comm = MPI.COMM_WORLD
rank = comm.Get_rank()
minidl.manual_seed(0)

if case == "different_model":
    width = 128 if rank != 1 else 100
    model = models.mlp(hidden=(width, 64))
    DistributedDataParallel(model)

elif case in ("skipped_step", "skipped_step_then_close"):
    ddp = DistributedDataParallel(models.mlp(), overlap=sys.argv[2] == "overlap")
    opt = optim.SGD(ddp.parameters(), lr=0.1)
    x, y = minidl.randn(4, 64), np.arange(4)
    for step in range(3):
        if rank == 1 and step == 1:
            continue  # this rank skips a step
        opt.zero_grad()
        F.cross_entropy(ddp(x), y).backward()
        opt.step()
    if case == "skipped_step_then_close":
        ddp.close()  # collective: it meets rank 0's third pass, and the counts differ

elif case == "raise_on_one_rank":
    ddp = DistributedDataParallel(nn.Linear(4, 2))
    if rank == 2:
        raise RuntimeError("rank 2 failed on purpose")
    F.mse_loss(ddp(minidl.randn(3, 4)), np.zeros((3, 2), np.float32)).backward()

elif case == "unknown_algorithm":
    DistributedDataParallel(nn.Linear(2, 2), algorithm="butterfly")

elif case == "close_unhooks":
    model = nn.Linear(4, 2)
    ddp = DistributedDataParallel(model)
    F.mse_loss(ddp(minidl.randn(3, 4)), np.zeros((3, 2), np.float32)).backward()
    ddp.close()
    if rank == 0:  # after close, the model trains alone: no collective may start
        F.mse_loss(model(minidl.randn(3, 4)), np.zeros((3, 2), np.float32)).backward()

elif case == "different_schedule":
    from minidl.distributed import ALGORITHMS

    ring, tree = ALGORITHMS["allreduce"]["ring"], ALGORITHMS["allreduce"]["tree"]

    def my_ring(p, rank, n):
        yield from ring(p, rank, n)

    def my_tree(p, rank, n):
        yield from tree(p, rank, n)

    DistributedDataParallel(models.mlp(), algorithm=my_tree if rank == 1 else my_ring)

elif case == "different_overlap":
    DistributedDataParallel(models.mlp(), bucket_cap_mb=0, overlap=rank != 1)

elif case == "forward_after_a_failed_backward":
    ddp = DistributedDataParallel(models.mlp(), bucket_cap_mb=0)
    x, y = minidl.randn(4, 64), np.arange(4)
    first = next(iter(ddp.module.parameters()))

    def fail(param):
        raise ValueError("a hook failed on purpose")

    handle = first.register_post_accumulate_grad_hook(fail)
    try:
        F.cross_entropy(ddp(x), y).backward()
    except ValueError:
        pass  # caught, as a notebook would: the DDP must not carry on as if nothing happened
    handle.remove()
    F.cross_entropy(ddp(x), y).backward()
