# Run: mpiexec -n 4 python -m mpi4py examples/my_schedule.py
"""Write your own all-reduce as a schedule, check it in the simulator, run it on real ranks.

A schedule is a generator ``fn(p, rank, n)`` that yields, for one rank, a
``Round`` per round: the chunks it sends and the chunks it receives (reducing
them in, or copying them). Here, a *bidirectional ring*: the buffer's first
half goes round the ring clockwise, as in ``"ring"``, while its second half
goes round counter-clockwise at the same time, so both directions of every
link carry data in every round. The library has no algorithm of that name;
this file is all it takes to add one. ``minidl.distributed.allreduce``,
``simulate`` and ``cost`` all take the function where they take a name.
"""

import time
from dataclasses import replace

import numpy as np
from mpi4py import MPI

import minidl.distributed as D
from minidl.distributed import Round, ScheduleError, copy_from, reduce_from, send


def bidirectional_ring(p, rank, n):
    """Ring all-reduce of chunks 0..p-1 clockwise and of chunks p..2p-1 counter-clockwise."""
    bounds = D.chunk_bounds(n, 2 * p)  # 2p chunks: p for each direction
    right, left = (rank + 1) % p, (rank - 1) % p
    # Reduce-scatter: after p - 1 rounds this rank holds the sum of chunks rank and p + rank.
    for s in range(p - 1):
        yield Round.of(send(right, bounds, (rank - s - 1) % p),
                       send(left, bounds, p + (rank + s + 1) % p),
                       reduce_from(left, bounds, (rank - s - 2) % p),
                       reduce_from(right, bounds, p + (rank + s + 2) % p))
    # All-gather: pass the finished chunks on, each in its own direction, copying.
    for s in range(p - 1):
        yield Round.of(send(right, bounds, (rank - s) % p),
                       send(left, bounds, p + (rank + s) % p),
                       copy_from(left, bounds, (rank - s - 1) % p),
                       copy_from(right, bounds, p + (rank + s + 1) % p))


def wrong_neighbour(p, rank, n):
    """A bug: every message is received from the left, but half of them come from the right."""
    for rnd in bidirectional_ring(p, rank, n):
        yield Round(rnd.sends, tuple(replace(r, peer=(rank - 1) % p) for r in rnd.recvs))


def forgot_the_allgather(p, rank, n):
    """A bug: the reduce-scatter alone keeps every rule, but leaves each rank 2 of 2p chunks."""
    yield from list(bidirectional_ring(p, rank, n))[: p - 1]


comm = MPI.COMM_WORLD
rank, p = comm.rank, comm.size

# 1. In the simulator first: one process plays every rank, no MPI, so any p will do.
#    It checks every send against its receive, and the result against NumPy's sum.
if rank == 0:
    print(D.schedule(bidirectional_ring, 4, 0, 16))
    for sim_p in range(1, 9):
        for n in (0, 1, 2 * sim_p - 1, 101):  # empty chunks, uneven chunks
            inputs = [np.arange(n, dtype=np.float64) * (r + 1) + r for r in range(sim_p)]
            outputs, _ = D.simulate(bidirectional_ring, inputs)
            assert all(np.array_equal(out, sum(inputs)) for out in outputs), (sim_p, n)
    print("\nsimulated on 1 to 8 ranks, 0 to 101 elements: every rank holds the sum")
    inputs = [np.arange(101.0) * (r + 1) + r for r in range(4)]
    for broken in (wrong_neighbour, forgot_the_allgather):
        try:
            D.simulate(broken, inputs)
        except ScheduleError as error:
            print(f"{broken.__name__}: ScheduleError: {error}")
        else:
            raise AssertionError(f"the simulator let {broken.__name__} through")

# 2. On real ranks, with the library's executor: pass the function as the algorithm.
x = np.arange(100_003, dtype=np.float64) * (rank + 1) + rank  # whole numbers: exact sums
want = np.empty_like(x)
comm.Allreduce(x, want, op=MPI.SUM)
got = D.allreduce(x.copy(), algorithm=bidirectional_ring)
assert np.array_equal(got, want), f"rank {rank}: bidirectional_ring disagrees with Allreduce"
if rank == 0:
    print(f"\non {p} real ranks: bidirectional_ring equals MPI's Allreduce")

# 3. Timed against the built-in algorithms. Each repeat times every algorithm once,
#    in turn (so a slow moment of a shared machine slows them all alike); a call's
#    time is its slowest rank's; we print each median against yours.
algorithms = [bidirectional_ring, "ring", "rabenseifner", "recursive_doubling", "tree", "mpi"]
buf = np.ones(1 << 17)  # 1 MiB of float64
times = {a: [] for a in algorithms}
for repeat in range(8):
    for a in algorithms:
        comm.Barrier()
        start = time.perf_counter()
        D.allreduce(buf, algorithm=a)
        times[a].append(comm.allreduce(time.perf_counter() - start, op=MPI.MAX))
if rank == 0:
    mine = np.median(times[bidirectional_ring])
    print(f"\nmedian of 8 interleaved repeats, 1 MiB on {p} ranks (this machine, this run):")
    for a in algorithms:
        name = getattr(a, "__name__", a)
        median = np.median(times[a])
        print(f"  {name:>20}: {median * 1e3:7.2f} ms = {median / mine:5.2f} x bidirectional_ring")
