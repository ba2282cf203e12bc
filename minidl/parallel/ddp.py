"""``DistributedDataParallel``: one model on every rank, its gradients averaged by all-reduce.

Each rank runs forward and backward on its own shard of the batch, and
``loss.backward()`` returns with every ``.grad`` averaged over the ranks, so
``optimizer.step()`` makes the same update on every rank. The averaging is
the :class:`~minidl.parallel.reducer.Reducer`'s: gradient buckets all-reduced
while backward goes on. This wrapper does the rest: it checks that every
rank holds the same model and cuts the same buckets, broadcasts rank 0's
parameters, pauses the averaging in :meth:`~DistributedDataParallel.no_sync`
and stops it in :meth:`~DistributedDataParallel.close`.

With ``p`` ranks and a mean loss over ``b / p`` samples each, the averaged
gradient is exactly the gradient of the mean loss over all ``b`` samples, so
training equals one process with batch ``b`` (to float rounding).
"""

from __future__ import annotations

import atexit
import contextlib
import math
import sys
from typing import Any, Iterator

from minidl.distributed import ScheduleFn, Trace, abort
from minidl.distributed.watchdog import watching
from minidl.distributed.world import world
from minidl.nn.module import Module
from minidl.parallel.algorithm import check_algorithm
from minidl.parallel.buckets import Bucket, assign_buckets
from minidl.parallel.observer import CommStats, Recorder, bytes_sent
from minidl.parallel.reducer import Reducer
from minidl.parallel.replicas import broadcast_parameters, check_same_architecture
from minidl.parallel.step_check import StepCheck
from minidl.parallel.timeline import Timeline


