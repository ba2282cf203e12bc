"""Property-based tests of every collective: simulated on 1 to 64 ranks, checked against NumPy.

Hypothesis draws the collective's algorithm (``"auto"`` included: the cost
model's pick, as the collectives on real ranks make it), the number of ranks
``p``, the number of elements ``n`` (0, fewer than ``p``, sizes ``p`` does not
divide), the root, the op, the dtype and the buffers' shape. The reference is
computed here with NumPy alone: chunks by :func:`numpy.array_split` (the split
:func:`~minidl.distributed.chunk_bounds` documents), reductions by
``np.sum`` and friends over the stacked inputs.

The data depend on the rank and the index. In the exact case they are
integers, or multiples of 1/8 small enough that every sum is exact in float32,
and products of +-1 and 2, so the results must equal NumPy's to the bit
(integers wrap as NumPy's do). In the rounded case they are random floats:
sums and products must be within the rounding of ``p - 1`` operations, and an
all-reduce must leave the same bits on every rank.

Then the same collectives run on one real rank (``MPI.COMM_WORLD`` of a
pytest process, no ``mpiexec``), on both executors, with ``"auto"`` and
``"mpi"`` as well: each must leave NumPy's one-rank result.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl.distributed as D
from minidl.distributed import ALGORITHMS, OPS, calibration, simulate
from minidl.distributed.schedules import ROOTED

# Deterministic in CI (the same examples every run, nothing saved between runs),
# and no per-example deadline: the machine is shared and noisy.
PROPERTY = settings(
    max_examples=30,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

DTYPES = (np.float32, np.float64, np.int32, np.int64)
REDUCE = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min}
REDUCING = ("allreduce", "reduce_scatter", "reduce")


@st.composite
def layouts(draw, collective: str, algorithm: str) -> dict:
    """One call of ``collective``: p, n, root, op, dtype, shape and data kind."""
    p = draw(st.integers(1, 64), label="p")
    if collective == "alltoall":
        n = p * draw(st.sampled_from([1, 2, 3, 0]), label="n / p")  # p equal blocks
    else:  # small sizes around p most often, up to a few hundred
        n = draw(st.one_of(st.integers(0, p + 2), st.integers(0, 300)), label="n")
    rows = draw(st.sampled_from([d for d in (1, 2, 3, 5) if n % d == 0]), label="rows")
    return {
        "p": p,
        "n": n,
        "shape": (n,) if rows == 1 else (rows, n // rows),
        "root": draw(st.integers(0, p - 1), label="root") if collective in ROOTED else 0,
        "algorithm": algorithm,
        "op": draw(st.sampled_from(OPS), label="op") if collective in REDUCING else "sum",
        "dtype": np.dtype(draw(st.sampled_from(DTYPES), label="dtype")),
        "exact": draw(st.booleans(), label="exact"),
        "seed": draw(st.integers(0, 2**32 - 1), label="seed"),
    }


def rank_data(call: dict) -> np.ndarray:
    """Every rank's buffer, flat, stacked: shape (p, n), rank- and index-dependent."""
    p, n, dtype, op = call["p"], call["n"], call["dtype"], call["op"]
    rng = np.random.default_rng(call["seed"])
    floating = dtype.kind == "f"
    if call["exact"] or not floating:
        if op == "prod":  # +-1 and a few 2s: exact powers of two, or wrapping integers
            return rng.choice([-1, 1, 2], size=(p, n), p=[0.45, 0.45, 0.1]).astype(dtype)
        # |sum| <= 64 * 1000: exact in every dtype, in eighths for the floats.
        x = rng.integers(-1000, 1001, size=(p, n))
        return (x / 8 if floating else x).astype(dtype)
    if op == "prod":  # magnitudes in [1/2, 2]: 64 factors stay far from overflow
        x = rng.uniform(0.5, 2.0, size=(p, n)) * rng.choice([-1, 1], size=(p, n))
    else:
        x = rng.standard_normal((p, n)) * 10.0 ** rng.integers(-3, 4)
    return x.astype(dtype)


def reduction(x: np.ndarray, op: str) -> np.ndarray:
    """The reduction over the ranks (axis 0): exact for integers (wrapping), float64 for floats."""
    if x.dtype.kind == "f":
        return REDUCE[op](x.astype(np.float64), axis=0)
    return REDUCE[op](x, axis=0, dtype=x.dtype) if op in ("sum", "prod") else REDUCE[op](x, axis=0)


def assert_reduced(got: np.ndarray, x: np.ndarray, op: str, exact: bool, where: str) -> None:
    """``got`` is the reduction of ``x`` over the ranks: to the bit, or to p - 1 roundings."""
    want = reduction(x, op)
    if exact or x.dtype.kind != "f" or op in ("max", "min"):
        np.testing.assert_array_equal(got, want.astype(x.dtype), err_msg=where)
        return
    p, eps = x.shape[0], float(np.finfo(x.dtype).eps)
    # Each of the p - 1 operations, in whatever order, rounds by half an ulp at most.
    scale = np.abs(x).astype(np.float64).sum(axis=0) if op == "sum" else np.abs(want)
    error = np.abs(got.astype(np.float64) - want)
    assert np.all(error <= (p - 1) * eps * scale), f"{where}: off by {error.max()}"


def chosen(call: dict, collective: str) -> str:
    """The algorithm to simulate: ``"auto"`` becomes the current model's pick, as on real ranks."""
    if call["algorithm"] != "auto":
        return call["algorithm"]
    nbytes = call["n"] * call["dtype"].itemsize
    pick = calibration.current().choose(call["p"], nbytes, collective)
    assert pick in ALGORITHMS[collective], f"auto picked {pick!r}"
    return pick


