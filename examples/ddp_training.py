# Run: mpiexec -n 2 python -m mpi4py examples/ddp_training.py
"""Your own data-parallel training loop, and the proof that it equals one process.

Each rank holds the same MLP, reads its own shard of the bundled digits
(``DistributedSampler``: the ranks draw the same permutation and deal it out
like cards), and runs forward and backward on it. ``DistributedDataParallel``
averages the gradients over the ranks during backward, so every rank takes
the same optimizer step. With ``p`` ranks of ``b`` samples each, the averaged
gradient is the gradient of the mean loss over all ``p * b`` samples: the
same step one process takes on the union of the ranks' batches. After a few
steps, this script trains that one process and compares the parameters.
"""

from itertools import islice

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import nn, optim
from minidl.data import DataLoader, load_digits
from minidl.parallel import DistributedDataParallel, DistributedSampler

comm = MPI.COMM_WORLD
rank, p = comm.rank, comm.size
batch_size, steps, epoch = 16, 8, 0  # per rank: 2 ranks x 16 = 32 samples a step
train, _ = load_digits(flatten=True)  # 1,442 images of 64 pixels, labels 0-9


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


# 1. The model, wrapped: DDP broadcasts rank 0's weights, so every replica starts
#    alike whatever its seed. Keep a copy of them for the one-process check.
minidl.manual_seed(rank)  # different on purpose: the broadcast makes them equal
ddp = DistributedDataParallel(mlp())
initial = ddp.module.state_dict()
opt = optim.SGD(ddp.parameters(), lr=0.3, momentum=0.9)

# 2. This rank's shard, batched. set_epoch picks the epoch's permutation (the same
#    on every rank); call it every epoch, or every epoch sees the same order.
sampler = DistributedSampler(train, seed=0)
sampler.set_epoch(epoch)
loader = DataLoader(train, batch_size=batch_size, sampler=sampler)

losses = []
for x, y in islice(loader, steps):  # the first few batches of the epoch
    opt.zero_grad()
    loss = F.cross_entropy(ddp(x), y)  # the mean over this rank's 16 samples
    loss.backward()                    # returns with .grad averaged over the ranks
    opt.step()                         # the same step on every rank
    losses.append(comm.allreduce(loss.item()) / p)  # mean over ranks, for printing only
ddp.close()  # collective: checks that every rank ran the same steps

# 3. One process, the same first weights, and at each step the union of the
#    ranks' batches: every rank's shard is known to anyone who knows the seed.
alone = mlp()
alone.load_state_dict(initial)
opt = optim.SGD(alone.parameters(), lr=0.3, momentum=0.9)
shards = []
for r in range(p):
    shard = DistributedSampler(train, num_replicas=p, rank=r, seed=0)
    shard.set_epoch(epoch)
    shards.append(shard.indices())
one_process_losses = []
for step in range(steps):
    chosen = np.concatenate([s[step * batch_size:(step + 1) * batch_size] for s in shards])
    images, labels = train[chosen]  # a TensorDataset indexed by an array gives a batch
    x, y = minidl.tensor(images), labels
    opt.zero_grad()
    loss = F.cross_entropy(alone(x), y)
    loss.backward()
    opt.step()
    one_process_losses.append(loss.item())

for name, value in alone.state_dict().items():
    np.testing.assert_allclose(ddp.module.state_dict()[name], value, rtol=1e-5, atol=1e-6,
                               err_msg=f"rank {rank}: {name} differs from one process")
if rank == 0:
    for step, (a, b) in enumerate(zip(losses, one_process_losses)):
        print(f"step {step}: loss {a:.4f} on {p} ranks, {b:.4f} in one process")
    print(f"after {steps} steps, every parameter of DDP on {p} ranks matches one process")
