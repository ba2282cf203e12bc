# Run: mpiexec -n 2 python -m mpi4py examples/tensor_parallel.py
"""An MLP block split over the ranks, Megatron-style, equal to the whole MLP.

The first linear layer is split by its output features
(``ColumnParallelLinear``, its output left sliced), the second by its input
features (``RowParallelLinear``, which sums the ranks' partial products with
an all-reduce). Two all-reduces per step: one forward (the operator g), one
backward (the operator f, for the input's gradient). Five steps of SGD later,
the layers gathered back (``to_linear``) equal the whole MLP trained alone.
"""

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import nn, optim
from minidl.parallel import ColumnParallelLinear, RowParallelLinear

comm = MPI.COMM_WORLD
minidl.manual_seed(0)
whole = nn.Sequential(nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 3))
split = nn.Sequential(ColumnParallelLinear.from_linear(whole[0], gather_output=False),
                      nn.ReLU(),
                      RowParallelLinear.from_linear(whole[2], input_is_parallel=True))
print(f"rank {comm.rank}: first layer's weight {split[0].weight.shape}, "
      f"second's {split[2].weight.shape}", flush=True)

rng = np.random.default_rng(0)
batches = [(rng.standard_normal((6, 8)).astype(np.float32), rng.integers(0, 3, 6))
           for _ in range(5)]
for net in (whole, split):
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for x, y in batches:
        opt.zero_grad()
        F.cross_entropy(net(minidl.tensor(x)), y).backward()  # split: collective, every rank
        opt.step()

back = [split[0].to_linear(), split[2].to_linear()]  # collective: gathers every rank's slice
worst = max(float(np.abs(b.weight.data - w.weight.data).max()) for b, w in
            zip(back, (whole[0], whole[2])))
if comm.rank == 0:
    print(f"largest difference from the whole MLP after 5 steps: {worst:.1e}")
assert worst < 1e-5, "tensor parallelism drifted from the whole layer"
