"""``DistributedDataParallel``: one model replicated on every rank, gradients averaged by all-reduce.

Each rank runs forward and backward on its own shard of the batch. As
backward finishes a parameter's gradient, a hook counts it off in its
bucket (:mod:`minidl.parallel.buckets`); a full bucket starts its all-reduce
without blocking (:func:`minidl.distributed.iallreduce`), and every later hook moves
the all-reduces in flight along while backward goes on computing the
gradients of earlier layers. When backward has finished, a callback finishes
every bucket and divides by the number of ranks, so ``loss.backward()``
returns with the averaged gradient in every ``.grad``, and
``optimizer.step()`` makes the same update on every rank.

No thread: a communication thread would share the rank's core and Python's
lock with backward, and on a machine with one core per rank it made every
step slower; a request moved along between two layers' backward costs a
microsecond when there is nothing to do.

With ``p`` ranks and a mean loss over ``b / p`` samples each, the averaged
gradient is exactly the gradient of the mean loss over all ``b`` samples, so
training equals one process with batch ``b`` (to float rounding).
"""

from __future__ import annotations

import atexit
import contextlib
import math
import sys
import time
import traceback
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from minidl.autograd import engine
from minidl.autograd.tensor import Tensor
from minidl.distributed import ALGORITHMS, CollectiveRequest, Trace, abort, allreduce, iallreduce, schedule
from minidl.nn.module import Module
from minidl.parallel.buckets import Bucket, assign_buckets
from minidl.distributed.world import world
from minidl.parallel.comm import SPIN_LONG, SPIN_SHORT, ranks_have_own_cores, wait_politely
from minidl.parallel.replicas import broadcast_parameters, check_same_architecture
from minidl.parallel.timeline import Timeline


