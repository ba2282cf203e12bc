"""Assignment 4, collectives: ring reduce-scatter, ring all-gather, binomial broadcast.

Handout: docs/assignments/collectives.rst. Each schedule is graded twice:
in the simulator (:func:`minidl.distributed.simulate`, one process, 1 to 7
simulated ranks, sizes 0, 1, a prime and sizes ``p`` does not divide), and on
3 real ranks under ``mpiexec`` against MPI's own collective
(``Reduce_scatter``, ``Allgatherv``, ``Bcast``), through
:func:`minidl.testing.run_mpi` with a timeout. Data are whole numbers that
depend on the rank and the index, so sums are exact and a chunk sent to the
wrong place shows.
"""

from __future__ import annotations

import numpy as np
import pytest

from minidl.distributed import ALGORITHMS, chunk_bounds, simulate
from minidl.testing import run_mpi

RANKS = range(1, 8)
SIZES = (0, 1, 2, 13, 37)
NPROCS = 3
TIMEOUT = 90


def inputs(p: int, n: int) -> list[np.ndarray]:
    return [np.arange(n, dtype=np.float64) * (r + 2) + 100 * r for r in range(p)]


def rounds(collective: str, algorithm: str, p: int, n: int) -> list[int]:
    return [len(list(ALGORITHMS[collective][algorithm](p, r, n))) for r in range(p)]


def check_job(collective: str) -> None:
    """Run the MPI comparison of ``collective`` on NPROCS ranks; every rank must agree."""
    job = run_mpi(MPI_SCRIPT, NPROCS, args=[collective], timeout=TIMEOUT)
    for rank, problems in enumerate(job.results):
        assert problems == [], f"rank {rank}: {problems}"


MPI_SCRIPT = '''
import sys
import numpy as np
from mpi4py import MPI
import minidl.distributed as D
from minidl.testing import report

collective = sys.argv[1]
comm = MPI.COMM_WORLD
p, rank = comm.Get_size(), comm.Get_rank()
problems = []
for n in (0, 1, 2, 7, 13, 100):
    bounds = D.chunk_bounds(n, p)
    counts = [int(bounds[r + 1] - bounds[r]) for r in range(p)]
    mine = np.arange(n, dtype=np.float64) * (rank + 2) + 100 * rank
    if collective == "reduce_scatter":
        got = D.reduce_scatter(mine.copy(), algorithm="ring").copy()
        expected = np.empty(counts[rank])
        comm.Reduce_scatter(mine, expected, recvcounts=counts, op=MPI.SUM)
    elif collective == "allgather":
        got = mine.copy()
        D.allgather(got, algorithm="ring")
        expected = np.empty(n)
        part = mine[bounds[rank] : bounds[rank + 1]].copy()
        comm.Allgatherv(part, [expected, counts, [int(b) for b in bounds[:-1]], MPI.DOUBLE])
    else:
        for root in range(p):
            got = mine.copy()
            D.broadcast(got, root=root, algorithm="binomial")
            expected = mine.copy()
            comm.Bcast(expected, root=root)
            if not np.array_equal(got, expected):
                problems.append(f"broadcast from root {root}, n={n}: {got} != {expected}")
        continue
    if not np.array_equal(got, expected):
        problems.append(f"{collective}, n={n}: {got} != MPI's {expected}")
report(problems)
'''


# -------------------------------------------------------------- ring reduce-scatter
@pytest.mark.a4_ring_reduce_scatter
@pytest.mark.parametrize("p", RANKS)
def test_ring_reduce_scatter_in_the_simulator(p):
    for n in SIZES:
        data = inputs(p, n)
        outputs, _ = simulate("ring", data, collective="reduce_scatter")
        total = sum(data)
        bounds = chunk_bounds(n, p)
        for r in range(p):
            lo, hi = bounds[r], bounds[r + 1]
            np.testing.assert_array_equal(outputs[r][lo:hi], total[lo:hi],
                                          err_msg=f"rank {r} of {p}, n={n}")
        assert rounds("reduce_scatter", "ring", p, n) == [p - 1] * p


@pytest.mark.a4_ring_reduce_scatter
def test_ring_reduce_scatter_matches_mpi():
    check_job("reduce_scatter")


# ------------------------------------------------------------------ ring all-gather
@pytest.mark.a4_ring_allgather
@pytest.mark.parametrize("p", RANKS)
def test_ring_allgather_in_the_simulator(p):
    for n in SIZES:
        data = inputs(p, n)
        bounds = chunk_bounds(n, p)
        expected = np.concatenate([data[r][bounds[r] : bounds[r + 1]] for r in range(p)])
        outputs, _ = simulate("ring", data, collective="allgather")
        for r in range(p):
            np.testing.assert_array_equal(outputs[r], expected, err_msg=f"rank {r} of {p}, n={n}")
        assert rounds("allgather", "ring", p, n) == [p - 1] * p


@pytest.mark.a4_ring_allgather
def test_ring_allgather_matches_mpi():
    check_job("allgather")


# -------------------------------------------------------------- binomial broadcast
@pytest.mark.a4_binomial_broadcast
@pytest.mark.parametrize("p", RANKS)
def test_binomial_broadcast_in_the_simulator(p):
    depth = (p - 1).bit_length()  # ceil(lg p)
    for n in SIZES:
        data = inputs(p, n)
        for root in range(p):
            outputs, _ = simulate("binomial", data, collective="broadcast", root=root)
            for r in range(p):
                np.testing.assert_array_equal(outputs[r], data[root],
                                              err_msg=f"rank {r} of {p}, root {root}, n={n}")
        assert rounds("broadcast", "binomial", p, n) == [depth] * p


@pytest.mark.a4_binomial_broadcast
def test_binomial_broadcast_matches_mpi():
    check_job("broadcast")
