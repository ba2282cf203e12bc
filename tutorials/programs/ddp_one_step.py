# Run: mpiexec -n 2 python -m mpi4py tutorials/programs/ddp_one_step.py
"""The same step with DistributedDataParallel: buckets, views, the broadcast of rank 0's weights."""

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import models
from minidl.data import load_digits
from minidl.parallel import DistributedDataParallel, DistributedSampler, parameters_hash
from minidl.testing import report

comm = MPI.COMM_WORLD
rank, p = comm.Get_rank(), comm.Get_size()
images, labels = load_digits()[0].arrays
batch = np.arange(8)
shard = batch[DistributedSampler(batch, num_replicas=p, rank=rank, shuffle=False).indices()]

minidl.manual_seed(rank)  # a different seed on every rank, on purpose
model = models.mlp()
before = parameters_hash(model)
ddp = DistributedDataParallel(model, bucket_cap_mb=0.02)  # broadcasts rank 0's weights
after = parameters_hash(model)
buckets = [(b.index, b.nbytes, [name for name, _ in b.params]) for b in ddp.buckets]
views = all(q.grad.base is b.data for b in ddp.buckets for _, q in b.params)

loss = F.cross_entropy(ddp(minidl.tensor(images[shard])), labels[shard])
loss.backward()  # returns with the gradients averaged over the ranks
grads = {name: q.grad.copy() for name, q in model.named_parameters()}
stats = dict(vars(ddp.stats))
ddp.close()
report({"before": before, "after": after, "repr": repr(ddp), "buckets": buckets, "views": views,
        "grads": grads, "stats": stats})
