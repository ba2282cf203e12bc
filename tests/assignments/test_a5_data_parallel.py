"""Assignment 5, data parallel: gradient buckets, averaging, overlap with ``iallreduce``.

Handout: docs/assignments/data_parallel.rst. ``assign_buckets`` is graded as
a plain function. Averaging and overlap are graded on real ranks under
``mpiexec`` (through :func:`minidl.testing.run_mpi`, with a timeout): a
:class:`~minidl.parallel.reducer.Reducer` over buckets built here by hand
(so these tasks do not depend on the buckets task), all-reducing with MPI's
own ``Allreduce`` (``algorithm="mpi"``, so they do not depend on the
collectives assignment), must leave every ``.grad`` equal to the mean of the
ranks' own gradients, pass after pass. With overlap, some bucket's
all-reduce must start before backward has made every gradient final (a hook
of the test's counts them; the reducer's own hooks run first). Backward itself
is the autograd assignment's.
"""

from __future__ import annotations

import numpy as np
import pytest

from minidl.nn import Parameter
from minidl.parallel.buckets import assign_buckets
from minidl.testing import run_mpi

TIMEOUT = 90


def named(*specs):
    return [(f"p{i}", Parameter(np.zeros(shape, dtype=dtype)))
            for i, (shape, dtype) in enumerate(specs)]


def layout(buckets):
    return [[name for name, _ in b.params] for b in buckets]


# ------------------------------------------------------------------------ buckets
@pytest.mark.a5_buckets
def test_cap_zero_gives_one_bucket_per_parameter_last_first():
    params = named(((3, 4), np.float32), ((4,), np.float32), ((2, 3), np.float32))
    buckets = assign_buckets(params, 0)
    assert layout(buckets) == [["p2"], ["p1"], ["p0"]]
    assert [b.index for b in buckets] == [0, 1, 2]
    assert [b.data.size for b in buckets] == [6, 4, 12]


@pytest.mark.a5_buckets
def test_infinite_cap_gives_one_bucket_with_views_side_by_side():
    params = named(((3, 4), np.float64), ((4,), np.float64), ((2, 3), np.float64))
    (bucket,) = assign_buckets(params, float("inf"))
    assert layout([bucket]) == [["p2", "p1", "p0"]]
    assert bucket.offsets == [0, 6, 10]
    assert bucket.data.dtype == np.float64 and bucket.data.shape == (22,)
    assert not bucket.data.any()
    for i, (_, p) in enumerate(bucket.params):
        view = bucket.view(i)
        assert view.shape == p.shape and view.base is bucket.data


@pytest.mark.a5_buckets
def test_cap_in_bytes_groups_neighbours_and_a_new_dtype_starts_a_bucket():
    # 4-byte floats: sizes in bytes 40, 24, 16, 40, 8 (last first: 8, 40, 16, 24, 40)
    params = named(((10,), np.float32), ((6,), np.float32), ((4,), np.float32),
                   ((10,), np.float32), ((2,), np.float32))
    assert layout(assign_buckets(params, 48)) == [["p4", "p3"], ["p2", "p1"], ["p0"]]
    assert layout(assign_buckets(params, 64)) == [["p4", "p3", "p2"], ["p1", "p0"]]
    assert layout(assign_buckets(params, 100)) == [["p4", "p3", "p2", "p1"], ["p0"]]
    mixed = named(((3,), np.float32), ((3,), np.float64), ((3,), np.float64))
    buckets = assign_buckets(mixed, float("inf"))
    assert layout(buckets) == [["p2", "p1"], ["p0"]]
    assert [b.data.dtype for b in buckets] == [np.float64, np.float32]


@pytest.mark.a5_buckets
def test_a_parameter_larger_than_the_cap_gets_a_bucket_of_its_own():
    params = named(((2,), np.float32), ((100,), np.float32), ((2,), np.float32))
    buckets = assign_buckets(params, 32)
    assert layout(buckets) == [["p2"], ["p1"], ["p0"]]
    assert [b.offsets for b in buckets] == [[0], [0], [0]]


