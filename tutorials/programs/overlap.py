# Run: mpiexec -n 2 python -m mpi4py tutorials/programs/overlap.py
"""Start a ring all-reduce with iallreduce, compute while it runs, against a blocking allreduce."""

import time

import numpy as np
from mpi4py import MPI

from minidl.distributed import allreduce, iallreduce
from minidl.testing import report

comm = MPI.COMM_WORLD
buf = np.ones(1 << 20, np.float32)
a = np.random.default_rng(comm.rank).random((96, 96))

def work():
    return a @ a

def blocking():
    allreduce(buf, check=False)
    for _ in range(40):
        work()

def started():
    request = iallreduce(buf, check=False)
    tests_until_done = None
    for k in range(40):
        work()
        if tests_until_done is None and request.test():
            tests_until_done = k + 1
    request.wait()
    return tests_until_done

for run in (blocking, started):  # warm up
    run()
times = {"blocking": [], "started": []}
for _ in range(20):
    for name, run in (("blocking", blocking), ("started", started)):
        comm.Barrier()
        t = time.perf_counter()
        out = run()
        times[name].append(time.perf_counter() - t)
        if name == "started":
            tests = out
buf[:] = comm.rank + 1
iallreduce(buf).wait()
report({"times": {k: float(np.median(v)) for k, v in times.items()}, "tests": tests,
        "sum": float(buf[0])} if comm.rank == 0 else None)
