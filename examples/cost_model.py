# Run: mpiexec -n 2 python -m mpi4py examples/cost_model.py
"""The alpha-beta-gamma cost model against the clock.

The model prices a collective from its schedule: ``alpha`` per message (the
latency), ``beta`` per byte on the wire, ``gamma`` per byte reduced, each round
as long as its busiest rank (``minidl.distributed.cost``). ``calibrate``
measures the three on this machine (and minidl's Python time per call), and
``Calibration.predict`` adds them up. This script then times real all-reduces
of a few sizes and algorithms and prints predicted against measured. A model
is a simplification: where it is off is printed at the end from the numbers
of this run, and beside it what the model leaves out. So is where the model
switches from recursive doubling to the ring (``Calibration.crossover``), next
to the sizes on which the ring was faster in this run.
"""

import time

import numpy as np
from mpi4py import MPI

import minidl.distributed as D

comm = MPI.COMM_WORLD
rank, p = comm.rank, comm.size
sizes = [1 << k for k in range(10, 23, 2)]  # bytes: 1 KiB to 4 MiB, in steps of 4
algorithms = ["ring", "recursive_doubling", "naive"]

# 1. Measure the model's terms (collective: every rank calls it, about a second).
model = D.calibrate(repeats=8)
if rank == 0:
    print(f"calibrated on {p} ranks: alpha {model.alpha * 1e6:.2f} us per message, "
          f"beta {model.beta * 1e9:.3f} ns per byte, gamma {model.gamma * 1e9:.3f} ns per byte "
          f"reduced, {model.overhead * 1e6:.2f} us of Python per call")
    c = D.cost("ring", p, sizes[-1], model.alpha, model.beta, model.gamma)
    print(f"what the model counts, ring on 4 MiB: {c.rounds} rounds, {c.messages} messages, "
          f"{c.wire_bytes} bytes on the wire, {c.reduced_bytes} reduced")

# 2. Time them: every (size, algorithm) in turn, in each of 10 repeats, so that a
#    slow moment of the machine slows all alike. Each turn times its first call
#    alone, then 4 more in a row: the first comes right after other sizes' calls
#    and a barrier, as in a program that does other work between all-reduces;
#    the next ones find their buffers in the caches and the ranks in step, as
#    calibrate() does. A time is its slowest rank's. check=False: the model
#    prices the schedule, not the agreement check a call makes first by default.
# Written zeros: they stay zeros however often they are summed (ones would reach inf).
buffers = {n: np.full(n // 4, 0.0, dtype=np.float32) for n in sizes}
first = {(n, a): [] for n in sizes for a in algorithms}
warm = {case: [] for case in first}
for repeat in range(10):
    for n, a in first:
        comm.Barrier()
        t0 = time.perf_counter()
        D.allreduce(buffers[n], algorithm=a, check=False)
        t1 = time.perf_counter()
        for _ in range(4):
            D.allreduce(buffers[n], algorithm=a, check=False)
        slowest = np.array([t1 - t0, (time.perf_counter() - t1) / 4])
        comm.Allreduce(MPI.IN_PLACE, slowest, op=MPI.MAX)
        first[n, a].append(slowest[0])
        warm[n, a].append(slowest[1])

# 3. Predicted against measured (medians of the 10 repeats).
if rank == 0:
    print(f"\n{'bytes':>8} {'algorithm':>19} {'predicted':>10} {'measured':>10} {'ratio':>6} "
          f"{'first call':>11}")
    ratios, firsts = {}, []
    for case in first:
        n, a = case
        predicted, measured = model.predict(a, p, n), np.median(warm[case])
        ratios[case] = measured / predicted
        firsts.append(np.median(first[case]) / measured)
        print(f"{n:>8} {a:>19} {predicted * 1e6:>7.0f} us {measured * 1e6:>7.0f} us "
              f"{ratios[case]:>6.2f} {np.median(first[case]) * 1e6:>8.0f} us")
    (n, a), worst = max(ratios.items(), key=lambda item: abs(np.log(item[1])))
    print(f"\nmeasured / predicted: the model is furthest off for {a} on {n} bytes "
          f"({worst:.2f}x).")
    short, long = [n for n in sizes if n <= 1 << 14], [n for n in sizes if n >= 1 << 20]
    for label, group in (("short", short), ("long", long)):
        median = float(np.median([r for (m, _), r in ratios.items() if m in group]))
        way = "more" if median > 1 else "less"
        print(f"- {label} buffers ({', '.join(map(str, group))} bytes) took {median:.2f}x the "
              f"prediction in the median: {way} time than predicted.")
    print(f"- a first call took {np.median(firsts):.2f}x the calls after it in the median.")
    # 4. Where the model switches from recursive doubling to the ring: its two lines cross.
    switch = model.crossover(p)
    warm_median = {case: np.median(times) for case, times in warm.items()}
    faster = [n for n in sizes if warm_median[n, "ring"] < warm_median[n, "recursive_doubling"]]
    predicted = "never" if switch is None else f"above {switch / 1024:.0f} KiB"
    seen = f"{', '.join(map(str, faster))} bytes" if faster else "none of the sizes"
    print(f"The model predicts the ring faster than recursive doubling {predicted}; in this "
          f"run it was faster on {seen}.")
    print("What the model leaves out, which can explain those numbers:\n"
          "- per message it counts alpha, timed as one bare Sendrecv of 8 bytes, and the "
          "Python of a call once: the executor's Python work in each round is in neither "
          "(it weighs most on short buffers);\n"
          "- beta and gamma are single slopes fitted to 1-64 MiB: a buffer that fits in the "
          "caches moves and reduces faster per byte than that fit, a bigger one slower;\n"
          "- it prices a call in steady state, as calibrate() times it: a first call after "
          "other work may find its buffers out of the caches and the ranks out of step;\n"
          "- where ranks share cores (more ranks than cores, or other jobs), a rank also "
          "waits for a core.")
