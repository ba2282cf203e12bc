# Run: mpiexec -n 2 python -m mpi4py tutorials/programs/ddp_timeline.py trace.json overlap
"""Record a Chrome trace of DDP steps, with or without overlap: PATH overlap|no-overlap."""

import sys

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import models, optim
from minidl.data import DataLoader, TensorDataset
from minidl.distributed import Trace
from minidl.parallel import DistributedDataParallel, DistributedSampler
from minidl.parallel.timeline import Timeline

path, overlap = sys.argv[1], sys.argv[2] == "overlap"
comm = MPI.COMM_WORLD
rank, p = comm.Get_rank(), comm.Get_size()
rng = np.random.default_rng(0)
train = TensorDataset(rng.random((1024, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 1024))
minidl.manual_seed(0)
timeline, trace = Timeline(rank, enabled=False), Trace()
model = DistributedDataParallel(models.lenet(28), bucket_cap_mb=0.02, overlap=overlap,
                                timeline=timeline)
optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
sampler = DistributedSampler(train, num_replicas=p, rank=rank, seed=0)
for step, (x, y) in enumerate(DataLoader(train, batch_size=128 // p, sampler=sampler)):
    recording = step >= 2  # the first steps warm up
    timeline.enabled = recording
    model.trace = trace if recording else None
    optimizer.zero_grad()
    with timeline.span("forward"):
        loss = F.cross_entropy(model(x), y)
    with timeline.span("backward"):
        loss.backward()
    optimizer.step()
timeline.to_chrome(path, comm, trace)  # rank 0 writes every rank's spans
model.close()
