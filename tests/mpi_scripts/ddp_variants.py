"""Train the same few steps under several DDP configurations in one job and
report each one's final parameters: bucket caps x overlap, no_sync, and the
explicit allreduce_gradients."""

import sys
import time

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import models, optim
from minidl.distributed import allreduce
from minidl.parallel import (
    DistributedDataParallel,
    DistributedSampler,
    allreduce_gradients,
    parameters_hash,
)
from minidl.testing import report

algorithm = sys.argv[1]
comm = MPI.COMM_WORLD
rank, p = comm.Get_rank(), comm.Get_size()
rng = np.random.default_rng(7)
batch, steps = 12, 3
x_all = rng.standard_normal((batch * steps, 1, 8, 8))
y_all = rng.integers(0, 10, batch * steps)
shard = DistributedSampler(range(batch), num_replicas=p, rank=rank, shuffle=False).indices()


def fresh():
    minidl.manual_seed(5 + rank)
    return models.lenet(8, dtype=np.float64)


def batches():
    for step in range(steps):
        xb, yb = x_all[step * batch:(step + 1) * batch], y_all[step * batch:(step + 1) * batch]
        yield minidl.tensor(xb[shard]), yb[shard]


def skew(ddp):
    """Make each rank linger after a different parameter's gradient, a different one each step.

    Then ranks split the buckets differently between all-reduces started
    during backward and those left for its end: DDP must still match them up.
    """
    params = list(ddp.module.parameters())
    position = {id(param): i for i, param in enumerate(params)}  # by identity: == is elementwise
    calls = [0]

    def linger(param):
        if (calls[0] + 3 * rank) % len(params) == position[id(param)]:
            time.sleep(0.003)
        calls[0] += 1

    for param in params:
        param.register_post_accumulate_grad_hook(linger)


def chatter(ddp, wrong):
    """Make every gradient hook run a collective of its own on COMM_WORLD, with DDP's tags.

    DDP's all-reduces in flight meanwhile must not take its messages (DDP
    talks on a communicator of its own); ``wrong`` collects any bad sum.
    """
    def talk(param):
        mine = np.full(3, rank + 1, dtype=np.int64)
        allreduce(mine, algorithm="ring", comm=comm)
        if (mine != p * (p + 1) // 2).any():
            wrong.append(mine.tolist())

    for param in ddp.module.parameters():
        param.register_post_accumulate_grad_hook(talk)


results = {}
configs = [(cap, overlap, "") for cap in (0.0, 1.0, float("inf")) for overlap in (True, False)]
for cap, overlap, variant in configs + [(0.0, True, "skewed"), (0.001, True, "skewed"),
                                        (0.0, True, "chatty")]:
    ddp = DistributedDataParallel(fresh(), algorithm=algorithm, bucket_cap_mb=cap, overlap=overlap)
    wrong = []
    if variant == "skewed":
        skew(ddp)
    elif variant == "chatty":
        chatter(ddp, wrong)
    hash_after_construction = parameters_hash(ddp.module)
    opt = optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    for step, (x, y) in enumerate(batches()):
        if step % 2:
            opt.zero_grad()
            loss = F.cross_entropy(ddp(x), y)
        else:  # zero_grad between forward and backward must work too
            loss = F.cross_entropy(ddp(x), y)
            opt.zero_grad()
        loss.backward()
        opt.step()
    results[f"cap={cap} overlap={overlap}{' ' + variant if variant else ''}"] = {
        "state": ddp.module.state_dict(),
        "buckets": len(ddp.buckets),
        "initial_hash": hash_after_construction,
        "wrong": wrong,
    }
    ddp.close()

# The explicit version: one all-reduce per parameter, after backward.
model = fresh()
from minidl.parallel import broadcast_parameters  # noqa: E402

broadcast_parameters(model)
opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
for x, y in batches():
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    allreduce_gradients(model, algorithm=algorithm)
    opt.step()
results["allreduce_gradients"] = {"state": model.state_dict()}

# no_sync: k micro-steps accumulate, one synchronised step, equals one step with k times the batch.
k = 3
ddp = DistributedDataParallel(fresh(), algorithm=algorithm)
opt = optim.SGD(ddp.parameters(), lr=0.1)
micro = list(batches())
opt.zero_grad()
with ddp.no_sync():
    for x, y in micro[:-1]:
        (F.cross_entropy(ddp(x), y) / k).backward()
unsynced = [p_.grad.copy() for p_ in ddp.module.parameters()]
x, y = micro[-1]
(F.cross_entropy(ddp(x), y) / k).backward()
opt.step()
results["no_sync"] = {"state": ddp.module.state_dict(), "unsynced": unsynced}
ddp.close()

big = DistributedDataParallel(fresh(), algorithm=algorithm)
opt = optim.SGD(big.parameters(), lr=0.1)
xs = minidl.concatenate([x for x, _ in micro])
ys = np.concatenate([y for _, y in micro])
opt.zero_grad()
F.cross_entropy(big(xs), ys).backward()
opt.step()
results["big_batch"] = {"state": big.module.state_dict()}
big.close()
report(results)