@dataclass
class CommStats:
    """Where a rank's time and bytes went, summed over the steps since the last reset.

    Attributes
    ----------
    steps : int
        Synchronised backward passes.
    allreduces : int
        Bucket all-reduces done.
    comm_seconds : float
        Time this rank spent in communication calls: moving the all-reduces
        in flight along from the gradient hooks (inside backward) and
        reducing at backward's end (inside ``wait_seconds``). It overlaps the
        other times rather than adding to them.
    wait_seconds : float
        Time backward's end spent blocked on all-reduces that overlap did not hide.
    bytes_sent : int
        Bytes this rank sent, counted from the schedules.
    """

    steps: int = 0
    allreduces: int = 0
    comm_seconds: float = 0.0
    wait_seconds: float = 0.0
    bytes_sent: int = 0


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
    algorithm : str, default "ring"
        Any all-reduce algorithm of :func:`minidl.distributed.allreduce`, or ``"mpi"``.
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
    buckets : list of Bucket
        In launch order.
    stats : CommStats
        Communication time, waiting time and bytes since the last ``reset_stats()``.

    Examples
    --------
    Under ``mpiexec -n 4 python -m mpi4py train.py``::

        model = DistributedDataParallel(models.lenet())
        loss = F.cross_entropy(model(x_shard), y_shard)
        loss.backward()          # returns with gradients averaged over the ranks
        optimizer.step()         # the same update on every rank
    """

    def __init__(self, model: Module, comm: Any = None, algorithm: str = "ring", bucket_cap_mb: float = 1.0,
                 overlap: bool = True, trace: Trace | None = None, timeline: Timeline | None = None) -> None:
        super().__init__()
        if algorithm not in ALGORITHMS["allreduce"] and algorithm not in ("mpi", "auto"):
            known = ", ".join([*ALGORITHMS["allreduce"], "auto", "mpi"])
            raise ValueError(f"unknown all-reduce algorithm {algorithm!r}; expected one of {known}")
        if bucket_cap_mb < 0:
            raise ValueError(f"bucket_cap_mb must be >= 0, got {bucket_cap_mb}")
        self.module = model
        comm = world(comm)
        object.__setattr__(self, "comm", comm)
        self.algorithm, self.overlap, self.trace, self.timeline = algorithm, overlap, trace, timeline
        self.bucket_cap_mb = bucket_cap_mb
        self.rank, self.world_size = comm.Get_rank(), comm.Get_size()

        check_same_architecture(model, comm)
        broadcast_parameters(model, root=0, comm=comm)
        # Its own communicator: the all-reduces it leaves in flight during
        # backward must not meet the messages of anything else the program
        # sends meanwhile on comm (another DDP, a layer that communicates).
        self._comm = comm.Dup()
        # Whether every rank has a core to itself (agreed on by all): then a
        # rank at the end of backward polls for its peers, and reduces its
        # last bucket with a blocking all-reduce; else it gives its core away.
        self._own_cores = self.world_size > 1 and ranks_have_own_cores(self._comm)
        self._spin = SPIN_LONG if self._own_cores else SPIN_SHORT

        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.buckets = assign_buckets(named, bucket_cap_mb * 2**20 if math.isfinite(bucket_cap_mb) else math.inf)
        self._slot_of: dict[int, tuple[Bucket, int]] = {}  # id(param) -> (its bucket, its index there)
        self._hooks = []
        for bucket in self.buckets:
            for i, (_, p) in enumerate(bucket.params):
                p.grad = bucket.view(i)
                self._slot_of[id(p)] = (bucket, i)
                self._hooks.append(p.register_post_accumulate_grad_hook(self._grad_ready))
        self._check_same_buckets()
        self._bytes_per_allreduce = [self._bytes_sent_by(b) for b in self.buckets]
        self.stats = CommStats()
        self._syncing = True
        self._pass_active = False
        self._step = 0
        self._steps_seen = np.empty((self.world_size, 2), dtype=np.int64)  # the step check's answer
        # Overlap needs a bucket to start before the last (which waits for the
        # end of backward) and someone to talk to; else it is no overlap.
        self._overlapping = overlap and self.world_size > 1 and len(self.buckets) > 1
        self._closed = False
        # A rank that skipped a step would otherwise leave the others waiting
        # forever in their last all-reduce: closing compares step counts.
        self._atexit = _close_at_exit(self)
        atexit.register(self._atexit)
        self._reset_pass()

    # ----------------------------------------------------------- forward
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the wrapped model, with every ``.grad`` attached to its bucket."""
        if self._pass_active:
            raise RuntimeError(
                f"DistributedDataParallel on rank {self.rank}: the last backward pass stopped half-way "
                "(an exception), with its gradients not averaged and maybe messages in flight; the "
                "ranks cannot be brought back in step: end the job, or close() this DDP on every rank "
                "and wrap the model anew")
        self._attach_grads()
        return self.module(*args, **kwargs)

    def _attach_grads(self) -> None:
        """Put every parameter's ``.grad`` back into its bucket.

        ``optimizer.zero_grad()`` sets gradients to None; a user may also
        assign a fresh array. Either way the next backward must write into
        the bucket, so the view is restored here, keeping any values.
        """
        for bucket in self.buckets:
            for i, (_, p) in enumerate(bucket.params):
                grad = p.grad
                if grad is not None and grad.base is bucket.data:
                    continue
                view = bucket.view(i)
                view[...] = 0 if grad is None else grad
                p.grad = view

    # --------------------------------------------------------- gradients
    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Accumulate gradients locally, without communication, for the backward passes inside.

        The first backward after the block all-reduces the sum of every
        micro-batch's gradient: ``k`` micro-steps under ``no_sync`` then one
        synchronised step equal one step with ``k`` times the batch.
        """
        previous, self._syncing = self._syncing, False
        try:
            yield
        finally:
            self._syncing = previous

    def _grad_ready(self, param: Tensor) -> None:
        """Post-accumulate hook: one more gradient in its bucket is final."""
        if not self._syncing:
            return
        if not self._pass_active:
            self._pass_active = True
            engine.queue_callback(self._finish_pass)
        bucket, i = self._slot_of[id(param)]
        if param.grad.base is not bucket.data:
            # The gradient was detached from its bucket after forward (say,
            # zero_grad() between forward and backward): move it back in.
            view = bucket.view(i)
            view[...] = param.grad
            param.grad = view
        bucket.pending -= 1
        if self._overlapping:
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

    def _progress(self) -> None:
        """Move the all-reduces along as far as they go without blocking; start the next when one ends.

        One of this DDP's all-reduces is in flight at a time (they share the
        communicator and its tags), in bucket order; bucket 0 first starts
        the step check and waits for it.
        """
        began = time.perf_counter()
        while True:
            if self._in_flight is not None:
                bucket, request, started = self._in_flight
                if not request.test():
                    break
                self._in_flight = None
                self._finish_bucket(bucket, started)
            if not self._ready:
                break
            if self._ready[0].index == 0 and not self._step_checked():
                break
            bucket = self._ready.popleft()
            started = time.perf_counter()
            self._in_flight = (bucket, self._start_allreduce(bucket), started)
        self.stats.comm_seconds += time.perf_counter() - began

    def _finish_pass(self) -> None:
        """Backward's final callback: finish every all-reduce, wait, and check for errors.

        With overlap, every bucket but the last goes the way of those that
        backward started: one at a time, in order, moved along while waiting
        politely (a peer may still be computing its backward); the last one,
        then, is reduced after a barrier. Without overlap, every bucket is
        reduced now. (Reduced: blocking when each rank has a core, started
        and waited for politely when not.)
        """
        began = time.perf_counter()
        if self.world_size == 1:  # alone: the gradients are already the average
            self._next = len(self.buckets)
        elif self._overlapping:
            self._ready.extend(self.buckets[self._next : len(self.buckets) - 1])
            self._next = max(self._next, len(self.buckets) - 1)
            self._progress()
            while self._in_flight is not None or self._ready:
                # Poll the all-reduce in flight, or, before bucket 0, the step check.
                wait_politely(self._check if self._in_flight is None else self._in_flight[1], self._spin)
                self._progress()
        for bucket in self.buckets[self._next:]:
            self._reduce(bucket)
        ended = time.perf_counter()
        self.stats.wait_seconds += ended - began
        if self.timeline is not None:
            self.timeline.add("main", "wait for all-reduces", began, ended)
        self.stats.steps += 1
        self._step += 1
        self._reset_pass()

    def _reset_pass(self) -> None:
        self._pass_active = False
        self._next = 0
        self._ready: deque[Bucket] = deque()
        self._in_flight: tuple[Bucket, CollectiveRequest, float] | None = None
        self._check: Any = None  # the step check's request, once started
        self._checked = False  # whether it came back
        for bucket in self.buckets:
            bucket.pending = len(bucket.params)

    def _check_same_buckets(self) -> None:
        """Every rank must cut the same buckets with the same algorithm (else all-reduces would not match)."""
        mine = (self.algorithm, self.overlap, [(b.data.size, str(b.data.dtype)) for b in self.buckets])
        everyone = self.comm.allgather(mine)  # once, small: pickling is fine
        for rank, theirs in enumerate(everyone):
            if theirs != everyone[0]:
                raise ValueError(
                    f"DistributedDataParallel: rank {rank} uses algorithm {theirs[0]!r}, overlap={theirs[1]} "
                    f"and {len(theirs[2])} buckets, rank 0 {everyone[0][0]!r}, overlap={everyone[0][1]} and "
                    f"{len(everyone[0][2])}: pass the same algorithm, overlap and bucket_cap_mb on every rank")

    def _start_step_check(self, phase: int = 0) -> Any:
        """Start the exchange that makes sure every rank is at the same step; returns its request.

        Every synchronised pass starts it before bucket 0's all-reduce, which
        waits for it (``phase`` 0); :meth:`close` does it too (``phase`` 1). A
        rank that skipped a step reaches ``close`` while the others start one
        more pass: the phases differ, and every rank raises instead of
        waiting forever for an all-reduce that is not coming.
        """
        mine = np.array([self._step, phase], dtype=np.int64)
        return self._comm.Iallgather(mine, self._steps_seen)

    def _step_checked(self, wait: bool = False) -> bool:
        """Whether the step check has come back, starting it if need be (raises if the ranks disagree).

        With ``wait``, wait for it, politely.
        """
        if self._checked:
            return True
        if self._check is None:
            self._check = self._start_step_check()
        if wait:
            wait_politely(self._check, self._spin)
        elif not self._check.Test():
            return False
        self._checked = True
        self._verify_steps()
        return True

    def _start_allreduce(self, bucket: Bucket) -> CollectiveRequest:
        """Start one bucket's all-reduce without blocking."""
        # The sizes, dtypes and algorithm were checked equal on every rank at
        # construction, so the per-call fingerprint check is skipped.
        return iallreduce(bucket.data, algorithm=self.algorithm, comm=self._comm, trace=self.trace, check=False)

    def _verify_steps(self) -> None:
        everyone = self._steps_seen
        if (everyone != everyone[0]).any():
            listing = ", ".join(
                f"rank {r}: {'finished after' if ph else 'at'} step {s}" for r, (s, ph) in enumerate(everyone))
            raise RuntimeError(f"DistributedDataParallel: ranks are at different steps ({listing}); "
                               "a rank skipped a backward pass or ran an extra one")

    def _reduce(self, bucket: Bucket) -> None:
        """All-reduce one bucket, blocking, and average it: this rank's part of one message exchange."""
        # First wait, politely, until every rank has finished backward. Then
        # the all-reduce runs with no one waiting inside MPI for a peer still
        # computing, and its time is the communication's alone. Without
        # overlap, bucket 0 comes first and its step check, started now, does
        # it. With overlap, this is the last bucket (the others were started
        # without blocking), and a barrier does it.
        waited = time.perf_counter()
        if bucket.index == 0:
            self._step_checked(wait=True)
        if self._overlapping and bucket is self.buckets[-1]:
            wait_politely(self._comm.Ibarrier(), self._spin)
        began = time.perf_counter()
        if self.timeline is not None and began - waited > 1e-6:
            self.timeline.add("main", "wait for peers", waited, began, bucket=bucket.index)
        if self._own_cores:
            allreduce(bucket.data, algorithm=self.algorithm, comm=self._comm, trace=self.trace, check=False)
        else:
            # More ranks than cores: MPI's blocking calls poll without end,
            # keeping the core from the very peer they wait for. Started
            # without blocking, the all-reduce can wait politely.
            wait_politely(self._start_allreduce(bucket))
        self.stats.comm_seconds += time.perf_counter() - began
        self._finish_bucket(bucket, began)

    def _finish_bucket(self, bucket: Bucket, started: float) -> None:
        """Average a reduced bucket and count it; ``started`` is when its all-reduce began."""
        p = self.world_size
        if p & (p - 1) == 0:
            bucket.data *= 1.0 / p  # the same bits as dividing (a power of two), twice as fast
        else:
            bucket.data /= p
        ended = time.perf_counter()
        if self.timeline is not None:
            self.timeline.add("comm", f"all-reduce bucket {bucket.index}", started, ended,
                              bytes=bucket.nbytes, parameters=[name for name, _ in bucket.params])
        self.stats.allreduces += 1
        self.stats.bytes_sent += self._bytes_per_allreduce[bucket.index]

    def _bytes_sent_by(self, bucket: Bucket) -> int:
        """Bytes this rank sends in one all-reduce of ``bucket``, read off the schedule."""
        if self.algorithm in ("mpi", "auto") or self.world_size == 1:
            # MPI does not say what it sends: count what a ring would.
            n, p = bucket.data.size, self.world_size
            return int(2 * (p - 1) * math.ceil(n / p) * bucket.data.itemsize) if p > 1 else 0
        rounds = schedule(self.algorithm, self.world_size, self.rank, bucket.data.size)
        elements = sum(s.stop - s.start for rnd in rounds for s in rnd.sends)
        return elements * bucket.data.itemsize

    # ------------------------------------------------------------- misc
    def reset_stats(self) -> CommStats:
        """Return the statistics gathered so far and start counting afresh."""
        stats, self.stats = self.stats, CommStats()
        return stats

    def close(self) -> None:
        """Stop communicating: unhook the model, check every rank ran the same steps.

        Collective: every rank must call it (it also runs at interpreter exit
        for a DDP never closed). Raises on every rank if some rank skipped a
        step.
        """
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._atexit)
        for handle in self._hooks:  # the model trains on its own again
            handle.remove()
        if self.world_size > 1:
            wait_politely(self._start_step_check(phase=1))
            self._verify_steps()
        self._comm.Free()

    def extra_repr(self) -> str:
        sizes = ", ".join(_size(b.nbytes) for b in self.buckets)
        return (f"algorithm={self.algorithm!r}, world_size={self.world_size}, overlap={self.overlap}, "
                f"buckets=[{sizes}]")


def _size(nbytes: int) -> str:
    """``512 B``, ``3.5 KiB``, ``1.2 MiB``."""
    if nbytes < 1024:
        return f"{nbytes} B"
    if nbytes < 2**20:
        return f"{nbytes / 1024:.3g} KiB"
    return f"{nbytes / 2**20:.3g} MiB"


def _close_at_exit(ddp: DistributedDataParallel):
    """An exit handler that closes ``ddp`` if it still exists, without keeping it alive.

    If closing finds ranks out of step, the error is printed and the job
    aborted: an exception in an exit handler would otherwise be ignored.
    """
    ref = weakref.ref(ddp)

    def close() -> None:
        alive = ref()
        if alive is None or abort.escaped:  # the job is being aborted
            return
        try:
            alive.close()
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            time.sleep(abort.GRACE_S)
            alive.comm.Abort(1)

    return close
