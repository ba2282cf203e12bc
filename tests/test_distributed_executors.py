"""The two executors, reference and fast, give the same bits for every collective.

:func:`minidl.distributed.use` switches between the plain executor
(:mod:`minidl.distributed.run`) and the tuned one (:mod:`minidl.distributed.fast`).
The tuning must never change a result: on real ranks, every algorithm of every
collective, every op and dtype, on sizes 0, 1, a prime and sizes not divisible
by ``p``, blocking and started (``iallreduce``), traced and not, and a schedule
a student wrote, must leave every byte of every rank's buffer equal.
"""

from __future__ import annotations

import numpy as np
import pytest

import minidl.distributed as D
from minidl.testing import run_mpi

SAME_BITS = """
    import numpy as np
    from mpi4py import MPI

    import minidl.distributed as D
    from minidl.distributed import (
        ALGORITHMS, DTYPES, OPS, Round, Trace, chunk_bounds, copy_from, reduce_from, send,
    )
    from minidl.testing import report

    comm = MPI.COMM_WORLD
    rank, p = comm.rank, comm.size
    failures, cases = [], 0

    def student_ring(p, rank, n):
        # A ring all-reduce written with the public step words, as a student would.
        bounds = chunk_bounds(n, p)
        right, left = (rank + 1) % p, (rank - 1) % p
        for k in range(p - 1):
            yield Round.of(send(right, bounds, (rank - k) % p),
                           reduce_from(left, bounds, (rank - k - 1) % p))
        for k in range(p - 1):
            yield Round.of(send(right, bounds, (rank + 1 - k) % p),
                           copy_from(left, bounds, (rank - k) % p))

    def data(n, dtype, seed):
        # Rank- and index-dependent, exact in every dtype; a few negatives for max and min.
        values = (np.arange(n) * 7 + rank * 13 + seed) % 23 - 5
        return values.astype(dtype)

    def run(executor, collective, algorithm, op, n, dtype, root, how, seed):
        buf = data(n, dtype, seed)
        trace = Trace() if how == "traced" else None
        with D.use(executor):
            if collective == "allreduce" and how == "started":
                request = D.iallreduce(buf, op, algorithm)
                while not request.test():
                    pass
                request.wait()  # lets the next collective start on the communicator
            elif collective in ("allreduce", "reduce_scatter"):
                getattr(D, collective)(buf, op, algorithm, trace=trace)
            elif collective == "reduce":
                D.reduce(buf, op, root, algorithm, trace=trace)
            elif collective in ("broadcast", "scatter", "gather"):
                getattr(D, collective)(buf, root, algorithm, trace=trace)
            else:  # allgather, alltoall
                getattr(D, collective)(buf, algorithm, trace=trace)
        return buf

    for collective, algorithms in ALGORITHMS.items():
        named = list(algorithms) + ([student_ring] if collective == "allreduce" else [])
        reducing = collective in ("allreduce", "reduce_scatter", "reduce")
        if collective == "alltoall":
            sizes = [0, p, 3 * p, 7 * p]
        else:
            sizes = sorted({0, 1, 7, 3 * p + 1})
        roots = (sorted({0, p - 1}) if collective in ("broadcast", "reduce", "scatter", "gather")
                 else [0])
        others = ["traced"] + (["started"] if collective == "allreduce" else [])
        for algorithm in named:
            for op in (OPS if reducing else [None]):
                for dtype in DTYPES:
                    for n in sizes:
                        for root in roots:
                            # Traced and started: other code paths, tried on one dtype.
                            hows = ["blocking"] + (others if dtype == DTYPES[0] else [])
                            for how in hows:
                                seed = cases % 5
                                a = run("reference", collective, algorithm, op, n, dtype, root,
                                        how, seed)
                                b = run("fast", collective, algorithm, op, n, dtype, root,
                                        how, seed)
                                cases += 1
                                if a.tobytes() != b.tobytes():
                                    name = getattr(algorithm, "__name__", algorithm)
                                    failures.append(
                                        f"rank {rank}: {collective} {name} op={op} {dtype} n={n} "
                                        f"root={root} {how}: reference {a[:8]} != fast {b[:8]}")

    report({"failures": failures[:20], "cases": cases})
"""


@pytest.mark.mpi
@pytest.mark.parametrize("p", [1, 2, 3, 4, 5])
def test_reference_and_fast_executors_give_the_same_bits(p):
    job = run_mpi(SAME_BITS, p, timeout=240)
    for result in job.results:
        assert result["cases"] > 300
        assert not result["failures"], "\n".join(result["failures"])


def test_use_switches_the_executor_and_switches_back():
    assert D.backend() == "fast"
    with D.use("reference"):
        assert D.backend() == "reference"
        with D.use("fast"):
            assert D.backend() == "fast"
        assert D.backend() == "reference"
    assert D.backend() == "fast"
    D.use("reference")
    try:
        assert D.backend() == "reference"
    finally:
        D.use("fast")


def test_use_names_the_executors_it_knows():
    with pytest.raises(ValueError, match="unknown executor 'numpy'.*reference.*fast"):
        D.use("numpy")
    assert D.backend() == "fast"


