# Run: mpiexec -n 4 python -m mpi4py examples/ring_allreduce.py
"""The ring all-reduce on real ranks: its schedule, its messages, and a Chrome trace.

The ring cuts the buffer into ``p`` chunks and runs two phases of ``p - 1``
rounds each: a reduce-scatter (each chunk travels once round the ring,
picking up one rank's contribution per hop) then an all-gather (each finished
chunk travels round again, copied this time). Every rank talks only to its
two neighbours. This script prints the schedule, runs it with a
:class:`~minidl.distributed.Trace` recording every message, checks the result
against MPI's own ``Allreduce``, and writes the trace for Perfetto
(https://ui.perfetto.dev) or ``chrome://tracing``:

    mpiexec -n 4 python -m mpi4py examples/ring_allreduce.py --trace ring.json
"""

import argparse
import os
import tempfile

import numpy as np
from mpi4py import MPI

import minidl.distributed as D

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--trace", default=os.path.join(tempfile.gettempdir(), "ring_allreduce.json"),
                    help="where rank 0 writes the Chrome trace (default: %(default)s)")
parser.add_argument("--n", type=int, default=1_000_003, help="elements per rank")
args = parser.parse_args()

comm = MPI.COMM_WORLD
rank, p = comm.rank, comm.size

# 1. The schedule is data: what rank 0 does in each round, for a small buffer.
if rank == 0:
    print(D.schedule("ring", p, 0, 2 * p))

# 2. Run it. Rank- and index-dependent data, so that a chunk that lands in the
#    wrong place, or a rank's contribution counted twice, cannot pass. They are
#    whole numbers, exact in float64 whatever order the ranks add them in, so
#    the ring and MPI must agree to the bit.
x = np.arange(args.n, dtype=np.float64) * (rank + 1) + rank
want = np.empty_like(x)
comm.Allreduce(x, want, op=MPI.SUM)

trace = D.Trace()
got = D.allreduce(x.copy(), algorithm="ring", trace=trace)
assert np.array_equal(got, want), f"rank {rank}: the ring disagrees with MPI's Allreduce"

# 3. A trace on real ranks holds this rank's events only: gather them (every rank
#    calls gather, it is a collective), then rank 0 prints and writes them all.
merged = trace.gather()
if merged is not None:
    print(f"\nring all-reduce of {args.n} float64 on {p} ranks equals MPI's Allreduce")
    merged.summary()
    merged.to_chrome(args.trace)
    print(f"\nChrome trace of every rank written to {args.trace}: "
          "open it in https://ui.perfetto.dev or chrome://tracing")
