# Run: mpiexec -n 2 python -m mpi4py examples/hogwild.py
"""Hogwild!: two ranks update the same memory, without messages and without a lock.

1. The race on one number. Both ranks add 1 to a counter in shared memory,
   20 000 times each. An addition is a read and then a write; when both
   ranks read the same value, both write value + 1 and one addition is lost.
   With the window's lock, one rank adds at a time and none is lost.
2. The same race, in training. A small MLP's parameters go into shared
   memory (``Hogwild``); each rank trains on its own half of the digits and
   writes its SGD updates straight into them. Some element updates are lost
   the same way, and SGD does not mind: the loss falls all the same.
"""

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import models, optim
from minidl.data import DataLoader, load_digits
from minidl.parallel import DistributedSampler, Hogwild, shared_counter_race

comm = MPI.COMM_WORLD

# 1. The race on one shared counter (shared_counter_race is collective: every rank calls it).
racing = shared_counter_race(20_000)
locked = shared_counter_race(20_000, lock=True)
if comm.rank == 0:
    expected = 20_000 * comm.size
    print(f"unlocked: the counter reads {racing} of {expected}: {expected - racing} additions "
          "lost (how many depends on how often both ranks ran at the same moment)")
    print(f"locked:   the counter reads {locked} of {expected}")
assert locked == 20_000 * comm.size  # the lock loses nothing, ever

# 2. Train a few steps on shared parameters. Each rank builds the model with its own seed;
# Hogwild copies rank 0's weights into the shared memory, so every rank starts from those.
minidl.manual_seed(comm.rank)
model = models.mlp(in_features=64)
hogwild = Hogwild(model)  # collective; each parameter's .data is now a view into shared memory
optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)  # this rank's own momentum
train, test = load_digits()
sampler = DistributedSampler(train, num_replicas=comm.size, rank=comm.rank, seed=0)
losses = []
for x, y in DataLoader(train, batch_size=32, sampler=sampler):  # this rank's half: 23 steps
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    hogwild.step(optimizer)  # optimizer.step(), straight into the shared parameters
    losses.append(loss.item())
hogwild.close()  # collective: waits for the other rank's last update, then frees the memory
print(f"rank {comm.rank}: {hogwild.stats.updates} updates; loss {np.mean(losses[:5]):.3f} over "
      f"its first 5 steps, {np.mean(losses[-5:]):.3f} over its last 5", flush=True)
assert np.mean(losses[-5:]) < np.mean(losses[:5]), "the loss did not fall"
