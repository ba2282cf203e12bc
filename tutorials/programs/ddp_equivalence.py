# Run: mpiexec -n 2 python -m mpi4py tutorials/programs/ddp_equivalence.py
"""Six steps of SGD with DistributedDataParallel, each rank's parameters hashed after each."""

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import models, optim
from minidl.data import DataLoader, TensorDataset, load_digits
from minidl.parallel import DistributedDataParallel, DistributedSampler, parameters_hash
from minidl.testing import report

BATCH, STEPS = 24, 6
comm = MPI.COMM_WORLD
rank, p = comm.Get_rank(), comm.Get_size()
images, labels = load_digits()[0].arrays
train = TensorDataset(images.astype(np.float64), labels)

minidl.manual_seed(0)
model = DistributedDataParallel(models.mlp(dtype=np.float64), bucket_cap_mb=0.02)
optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
sampler = DistributedSampler(train, num_replicas=p, rank=rank, seed=0)
sampler.set_epoch(1)
hashes = []
for step, (x, y) in enumerate(DataLoader(train, batch_size=BATCH // p, sampler=sampler)):
    if step == STEPS:
        break
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    hashes.append(parameters_hash(model.module))
model.close()
report({"hashes": hashes, "weights": model.module.state_dict()})
