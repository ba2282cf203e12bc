"""minidl.distributed's collectives on real ranks under mpiexec, against MPI and NumPy.

Each test starts one job that runs many cases (starting mpiexec costs about a
second), and every rank reports what went wrong. The inputs are those of
test_distributed_simulate (rank- and index-dependent, every result exact), so results
are compared for equality with a float64 reference and MPI's own collectives,
and for bit-identity across ranks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from minidl.testing import run_mpi
from minidl.testing.mpi import _kill_job, find_mpiexec

pytestmark = pytest.mark.mpi

TESTS = str(Path(__file__).parent)

CORRECTNESS = """
    import hashlib
    import sys

    import numpy as np
    from mpi4py import MPI

    sys.path.insert(0, sys.argv[1])
    from test_distributed_simulate import DTYPES, rank_data, reference

    from minidl.distributed import ALGORITHMS, OPS, allgather, allreduce, alltoall, broadcast
    from minidl.distributed import chunk_bounds, gather, reduce, reduce_scatter, scatter
    from minidl.testing import report

    comm = MPI.COMM_WORLD
    rank, p = comm.rank, comm.size
    failures, digests = [], []

    def expect(label, got, want):
        if got.dtype != want.dtype and want.dtype != np.float64:
            failures.append(f"{label}: rank {rank} got dtype {got.dtype}")
        elif not np.array_equal(got.astype(np.float64), want.astype(np.float64)):
            wrong = np.flatnonzero(got.astype(np.float64) != want.astype(np.float64))
            first = wrong[:5]
            failures.append(f"{label}: rank {rank} wrong at {first}: {got[first]} != {want[first]}")

    # Every op and dtype on few ranks; on many (oversubscribed, slow) ranks,
    # every op and every dtype, but not every pair, except for one size.
    all_pairs = [(op, dtype) for op in OPS for dtype in DTYPES]
    diagonal = list(zip(OPS, DTYPES))
    sizes = sorted({0, 1, p - 1, p, p + 1, 13})
    for algorithm in [*ALGORITHMS["allreduce"], "auto", "mpi"]:
        for n in sizes:
            for op, dtype in all_pairs if p <= 4 or n == p + 1 else diagonal:
                inputs = rank_data(p, n, dtype, op)
                got = allreduce(inputs[rank].copy(), op, algorithm)
                label = f"allreduce {algorithm} {op} {dtype.__name__} n={n}"
                expect(label, got, reference(inputs, op))
                digests.append(hashlib.sha1(got.tobytes()).hexdigest())
        large = [("sum", np.float32), ("max", np.int64)] if p <= 4 else [("sum", np.float32)]
        for op, dtype in large:
            inputs = rank_data(p, 10**6 + 3, dtype, op)
            got = allreduce(inputs[rank].copy(), op, algorithm, check=False)
            expect(f"allreduce {algorithm} {op} n=10**6+3", got, reference(inputs, op))
            digests.append(hashlib.sha1(got.tobytes()).hexdigest())

    # Rounded floats: close to MPI's own Allreduce, and the same bits on every rank.
    rng = np.random.default_rng(rank)
    x = rng.standard_normal(1001).astype(np.float32)
    want = comm.allreduce(x.astype(np.float64))
    for algorithm in ALGORITHMS["allreduce"]:
        got = allreduce(x.copy(), algorithm=algorithm)
        mpi = allreduce(x.copy(), algorithm="mpi")
        if not np.allclose(got, want, rtol=0, atol=p * 8 * np.finfo(np.float32).eps):
            failures.append(f"{algorithm} on random floats: rank {rank} far from float64")
        if not np.allclose(got, mpi, rtol=0, atol=p * 8 * np.finfo(np.float32).eps):
            failures.append(f"{algorithm} on random floats: rank {rank} far from MPI's Allreduce")
        digests.append(hashlib.sha1(got.tobytes()).hexdigest())

    for n in sizes + [1009]:
        bounds = chunk_bounds(n, p)
        mine = slice(bounds[rank], bounds[rank + 1])
        for algorithm in ("ring", "mpi"):
            inputs = rank_data(p, n, np.int32, "sum")
            got = reduce_scatter(inputs[rank].copy(), "sum", algorithm)
            expect(f"reduce_scatter {algorithm} n={n}", got, reference(inputs, "sum")[mine])
            full = rank_data(1, n, np.float64, "sum")[0]
            buf = np.full(n, -1.0)
            buf[mine] = full[mine]
            expect(f"allgather {algorithm} n={n}", allgather(buf, algorithm), full)
        for root in range(p):
            inputs = rank_data(p, n, np.float32, "min")
            for algorithm in (*ALGORITHMS["broadcast"], "mpi"):
                got = broadcast(inputs[rank].copy(), root, algorithm)
                expect(f"broadcast {algorithm} root={root} n={n}", got, inputs[root])
            for algorithm in (*ALGORITHMS["reduce"], "mpi"):
                got = reduce(inputs[rank].copy(), "min", root, algorithm)
                if rank == root:
                    expect(f"reduce {algorithm} root={root} n={n}", got, reference(inputs, "min"))

    # Scatter, gather and alltoall: every algorithm, every root, against MPI's own
    # Scatterv, Gatherv and Alltoall called directly, on sizes not divisible by p.
    for n in sizes + [1009]:
        bounds = chunk_bounds(n, p)
        counts, starts = np.diff(bounds), np.array(bounds[:-1])
        mine = slice(bounds[rank], bounds[rank + 1])
        data = rank_data(p, n, np.float64, "sum")[rank]
        for root in range(p):
            want = np.empty(counts[rank])
            comm.Scatterv([data, (counts, starts)] if rank == root else None, want, root=root)
            gathered = np.empty(n) if rank == root else None
            comm.Gatherv(data[mine].copy(), [gathered, (counts, starts)] if rank == root else None,
                         root=root)
            for algorithm in (*ALGORITHMS["scatter"], "mpi"):
                got = scatter(data.copy(), root, algorithm)
                expect(f"scatter {algorithm} root={root} n={n}", got, want)
            for algorithm in (*ALGORITHMS["gather"], "mpi"):
                got = gather(data.copy(), root, algorithm)
                if rank == root:
                    expect(f"gather {algorithm} root={root} n={n}", got, gathered)
    for k in (0, 1, 3, 257):
        for dtype in DTYPES:
            data = rank_data(p, p * k, dtype, "sum")[rank]
            want = np.empty_like(data)
            comm.Alltoall(data, want)
            for algorithm in (*ALGORITHMS["alltoall"], "mpi"):
                got = alltoall(data.copy(), algorithm)
                expect(f"alltoall {algorithm} {dtype.__name__} n={p * k}", got, want)
    if p > 1:
        try:
            alltoall(np.zeros(p + 1), check=False)
            failures.append(f"rank {rank}: alltoall took p + 1 elements")
        except ValueError as exc:
            if "multiple of p" not in str(exc):
                failures.append(f"rank {rank}: alltoall's error is unclear: {exc}")

    # The fingerprint check's maximum, by dissemination: equal to MPI's, at every p.
    from minidl.distributed.fast.agreement import _dissemination
    from minidl.distributed.fingerprint import maximum as plain_maximum

    agreement = _dissemination(comm)
    rng = np.random.default_rng(rank + 1)
    for _ in range(20):
        a, b = (int(v) for v in rng.integers(-(2**62), 2**62, 2))
        want = np.array([a, b])
        comm.Allreduce(MPI.IN_PLACE, want, op=MPI.MAX)
        if agreement.maximum(a, b) != tuple(want.tolist()):
            failures.append(f"the check's maximum on rank {rank}: not MPI's")
            break
        if plain_maximum(comm, a, b) != tuple(want.tolist()):
            failures.append(f"the reference check's maximum on rank {rank}: not MPI's")
            break

    # A sub-communicator: even and odd ranks reduce separately.
    if p >= 2:
        sub = comm.Split(color=rank % 2, key=rank)
        members = list(range(rank % 2, p, 2))
        for algorithm in ALGORITHMS["allreduce"]:
            inputs = rank_data(p, 11, np.int64, "sum")
            got = allreduce(inputs[rank].copy(), algorithm=algorithm, comm=sub)
            want = reference([inputs[r] for r in members], "sum")
            expect(f"allreduce {algorithm} on a Split communicator", got, want)
        sub.Free()

    report({"failures": failures, "digests": digests})