def test_the_reference_executor_runs_on_one_rank_without_mpiexec():
    # One rank: every schedule is idle or sends to itself, and the result is the input.
    buf = np.arange(6, dtype=np.float32)
    with D.use("reference"):
        D.allreduce(buf, algorithm="ring")
        D.alltoall(buf, algorithm="bruck")
    np.testing.assert_array_equal(buf, np.arange(6, dtype=np.float32))


MIXED = """
    import numpy as np
    from mpi4py import MPI

    import minidl.distributed as D
    from minidl.testing import report

    rank = MPI.COMM_WORLD.rank
    messages = []
    with D.use("reference" if rank == 0 else "fast"):
        try:
            D.allreduce(np.ones(5))
        except ValueError as exc:
            messages.append(str(exc))

    def mine(p, rank, n):  # a schedule of one's own: no list of names holds it
        yield from D.ALGORITHMS["allreduce"]["ring"](p, rank, n)

    def yours(p, rank, n):
        yield from D.ALGORITHMS["allreduce"]["tree"](p, rank, n)

    try:
        D.allreduce(np.ones(5), algorithm=mine if rank == 0 else yours)
    except ValueError as exc:
        messages.append(str(exc))
    report(messages)
"""


@pytest.mark.mpi
def test_ranks_on_different_executors_are_told_so_not_left_hanging():
    job = run_mpi(MIXED, 3, timeout=60)
    for executors, schedules in job.results:
        assert "executor: 'reference' on rank 0; 'fast' on ranks 1, 2" in executors
        assert "algorithm: 'mine' on rank 0; 'yours' on ranks 1, 2" in schedules


DIRECT = """
    import numpy as np
    from mpi4py import MPI

    import minidl.distributed as D
    from minidl.distributed import Round, chunk_bounds, reduce_from, send
    from minidl.testing import report

    def direct(p, rank, n):
        # One round: the whole buffer to every other rank, every other rank's reduced in.
        whole = chunk_bounds(n, 1)
        others = [q for q in range(p) if q != rank]
        yield Round.of(*(send(q, whole, 0) for q in others),
                       *(reduce_from(q, whole, 0) for q in others))

    comm = MPI.COMM_WORLD
    right = []
    for executor in ("fast", "reference"):
        for n in (20000, 700001):  # long enough for MPI's rendezvous, and cut into segments
            buf = np.arange(n, dtype=np.float64) + comm.rank
            with D.use(executor):
                D.allreduce(buf, algorithm=direct)
            want = comm.size * np.arange(n) + sum(range(comm.size))
            right.append(bool(np.array_equal(buf, want)))
    report(right)
"""


@pytest.mark.mpi
def test_a_round_of_many_long_messages_each_way_completes_on_both_executors():
    # Each message reduced waits for the round's sends to other peers: posted a
    # window at a time, the fast executor once waited for a send whose receive
    # its peer had not posted yet, while the peer waited for it.
    job = run_mpi(DIRECT, 3, timeout=120)
    assert job.results == [[True] * 4] * 3


WRONG_PEER = """
    import numpy as np
    from mpi4py import MPI

    import minidl.distributed as D
    from minidl.distributed import Round, chunk_bounds, copy_from, reduce_from, send

    def forgot_modulo(p, rank, n):
        bounds = chunk_bounds(n, p)
        right, left = (rank + 1) % p, rank - 1  # rank 0's left is -1: MPI_PROC_NULL
        for k in range(p - 1):
            yield Round.of(send(right, bounds, (rank - k) % p),
                           reduce_from(left, bounds, (rank - k - 1) % p))

    with D.use(__import__("sys").argv[1]):
        D.allreduce(np.ones(6), algorithm=forgot_modulo)
"""


@pytest.mark.mpi
@pytest.mark.parametrize("executor", ["reference", "fast"])
def test_a_peer_outside_the_ranks_ends_the_job_with_the_round_named(executor):
    job = run_mpi(WRONG_PEER, 2, args=[executor], timeout=60, check=False)
    assert job.returncode != 0
    assert "round 0: rank 0 does 'reduce chunk 1 [3:6] from rank -1'" in job.stderr
    assert "the peer must be a rank of p=2" in job.stderr


UNMATCHED = """
    import numpy as np
    from mpi4py import MPI

    import minidl.distributed as D
    from minidl.distributed import Round, ScheduleError, chunk_bounds, reduce_from, send
    from minidl.testing import report

    def wrong_peer(p, rank, n):  # rank r sends to r + 1 but expects r - 2's message: hangs
        bounds = chunk_bounds(n, p)
        yield Round.of(send((rank + 1) % p, bounds, 0), reduce_from((rank - 2) % p, bounds, 0))

    with D.use(__import__("sys").argv[1]):
        try:
            D.allreduce(np.ones(8), algorithm=wrong_peer)
            report("ran")
        except ScheduleError as exc:
            report(str(exc))
"""


@pytest.mark.mpi
@pytest.mark.parametrize("executor", ["reference", "fast"])
def test_a_schedule_whose_messages_do_not_match_raises_on_every_rank_not_hangs(executor):
    job = run_mpi(UNMATCHED, 4, args=[executor], timeout=60)
    assert len(set(job.results)) == 1  # the same error on every rank
    assert "round 0" in job.results[0] and "rank" in job.results[0]
