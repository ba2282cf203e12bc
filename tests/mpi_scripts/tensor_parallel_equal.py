"""Tensor parallelism trains as one process does: ``tensor_parallel_equal.py CASE``.

``mlp``: an MLP whose first layer is column-parallel (gather_output=False) and
second row-parallel, against the whole MLP, 5 steps of SGD with momentum;
``gathered``: a column-parallel layer that gathers its output and a
row-parallel one that slices its input; ``round_trip``: to_linear() of
from_linear() is the layer itself.
"""

import sys

import numpy as np

import minidl
import minidl.functional as F
from minidl import nn, optim
from minidl.parallel import ColumnParallelLinear, RowParallelLinear
from minidl.testing import report

case = sys.argv[1]
minidl.manual_seed(0)
whole = nn.Sequential(nn.Linear(6, 7), nn.ReLU(), nn.Linear(7, 5))  # 7: uneven on 2 and 3 ranks
gather = case == "gathered"
split = nn.Sequential(
    ColumnParallelLinear.from_linear(whole[0], gather_output=gather), nn.ReLU(),
    RowParallelLinear.from_linear(whole[2], input_is_parallel=not gather))

if case == "round_trip":
    back = [split[0].to_linear(), split[2].to_linear()]
    report({"same": [bool(np.array_equal(a.weight.data, b.weight.data)
                          and np.array_equal(a.bias.data, b.bias.data))
                     for a, b in zip(back, [whole[0], whole[2]])]})
    raise SystemExit

rng = np.random.default_rng(3)
data = [(rng.standard_normal((9, 6)).astype(np.float32), rng.integers(0, 5, 9)) for _ in range(5)]
losses = {}
for name, net in (("whole", whole), ("split", split)):
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    losses[name] = []
    for x, y in data:
        opt.zero_grad()
        loss = F.cross_entropy(net(minidl.tensor(x)), y)
        loss.backward()
        opt.step()
        losses[name].append(float(loss.data))
back = [split[0].to_linear(), split[2].to_linear()]
report({
    "losses": losses,
    "after": [(b.weight.data, b.bias.data) for b in back],
    "whole": [(whole[i].weight.data, whole[i].bias.data) for i in (0, 2)],
    "shards": [split[0].weight.shape, split[2].weight.shape],
})