"""


@pytest.mark.parametrize("p", [1, 2, 3, 4, 5, 7, 8])
def test_every_collective_equals_mpi_and_numpy(p):
    job = run_mpi(CORRECTNESS, p, args=[TESTS], timeout=120)
    failures = [f for r in job.results for f in r["failures"]]
    assert not failures, "\n".join(failures[:20])
    digests = [r["digests"] for r in job.results]
    assert all(d == digests[0] for d in digests), "ranks ended with different bits"


PIPELINED = """
    import sys

    import numpy as np
    from mpi4py import MPI

    sys.path.insert(0, sys.argv[1])
    from test_distributed_simulate import DTYPES, rank_data, reference

    from minidl.distributed import ALGORITHMS, OPS, Trace, allreduce, broadcast, chunk_bounds

    from minidl.distributed.fast import executor
    from minidl.distributed import reduce_scatter
    from minidl.testing import report

    # Segments of a few elements: every message is cut, most of them unevenly.
    executor.SEGMENT_BYTES = int(sys.argv[2])
    comm = MPI.COMM_WORLD
    rank, p = comm.rank, comm.size
    failures = []

    def expect(label, got, want):
        if not np.array_equal(got.astype(np.float64), want.astype(np.float64)):
            wrong = np.flatnonzero(got.astype(np.float64) != want.astype(np.float64))[:5]
            failures.append(f"{label}: rank {rank} wrong at {wrong}: {got[wrong]} != {want[wrong]}")

    for algorithm in [*ALGORITHMS["allreduce"], "auto"]:
        for n in sorted({0, 1, p - 1, p + 1, 13, 1009}):
            for op, dtype in zip(OPS, DTYPES):
                inputs = rank_data(p, n, dtype, op)
                got = allreduce(inputs[rank].copy(), op, algorithm)
                mpi = allreduce(inputs[rank].copy(), op, "mpi")
                label = f"allreduce {algorithm} {op} {dtype.__name__} n={n}"
                expect(label, got, reference(inputs, op))
                expect(label + " vs MPI", got, mpi)
    n = 1009
    bounds = chunk_bounds(n, p)
    inputs = rank_data(p, n, np.int32, "sum")
    mine = slice(bounds[rank], bounds[rank + 1])
    expect("reduce_scatter", reduce_scatter(inputs[rank].copy()), reference(inputs, "sum")[mine])
    for algorithm in ALGORITHMS["broadcast"]:
        expect(f"broadcast {algorithm}", broadcast(inputs[rank].copy(), 1, algorithm), inputs[1])

    # A trace still has one event per step of the schedule, and counts the segments.
    trace = Trace()
    allreduce(np.arange(n, dtype=np.float64), algorithm="ring", trace=trace)
    segments = {e.kind: e.segments for e in trace.events if e.round == 0}
    report({"failures": failures, "sent": trace.stats()[rank].messages_sent, "segments": segments})
