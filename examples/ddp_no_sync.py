# Run: mpiexec -n 2 python -m mpi4py examples/ddp_no_sync.py
"""Gradient accumulation with ``no_sync``: k micro-batches, one all-reduce.

A batch too big for memory is cut into ``k`` micro-batches: backward on each,
letting the gradients add up in ``.grad``, then one optimizer step. Under
``DistributedDataParallel`` every backward would all-reduce the gradients,
``k`` times per step, although only their sum at the end matters. Inside
``with ddp.no_sync():`` backward keeps its gradients local; the first backward
after the block all-reduces the sum of all ``k``. Same step, ``1 / k`` of the
messages. This script counts the all-reduces both ways (from ``ddp.stats``)
and checks that both equal one process taking one step on the whole batch.
"""

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import nn, optim
from minidl.data import load_digits
from minidl.parallel import DistributedDataParallel, DistributedSampler

comm = MPI.COMM_WORLD
rank, p = comm.rank, comm.size
k, micro, steps = 4, 8, 3  # a step: 4 micro-batches of 8 per rank, 2 x 4 x 8 = 64 samples
train, _ = load_digits(flatten=True)
shards = [DistributedSampler(train, num_replicas=p, rank=r, seed=0).indices() for r in range(p)]


def micro_batch(r: int, step: int, i: int) -> tuple:
    """Rank r's i-th micro-batch of the step: the next 8 samples of its shard."""
    start = (step * k + i) * micro
    images, labels = train[shards[r][start:start + micro]]
    return minidl.tensor(images), labels


def mlp() -> nn.Sequential:
    minidl.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def train_ddp(skip_sync: bool) -> DistributedDataParallel:
    ddp = DistributedDataParallel(mlp())
    opt = optim.SGD(ddp.parameters(), lr=0.3, momentum=0.9)
    for step in range(steps):
        opt.zero_grad()
        for i in range(k):
            x, y = micro_batch(rank, step, i)
            # Divide by k: the k means add up to the mean over the whole batch.
            if skip_sync and i < k - 1:
                with ddp.no_sync():  # local only: .grad accumulates, nothing is sent
                    (F.cross_entropy(ddp(x), y) / k).backward()
            else:  # without no_sync, every backward averages over the ranks
                (F.cross_entropy(ddp(x), y) / k).backward()
        opt.step()
    ddp.close()
    return ddp


with_no_sync, every_time = train_ddp(skip_sync=True), train_ddp(skip_sync=False)

# One process, the same first weights, one step per whole batch: all ranks' micro-batches.
alone = mlp()
opt = optim.SGD(alone.parameters(), lr=0.3, momentum=0.9)
for step in range(steps):
    batch = [micro_batch(r, step, i) for r in range(p) for i in range(k)]
    x = minidl.cat([x for x, _ in batch])
    y = np.concatenate([y for _, y in batch])
    opt.zero_grad()
    F.cross_entropy(alone(x), y).backward()
    opt.step()

for ddp in (with_no_sync, every_time):
    for name, value in alone.state_dict().items():
        np.testing.assert_allclose(ddp.module.state_dict()[name], value, rtol=1e-5, atol=1e-6,
                                   err_msg=f"rank {rank}: {name} differs from one process")
if rank == 0:
    print(f"{steps} steps of {k} micro-batches x {micro} samples x {p} ranks "
          f"({len(with_no_sync.buckets)} gradient bucket(s)):")
    for label, ddp in (("with no_sync", with_no_sync), ("syncing every micro-batch", every_time)):
        s = ddp.stats
        print(f"  {label:>25}: {s.allreduces:2d} all-reduces, {s.bytes_sent:7d} bytes sent "
              "by rank 0; matches one process")
    if every_time.stats.bytes_sent:  # one rank alone sends nothing either way
        ratio = with_no_sync.stats.bytes_sent / every_time.stats.bytes_sent
        print(f"no_sync sends {ratio:.2f} of the bytes (1/k = {1 / k:.2f}) for the same "
              "parameters")
