"""The reducer: gradients averaged over the ranks while backward is still running.

As in PyTorch (Li et al., "PyTorch Distributed", VLDB 2020, section 3.2):
every ``.grad`` is a view into a flat bucket (:mod:`~minidl.parallel.buckets`);
a hook counts each gradient off in its bucket as backward finishes it; full
buckets start their all-reduce without blocking, in bucket order, one in
flight at a time, moved along by later hooks while backward goes on; once
backward is done, the rest are reduced and each bucket is divided by the
number of ranks. No thread: it would share the rank's core and Python's lock
with backward (slower on one core per rank), where moving a request along
between two layers costs a microsecond. Beside it: the step check, the
waiting policy and the observer (statistics, timeline).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from minidl.autograd import engine
from minidl.autograd.tensor import Tensor
from minidl.distributed import CollectiveRequest, ScheduleFn, Trace, iallreduce
from minidl.parallel.buckets import Bucket
from minidl.parallel.comm import WaitPolicy
from minidl.parallel.observer import Observer
from minidl.parallel.step_check import StepCheck


class Reducer:
    """Average the gradients in ``buckets`` over the ranks of ``comm`` in every backward pass.

    Collective to construct and to :meth:`close`. Every rank must pass the
    same buckets and algorithm (:class:`~minidl.parallel.DistributedDataParallel`
    checks). Its all-reduces, in flight during backward, run on a duplicate
    of ``comm`` of its own, where nothing else's messages can meet them.

    Parameters
    ----------
    buckets : list of Bucket
        Each parameter's ``.grad`` becomes its view in its bucket, and gets a hook.
    comm : mpi4py.MPI.Intracomm
        The ranks taking part.
    algorithm : str or callable, default "ring"
        Any algorithm of :func:`minidl.distributed.allreduce`.
    overlap : bool, default True
        Start all-reduces during backward; ``False``: all after it.
    observer : Observer, optional
        Told what happens (see :mod:`~minidl.parallel.observer`).

    Attributes
    ----------
    syncing : bool
        ``False``: backward leaves the gradients local (``no_sync``).
    trace : Trace or None
        Records every message while set.
    steps : StepCheck
        Every rank at the same step before bucket 0 (:mod:`~minidl.parallel.step_check`).
    waits : WaitPolicy
        How to wait for peers (:class:`~minidl.parallel.comm.WaitPolicy`).
    """

    def __init__(self, buckets: list[Bucket], comm: Any, algorithm: str | ScheduleFn = "ring",
                 overlap: bool = True, observer: Observer | None = None) -> None:
        self.buckets, self.algorithm = buckets, algorithm
        self.observer = observer if observer is not None else Observer()
        self.comm = comm.Dup()
        self.world_size = self.comm.Get_size()
        self.waits = WaitPolicy(self.comm)
        self.steps = StepCheck(self.comm, self.waits.wait)
        # Overlap needs a bucket to start before the last (which waits for the
        # end of backward) and someone to talk to; else it is no overlap.
        self.overlapping = overlap and self.world_size > 1 and len(buckets) > 1
        self.syncing = True
        self.trace: Trace | None = None
        self._slot_of: dict[int, tuple[Bucket, int]] = {}  # id(param) -> (bucket, index in it)
        self._hooks = []
        for bucket in buckets:
            for i, (_, p) in enumerate(bucket.params):
                p.grad = bucket.view(i)
                self._slot_of[id(p)] = (bucket, i)
                self._hooks.append(p.register_post_accumulate_grad_hook(self._grad_ready))
        self._closed = False
        self._reset_pass()

    def prepare_for_backward(self) -> None:
        """Before forward: put every ``.grad`` back into its bucket (``zero_grad()`` drops it)."""
        if self._pass_active:
            raise RuntimeError(
                f"DistributedDataParallel on rank {self.comm.Get_rank()}: the last backward pass "
                "stopped half-way (an exception), its gradients not averaged, maybe messages in "
                "flight: end the job, or close() this DDP on every rank and wrap the model anew")
        for bucket in self.buckets:
            for i, (_, p) in enumerate(bucket.params):
                if p.grad is None or p.grad.base is not bucket.data:
                    _attach(bucket, i)

    def _grad_ready(self, param: Tensor) -> None:
        """Post-accumulate hook: one more gradient in its bucket is final."""
        if not self.syncing:
            return
        if not self._pass_active:
            self._pass_active = True
            engine.queue_callback(self._finish_pass)
        bucket, i = self._slot_of[id(param)]
        if param.grad.base is not bucket.data:  # zero_grad() between forward and backward
            _attach(bucket, i)
        bucket.pending -= 1
        if self.overlapping:
            # BEGIN SOLUTION overlap
            # queue the buckets now full, in bucket order, and move the all-reduces along
            # Launch in bucket order only, so that every rank starts the same
            # all-reduces in the same order whatever order hooks fire in. The
            # last bucket holds the first layer's gradients, the last ones
            # backward computes: nothing is left to overlap it with, so it is
            # reduced at the end, blocking, which is quicker.
            while self._next < len(self.buckets) - 1 and self.buckets[self._next].pending == 0:
                self._ready.append(self.buckets[self._next])
                self._next += 1
            if self._in_flight is not None or self._ready:
                self._progress()
            # END SOLUTION

    def _progress(self) -> None:
        """Move the all-reduce in flight along; once it is done, average it and start the next.

        One at a time (they share the communicator's tags), in bucket order,
        as far as they go without blocking; bucket 0 waits for the step check.
        """
        # BEGIN SOLUTION overlap
        # test the request in flight; when done, average its bucket and start the next ready one
        with self.observer.communicating():
            while True:
                if self._in_flight is not None:
                    bucket, request = self._in_flight
                    if not request.test():
                        return
                    request.wait()  # done: this lets the next start on the communicator
                    self._in_flight = None
                    self._average(bucket)
                if not self._ready or (self._ready[0].index == 0 and not self.steps.test()):
                    return
                bucket = self._ready.popleft()
                self._in_flight = (bucket, self._start(bucket))
        # END SOLUTION

    def _start(self, bucket: Bucket) -> CollectiveRequest:
        """Start one bucket's all-reduce without blocking."""
        self.observer.bucket_started(bucket)
        # Sizes, dtypes and algorithm were checked equal on every rank beforehand.
        return iallreduce(bucket.data, algorithm=self.algorithm, comm=self.comm, trace=self.trace,
                          check=False)

    def _finish_pass(self) -> None:
        """Backward's last callback: finish every all-reduce and average.

        With overlap, the buckets not started yet go the same way, moved along
        while waiting politely (a peer may still be computing), all but the
        last, reduced after a barrier. Without overlap, all are reduced now.
        """
        with self.observer.waiting("all-reduces"):
            if self.world_size == 1:  # alone: the gradients are already the average
                self._next = len(self.buckets)
            elif self.overlapping:
                self._ready.extend(self.buckets[self._next : -1])
                self._next = len(self.buckets) - 1
                self._progress()
                while self._in_flight is not None or self._ready:
                    if self._in_flight is None:
                        self.steps.wait()  # what bucket 0 is waiting for
                    else:
                        self.waits.wait(self._in_flight[1])
                    self._progress()
            for bucket in self.buckets[self._next :]:
                self._reduce(bucket)
        self.steps.advance()
        self._reset_pass()

    def _reduce(self, bucket: Bucket) -> None:
        """All-reduce one bucket, blocking, once every rank has finished backward; average it."""
        # First wait politely for every rank to finish backward (bucket 0's step
        # check, or the last bucket's barrier): then no one waits inside MPI.
        with self.observer.waiting("peers", bucket):
            if bucket.index == 0:
                self.steps.wait()
            if self.overlapping and bucket is self.buckets[-1]:
                self.waits.wait(self.comm.Ibarrier(), "DistributedDataParallel's barrier "
                                "before the last bucket (every rank finished backward)")
        self.observer.bucket_started(bucket)
        with self.observer.communicating():
            self.waits.allreduce(bucket.data, algorithm=self.algorithm, comm=self.comm,
                                 trace=self.trace, check=False)
        self._average(bucket)

    def _average(self, bucket: Bucket) -> None:
        """Divide a reduced bucket by the number of ranks: the sum becomes the mean."""
        # BEGIN SOLUTION average-gradients
        # the all-reduce summed the bucket over the ranks: divide it by their number, in place
        p = self.world_size
        if p & (p - 1) == 0:
            bucket.data *= 1.0 / p  # the same bits as dividing (a power of two), twice as fast
        else:
            bucket.data /= p
        # END SOLUTION
        self.observer.bucket_done(bucket)

    def _reset_pass(self) -> None:
        self._pass_active = False
        self._next = 0  # the next bucket to launch
        self._ready: deque[Bucket] = deque()  # full, waiting for their turn
        self._in_flight: tuple[Bucket, CollectiveRequest] | None = None
        for bucket in self.buckets:
            bucket.pending = len(bucket.params)

    def close(self) -> None:
        """Unhook the model, check that every rank ran the same steps, free the communicator.

        Collective; raises on every rank if some rank skipped a step.
        """
        if self._closed:
            return
        self._closed = True
        for handle in self._hooks:  # the model trains on its own again
            handle.remove()
        if self.world_size > 1:
            self.steps.at_close()
        self.comm.Free()


def _attach(bucket: Bucket, i: int) -> None:
    """Make parameter ``i``'s ``.grad`` its view in ``bucket`` again, keeping its values."""
    _, p = bucket.params[i]
    view = bucket.view(i)
    view[...] = 0 if p.grad is None else p.grad
    p.grad = view
