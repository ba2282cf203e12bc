"""Hybrid grids train as one process does: ``grid_equal.py dp_pp`` or ``grid_equal.py pp_tp``.

On 4 ranks, 5 steps of SGD with momentum from the same weights; each rank
reports its parameters (under the whole model's names) beside one process's.
"""

import sys

import numpy as np

import minidl
import minidl.functional as F
from minidl import nn, optim
from minidl.parallel import ColumnParallelLinear, Pipeline, ProcessGrid, RowParallelLinear
from minidl.testing import report

case = sys.argv[1]


def model() -> nn.Sequential:
    minidl.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(),
                         nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4))


rng = np.random.default_rng(2)
data = [(rng.standard_normal((12, 8)).astype(np.float32), rng.integers(0, 4, 12))
        for _ in range(5)]

alone = model()
opt = optim.SGD(alone.parameters(), lr=0.1, momentum=0.9)
single_losses = []
for x, y in data:
    opt.zero_grad()
    loss = F.cross_entropy(alone(minidl.tensor(x)), y)
    loss.backward()
    opt.step()
    single_losses.append(float(loss.data))

if case == "dp_pp":
    grid = ProcessGrid(dp=2, pp=2)
    pipe = Pipeline(model(), comm=grid.pp_comm, micro_batches=3, schedule="1f1b",
                    dp_comm=grid.dp_comm)
    shard = slice(grid.dp_rank * 6, grid.dp_rank * 6 + 6)  # this replica's half of each batch
    batches = [(x[shard], y[shard]) for x, y in data]
else:  # pp_tp: stage 0 is a tensor-parallel MLP block, stage 1 plain layers
    grid = ProcessGrid(pp=2, tp=2)
    net = model()
    net = nn.Sequential(
        ColumnParallelLinear.from_linear(net[0], comm=grid.tp_comm, gather_output=False),
        net[1], RowParallelLinear.from_linear(net[2], comm=grid.tp_comm), *list(net)[3:])
    pipe = Pipeline(net, comm=grid.pp_comm, micro_batches=3, schedule="gpipe", split=[3])
    batches = data
opt = optim.SGD(pipe.parameters(), lr=0.1, momentum=0.9)
losses = []
for x, y in batches:
    opt.zero_grad()
    losses.append(pipe.step(x, y, F.cross_entropy))
    opt.step()

mine = {}
for name, layer in pipe.named_children():
    whole = layer.to_linear() if hasattr(layer, "to_linear") else layer  # collective over tp
    mine.update({f"{name}.{k}": v.copy() for k, v in whole.state_dict().items()})
report({"mine": mine, "single": {k: v.copy() for k, v in alone.state_dict().items()},
        "losses": losses, "single_losses": single_losses, "grid": repr(grid)})