MPI_SCRIPT = """
import sys
import time
import numpy as np
from mpi4py import MPI
import minidl
import minidl.nn as nn
from minidl.parallel.buckets import Bucket
from minidl.parallel.observer import Observer
from minidl.parallel.reducer import Reducer
from minidl.testing import report

overlap = sys.argv[1] == "overlap"
comm = MPI.COMM_WORLD
rank, p = comm.Get_rank(), comm.Get_size()
minidl.manual_seed(0)  # the same model on every rank
model = nn.Sequential(nn.Linear(5, 8, dtype=np.float64), nn.Tanh(),
                      nn.Linear(8, 3, dtype=np.float64))
params = list(model.named_parameters())
rng = np.random.default_rng(rank)  # each rank its own data
batches = [(rng.standard_normal((4, 5)), rng.standard_normal((4, 3))) for _ in range(3)]


def loss_of(x, y):
    return ((model(minidl.tensor(x)) - minidl.tensor(y)) ** 2).mean()


local = []  # this rank's own gradients, pass by pass, before any reducer
for x, y in batches:
    model.zero_grad()
    loss_of(x, y).backward()
    local.append([prm.grad.copy() for _, prm in params])
expected = [[np.mean(g, axis=0) for g in zip(*ranks)] for ranks in zip(*comm.allgather(local))]

# Buckets by hand, last parameters first: one per parameter with overlap, else two.
groups = [[q] for q in params[::-1]] if overlap else [params[2:][::-1], params[:2][::-1]]
buckets = []
for i, group in enumerate(groups):
    sizes = [prm.size for _, prm in group]
    offsets = [int(o) for o in np.cumsum([0] + sizes[:-1])]
    buckets.append(Bucket(i, np.zeros(sum(sizes)), list(group), offsets))


class Starts(Observer):
    def __init__(self):
        self.started = []  # (bucket index, gradients final when it started), this pass
        self.final = 0  # gradients made final so far in this pass

    def bucket_started(self, bucket):
        self.started.append((bucket.index, self.final))

    def count(self, param):
        self.final += 1
        if self.final == 2:  # every rank pauses here, so that the step check is surely done
            time.sleep(0.05)


starts = Starts()
reducer = Reducer(buckets, comm, algorithm="mpi", overlap=overlap, observer=starts)
for _, prm in params:  # after the reducer's hooks, so each counts once the reducer has seen it
    prm.register_post_accumulate_grad_hook(starts.count)
problems = []
for k, (x, y) in enumerate(batches):
    model.zero_grad()
    reducer.prepare_for_backward()
    starts.started.clear()
    starts.final = 0
    loss_of(x, y).backward()
    for (name, prm), want in zip(params, expected[k]):
        if not np.allclose(prm.grad, want, rtol=1e-10, atol=1e-12):
            problems.append(f"pass {k}, {name}: {prm.grad.ravel()[:4]} != mean {want.ravel()[:4]}")
    order = [index for index, _ in starts.started]
    if order != list(range(len(buckets))):
        problems.append(f"pass {k}: buckets started in the order {order}, "
                        f"expected each once in bucket order {list(range(len(buckets)))}")
    if overlap and not any(final < len(params) for _, final in starts.started):
        problems.append(f"pass {k}: every bucket's all-reduce started after backward had made "
                        f"all {len(params)} gradients final (bucket, gradients final then: "
                        f"{starts.started}): that is not overlap; start a full bucket's from "
                        "the hook that fills it")
reducer.close()
report(problems)
"""


def check_job(mode: str, nprocs: int) -> None:
    job = run_mpi(MPI_SCRIPT, nprocs, args=[mode], timeout=TIMEOUT)
    for rank, problems in enumerate(job.results):
        assert problems == [], f"rank {rank}: {problems}"


# -------------------------------------------------------------- average gradients
@pytest.mark.a5_average_gradients
def test_gradients_are_the_mean_over_three_ranks():
    check_job("average", 3)


# ------------------------------------------------------------------------ overlap
@pytest.mark.a5_overlap
def test_overlapped_buckets_give_the_mean_every_pass():
    check_job("overlap", 2)
