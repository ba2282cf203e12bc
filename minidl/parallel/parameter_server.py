"""``ParameterServer``: parameters held by server ranks, pulled and pushed by worker ranks.

The first ``servers`` ranks are *servers*: each holds a contiguous shard of
the model's parameters, flattened (balanced by size, as
:func:`~minidl.distributed.chunk_bounds` splits them), and that shard's
optimizer state. The other ranks are *workers*: each loop, a worker
:meth:`~ParameterServer.pull`\\ s the parameters into its model, computes a
gradient on its own batch, and :meth:`~ParameterServer.push`\\ es it; the
servers apply it. Every message is a point-to-point one (mpi4py's ``Isend``
and ``Irecv``, on a communicator of the parameter server's own).

How consistent the parameters a worker reads are is the *mode*:

- ``"sync"``: a server applies the average of one gradient from every
  worker per step (its *clock*), and answers a pull for step ``t`` only once
  step ``t - 1`` is applied: a barrier per step. With equal batches this is
  one process on the union of the workers' batches;
- ``"ssp"`` (stale-synchronous parallel, Ho et al. 2013) with ``staleness=s``:
  the same averaged steps, but a worker that has pushed ``c`` times may read
  parameters as old as step ``c - s``: it runs up to ``s`` steps ahead of the
  slowest worker. ``s = 0`` is ``"sync"`` exactly;
- ``"async"`` (Downpour, Dean et al. 2012): a server applies each push on
  arrival (as ``1 / W`` of a step for ``W`` workers, so that the same
  learning rate serves every mode), and a pull returns whatever is current.

The *staleness* of an applied gradient is the number of updates the server
applied between the worker's pull and this apply: 0 in sync, at most ``s``
in SSP, unbounded in async. Each server counts it in
:attr:`PSStats.staleness`.

Servers wait by polling (``Iprobe``) with a growing sleep, never spinning for
long: the job may run with more ranks than cores. A worker that closes is
no longer waited for: a step completes with the pushes of the workers still
open.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from minidl.distributed.chunking import chunk_bounds
from minidl.distributed.watchdog import WATCH, watching
from minidl.distributed.world import mpi_module, world
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter
from minidl.optim import SGD, Adam
from minidl.parallel.comm import wait_politely

MODES = ("sync", "ssp", "async")
OPTIMIZERS = ("sgd", "adam")
_PULL, _PARAMS, _PUSH, _CLOSE = 1, 2, 3, 4  # tags, on the parameter server's own communicator
_LONGEST_SLEEP = 1e-3  # seconds a server sleeps between two polls, at most
_SCHEDULE_PROBES = (0, 1, 2, 10, 100, 1_000, 10_000, 100_000, 1_000_000)
"""Updates at which ``lr_schedule`` is evaluated at construction: validated on every rank and
compared across the ranks (a function cannot be compared itself)."""


@dataclass
class PSStats:
    """What one rank of a parameter server did.

    Attributes
    ----------
    pushes, pulls : int
        Gradients pushed and parameter pulls (a worker counts its own; a
        server those it received and answered).
    bytes_sent, bytes_received : int
        Parameter and gradient bytes (not the small headers).
    waiting : float
        Seconds spent waiting: a worker for pull replies, a server for messages.
    staleness : dict
        On a server: ``{staleness: count}`` over every gradient it applied.
    staleness_by_worker : dict
        On a server: the same, per worker: ``{worker: {staleness: count}}``.
    applied : int
        On a server: the updates it applied (its clock).
    arrivals : list of int
        On a server: the worker of each push, in the order they arrived.
    """

    pushes: int = 0
    pulls: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    waiting: float = 0.0
    staleness: dict[int, int] = field(default_factory=dict)
    staleness_by_worker: dict[int, dict[int, int]] = field(default_factory=dict)
    applied: int = 0
    arrivals: list[int] = field(default_factory=list)


class ParameterServer:
    """Train ``model`` with parameter servers: servers hold shards, workers pull and push.

    Collective to construct: every rank of ``comm`` passes the same
    arguments and a model of the same parameter sizes (checked). Then
    servers call :meth:`serve`, and workers loop over :meth:`pull`, forward
    and backward, :meth:`push`, and finally :meth:`close`.

    Parameters
    ----------
    model : Module
        Every rank builds it; a server takes its shard's initial values from
        its own copy, a worker pulls into its copy.
    comm : mpi4py.MPI.Intracomm, optional
        None means ``MPI.COMM_WORLD``.
    servers : int, default 1
        The first ``servers`` ranks serve; at least one rank must be left to work.
    mode : str, default "sync"
        ``"sync"``, ``"ssp"`` or ``"async"`` (see the module).
    staleness : int, default 0
        SSP's bound; only with ``mode="ssp"``.
    optimizer : str, default "sgd"
        ``"sgd"`` or ``"adam"``, applied by each server to its shard.
    lr, momentum, weight_decay : float
        The optimizer's hyper-parameters (``momentum`` for SGD only).
    lr_schedule : callable, optional
        The learning-rate schedule, on each server's own clock:
        ``lr_schedule(t)`` is the factor by which the server multiplies
        ``lr`` for its update number ``t`` (``t = 0, 1, ...``; PyTorch's
        ``LambdaLR`` convention). A server applies one update per step in
        ``"sync"`` and ``"ssp"`` (so a schedule stepped per epoch is
        ``t // steps_per_epoch``), one per push in ``"async"`` (``W`` times
        as many for ``W`` workers). None (the default) keeps ``lr``
        throughout. Every rank passes the same schedule: it is evaluated
        at construction at updates 0, 1, 2, 10, ..., 10**6, which must give
        finite factors >= 0, and those values are compared across the ranks.
        For example, a cosine over ``T`` updates::

            lr_schedule=lambda t: 0.5 * (1 + math.cos(math.pi * min(t, T) / T))

    Attributes
    ----------
    is_server, is_worker : bool
    workers : list of int
        The workers' ranks.
    stats : PSStats
    """

    def __init__(self, model: Module, comm: Any = None, servers: int = 1, mode: str = "sync",
                 staleness: int = 0, optimizer: str = "sgd", lr: float = 0.01,
                 momentum: float = 0.0, weight_decay: float = 0.0,
                 lr_schedule: Callable[[int], float] | None = None) -> None:
        comm = world(comm, "ParameterServer")
        p = comm.Get_size()
        if mode not in MODES:
            raise ValueError(f"ParameterServer: mode must be one of {', '.join(MODES)}, "
                             f"got {mode!r}")
        if isinstance(staleness, bool) or not isinstance(staleness, int) or staleness < 0:
            raise ValueError(f"ParameterServer: staleness must be an integer >= 0, "
                             f"got {staleness!r}")
        if staleness and mode != "ssp":
            raise ValueError(f"ParameterServer: staleness={staleness} bounds mode='ssp' only "
                             f"(mode is {mode!r})")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"ParameterServer: optimizer must be one of "
                             f"{', '.join(OPTIMIZERS)}, got {optimizer!r}")
        if lr_schedule is not None and not callable(lr_schedule):
            raise TypeError(f"ParameterServer: lr_schedule must be a function from the number "
                            f"of updates applied to a learning-rate factor, or None; got "
                            f"{type(lr_schedule).__name__}")
        self.lr, self.lr_schedule = lr, lr_schedule
        probes = [self._factor(t) for t in _SCHEDULE_PROBES] if lr_schedule is not None else None
        if isinstance(servers, bool) or not isinstance(servers, int) or not 1 <= servers < p:
            raise ValueError(f"ParameterServer: servers must be an integer in [1, {p - 1}] on "
                             f"{p} ranks (at least one rank must be a worker), got {servers!r}")
        self.params = [q for q in model.parameters() if q.requires_grad]
        dtypes = {q.data.dtype for q in self.params}
        if len(dtypes) != 1:
            raise ValueError(f"ParameterServer: every parameter must have one dtype, got "
                             f"{sorted(map(str, dtypes))}")
        self.model, self.mode, self.staleness = model, mode, staleness
        self.rank, self.servers = comm.Get_rank(), servers
        self.workers = list(range(servers, p))
        self.is_server, self.is_worker = self.rank < servers, self.rank >= servers
        self.dtype = dtypes.pop()
        self.sizes = [q.data.size for q in self.params]
        self.bounds = chunk_bounds(sum(self.sizes), servers)  # server k: [bounds[k], bounds[k+1])
        self.stats = PSStats()
        with watching(f"ParameterServer's construction on {p} ranks (collective)"):
            mine = (mode, staleness, servers, optimizer, lr, momentum, weight_decay, self.sizes,
                    probes)
            everyone = comm.allgather(mine)  # once, small: pickling is fine
            for rank, theirs in enumerate(everyone):
                if theirs[:8] != everyone[0][:8]:
                    raise ValueError(
                        f"ParameterServer: rank {rank} has (mode, staleness, servers, optimizer, "
                        f"lr, momentum, weight_decay) = {theirs[:7]} and {len(theirs[7])} "
                        f"parameters, rank 0 {everyone[0][:7]} and {len(everyone[0][7])}: pass "
                        "the same model and arguments on every rank")
                if theirs[8] != everyone[0][8]:
                    raise ValueError(
                        f"ParameterServer: rank {rank}'s lr_schedule gives {theirs[8]} at updates "
                        f"{_SCHEDULE_PROBES}, rank 0's {everyone[0][8]}: pass the same schedule "
                        "(or None) on every rank")
            self.comm = comm.Dup()  # its own tags
        if self.is_server:
            a, b = self.bounds[self.rank], self.bounds[self.rank + 1]
            self.shard = Parameter(self._flat_parameters()[a:b].copy())
            self.optimizer = (SGD([self.shard], lr=lr, momentum=momentum,
                                  weight_decay=weight_decay) if optimizer == "sgd"
                              else Adam([self.shard], lr=lr, weight_decay=weight_decay))
        else:
            self.clocks = [0] * servers  # each server's clock at this worker's last pull
            self.steps = 0  # pushes made
            self._sending: list[Any] = []  # (request, buffer) of the last push
            self.closed = False

    # -- workers ------------------------------------------------------------------------------

    def pull(self) -> None:
        """Copy the servers' current parameters into the model (a worker's call).

        In ``"sync"`` mode it waits for the step of this worker's last push;
        in ``"ssp"`` for the step ``staleness`` before it.
        """
        self._worker_only("pull")
        started = time.perf_counter()
        flat = np.empty(sum(self.sizes), self.dtype)
        ask = np.array([self.steps], np.int64)  # "I have pushed this many times"
        clocks = np.empty((self.servers, 1), np.int64)
        requests = []
        for k in range(self.servers):
            a, b = self.bounds[k], self.bounds[k + 1]
            requests += [self.comm.Isend(ask, k, _PULL), self.comm.Irecv(clocks[k], k, _PARAMS),
                         self.comm.Irecv(flat[a:b], k, _PARAMS)]
        wait_politely(_AllOf(requests), what=f"ParameterServer worker {self.rank}: pull after "
                      f"{self.steps} pushes ({self.mode}), from servers 0..{self.servers - 1}")
        self.clocks = [int(c) for c in clocks[:, 0]]
        offset = 0
        for q, size in zip(self.params, self.sizes):
            q.data[...] = flat[offset : offset + size].reshape(q.data.shape)
            offset += size
        self.stats.pulls += 1
        self.stats.bytes_received += flat.nbytes
        self.stats.waiting += time.perf_counter() - started

    def push(self) -> None:
        """Send the model's gradients to the servers (a worker's call); they apply them.

        Does not wait for the servers to apply it: the last push's messages
        are finished by the next push, pull or close.
        """
        self._worker_only("push")
        missing = [i for i, q in enumerate(self.params) if q.grad is None]
        if missing:
            raise ValueError(f"ParameterServer.push on rank {self.rank}: {len(missing)} "
                             "parameters have no gradient; call loss.backward() first")
        self._finish_sending()
        flat = np.concatenate([q.grad.reshape(-1) for q in self.params]).astype(self.dtype,
                                                                               copy=False)
        for k in range(self.servers):
            a, b = self.bounds[k], self.bounds[k + 1]
            header = np.array([self.clocks[k], self.steps], np.int64)
            shard = np.ascontiguousarray(flat[a:b])
            self._sending += [(self.comm.Isend(header, k, _PUSH), header),
                              (self.comm.Isend(shard, k, _PUSH), shard)]
        self.steps += 1
        self.stats.pushes += 1
        self.stats.bytes_sent += flat.nbytes

    def close(self) -> None:
        """Tell every server this worker is done (a worker's call; not collective)."""
        self._worker_only("close")
        if self.closed:
            return
        self._finish_sending()
        note = np.array([self.steps], np.int64)
        self._sending = [(self.comm.Isend(note, k, _CLOSE), note) for k in range(self.servers)]
        self._finish_sending()
        self.closed = True

    def _finish_sending(self) -> None:
        if self._sending:
            wait_politely(_AllOf([r for r, _ in self._sending]),
                          what=f"ParameterServer worker {self.rank}: its last messages to the "
                          "servers")
            self._sending = []

    def _worker_only(self, what: str) -> None:
        if not self.is_worker:
            raise RuntimeError(f"ParameterServer.{what}: rank {self.rank} is a server; servers "
                               "call serve()")
        if self.closed:
            raise RuntimeError(f"ParameterServer.{what}: rank {self.rank} has closed")

    def _flat_parameters(self) -> np.ndarray:
        return np.concatenate([q.data.reshape(-1) for q in self.params])

    # -- servers ------------------------------------------------------------------------------

    def serve(self) -> None:
        """Answer pulls and apply pushes until every worker has closed (a server's call)."""
        if not self.is_server:
            raise RuntimeError(f"ParameterServer.serve: rank {self.rank} is a worker; workers "
                               "call pull(), push() and close()")
        MPI = mpi_module()
        status = MPI.Status()
        open_workers = set(self.workers)
        pending: dict[int, dict[int, tuple[np.ndarray, int, int]]] = {}  # step -> worker -> push
        asking: list[tuple[int, int]] = []  # pulls not yet answerable: (worker, its pushes)
        sleep, idle = 0.0, None  # idle: the watchdog's mark while nothing arrives
        try:
            while open_workers or asking:
                if self.comm.Iprobe(MPI.ANY_SOURCE, MPI.ANY_TAG, status):
                    if idle is not None:
                        WATCH.leave(idle)
                    sleep, idle = 0.0, None
                    asking = self._handle(status, open_workers, pending, asking)
                    continue
                if idle is None:
                    idle = WATCH.enter(f"ParameterServer server {self.rank}: waiting for a "
                                       f"message from workers {sorted(open_workers)}")
                started = time.perf_counter()
                time.sleep(sleep)  # nothing arrived: the cores are the workers'
                self.stats.waiting += time.perf_counter() - started
                sleep = min(max(2 * sleep, 1e-5), _LONGEST_SLEEP)
        finally:
            if idle is not None:
                WATCH.leave(idle)

    def _handle(self, status: Any, open_workers: set[int], pending: dict,
                asking: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Receive the message ``status`` describes and do what it asks; the pulls left waiting."""
        worker, tag = status.Get_source(), status.Get_tag()
        header = np.empty(2 if tag == _PUSH else 1, np.int64)
        self.comm.Recv(header, worker, tag)
        if tag == _PULL:
            asking.append((worker, int(header[0])))
        elif tag == _PUSH:
            grad = np.empty(self.shard.data.size, self.dtype)
            self.comm.Recv(grad, worker, _PUSH)  # sent right after its header
            self.stats.pushes += 1
            self.stats.bytes_received += grad.nbytes
            self.stats.arrivals.append(worker)
            pulled_at, step = int(header[0]), int(header[1])
            if self.mode == "async":
                self._apply([(grad, pulled_at, worker)], scale=1.0 / len(self.workers))
            else:
                pending.setdefault(step, {})[worker] = (grad, pulled_at, worker)
        else:  # _CLOSE
            open_workers.discard(worker)
        if self.mode != "async":
            self._apply_complete_steps(pending, open_workers)
        return self._answer(asking)

    def _apply_complete_steps(self, pending: dict, open_workers: set[int]) -> None:
        """Apply, in order, every step for which each worker still open has pushed."""
        while self.stats.applied in pending:
            pushes = pending[self.stats.applied]
            if not open_workers <= pushes.keys():
                return
            del pending[self.stats.applied]
            self._apply(list(pushes.values()), scale=1.0 / len(pushes))

    def _apply(self, pushes: list[tuple[np.ndarray, int, int]], scale: float) -> None:
        """One update: the pushes' gradients summed times ``scale``, by the optimizer.

        Each push is ``(gradient, the clock its worker pulled at, the worker)``.
        """
        total = pushes[0][0] if len(pushes) == 1 else np.sum([g for g, _, _ in pushes], axis=0)
        self.shard.grad = (total * scale).astype(self.dtype, copy=False)
        if self.lr_schedule is not None:
            self.optimizer.param_groups[0]["lr"] = self.lr * self._factor(self.stats.applied)
        self.optimizer.step()
        for _, pulled_at, worker in pushes:
            age = self.stats.applied - pulled_at
            self.stats.staleness[age] = self.stats.staleness.get(age, 0) + 1
            mine = self.stats.staleness_by_worker.setdefault(worker, {})
            mine[age] = mine.get(age, 0) + 1
        self.stats.applied += 1

    def _factor(self, t: int) -> float:
        """``lr_schedule(t)``, checked: a finite number >= 0."""
        factor = self.lr_schedule(t)
        if (isinstance(factor, bool) or not isinstance(factor, (int, float, np.floating))
                or not math.isfinite(factor) or factor < 0):
            raise ValueError(f"ParameterServer: lr_schedule({t}) must be a finite number >= 0 "
                             f"(the factor of lr for update {t}), got {factor!r}")
        return float(factor)

    def _may_answer(self, pushed: int) -> bool:
        """Whether a pull from a worker that has pushed ``pushed`` times may be answered now.

        ``"async"`` answers every pull at once; ``"sync"`` once the step of the
        worker's last push is applied (``applied >= pushed``); ``"ssp"`` lets
        the worker run up to ``staleness`` steps ahead of that (Ho et al. 2013):
        its next gradient is then at most ``staleness`` updates stale.
        """
        if self.mode == "async":
            return True
        if self.mode == "sync":
            return self.stats.applied >= pushed
        # BEGIN SOLUTION ssp-staleness-bound
        # answer once the server's clock is at most `staleness` steps behind the worker's pushes
        return self.stats.applied >= pushed - self.staleness
        # END SOLUTION

    def _answer(self, asking: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Send the shard to every pull the mode lets see it now; return those that must wait."""
        later = []
        for worker, pushed in asking:
            if not self._may_answer(pushed):
                later.append((worker, pushed))
                continue
            clock = np.array([self.stats.applied], np.int64)
            self.comm.Send(clock, worker, _PARAMS)
            self.comm.Send(self.shard.data, worker, _PARAMS)
            self.stats.pulls += 1
            self.stats.bytes_sent += self.shard.data.nbytes
        return later

    def parameters(self) -> np.ndarray:
        """A server's shard of the flattened parameters, as it is now."""
        if not self.is_server:
            raise RuntimeError("ParameterServer.parameters: workers hold the model; call pull()")
        return self.shard.data

    def __repr__(self) -> str:
        role = "server" if self.is_server else "worker"
        extra = f", staleness={self.staleness}" if self.mode == "ssp" else ""
        return (f"<ParameterServer {role} rank {self.rank}: mode={self.mode!r}{extra}, "
                f"{self.servers} servers, {len(self.workers)} workers>")


class _AllOf:
    """Requests waited on together, with ``Test()`` as one request has it."""

    def __init__(self, requests: list[Any]) -> None:
        self.requests = requests

    def Test(self) -> bool:
        return bool(mpi_module().Request.Testall(self.requests))