class DistributedDataParallel(Module):
    """Wrap ``model`` so that backward averages its gradients over all ranks.

    At construction every rank must hold the same architecture (checked: a
    clear error names the first difference) and rank 0's parameters and
    buffers are broadcast, so replicas that started from different seeds end
    up identical.

    Parameters
    ----------
    model : Module
        The replica on this rank.
    comm : mpi4py.MPI.Intracomm, optional
        ``None`` means ``MPI.COMM_WORLD``.
    algorithm : str or callable, default "ring"
        Any all-reduce algorithm of :func:`minidl.distributed.allreduce`:
        a name in ``ALGORITHMS["allreduce"]``, ``"auto"``, ``"mpi"``, or a
        schedule function ``fn(p, rank, n)`` of your own (the same function,
        by name, on every rank).
    bucket_cap_mb : float, default 1.0
        Largest bucket in MiB; ``0`` means one all-reduce per parameter (the
        naive scheme), ``float("inf")`` one bucket for everything.
    overlap : bool, default True
        Start each bucket's all-reduce as soon as it is full, without
        blocking, and move it along from the gradient hooks while backward
        goes on; ``False`` reduces every bucket after backward.
    trace : minidl.distributed.Trace, optional
        Record every message of every bucket's all-reduce.
    timeline : minidl.parallel.timeline.Timeline, optional
        Record each bucket's all-reduce (from its start to its end, backward
        running meanwhile when it overlaps) and each wait at the end of
        backward as spans.

    Attributes
    ----------
    module : Module
        The wrapped model.
    reducer : Reducer
        What averages the gradients.
    buckets : list of Bucket
        In launch order.

    Examples
    --------
    Under ``mpiexec -n 4 python -m mpi4py train.py``::

        model = DistributedDataParallel(models.lenet())
        loss = F.cross_entropy(model(x_shard), y_shard)
        loss.backward()          # returns with gradients averaged over the ranks
        optimizer.step()         # the same update on every rank
    """

    def __init__(self, model: Module, comm: Any = None, algorithm: str | ScheduleFn = "ring",
                 bucket_cap_mb: float = 1.0, overlap: bool = True, trace: Trace | None = None,
                 timeline: Timeline | None = None) -> None:
        super().__init__()
        self._algorithm_name = check_algorithm(algorithm, "DistributedDataParallel")
        if bucket_cap_mb < 0:
            raise ValueError(f"bucket_cap_mb must be >= 0, got {bucket_cap_mb}")
        self.module = model
        comm = world(comm)
        with watching(f"DistributedDataParallel's construction on {comm.Get_size()} ranks "
                      "(collective: every rank wraps its model)"):
            self._connect(model, comm, algorithm, bucket_cap_mb, overlap, trace, timeline)

    def _connect(self, model: Module, comm: Any, algorithm: str | ScheduleFn,
                 bucket_cap_mb: float, overlap: bool, trace: Trace | None,
                 timeline: Timeline | None) -> None:
        """The collective part of construction: checks, broadcast, buckets, the reducer."""
        object.__setattr__(self, "comm", comm)
        self.algorithm, self.overlap, self.bucket_cap_mb = algorithm, overlap, bucket_cap_mb
        self.rank, self.world_size = comm.Get_rank(), comm.Get_size()

        check_same_architecture(model, comm)
        broadcast_parameters(model, root=0, comm=comm)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        cap = bucket_cap_mb * 2**20 if math.isfinite(bucket_cap_mb) else math.inf
        buckets = assign_buckets(named, cap)
        self._check_same_buckets(buckets)
        sent = [bytes_sent(algorithm, self.world_size, self.rank, b.data.size, b.data.itemsize)
                for b in buckets]
        self._recorder = Recorder(sent, timeline)
        self.reducer = Reducer(buckets, comm, algorithm, overlap, observer=self._recorder)
        self.reducer.trace = trace
        self.buckets = buckets
        self._closed = False
        _UNCLOSED[id(self)] = self.reducer.steps  # until close(): named at exit if it trained

    def _check_same_buckets(self, buckets: list[Bucket]) -> None:
        """Every rank must cut the same buckets, and name the same algorithm and overlap.

        Else their all-reduces would not match. A schedule function is compared by name.
        """
        sizes = [(b.data.size, str(b.data.dtype)) for b in buckets]
        mine = (self._algorithm_name, self.overlap, sizes)
        everyone = self.comm.allgather(mine)  # once, small: pickling is fine
        for rank, theirs in enumerate(everyone):
            if theirs != everyone[0]:
                raise ValueError(
                    f"DistributedDataParallel: rank {rank} uses algorithm {theirs[0]!r}, "
                    f"overlap={theirs[1]} and {len(theirs[2])} buckets, rank 0 {everyone[0][0]!r}, "
                    f"overlap={everyone[0][1]} and {len(everyone[0][2])}: pass the same algorithm, "
                    "overlap and bucket_cap_mb on every rank")

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the wrapped model, with every ``.grad`` attached to its bucket."""
        if self._closed:
            raise RuntimeError(
                f"DistributedDataParallel on rank {self.rank}: this wrapper was closed, so "
                "backward would no longer average the gradients; train the model itself "
                "(ddp.module), or wrap it anew"
            )
        self.reducer.prepare_for_backward()
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Accumulate gradients locally, without communication, for the backward passes inside.

        The first backward after the block all-reduces the sum of every
        micro-batch's gradient: ``k`` micro-steps under ``no_sync`` then one
        synchronised step equal one step with ``k`` times the batch.
        """
        previous, self.reducer.syncing = self.reducer.syncing, False
        try:
            yield
        finally:
            self.reducer.syncing = previous

    @property
    def trace(self) -> Trace | None:
        """Records every message of every bucket's all-reduce while set; assignable."""
        return self.reducer.trace

    @trace.setter
    def trace(self, trace: Trace | None) -> None:
        self.reducer.trace = trace

    @property
    def timeline(self) -> Timeline | None:
        """Records each bucket's all-reduce and each wait as spans while set; assignable."""
        return self._recorder.timeline

    @timeline.setter
    def timeline(self, timeline: Timeline | None) -> None:
        self._recorder.timeline = timeline

    @property
    def stats(self) -> CommStats:
        """Communication time, waiting time and bytes since the last :meth:`reset_stats`."""
        return self._recorder.stats

    def reset_stats(self) -> CommStats:
        """Return the statistics gathered so far and start counting afresh."""
        return self._recorder.reset()

    def close(self) -> None:
        """Stop communicating: unhook the model, check every rank ran the same steps.

        Collective: every rank must call it. Raises on every rank if some
        rank skipped a step. A DDP never closed is released at exit without
        communicating (see :func:`_release_at_exit`), so a rank that skipped
        the last step is then caught only by the watchdog
        (:func:`minidl.distributed.set_timeout`), not named.
        """
        if self._closed:
            return
        self._closed = True
        _UNCLOSED.pop(id(self), None)
        with watching("DistributedDataParallel.close() (collective: every rank closes)"):
            self.reducer.close()

    def extra_repr(self) -> str:
        sizes = ", ".join(_size(b.nbytes) for b in self.buckets)
        return (f"algorithm={self._algorithm_name!r}, world_size={self.world_size}, "
                f"overlap={self.overlap}, buckets=[{sizes}]")


def _size(nbytes: int) -> str:
    """``512 B``, ``3.5 KiB``, ``1.2 MiB``."""
    if nbytes < 1024:
        return f"{nbytes} B"
    if nbytes < 2**20:
        return f"{nbytes / 1024:.3g} KiB"
    return f"{nbytes / 2**20:.3g} MiB"


_UNCLOSED: dict[int, StepCheck] = {}
"""The step check of every DDP constructed and not closed, by the wrapper's ``id``:
held even once the wrapper is gone, so that every rank sees the same ones at
exit, whenever its garbage collector ran."""


@atexit.register
def _release_at_exit() -> None:
    """At exit, say in one line (on rank 0) which DDPs trained but were never closed; no messages.

    Closing is collective, and at exit it cannot be: which wrappers are
    still alive depends on when each rank's garbage collector ran, and a
    rank that raised is not coming, so ranks closing what they happen to
    hold would call different collectives and wait for each other forever.
    """
    if abort.escaped:  # the job is being aborted for an exception: it has said enough
        return
    trained = [s.step for s in _UNCLOSED.values() if s.step > 0 and s.comm.Get_rank() == 0]
    _UNCLOSED.clear()
    if trained:
        which = ("a DistributedDataParallel" if len(trained) == 1
                 else f"{len(trained)} DistributedDataParallel wrappers")
        steps = ", ".join(map(str, trained))
        print(f"minidl: {which} trained ({steps} step{'s' if trained != [1] else ''}) and never "
              "closed: released at exit without checking that every rank ran as many steps "
              "(call ddp.close() on every rank for that check)", file=sys.stderr)