def check_collective(collective: str, call: dict) -> None:
    p, n, root, op, exact = call["p"], call["n"], call["root"], call["op"], call["exact"]
    x = rank_data(call)
    inputs = [row.reshape(call["shape"]) for row in x]
    before = [a.copy() for a in inputs]
    algorithm = chosen(call, collective)
    outputs, trace = simulate(algorithm, inputs, op, collective=collective, root=root)
    where = f"{algorithm} {collective} p={p} n={n} root={root} {op} {x.dtype.name}"

    assert len(outputs) == p
    for a, b in zip(inputs, before):  # the simulator works on copies
        np.testing.assert_array_equal(a, b, err_msg=f"{where}: an input was modified")
    for out in outputs:
        assert out.shape == call["shape"] and out.dtype == x.dtype, where
    out = np.stack([o.reshape(-1) for o in outputs])  # (p, n), flat as x is
    split = np.array_split(np.arange(n), p)  # chunk r: split[r]

    if collective == "allreduce":
        for r in range(p):
            assert_reduced(out[r], x, op, exact, f"{where} rank {r}")
            np.testing.assert_array_equal(out[r], out[0], err_msg=f"{where}: rank {r} differs")
    elif collective == "reduce_scatter":
        for r in range(p):
            assert_reduced(out[r, split[r]], x[:, split[r]], op, exact, f"{where} rank {r}")
    elif collective == "reduce":
        assert_reduced(out[root], x, op, exact, f"{where} root")
    elif collective == "allgather":
        gathered = np.concatenate([x[r, split[r]] for r in range(p)])
        for r in range(p):
            np.testing.assert_array_equal(out[r], gathered, err_msg=f"{where} rank {r}")
    elif collective == "broadcast":
        for r in range(p):
            np.testing.assert_array_equal(out[r], x[root], err_msg=f"{where} rank {r}")
    elif collective == "scatter":
        np.testing.assert_array_equal(out[root], x[root], err_msg=f"{where}: the root changed")
        for r in range(p):
            np.testing.assert_array_equal(out[r, split[r]], x[root, split[r]],
                                          err_msg=f"{where} rank {r}")
    elif collective == "gather":
        for r in range(p):
            np.testing.assert_array_equal(out[root, split[r]], x[r, split[r]],
                                          err_msg=f"{where} chunk {r}")
    else:  # alltoall: block j of rank i is block i of rank j
        blocks = x.reshape(p, p, n // p)
        np.testing.assert_array_equal(out.reshape(p, p, n // p), blocks.transpose(1, 0, 2),
                                      err_msg=where)

    # Every message sent was received, between the same two ranks, with as many bytes.
    sent = Counter((e.rank, e.peer, e.nbytes) for e in trace.events if e.kind == "send")
    received = Counter((e.peer, e.rank, e.nbytes) for e in trace.events if e.kind == "recv")
    assert sent == received, where


@settings(PROPERTY, max_examples=15)
@pytest.mark.parametrize(
    "collective, algorithm",
    [(c, a) for c in ALGORITHMS for a in [*ALGORITHMS[c], "auto"]],
)
@given(data=st.data())
def test_every_collective_on_1_to_64_simulated_ranks_equals_numpy(collective, algorithm, data):
    check_collective(collective, data.draw(layouts(collective, algorithm), label="call"))


# --- One real rank ----------------------------------------------------------------

ONE_RANK = {  # how each collective is called: (function, takes op, takes root)
    "allreduce": (D.allreduce, True, False),
    "reduce_scatter": (D.reduce_scatter, True, False),
    "allgather": (D.allgather, False, False),
    "broadcast": (D.broadcast, False, True),
    "reduce": (D.reduce, True, True),
    "scatter": (D.scatter, False, True),
    "gather": (D.gather, False, True),
    "alltoall": (D.alltoall, False, False),
}


@settings(PROPERTY, max_examples=60)
@given(
    collective=st.sampled_from(list(ONE_RANK)),
    executor=st.sampled_from(["reference", "fast"]),
    data=st.data(),
)
def test_every_collective_on_one_real_rank_leaves_numpys_result(collective, executor, data):
    fn, takes_op, takes_root = ONE_RANK[collective]
    algorithm = data.draw(st.sampled_from([*ALGORITHMS[collective], "auto", "mpi"]),
                          label="algorithm")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    shape = data.draw(st.sampled_from([(0,), (1,), (7,), (2, 3), (4, 1, 5)]), label="shape")
    op = data.draw(st.sampled_from(OPS), label="op")
    buf = (np.arange(int(np.prod(shape))) * 7 % 11 - 5).astype(dtype).reshape(shape)
    original = buf.copy()
    kwargs = {"algorithm": algorithm}
    if takes_op:
        kwargs["op"] = op
    if takes_root:
        kwargs["root"] = 0
    with D.use(executor):
        result = fn(buf, **kwargs)
        if collective == "allreduce":  # and its non-blocking twin, waited for at once
            D.iallreduce(buf, op, algorithm).wait()
    # One rank: every collective leaves the buffer as it was, whatever the op.
    np.testing.assert_array_equal(buf, original)
    if collective in ("reduce_scatter", "scatter"):  # this rank's chunk: all of it, a view
        assert result.ndim == 1 and result.size == buf.size
        assert buf.size == 0 or np.shares_memory(result, buf)
    else:
        assert result is buf
