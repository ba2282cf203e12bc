"""The Reducer on its own, without DistributedDataParallel: one backward pass on every rank's
own data, watched by an observer that writes down every point the reducer reports; the
averaged gradients beside the local ones averaged with MPI's own Allreduce."""

import contextlib
import sys

import numpy as np
from mpi4py import MPI

import minidl
import minidl.functional as F
from minidl import models
from minidl.parallel import Reducer, assign_buckets
from minidl.parallel.observer import Observer
from minidl.testing import report

overlap = sys.argv[1] == "overlap"
comm = MPI.COMM_WORLD
rank, p = comm.Get_rank(), comm.Get_size()


class Notes(Observer):
    """Write down every point the reducer reports, in order."""

    def __init__(self):
        self.events = []

    def bucket_started(self, bucket):
        self.events.append(("started", bucket.index))

    def bucket_done(self, bucket):
        self.events.append(("done", bucket.index))

    @contextlib.contextmanager
    def waiting(self, what, bucket=None):
        self.events.append(("waiting", what, None if bucket is None else bucket.index))
        yield
        self.events.append(("waited", what))


def local_gradients(model, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((4, 1, 8, 8)), rng.integers(0, 10, 4)
    F.cross_entropy(model(minidl.tensor(x)), y).backward()


minidl.manual_seed(3)  # the same weights on every rank: no broadcast needed
model = models.lenet(8, dtype=np.float64)
buckets = assign_buckets(list(model.named_parameters()), 4096)
notes = Notes()
reducer = Reducer(buckets, comm, algorithm="ring", overlap=overlap, observer=notes)
views = all(q.grad.base is b.data for b in buckets for _, q in b.params)

reducer.prepare_for_backward()
local_gradients(model, seed=rank)  # every rank's own data
averaged = {name: q.grad.copy() for name, q in model.named_parameters()}
events = list(notes.events)

minidl.manual_seed(3)
alone = models.lenet(8, dtype=np.float64)
local_gradients(alone, seed=rank)
expected = {}
for name, q in alone.named_parameters():
    comm.Allreduce(MPI.IN_PLACE, q.grad)
    expected[name] = q.grad / p

reducer.syncing = False  # what no_sync does: the next pass stays local
notes.events.clear()
model.zero_grad()
reducer.prepare_for_backward()
local_gradients(model, seed=rank)
unsynced = {name: q.grad.copy() for name, q in model.named_parameters()}
reducer.syncing = True

reducer.close()
report({"buckets": len(buckets), "views": views, "events": events, "averaged": averaged,
        "expected": expected, "unsynced_events": list(notes.events), "unsynced": unsynced})
