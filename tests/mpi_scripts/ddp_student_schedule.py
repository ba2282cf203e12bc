"""Train k steps on p ranks with all-reduce schedules written here, as a student would, and
report the parameters beside those of one process with the whole batch: DDP with a ring
(argv[1] = "ddp") or allreduce_gradients with a gather-to-0 naive one ("allreduce_gradients")."""

import sys

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import models, optim
from minidl.distributed import Round, chunk_bounds, copy_from, reduce_from, schedule, send
from minidl.parallel import (
    DistributedDataParallel,
    DistributedSampler,
    allreduce_gradients,
    broadcast_parameters,
    parameters_hash,
)
from minidl.testing import report


def my_ring(p, rank, n):
    """Reduce-scatter around the ring, then all-gather: each rank ends owning chunk rank + 1."""
    bounds = chunk_bounds(n, p)
    right, left = (rank + 1) % p, (rank - 1) % p
    for s in range(p - 1):
        yield Round.of(send(right, bounds, (rank - s) % p),
                       reduce_from(left, bounds, (rank - s - 1) % p))
    for s in range(p - 1):
        yield Round.of(send(right, bounds, (rank - s + 1) % p),
                       copy_from(left, bounds, (rank - s) % p))


def my_naive(p, rank, n):
    """Everyone sends the whole buffer to rank 0, which sums and sends the sum back."""
    whole = chunk_bounds(n, 1)
    if rank == 0:
        yield Round.of(*(reduce_from(peer, whole, 0) for peer in range(1, p)))
        yield Round.of(*(send(peer, whole, 0) for peer in range(1, p)))
    else:
        yield Round.of(send(0, whole, 0))
        yield Round.of(copy_from(0, whole, 0))


mode = sys.argv[1]
comm = MPI.COMM_WORLD
rank, p = comm.Get_rank(), comm.Get_size()
batch, steps = 12, 4
rng = np.random.default_rng(11)  # the same data on every rank
x_all = rng.standard_normal((batch * steps, 1, 8, 8))
y_all = rng.integers(0, 10, batch * steps)
shard = DistributedSampler(range(batch), num_replicas=p, rank=rank, shuffle=False).indices()


def make_model(seed):
    minidl.manual_seed(seed)
    return models.lenet(8, dtype=np.float64)


model = make_model(100 + rank)  # rank 0's weights reach every rank by broadcast
if mode == "ddp":
    net = DistributedDataParallel(model, algorithm=my_ring, bucket_cap_mb=0.005)
else:
    net = model
    broadcast_parameters(model)
opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
single = make_model(100)
single_opt = optim.SGD(single.parameters(), lr=0.1, momentum=0.9)

hashes = []
for step in range(steps):
    xb, yb = x_all[step * batch:(step + 1) * batch], y_all[step * batch:(step + 1) * batch]
    opt.zero_grad()
    F.cross_entropy(net(minidl.tensor(xb[shard])), yb[shard]).backward()
    if mode == "allreduce_gradients":
        allreduce_gradients(model, algorithm=my_naive)
    opt.step()
    single_opt.zero_grad()
    F.cross_entropy(single(minidl.tensor(xb)), yb).backward()
    single_opt.step()
    hashes.append(parameters_hash(model))

result = {"mine": model.state_dict(), "single": single.state_dict(), "hashes": hashes}
if mode == "ddp":
    # What the statistics should count: the sends of this rank's schedule, bucket by bucket.
    per_step = sum(s.count * b.data.itemsize for b in net.buckets
                   for rnd in schedule(my_ring, p, rank, b.data.size) for s in rnd.sends)
    result.update(stats=vars(net.stats), expected_bytes=steps * per_step, buckets=len(net.buckets),
                  repr=repr(net))
    net.close()
report(result)
