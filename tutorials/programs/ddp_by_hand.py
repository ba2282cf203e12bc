# Run: mpiexec -n 2 python -m mpi4py tutorials/programs/ddp_by_hand.py
"""One data-parallel step by hand: each rank's gradient on its shard, then allreduce_gradients."""

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import models
from minidl.data import load_digits
from minidl.parallel import DistributedSampler, allreduce_gradients, parameters_hash
from minidl.testing import report

comm = MPI.COMM_WORLD
rank, p = comm.Get_rank(), comm.Get_size()
images, labels = load_digits()[0].arrays
batch = np.arange(8)  # the global batch: training digits 0 to 7
shard = batch[DistributedSampler(batch, num_replicas=p, rank=rank, shuffle=False).indices()]

minidl.manual_seed(0)  # the same seed on every rank: identical replicas
model = models.mlp()
start_hash = parameters_hash(model)
loss = F.cross_entropy(model(minidl.tensor(images[shard])), labels[shard])
loss.backward()
local = {name: q.grad.copy() for name, q in model.named_parameters()}
allreduce_gradients(model)  # sum over the ranks, then divide by p
averaged = {name: q.grad.copy() for name, q in model.named_parameters()}
report({"shard": shard, "loss": loss.item(), "hash": start_hash, "local": local,
        "averaged": averaged})
