"""A Pipeline trains as one process does.

``pipeline_equal.py SCHEDULE CHUNKS M,M,... BATCH,BATCH,...``: for every
number of micro-batches and batch size given, every rank trains the whole
model alone and as a pipeline, from the same weights, for 5 steps of SGD
with momentum, and reports this stage's parameters and losses beside the
single process's.
"""

import sys

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import nn, optim
from minidl.parallel import Pipeline
from minidl.testing import report

schedule, chunks = sys.argv[1], int(sys.argv[2])
micro_batch_counts = [int(m) for m in sys.argv[3].split(",")]
batches = [int(b) for b in sys.argv[4].split(",")]
stages = MPI.COMM_WORLD.Get_size()


def model() -> nn.Sequential:
    minidl.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(),
                         nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4))


def train(net, step, params, data):
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    losses = []
    for x, y in data:
        opt.zero_grad()
        losses.append(step(x, y))
        opt.step()
    return losses


def alone_step(net):
    def step(x, y):
        loss = F.cross_entropy(net(minidl.tensor(x)), y)
        loss.backward()
        return float(loss.data)
    return step


results = []
for batch in batches:
    rng = np.random.default_rng(batch)
    data = [(rng.standard_normal((batch, 8)).astype(np.float32), rng.integers(0, 4, batch))
            for _ in range(5)]
    alone = model()
    single_losses = train(alone, alone_step(alone), alone.parameters(), data)
    for m in micro_batch_counts:
        if schedule == "interleaved" and m % stages:
            continue  # the schedule refuses it (tested on its own)
        pipe = Pipeline(model(), micro_batches=m, schedule=schedule, chunks=chunks)
        losses = train(pipe, lambda x, y: pipe.step(x, y, F.cross_entropy), pipe.parameters(),
                       data)
        results.append({
            "m": m, "batch": batch,
            "mine": {k: v.copy() for k, v in pipe.state_dict().items()},
            "single": {k: v.copy() for k, v in alone.state_dict().items()},
            "losses": losses, "single_losses": single_losses,
            "full": pipe.full_state_dict(),
            "output": pipe(data[0][0]).data, "single_output": alone(minidl.tensor(data[0][0])).data,
            "peak": pipe.stats.peak_in_flight,
        })
report(results)