"""


@pytest.mark.parametrize("p", [2, 3, 4, 5])
def test_pipelined_segments_equal_mpi_and_numpy(p):
    segment_bytes = 24  # 3 to 6 elements
    job = run_mpi(PIPELINED, p, args=[TESTS, segment_bytes], timeout=120)
    failures = [f for r in job.results for f in r["failures"]]
    assert not failures, "\n".join(failures[:20])
    longest = -(-1009 // p)  # elements in the ring's longest chunk, float64
    for r in job.results:
        assert r["sent"] == 2 * (p - 1)
        assert r["segments"]["send"] >= longest * 8 // segment_bytes
        assert r["segments"]["reduce"] == r["segments"]["recv"]


TRAFFIC_AND_MEMORY = """
    import tracemalloc
    import sys

    import numpy as np
    from mpi4py import MPI

    from minidl.distributed import Trace, allreduce, calibrate
    from minidl.testing import report

    comm = MPI.COMM_WORLD
    n = 10**6
    x = np.arange(n, dtype=np.float64) + comm.rank
    allreduce(x.copy(), check=False)  # warm up: schedules cached, MPI connections made

    tracemalloc.start()
    allreduce(x, algorithm="ring", check=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    trace = Trace()
    allreduce(x, algorithm="ring", trace=trace)
    stats = trace.stats()[comm.rank]
    mine = trace.summary()  # local: this rank's row only
    merged = trace.gather()  # the collective, on every rank
    summary = ""
    if merged is not None:
        merged.to_chrome(sys.argv[1])
        summary = merged.summary()
    model = calibrate(repeats=3)
    report({"peak": peak, "sent": stats.messages_sent, "elements": stats.elements_sent,
            "summary": summary, "mine": mine, "model": model})
"""


def test_ring_traffic_memory_trace_and_calibration_on_real_ranks(tmp_path):
    p, n = 4, 10**6
    path = tmp_path / "ring.json"
    job = run_mpi(TRAFFIC_AND_MEMORY, p, args=[path], timeout=60)
    for rank, r in enumerate(job.results):
        assert r["sent"] == 2 * (p - 1), f"rank {rank}"
        assert r["elements"] <= 2 * -(-n // p) * (p - 1)
        # Only the O(n / p) scratch buffer: one chunk of float64, plus small change.
        assert r["peak"] <= 8 * n / p + 64 * 1024, f"rank {rank} allocated {r['peak']} bytes"
    # The Chrome trace and the summary merge every rank's events on rank 0.
    events = json.loads(path.read_text())["traceEvents"]
    assert {e["pid"] for e in events if e["ph"] == "X"} == set(range(p))
    assert len(job.results[0]["summary"].splitlines()) == p + 1
    assert all(r["summary"] == "" for r in job.results[1:])
    assert all(len(r["mine"].splitlines()) == 2 for r in job.results)  # a header and its row
    # Every rank got rank 0's measurements, so "auto" picks alike everywhere.
    model = job.results[0]["model"]
    assert model.alpha > 0 and model.beta > 0 and model.gamma > 0 and model.overhead > 0
    assert all(r["model"] == model for r in job.results)


MISMATCHES = """
    import numpy as np
    from mpi4py import MPI

    from minidl.distributed import allreduce, broadcast
    from minidl.testing import report

    comm = MPI.COMM_WORLD
    rank = comm.rank
    errors = {}

    def attempt(name, call):
        try:
            call()
        except (TypeError, ValueError) as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"

    attempt("size", lambda: allreduce(np.zeros(10 + (rank == 2))))
    attempt("dtype", lambda: allreduce(np.zeros(10, np.float32 if rank else np.float64)))
    attempt("op", lambda: allreduce(np.zeros(10), op="max" if rank == 1 else "sum"))
    attempt("algorithm", lambda: allreduce(np.zeros(10), algorithm="tree" if rank == 1 else "ring"))
    attempt("root", lambda: broadcast(np.zeros(10), root=rank % 2))
    attempt("strided", lambda: allreduce(np.zeros(20)[::2]))
    readonly = np.zeros(10)
    readonly.flags.writeable = False
    attempt("readonly", lambda: allreduce(readonly))
    attempt("float16", lambda: allreduce(np.zeros(10, np.float16)))
    attempt("list", lambda: allreduce([1.0, 2.0]))
    attempt("op name", lambda: allreduce(np.zeros(10), op="mean"))
    attempt("algorithm name", lambda: allreduce(np.zeros(10), algorithm="hypercube"))
    attempt("comm", lambda: allreduce(np.zeros(10), comm="world"))
    # After all these errors the ranks are still in step: a good call works.
    ok = allreduce(np.arange(4.0) + rank)
    report({"errors": errors, "ok": ok})
"""


def test_mismatched_calls_fail_on_every_rank_with_a_clear_error():
    job = run_mpi(MISMATCHES, 3, timeout=60)
    for rank, r in enumerate(job.results):
        e = r["errors"]
        assert "number of elements: 10 on ranks 0, 1; 11 on rank 2" in e["size"], e["size"]
        assert "dtype: 'float64' on rank 0; 'float32' on ranks 1, 2" in e["dtype"]
        assert "op: 'sum' on ranks 0, 2; 'max' on rank 1" in e["op"]
        assert "algorithm: 'ring' on ranks 0, 2; 'tree' on rank 1" in e["algorithm"]
        assert "root: 0 on ranks 0, 2; 1 on rank 1" in e["root"]
        assert (
            f"allreduce on rank {rank}: buf (shape (10,), strides (16,)) is not C-contiguous"
            in e["strided"]
        )
        assert "read-only" in e["readonly"]
        assert e["float16"].startswith("TypeError") and "unsupported dtype float16" in e["float16"]
        assert "must be a NumPy array, got list" in e["list"]
        assert "unknown op 'mean'" in e["op name"]
        assert "unknown allreduce algorithm 'hypercube'" in e["algorithm name"]
        assert "intra-communicator" in e["comm"]
        assert r["ok"].tolist() == [3.0, 6.0, 9.0, 12.0]


REMEMBERED = """
    import numpy as np
    from mpi4py import MPI

    from minidl.distributed import Trace, allreduce, broadcast, calibration
    from minidl.distributed.fast import calls, executor
    from minidl.testing import report

    comm = MPI.COMM_WORLD
    rank, p = comm.rank, comm.size
    failures, errors = [], {}

    def attempt(name, call):
        try:
            call()
        except (TypeError, ValueError) as exc:
            errors[name] = str(exc)

    def expect(name, buf, want):
        if not np.array_equal(buf, want):
            failures.append(f"{name}: rank {rank} got {buf}, want {want}")

    # A call is remembered by its buffer: what may change between two calls on one buffer
    # must be seen, every time.
    buf = np.arange(8.0)
    allreduce(buf)
    expect("first call", buf, np.arange(8.0) * p)
    buf.flags.writeable = False
    attempt("read-only now", lambda: allreduce(buf))
    buf.flags.writeable = True
    buf.shape = (2, 4)  # in place: the same memory, another shape
    allreduce(buf)
    expect("reshaped in place", buf.ravel(), np.arange(8.0) * p * p)

    halves = np.ones(8, np.float32)
    allreduce(halves)
    halves.dtype = np.float64  # in place: 4 float64s over the same 32 bytes
    halves[:] = rank + 1
    allreduce(halves)
    expect("dtype assigned in place", halves, np.full(4, p * (p + 1) / 2))
    bound = np.zeros(8)
    for _ in range(3):  # bound to its plan from the second call on
        allreduce(bound, check=False)
    bound.dtype = np.int64  # the same itemsize, so the same plan: its binding must not serve
    bound[:] = 2**60 + rank
    allreduce(bound, check=False)
    expect("bound, then dtype assigned in place", bound, np.full(8, p * 2**60 + p * (p - 1) // 2))
    kind = np.zeros(8)
    allreduce(kind)
    if rank == 0:
        kind.dtype = np.int64  # the same size, another dtype: the check must see it
    attempt("dtype on rank 0", lambda: allreduce(kind))

    root = np.zeros(4)
    broadcast(root, root=1)
    attempt("root 1.0", lambda: broadcast(root, root=1.0))
    attempt("root array", lambda: broadcast(root, root=np.array([0, 1])))
    sub = comm.Split(0, rank)
    on_sub = np.ones(4)
    for _ in range(2):  # bound to its plan on the second call
        allreduce(on_sub, comm=sub)
    sub.Free()
    try:
        allreduce(on_sub, comm=sub)
        failures.append(f"rank {rank}: an allreduce on a freed communicator ran")
    except MPI.Exception:
        pass

    # The executor's layout and the model of "auto" are read at every call.
    seg = np.arange(1000.0)
    allreduce(seg, check=False)
    segment_bytes, executor.SEGMENT_BYTES = executor.SEGMENT_BYTES, 800
    trace = Trace()
    allreduce(seg, trace=trace, check=False)
    executor.SEGMENT_BYTES = segment_bytes
    if max(e.segments for e in trace.events) < 2:
        failures.append(f"rank {rank}: a new SEGMENT_BYTES was not used")
    expect("segmented", seg, np.arange(1000.0) * p * p)
    picked = []
    for model in (calibration.Calibration(1.0, 0.0, 0.0), calibration.Calibration(0.0, 0.0, 1.0)):
        calibration._current = model
        trace = Trace()
        allreduce(seg, algorithm="auto", trace=trace, check=False)
        picked.append(len({e.round for e in trace.events}))
    calibration._current = calibration.DEFAULT
    if picked[0] == picked[1]:
        failures.append(f"rank {rank}: auto kept its choice under another model: {picked} rounds")

    # A new array may get the id of a dead one, and find that one's entry: it must match in
    # everything, or be checked afresh. Made to happen here (ids are reused by chance).
    short, long = np.ones(5), np.full(9, rank + 1.0)
    allreduce(short)
    calls._RECENT[id(long)] = calls._RECENT[id(short)]
    allreduce(long)
    expect("another buffer's entry", long, np.full(9, p * (p + 1) / 2))
    report({"failures": failures, "errors": errors})
"""


@pytest.mark.parametrize("p", [2, 3])
def test_a_remembered_call_sees_what_changed_since(p):
    job = run_mpi(REMEMBERED, p, timeout=60)
    for r in job.results:
        assert not r["failures"], "\n".join(r["failures"])
        assert "read-only" in r["errors"]["read-only now"]
        assert "root must be an int, got float" in r["errors"]["root 1.0"]
        assert "root must be an int, got ndarray" in r["errors"]["root array"]
        assert "dtype: 'int64' on rank 0; 'float64' on rank" in r["errors"]["dtype on rank 0"]


ONE_RANK_FAILS = """
    import numpy as np
    from mpi4py import MPI
    from minidl.distributed import allreduce

    if MPI.COMM_WORLD.rank == 1:
        raise RuntimeError("rank 1 gives up")
    allreduce(np.zeros(1000))
"""


def test_an_exception_on_one_rank_ends_the_job_quickly():
    started = time.monotonic()
    job = run_mpi(ONE_RANK_FAILS, 3, timeout=60, check=False)
    assert job.returncode != 0
    assert "rank 1 gives up" in job.stderr
    assert time.monotonic() - started < 20


def test_a_rank_started_without_mpi4py_runner_that_raises_still_ends_the_job(tmp_path):
    # Plain "python script.py", not "python -m mpi4py": importing minidl.distributed installs the
    # hook that aborts the job, where the other rank would wait in allreduce forever.
    script = tmp_path / "plain.py"
    script.write_text(textwrap.dedent(ONE_RANK_FAILS))
    command = [find_mpiexec(), "-n", "2", sys.executable, str(script)]
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        _kill_job(proc.pid)
        proc.communicate()
        raise AssertionError("the job hung: the rank that raised did not abort it") from None
    assert proc.returncode != 0
    assert "rank 1 gives up" in stderr
    assert time.monotonic() - started < 20


def test_importing_minidl_does_not_start_mpi():
    code = (
        "import sys, minidl, minidl.distributed; "
        "assert 'mpi4py' not in sys.modules, 'mpi4py imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


NONBLOCKING = """
    import sys
    import time

    import numpy as np
    from mpi4py import MPI

    sys.path.insert(0, sys.argv[1])
    from test_distributed_simulate import rank_data, reference

    from minidl.distributed import ALGORITHMS, CollectiveRequest, Trace, iallreduce

    from minidl.distributed.fast import executor
    from minidl.testing import report

    comm = MPI.COMM_WORLD
    rank, p = comm.rank, comm.size
    failures, polls = [], {}
    executor.SEGMENT_BYTES = 4096  # long buffers take many steps: many chances to interleave
    for algorithm in [*ALGORITHMS["allreduce"], "mpi"]:
        for n, op, dtype in [(0, "sum", np.int32), (p + 1, "max", np.int64),
                             (5003, "sum", np.int64), (20011, "prod", np.float64)]:
            inputs = rank_data(p, n, dtype, op)
            buf = inputs[rank].copy()
            request = iallreduce(buf, op, algorithm)
            assert isinstance(request, CollectiveRequest)
            tests = 0
            while not request.test():  # "compute" between polls, a different while on each rank
                time.sleep(1e-5 * (rank + 1))
                tests += 1
            polls[f"{algorithm} n={n}"] = tests
            if request.wait() is not buf or not request.done:
                failures.append(f"{algorithm}: wait() must return the buffer, done")
            if not np.array_equal(buf, reference(inputs, op).astype(dtype)):
                failures.append(f"iallreduce {algorithm} {op} n={n}: rank {rank} wrong result")
    # wait() alone, and a trace of the same events as the blocking call's.
    inputs = rank_data(p, 9000, np.float32, "sum")
    trace = Trace()
    buf = inputs[rank].copy()
    iallreduce(buf, algorithm="ring", trace=trace).wait()
    if not np.array_equal(buf, reference(inputs, "sum").astype(np.float32)):
        failures.append("iallreduce ring: wait() alone gave a wrong result")
    sends = [e for e in trace.events if e.kind == "send"]
    if p > 1 and len(sends) != 2 * (p - 1):
        failures.append(f"traced ring: {len(sends)} sends, not 2 (p - 1)")
    report({"failures": failures, "polls": polls})
"""


@pytest.mark.parametrize("p", [1, 2, 3, 4])
def test_iallreduce_moves_on_between_tests_and_equals_numpy(p):
    job = run_mpi(NONBLOCKING, p, args=[TESTS], timeout=120)
    failures = [f for r in job.results for f in r["failures"]]
    assert not failures, "\n".join(failures[:20])
    if p > 1:  # long buffers were not finished by the call that started them
        assert any(count > 0 for count in job.results[0]["polls"].values())


def test_iallreduce_checks_the_call_like_allreduce():
    code = """
        import numpy as np
        from mpi4py import MPI
        from minidl.distributed import iallreduce
        from minidl.testing import report
        n = 10 if MPI.COMM_WORLD.rank == 0 else 11
        try:
            iallreduce(np.zeros(n, np.float32)).wait()
        except ValueError as exc:
            report(str(exc))
    """
    job = run_mpi(code, 2, timeout=60)
    assert all("number of elements" in message for message in job.results)


def test_a_second_collective_on_a_communicator_waits_for_the_started_one_or_is_refused():
    # Waited for in different orders on the two ranks, two started allreduces on one
    # communicator would take each other's messages (same tags) and sum wrongly, silently.
    code = """
        import numpy as np
        from mpi4py import MPI
        from minidl.distributed import Trace, allreduce, iallreduce
        from minidl.testing import report
        comm = MPI.COMM_WORLD
        rank, errors = comm.rank, {}
        tiny = np.ones(4)
        for _ in range(20):  # often done on one rank before its program looks, not on the other
            request = iallreduce(tiny, algorithm="recursive_doubling")
            try:
                allreduce(tiny)
                errors["tiny"] = "a collective ran before the started one was seen done"
            except ValueError:
                pass
            request.wait()
        first, second = np.full(1000, 1.0), np.full(1000, 10.0)
        started = iallreduce(first, algorithm="ring")
        for name, call in [
            ("iallreduce", lambda: iallreduce(second, algorithm="ring")),
            ("allreduce", lambda: allreduce(second, algorithm="tree")),
        ]:
            try:
                call()
            except ValueError as exc:
                errors[name] = str(exc)
        allreduce(second, algorithm="mpi")  # MPI's own: its messages never meet minidl's
        started.wait()
        other = comm.Dup()
        a, b = iallreduce(first), iallreduce(second, comm=other)  # one per communicator: fine
        b.wait(), a.wait()
        allreduce(first)  # and once done, the communicator is free again
        try:
            allreduce(first, trace=Trace(clock="rounds"))
        except ValueError as exc:
            errors["rounds"] = str(exc)
        report({"errors": errors, "first": first[:2].tolist(), "second": second[:2].tolist()})
    """
    job = run_mpi(code, 2, timeout=60)
    for rank, r in enumerate(job.results):
        for name in ("iallreduce", "allreduce"):
            assert f"{name} on rank {rank}: an iallreduce started on this communicator" \
                in r["errors"][name], r["errors"]
            assert "has not been waited for" in r["errors"][name]
            assert "comm.Dup()" in r["errors"][name]
        assert "clock='rounds'" in r["errors"]["rounds"] and "Trace()" in r["errors"]["rounds"]
        assert "tiny" not in r["errors"]
        assert r["first"] == [8.0, 8.0] and r["second"] == [40.0, 40.0]


PERSISTENT = """
    import numpy as np
    from mpi4py import MPI

    from minidl.distributed import ALGORITHMS, Trace, allreduce, iallreduce

    from minidl.distributed.fast import executor
    from minidl.testing import report

    comm = MPI.COMM_WORLD
    rank, p = comm.rank, comm.size
    failures = []
    comms = [comm.Dup() for _ in range(executor.BOUND_PER_PLAN + 2)]
    # 37 int64: every message whole; 5000 (40 KB): exchanges in pieces (executor.PIECE_BYTES);
    # 100003 (800 KB): bound too, up to executor.BOUND_MAX_BYTES.
    for n in (37, 5000, 100_003):
        for algorithm in ALGORITHMS["allreduce"]:
            # More buffers than a plan keeps bound, each reduced again with new contents; on
            # odd ranks some are views (never bound), and some reduced by a started allreduce:
            # the messages must match all the same.
            owners = [np.zeros(n, np.int64) for _ in range(executor.BOUND_PER_PLAN + 2)]
            for step in range(3):
                for k, owner in enumerate(owners):
                    odd = rank % 2 == 1 and k % 2 == 0
                    buf = np.zeros(2 * n, np.int64)[::2].copy()[:n] if odd else owner
                    buf[:] = np.arange(n) * (rank + 1) + 1000 * step + k
                    if odd and step == 1:
                        iallreduce(buf, algorithm=algorithm, check=False).wait()
                    else:
                        allreduce(buf, algorithm=algorithm, check=False)
                    want = np.arange(n) * p * (p + 1) // 2 + p * (1000 * step + k)
                    if not np.array_equal(buf, want):
                        where = f"n {n} step {step} buffer {k}"
                        failures.append(f"{algorithm} {where}: rank {rank} wrong")
            # Started all at once, each on a communicator of its own (one at a time per
            # communicator): binding the later buffers must not free the requests of the
            # earlier ones, still in flight.
            for step in range(3):
                for k, owner in enumerate(owners):
                    owner[:] = np.arange(n) * (rank + 1) + k
                requests = [
                    iallreduce(o, algorithm=algorithm, comm=c, check=False)
                    for o, c in zip(owners, comms)
                ]
                for k, (owner, request) in enumerate(zip(owners, requests)):
                    request.wait()
                    if not np.array_equal(owner, np.arange(n) * p * (p + 1) // 2 + p * k):
                        failures.append(f"{algorithm} n {n} started {k}: rank {rank} wrong")
            layout = executor.SEGMENT_BYTES, executor.PIECE_BYTES
            plan = executor.plan_of("allreduce", algorithm, p, rank, n, 0, 8, *layout)
            if len(plan.bound) > executor.BOUND_PER_PLAN:
                failures.append(f"{algorithm}: {len(plan.bound)} buffers bound")
            if p == 2 and algorithm == "recursive_doubling":
                if not plan.bound:
                    failures.append("recursive doubling on 2 ranks: nothing bound")
                if n == 5000 and len(plan.rounds[0].exchange.sends) != 5:
                    failures.append("recursive doubling on 2 ranks: 40 KB not in 5 pieces")
    # Traced, a buffer's second call runs bound: the same events, pieces and all.
    for n in (37, 5000):
        buf = np.arange(n, dtype=np.float64)
        traces = [Trace(), Trace(), Trace()]
        for trace in traces:
            allreduce(buf, algorithm="ring", trace=trace, check=False)
        layout = executor.SEGMENT_BYTES, executor.PIECE_BYTES
        if not executor.plan_of("allreduce", "ring", p, rank, n, 0, 8, *layout).bound:
            failures.append(f"traced ring n {n}: never bound")
        seen = [[(e.round, e.kind, e.peer, e.count, e.segments) for e in t.events] for t in traces]
        if not seen[0] or seen[1] != seen[0] or seen[2] != seen[0]:
            failures.append(f"traced ring n {n}: rank {rank} events differ once bound")
        if n == 5000 and p == 2 and max(e.segments for e in traces[2].events) != 3:
            failures.append("traced ring n 5000 on 2 ranks: 20 KB steps not in 3 pieces")
    report({"failures": failures})
"""


@pytest.mark.parametrize("p", [2, 3])
def test_short_buffers_bound_with_persistent_requests_stay_correct_and_exit_clean(p):
    job = run_mpi(PERSISTENT, p, timeout=120)
    failures = [f for r in job.results for f in r["failures"]]
    assert not failures, "\n".join(failures[:20])
    assert "persistent request" not in job.stderr + job.stdout  # freed before MPI finalizes


def test_the_refusal_is_the_same_on_every_rank_whatever_test_returned():
    # test() may return True on one rank and False on another at the same point of the
    # program: only wait() lets the next collective start, so every rank refuses alike,
    # and a program that catches the refusal goes on alike on every rank (no hang).
    code = """
        import time
        import numpy as np
        from mpi4py import MPI
        from minidl.distributed import allreduce, iallreduce
        from minidl.testing import report
        rank = MPI.COMM_WORLD.rank
        outcomes = []
        for _ in range(5):
            request = iallreduce(np.ones(1000))
            if rank == 0:
                time.sleep(0.05)  # rank 0's request is done when it tests; rank 1's may not be
            request.test()
            try:
                allreduce(np.ones(10))
                outcomes.append("ran")
            except ValueError:
                outcomes.append("refused")
                request.wait()
            allreduce(np.ones(10))  # and after wait(), the communicator is free again
        report(outcomes)
    """
    job = run_mpi(code, 2, timeout=60)
    assert job.results == [["refused"] * 5] * 2


def test_a_summary_on_rank_0_alone_is_local_and_does_not_hang():
    # What every student writes: summarise on rank 0 only. summary() and to_chrome()
    # are local (this rank's events); gather() is the one collective.
    code = """
        import numpy as np
        from mpi4py import MPI
        from minidl.distributed import Trace, allreduce
        from minidl.testing import report
        trace = Trace()
        allreduce(np.ones(8), trace=trace)
        text = trace.summary() if MPI.COMM_WORLD.rank == 0 else ""
        report(text)
    """
    job = run_mpi(code, 2, timeout=30)
    assert len(job.results[0].splitlines()) == 2 and job.results[1] == ""


def test_an_iallreduce_never_waited_for_is_named_at_exit():
    code = """
        import numpy as np
        from minidl.distributed import iallreduce
        iallreduce(np.ones(100_000))  # started, dropped, never waited for
    """
    job = run_mpi(code, 2, timeout=30, check=False)
    assert job.stderr.count("never waited for") == 2, job.stderr
    assert "<CollectiveRequest" in job.stderr
