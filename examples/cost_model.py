# Run: mpiexec -n 2 python -m mpi4py examples/cost_model.py
"""The alpha-beta-gamma cost model against the clock.

The model prices a collective from its schedule: ``alpha`` per message (the
latency), ``beta`` per byte on the wire, ``gamma`` per byte reduced, each round
as long as its busiest rank (``minidl.distributed.cost``). ``calibrate``
measures the three on this machine (and minidl's Python time per call), and
``Calibration.predict`` adds them up. This script then times real all-reduces
of a few sizes and algorithms and prints predicted against measured. A model
is a simplification: where it is off, and the reason, is printed at the end
from the numbers of this run.
"""

import time

import numpy as np
from mpi4py import MPI

import minidl.distributed as D

comm = MPI.COMM_WORLD
rank, p = comm.rank, comm.size
sizes = [1 << 10, 1 << 15, 1 << 20, 1 << 23]  # bytes: 1 KiB, 32 KiB, 1 MiB, 8 MiB
algorithms = ["ring", "recursive_doubling", "naive"]

# 1. Measure the model's terms (collective: every rank calls it, about a second).
model = D.calibrate(repeats=8)
if rank == 0:
    print(f"calibrated on {p} ranks: alpha {model.alpha * 1e6:.2f} us per message, "
          f"beta {model.beta * 1e9:.3f} ns per byte, gamma {model.gamma * 1e9:.3f} ns per byte "
          f"reduced, {model.overhead * 1e6:.2f} us of Python per call")
    c = D.cost("ring", p, sizes[-1], model.alpha, model.beta, model.gamma)
    print(f"what the model counts, ring on 8 MiB: {c.rounds} rounds, {c.messages} messages, "
          f"{c.wire_bytes} bytes on the wire, {c.reduced_bytes} reduced")

# 2. Time them: every (size, algorithm) once per repeat, in turn, so that a slow
#    moment of the machine slows all alike. A timing is 5 calls in a row (the
#    ranks' uneven exit from the barrier then counts once, not 5 times), as long
#    as its slowest rank. check=False: the model prices the schedule, not the
#    agreement check that a call makes first by default.
calls = 5
buffers = {n: np.ones(n // 4, dtype=np.float32) for n in sizes}
times = {(n, a): [] for n in sizes for a in algorithms}
for repeat in range(10):
    for n, a in times:
        comm.Barrier()
        start = time.perf_counter()
        for _ in range(calls):
            D.allreduce(buffers[n], algorithm=a, check=False)
        elapsed = (time.perf_counter() - start) / calls
        times[n, a].append(comm.allreduce(elapsed, op=MPI.MAX))

# 3. Predicted against measured (medians of the 10 repeats).
if rank == 0:
    print(f"\n{'bytes':>8} {'algorithm':>19} {'predicted':>10} {'measured':>10} {'ratio':>6}")
    ratios = {}
    for (n, a), measured in times.items():
        predicted = model.predict(a, p, n)
        ratios[n, a] = np.median(measured) / predicted
        print(f"{n:>8} {a:>19} {predicted * 1e6:>7.0f} us {np.median(measured) * 1e6:>7.0f} us "
              f"{ratios[n, a]:>6.2f}")
    (n, a), worst = max(ratios.items(), key=lambda item: abs(np.log(item[1])))
    print(f"\nmeasured / predicted: the model is furthest off for {a} on {n} bytes "
          f"({worst:.2f}x). Why it can be off, by size:")
    for label, group in (("short", sizes[:2]), ("long", sizes[2:])):
        median = float(np.median([r for (m, _), r in ratios.items() if m in group]))
        way = "more" if median > 1 else "less"
        print(f"- {label} buffers ({', '.join(map(str, group))} bytes) took {median:.2f}x the "
              f"prediction, {way} than predicted, in the median.")
    print("  For short buffers the model counts alpha, one bare Sendrecv of 8 bytes, per "
          "message, and the Python of a call once; the executor's Python work in each round "
          "is in neither.\n  For long buffers, beta and gamma are single slopes fitted to "
          "1-64 MiB: a buffer that fits in the caches moves and reduces faster per byte than "
          "that fit, one that does not slower.\n  At every size, where ranks share cores "
          "(more ranks than cores, or other jobs), a rank's time includes waiting for a core, "
          "which the model does not count.")
