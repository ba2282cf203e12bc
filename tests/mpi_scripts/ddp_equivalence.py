"""Train k steps with DDP on p ranks (batch b/p each) and, on every rank, the
same model in one process with the whole batch b; report both."""

import sys

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import models, optim
from minidl.parallel import DistributedDataParallel, DistributedSampler, parameters_hash
from minidl.testing import report

algorithm, cap, overlap, dtype_name, model_name = sys.argv[1:6]
dtype = np.dtype(dtype_name)
comm = MPI.COMM_WORLD
rank, p = comm.Get_rank(), comm.Get_size()
batch, steps = 12, 4

rng = np.random.default_rng(123)  # the same data on every rank
if model_name == "lenet":
    x_all = rng.standard_normal((batch * steps, 1, 8, 8)).astype(dtype)
else:
    x_all = rng.standard_normal((batch * steps, 64)).astype(dtype)
y_all = rng.integers(0, 10, batch * steps)


def make_model(seed):
    minidl.manual_seed(seed)
    if model_name == "lenet":
        return models.lenet(8, dtype=dtype)
    return models.mlp(dtype=dtype)


# Every rank starts from a different seed: DDP must make them identical.
ddp = DistributedDataParallel(make_model(100 + rank), algorithm=algorithm,
                              bucket_cap_mb=float(cap), overlap=overlap == "overlap")
ddp_opt = optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
single = make_model(100)  # rank 0's seed: what the broadcast distributes
single_opt = optim.SGD(single.parameters(), lr=0.1, momentum=0.9)

hashes = []
shard = DistributedSampler(range(batch), num_replicas=p, rank=rank, shuffle=False).indices()
for step in range(steps):
    xb, yb = x_all[step * batch:(step + 1) * batch], y_all[step * batch:(step + 1) * batch]
    ddp_opt.zero_grad()
    F.cross_entropy(ddp(minidl.tensor(xb[shard])), yb[shard]).backward()
    ddp_opt.step()
    single_opt.zero_grad()
    F.cross_entropy(single(minidl.tensor(xb)), yb).backward()
    single_opt.step()
    hashes.append(parameters_hash(ddp.module))

ddp.close()
report({
    "ddp": {k: v for k, v in ddp.module.state_dict().items()},
    "single": {k: v for k, v in single.state_dict().items()},
    "hashes": hashes,
    "stats": vars(ddp.stats),
    "buckets": len(ddp.buckets),
})
