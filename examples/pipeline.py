# Run: mpiexec -n 2 python -m mpi4py examples/pipeline.py
"""A model cut into two stages, trained on micro-batches with 1F1B, equal to one process.

First the schedule, as data: what stage 0 does in one step, and the
simulation of both stages (the bubble, the activations held). Then the real
thing: ``Pipeline`` keeps this rank's layers, ``pipe.step`` runs the
schedule's actions, and after five steps each stage's weights are compared
with one process trained on the same batches from the same weights.
"""

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import nn, optim
from minidl.parallel import Pipeline, pipeline_schedule, simulate_pipeline

comm = MPI.COMM_WORLD
rank, stages = comm.rank, comm.size
micro_batches = 4

# 1. The schedule is data: print it, simulate it, before anything runs.
if rank == 0:
    print(pipeline_schedule("1f1b", stages, micro_batches, stage=0))
    for name in ("gpipe", "1f1b"):
        sim = simulate_pipeline(name, stages, micro_batches, forward=1.0, backward=2.0)
        print(f"{name}: bubble {sim.bubble:.1%}, micro-batches held at once per stage "
              f"{sim.peak_in_flight}")


def model() -> nn.Sequential:
    minidl.manual_seed(0)  # every rank, and the single process, start from these weights
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                         nn.Linear(32, 4))


# 2. The pipeline: this rank keeps its stage's layers, under their names in the model.
pipe = Pipeline(model(), micro_batches=micro_batches, schedule="1f1b")
print(f"rank {rank}: {pipe}".replace("\n", "\n    "), flush=True)
opt = optim.SGD(pipe.parameters(), lr=0.1, momentum=0.9)

rng = np.random.default_rng(0)
batches = [(rng.standard_normal((10, 16)).astype(np.float32), rng.integers(0, 4, 10))
           for _ in range(5)]  # 10 samples in 4 micro-batches: 3, 3, 2, 2
for x, y in batches:
    opt.zero_grad()
    loss = pipe.step(x, y, F.cross_entropy)  # every rank passes the same batch
    opt.step()

# 3. One process, the whole model, the same batches: the weights must agree.
alone = model()
opt = optim.SGD(alone.parameters(), lr=0.1, momentum=0.9)
for x, y in batches:
    opt.zero_grad()
    F.cross_entropy(alone(minidl.tensor(x)), y).backward()
    opt.step()
whole = alone.state_dict()
worst = max(float(np.abs(value - whole[key]).max()) for key, value in pipe.state_dict().items())
stats = comm.gather((rank, sorted(pipe.state_dict()), worst, pipe.stats.bubble / 5), root=0)
if rank == 0:
    for r, keys, diff, waited in stats:
        print(f"stage {r}: {', '.join(keys)}; largest difference from one process {diff:.1e}; "
              f"waited {waited * 1e3:.2f} ms a step")
    assert max(diff for _, _, diff, _ in stats) < 1e-5, "the pipeline drifted from one process"
    print(f"last loss {loss:.4f}, the same on every stage")
