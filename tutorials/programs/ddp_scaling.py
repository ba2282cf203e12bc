# Run: mpiexec -n 2 python -m mpi4py tutorials/programs/ddp_scaling.py 1 1
"""Time an epoch of LeNet on 28x28 inputs: BLAS_THREADS KERNEL_THREADS."""

import sys
import time

import numpy as np
from mpi4py import MPI
from threadpoolctl import threadpool_limits

import minidl
import minidl.functional as F
from minidl import kernels, models, optim
from minidl.data import DataLoader, TensorDataset
from minidl.parallel import DistributedDataParallel, DistributedSampler
from minidl.testing import report

blas_threads, kernel_threads = int(sys.argv[1]), int(sys.argv[2])
threadpool_limits(blas_threads, user_api="blas")  # after importing NumPy, which loads the BLAS
kernels.set_num_threads(kernel_threads)
comm = MPI.COMM_WORLD
rank, p = comm.Get_rank(), comm.Get_size()
rng = np.random.default_rng(0)
train = TensorDataset(rng.random((1024, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 1024))
minidl.manual_seed(0)
model = DistributedDataParallel(models.lenet(28))
optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
sampler = DistributedSampler(train, num_replicas=p, rank=rank, seed=0)

seconds = []
for epoch in range(2):  # epoch 0 warms up
    sampler.set_epoch(epoch)
    model.reset_stats()
    comm.Barrier()
    began = time.perf_counter()
    for x, y in DataLoader(train, batch_size=128 // p, sampler=sampler):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    seconds.append(comm.allreduce(time.perf_counter() - began, op=MPI.MAX))
stats = model.stats
model.close()
report({"epoch": seconds[1], "comm": stats.comm_seconds, "wait": stats.wait_seconds})
