"""How big is a pipeline's bubble, measured, simulated and by the formula; and what does it cost?

Run it on real ranks (one stage per rank)::

    mpiexec -n 2 python -m mpi4py benchmarks/bench_pipeline.py

An MLP of ``--layers`` linear layers of width ``--width`` (ReLU between) is
cut into one stage per rank and trained on batches of ``--batch`` samples,
with GPipe and 1F1B for 1, 2, 4 and 8 micro-batches, in interleaved passes
(each pass runs every row a few steps, in a rotated order, so a noisy
machine slows them alike; each number is the median over the passes).

- **bubble**: the share of the stages' time spent waiting (in receives and
  for sends to be taken, :attr:`PipelineStats.bubble`) over the step's wall
  time, averaged over the stages; beside it, the simulation's
  (:func:`~minidl.parallel.simulate_pipeline`, with the forward and backward
  times measured on this machine) and the formula ``(p - 1) / (m + p - 1)``
  (forward = backward, no message cost);
- **activations**: the most bytes of boundary activations a stage held at
  once (:attr:`PipelineStats.peak_activation_bytes`), 1F1B against GPipe;
- **against DDP**: the step time of the pipeline (1F1B, 4 micro-batches)
  over data parallelism's on the same model and global batch, each rank
  computing half the batch through the whole model.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from mpi4py import MPI
from threadpoolctl import threadpool_limits

import minidl
import minidl.functional as F
from minidl import kernels, nn, optim
from minidl.parallel import DistributedDataParallel, Pipeline, simulate_pipeline

comm = MPI.COMM_WORLD
rank, p = comm.Get_rank(), comm.Get_size()
MICRO_BATCHES = (1, 2, 4, 8)


def mlp(width: int, layers: int) -> nn.Sequential:
    minidl.manual_seed(0)
    body: list[nn.Module] = []
    for _ in range(layers - 1):
        body += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*body, nn.Linear(width, 10))


def pipeline_row(args: argparse.Namespace, schedule: str, m: int):
    """A callable running one step of the pipeline, and the pipeline (for its stats)."""
    pipe = Pipeline(mlp(args.width, args.layers), micro_batches=m, schedule=schedule)
    opt = optim.SGD(pipe.parameters(), lr=1e-3)
    x, y = batch(args)

    def step() -> None:
        opt.zero_grad()
        pipe.step(x, y, F.cross_entropy)
        opt.step()

    return step, pipe


def ddp_row(args: argparse.Namespace):
    """One step of data parallelism: each rank half of the same global batch."""
    ddp = DistributedDataParallel(mlp(args.width, args.layers))
    opt = optim.SGD(ddp.parameters(), lr=1e-3)
    x, y = batch(args)
    mine = slice(rank * args.batch // p, (rank + 1) * args.batch // p)

    def step() -> None:
        opt.zero_grad()
        F.cross_entropy(ddp(minidl.tensor(x[mine])), y[mine]).backward()
        opt.step()

    return step, ddp


def batch(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((args.batch, args.width)).astype(np.float32),
            rng.integers(0, 10, args.batch))


def timed(step, steps: int) -> float:
    """Seconds per step over ``steps`` steps, the slowest rank's (a step ends on every rank)."""
    comm.Barrier()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return comm.allreduce(time.perf_counter() - started, op=MPI.MAX) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=512, help="features per layer")
    parser.add_argument("--layers", type=int, default=8, help="linear layers")
    parser.add_argument("--batch", type=int, default=256, help="samples per step")
    parser.add_argument("--steps", type=int, default=3, help="steps per row and pass")
    parser.add_argument("--passes", type=int, default=5, help="interleaved passes")
    args = parser.parse_args()
    kernels.set_num_threads(1)
    threadpool_limits(1, user_api="blas")  # one core per rank: the ranks share the machine

    rows = {(s, m): pipeline_row(args, s, m) for s in ("gpipe", "1f1b") for m in MICRO_BATCHES}
    rows[("ddp", 0)] = ddp_row(args)
    names = list(rows)
    seconds = {name: [] for name in names}
    bubble = {name: [] for name in names}
    for k in range(args.passes):
        for name in names[k % len(names):] + names[: k % len(names)]:
            step, owner = rows[name]
            step()  # warm: buffers allocated, messages matched
            waited = getattr(owner.stats, "bubble", 0.0) if name[0] != "ddp" else 0.0
            per_step = timed(step, args.steps)
            if name[0] != "ddp":
                waited = (owner.stats.bubble - waited) / args.steps  # this rank's, per step
                bubble[name].append(comm.allreduce(waited / per_step) / p)
            seconds[name].append(per_step)
    # Forward and backward of one micro-batch on one stage, measured (1F1B, 8 micro-batches).
    stats = rows[("1f1b", 8)][1].stats
    forward = comm.allreduce(stats.seconds["forward"] / stats.steps / 8, op=MPI.MAX)
    backward = comm.allreduce(stats.seconds["backward"] / stats.steps / 8, op=MPI.MAX)
    peaks = {name: comm.allreduce(rows[name][1].stats.peak_activation_bytes, op=MPI.MAX)
             for name in names if name[0] != "ddp"}
    rows[("ddp", 0)][1].close()  # collective, explicit: every rank is here
    if rank != 0:
        return

    print(f"pipeline of {p} stages: MLP of {args.layers} layers x {args.width} features, batch "
          f"{args.batch}; medians over {args.passes} interleaved passes of {args.steps} steps")
    print(f"measured per micro-batch of {args.batch // 8} on one stage: forward "
          f"{forward * 1e3:.2f} ms, backward {backward * 1e3:.2f} ms")
    print(f"{'schedule':>8s} {'m':>3s} {'step ms':>8s} {'bubble':>7s} {'simulated':>10s} "
          f"{'formula':>8s} {'peak act KiB':>13s}")
    for schedule in ("gpipe", "1f1b"):
        for m in MICRO_BATCHES:
            name = (schedule, m)
            sim = simulate_pipeline(schedule, p, m, forward=forward * 8 / m,
                                    backward=backward * 8 / m)
            print(f"{schedule:>8s} {m:3d} {np.median(seconds[name]) * 1e3:8.2f} "
                  f"{np.median(bubble[name]):7.1%} {sim.bubble:10.1%} "
                  f"{(p - 1) / (m + p - 1):8.1%} {peaks[name] / 1024:13.1f}")
    ratio = np.median([a / b for a, b in zip(seconds[("1f1b", 4)], seconds[("ddp", 0)])])
    print(f"ratio: 1f1b holds {peaks[('1f1b', 8)] / peaks[('gpipe', 8)]:.2f}x GPipe's peak "
          "activations at 8 micro-batches")
    print(f"ratio: pipeline (1f1b, 4 micro-batches) step time / DDP step time = {ratio:.2f} "
          f"(median over passes of the ratio within a pass)")


if __name__ == "__main__":
    main()
