"""Sync, stale-synchronous and asynchronous parameter servers, and DDP: time to accuracy.

Run it on 5 ranks (one server and two workers for the training runs; up to
four workers for the server's capacity)::

    mpiexec -n 5 python -m mpi4py benchmarks/bench_consistency.py

Every part runs its rows in interleaved passes (each pass runs every row
once, in a rotated order, so a noisy machine slows them alike); each number
is the median over the passes, with the range.

1. **Time to accuracy.** The digits MLP (64-128-64-10) trained for
   ``--epochs`` epochs by one server and ``--workers`` workers (a global batch
   of ``--batch`` samples split over the workers; SGD with momentum 0.9, a
   cosine learning rate on the servers' clock) in ``sync``, ``ssp`` (s = 1
   and 4) and ``async`` (Downpour) modes; by DDP on the workers' ranks alone
   (the same batches, the same schedule per step); and by Hogwild! on them,
   unlocked and under the lock (each rank its share of each batch, at
   ``lr / workers``, as async scales each push). Each in three
   conditions: every worker at full speed (``none``); the last worker
   sleeping ``--straggler`` seconds every step (``straggler``: a slow
   machine); every worker sleeping that long on a random half of its steps
   (``jitter``: machines slow now and then; the same draws in every row).
   *Time to accuracy* is the first moment a worker held (after a pull; in DDP
   after a step) parameters that reach ``--target`` test accuracy: each
   worker copies the parameters it holds as it goes, and they are evaluated
   after the run, untimed. *Final accuracy* is the servers' parameters after
   the last push (DDP's after its last step).
2. **Staleness.** The servers' histogram of the staleness of the gradients
   they applied (updates applied between a worker's pull and the apply),
   summed over the passes, and its mean per worker: under async the
   straggler is the stalest; under SSP the fast worker, up to ``s``.
3. **Timelines.** A few steps of sync, SSP and async, traced: every
   parameter and gradient message, pull, computation and update on every
   rank, timed (``--json`` writes them; the tutorial "Parameter servers and
   staleness" draws them).
4. **One server's capacity.** Pushes per second into ``async`` servers from 1,
   2, ... workers that compute nothing (each pulls, then pushes a fixed
   gradient of ``--floats`` floats), with 1 and with 2 servers sharing the
   parameters, and the share of its time each server was busy (not asleep
   for want of a message). A server busy all the time is the bottleneck:
   more workers push no faster; a second server halves each one's bytes.

With more ranks than cores, the ranks take turns on the cores: every time
here is this machine's, and a rank that waits also yields its core (the
servers and waiting workers sleep between polls).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI
from threadpoolctl import threadpool_limits

import minidl
import minidl.functional as F
from minidl import kernels, models, nn, optim
from minidl.data import load_digits
from minidl.parallel import DistributedDataParallel, Hogwild, ParameterServer
from minidl.parallel.comm import wait_politely

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
ROWS = {"sync": ("sync", 0), "ssp1": ("ssp", 1), "ssp4": ("ssp", 4), "async": ("async", 0),
        "ddp": ("ddp", 0), "hogwild": ("hogwild", 0), "hogwild+lock": ("hogwild+lock", 0)}
"""The training rows, by the name ``--rows`` takes: (mode, SSP's bound)."""
CONDITIONS = ("none", "straggler", "jitter")
"""Who sleeps: nobody; the last worker every step; every worker on a random half of its steps."""
TIMELINES = (("sync", 0, "none"), ("sync", 0, "straggler"), ("ssp", 1, "straggler"),
             ("async", 0, "straggler"), ("sync", 0, "jitter"), ("ssp", 4, "jitter"))
"""The traced runs: (mode, SSP's bound, condition)."""


def label(mode: str, staleness: int) -> str:
    """A row's name in the tables."""
    names = {"sync": "sync PS", "async": "async PS", "ddp": "DDP", "hogwild": "Hogwild",
             "hogwild+lock": "Hogwild+lock"}
    return names.get(mode, f"SSP s={staleness}")


# -- the data and the model ------------------------------------------------------------------


class Digits:
    """The digits as arrays: each worker's batches of an epoch, and a fast accuracy."""

    def __init__(self, seed: int) -> None:
        train, test = load_digits(flatten=True)
        self.x, self.y = (np.stack([s[i] for s in train]) for i in (0, 1))
        self.test_x, self.test_y = (np.stack([s[i] for s in test]) for i in (0, 1))
        self.seed = seed

    def batches(self, epoch: int, worker: int, workers: int, batch: int) -> list[tuple]:
        """Worker ``worker``'s batches of ``batch // workers`` samples in ``epoch``.

        Every worker takes every ``workers``-th sample of the same shuffled
        order (as :class:`~minidl.data.DistributedSampler` does) and drops its
        last, short batch, so that every worker makes the same number of steps.
        """
        order = np.random.default_rng((self.seed, epoch)).permutation(len(self.y))
        mine, each = order[worker::workers], batch // workers
        return [(self.x[mine[i : i + each]], self.y[mine[i : i + each]])
                for i in range(0, len(mine) - each + 1, each)]

    @minidl.no_grad()
    def accuracy(self, net: nn.Module, flat: np.ndarray) -> float:
        """Test accuracy of ``net`` with its parameters set from ``flat``."""
        load_flat(net, flat)
        return float((net(minidl.tensor(self.test_x)).data.argmax(axis=1) == self.test_y).mean())


def mlp() -> nn.Sequential:
    """The digits MLP, the same initial weights on every rank and every run."""
    minidl.manual_seed(0)
    return models.mlp()


def flat_parameters(net: nn.Module) -> np.ndarray:
    """A copy of ``net``'s parameters, flattened into one array."""
    return np.concatenate([q.data.reshape(-1) for q in net.parameters()])


def load_flat(net: nn.Module, flat: np.ndarray) -> None:
    """Set ``net``'s parameters, in place, from one flat array (as :func:`flat_parameters`)."""
    offset = 0
    for q in net.parameters():
        q.data[...] = flat[offset : offset + q.data.size].reshape(q.data.shape)
        offset += q.data.size


def cosine(t: float, total: int) -> float:
    """The learning-rate factor at update ``t`` of ``total``: 1 down to 0 along a half cosine."""
    return 0.5 * (1 + math.cos(math.pi * min(t, total) / total))


def sleeps(condition: str, worker: int, workers: int, steps: int, delay: float) -> np.ndarray:
    """Seconds worker ``worker`` (0-based) of ``workers`` sleeps at each of its ``steps`` steps."""
    if condition == "straggler":
        return np.full(steps, delay if worker == workers - 1 else 0.0)
    if condition == "jitter":  # the same draws for a worker in every row
        return delay * (np.random.default_rng((7, worker)).random(steps) < 0.5)
    return np.zeros(steps)


def settle(wait: float = 2e-3) -> None:
    """Every rank of the job meets here; idle ranks wait without taking a core.

    The ranks a row leaves out wait here for the whole row: they sleep up to
    ``wait`` seconds between polls, so as to take almost no time from it.
    """
    wait_politely(comm.Ibarrier(), longest_sleep=wait, what="bench_consistency: between runs")


def subset(members: range) -> Any:
    """A communicator of the world ranks in ``members`` (collective; COMM_NULL elsewhere)."""
    return comm.Split(0 if rank in members else MPI.UNDEFINED, rank)


# -- one training run --------------------------------------------------------------------------


def train_ps(sub: Any, data: Digits, args: argparse.Namespace, mode: str, staleness: int,
             condition: str, events: list | None = None) -> dict:
    """One run of one server and ``args.workers`` workers on ``sub``; what this rank saw.

    With ``events`` (a list), every message and every span of this rank is
    appended to it as ``(kind, start, end, peer, clock)`` (see :class:`TracedComm`).
    """
    workers, net = sub.Get_size() - 1, mlp()
    steps = args.epochs * len(data.batches(1, 0, workers, args.batch))
    updates = steps * (workers if mode == "async" else 1)  # the servers' clock at the end
    ps = ParameterServer(net, comm=sub, mode=mode, staleness=staleness, lr=args.lr,
                         momentum=0.9, weight_decay=5e-4,
                         lr_schedule=lambda t: cosine(t, updates))
    if events is not None:
        trace(ps, events)
    snapshots = []
    sub.Barrier()
    t0 = time.perf_counter()
    if ps.is_server:
        ps.serve()
    else:
        worker = sub.Get_rank() - 1
        naps = sleeps(condition, worker, workers, steps, args.straggler)
        for epoch in range(1, args.epochs + 1):
            for x, y in data.batches(epoch, worker, workers, args.batch):
                began = time.perf_counter()
                ps.pull()
                pulled = time.perf_counter()
                snapshots.append((pulled - t0, flat_parameters(net)))
                net.zero_grad()
                F.cross_entropy(net(minidl.tensor(x)), y).backward()
                computed = slept = time.perf_counter()
                if naps[ps.steps]:  # sleep(0) would still give the core away
                    time.sleep(naps[ps.steps])
                    slept = time.perf_counter()
                ps.push()
                if events is not None:
                    events += [("pull", began, pulled, 0, ps.steps - 1),
                               ("compute", pulled, computed, -1, ps.steps - 1)]
                    if slept > computed:
                        events.append(("straggle", computed, slept, -1, ps.steps - 1))
        ps.pull()
        snapshots.append((time.perf_counter() - t0, flat_parameters(net)))
        ps.close()
    seen = {"wall": time.perf_counter() - t0, "reach": first_reaching(data, net, snapshots,
                                                                      args.target)}
    if ps.is_server:
        stats = ps.stats
        seen.update(final=data.accuracy(net, ps.parameters()), staleness=stats.staleness,
                    by_worker=stats.staleness_by_worker, pushes=stats.pushes)
    else:
        seen.update(waiting=ps.stats.waiting)
    return seen


def local_steps(sub: Any, data: Digits, args: argparse.Namespace, condition: str,
                opt: optim.SGD, lr: float, forward: Callable, update: Callable,
                snapshot: Callable) -> tuple[float, list]:
    """The loop DDP and Hogwild! share, on this rank of ``sub``: its wall time and snapshots.

    This rank's share of each global batch, the cosine schedule from ``lr``,
    ``condition``'s naps before each ``update()``, and after it a snapshot
    ``(seconds since the start, snapshot())``.
    """
    workers = sub.Get_size()
    steps = args.epochs * len(data.batches(1, 0, workers, args.batch))
    naps = sleeps(condition, sub.Get_rank(), workers, steps, args.straggler)
    snapshots, step = [], 0
    sub.Barrier()
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        for x, y in data.batches(epoch, sub.Get_rank(), workers, args.batch):
            opt.param_groups[0]["lr"] = lr * cosine(step, steps)
            opt.zero_grad()
            F.cross_entropy(forward(minidl.tensor(x)), y).backward()
            if naps[step]:
                time.sleep(naps[step])
            update()
            step += 1
            snapshots.append((time.perf_counter() - t0, snapshot()))
    return time.perf_counter() - t0, snapshots


def train_ddp(sub: Any, data: Digits, args: argparse.Namespace, condition: str) -> dict:
    """One run of DDP on the ``args.workers`` ranks of ``sub``; what this rank saw."""
    net = mlp()
    ddp = DistributedDataParallel(net, comm=sub)
    opt = optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    wall, snapshots = local_steps(sub, data, args, condition, opt, args.lr, ddp, opt.step,
                                  lambda: flat_parameters(net))
    ddp.close()
    return {"wall": wall, "reach": first_reaching(data, net, snapshots, args.target),
            "final": data.accuracy(net, snapshots[-1][1]), "waiting": ddp.stats.wait_seconds}


def train_hogwild(sub: Any, data: Digits, args: argparse.Namespace, condition: str,
                  lock: bool) -> dict:
    """One run of Hogwild! on the ``args.workers`` ranks of ``sub``; what this rank saw.

    Each rank takes its share of each global batch, as a worker does, with
    ``lr / workers`` (as the async servers scale each push by ``1 / W``) and
    its own momentum, and writes its updates into the shared parameters.
    """
    workers, net = sub.Get_size(), mlp()
    hogwild = Hogwild(net, comm=sub, lock=lock)
    opt = optim.SGD(net.parameters(), lr=args.lr / workers, momentum=0.9, weight_decay=5e-4)
    wall, snapshots = local_steps(sub, data, args, condition, opt, args.lr / workers, net,
                                  lambda: hogwild.step(opt), lambda: hogwild.flat.copy())
    hogwild.close()  # collective: waits for every rank's last update
    final = data.accuracy(net, flat_parameters(net))  # before first_reaching loads others
    return {"wall": wall, "reach": first_reaching(data, net, snapshots, args.target),
            "final": final, "waiting": hogwild.stats.lock_seconds}


def first_reaching(data: Digits, net: nn.Module, snapshots: list, target: float) -> float | None:
    """The time of the first snapshot whose parameters reach ``target`` accuracy, or None."""
    for seconds, flat in snapshots:
        if data.accuracy(net, flat) >= target:
            return seconds
    return None


def training_run(data: Digits, args: argparse.Namespace, mode: str, staleness: int,
                 condition: str) -> dict | None:
    """One row's run on every rank of the job (collective); rank 0 gets the row's numbers."""
    if mode == "ddp" or mode.startswith("hogwild"):
        sub = subset(range(1, args.workers + 1))  # the workers' ranks; rank 0 sits it out
        seen = None
        if sub != MPI.COMM_NULL and mode == "ddp":
            seen = train_ddp(sub, data, args, condition)
        elif sub != MPI.COMM_NULL:
            seen = train_hogwild(sub, data, args, condition, lock=mode == "hogwild+lock")
    else:
        sub = subset(range(args.workers + 1))
        seen = (train_ps(sub, data, args, mode, staleness, condition)
                if sub != MPI.COMM_NULL else None)
    if sub != MPI.COMM_NULL:
        sub.Free()
    settle()
    everyone = comm.gather(seen, root=0)
    if rank != 0:
        return None
    seen = [s for s in everyone if s is not None]
    wall = max(s["wall"] for s in seen)
    final = next(s["final"] for s in seen if "final" in s)
    reaches = [s["reach"] for s in seen if s["reach"] is not None]
    reach = min(reaches) if reaches else (wall if final >= args.target else None)
    row = {"wall": wall, "reach": reach, "final": final,
           "waiting": [s["waiting"] / s["wall"] for s in seen if "waiting" in s]}
    row.update({k: seen[0][k] for k in ("staleness", "by_worker", "pushes") if k in seen[0]})
    return row


# -- timelines ---------------------------------------------------------------------------------


class TracedComm:
    """A parameter server's communicator that notes each parameter and gradient message.

    It stands in for ``ps.comm`` and passes every call through; a message of
    floats (parameters or a gradient, not the small integer headers) is noted
    as ``("send" or "recv", time, time, peer, clock)`` when a send is posted
    (``Send``, ``Isend``) and when a receive is done (``Recv``). A worker's
    receives are not noted here: its pull's end is.
    """

    def __init__(self, inner: Any, ps: ParameterServer, events: list) -> None:
        self.inner, self.ps, self.events = inner, ps, events

    def _note(self, kind: str, peer: int, buf: np.ndarray) -> None:
        if buf.dtype.kind == "f":
            now = time.perf_counter()
            clock = self.ps.stats.applied if self.ps.is_server else self.ps.steps
            self.events.append((kind, now, now, peer, clock))

    def Send(self, buf: np.ndarray, dest: int, tag: int) -> None:
        self._note("send", dest, buf)  # before: a large Send returns once it is taken
        self.inner.Send(buf, dest, tag)

    def Recv(self, buf: np.ndarray, source: int, tag: int) -> None:
        self.inner.Recv(buf, source, tag)
        self._note("recv", source, buf)

    def Isend(self, buf: np.ndarray, dest: int, tag: int) -> Any:
        request = self.inner.Isend(buf, dest, tag)
        self._note("send", dest, buf)
        return request

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def trace(ps: ParameterServer, events: list) -> None:
    """Note ``ps``'s messages in ``events``, and on a server each update as an ``"apply"`` span."""
    ps.comm = TracedComm(ps.comm, ps, events)
    if ps.is_server:
        step = ps.optimizer.step

        def timed_step() -> None:
            began = time.perf_counter()
            step()
            events.append(("apply", began, time.perf_counter(), -1, ps.stats.applied))

        ps.optimizer.step = timed_step


def timeline_run(data: Digits, args: argparse.Namespace, mode: str, staleness: int,
                 condition: str) -> dict | None:
    """A short traced run (collective); rank 0 gets every rank's events, in seconds from the start.

    The ranks' clocks are one clock here (``time.perf_counter`` is the
    machine's monotonic clock); across machines they would need aligning.
    """
    short = argparse.Namespace(**{**vars(args), "epochs": 1})
    sub = subset(range(args.workers + 1))
    events: list = []
    origin = None
    if sub != MPI.COMM_NULL:
        origin = time.perf_counter()
        limited = _Limited(data, args.timeline_steps)
        train_ps(sub, limited, short, mode, staleness, condition, events)
        sub.Free()
    settle()
    everyone = comm.gather((origin, events), root=0)
    if rank != 0:
        return None
    start = min(o for o, _ in everyone if o is not None)
    return {"mode": mode, "staleness": staleness, "condition": condition,
            "ranks": [[(k, a - start, b - start, peer, clock) for k, a, b, peer, clock in ev]
                      for o, ev in everyone if o is not None]}


class _Limited(Digits):
    """The same data, each worker's epoch cut to its first ``steps`` batches."""

    def __init__(self, data: Digits, steps: int) -> None:
        self.__dict__.update(data.__dict__)
        self.steps = steps

    def batches(self, epoch: int, worker: int, workers: int, batch: int) -> list[tuple]:
        return super().batches(epoch, worker, workers, batch)[: self.steps]


def timeline_summary(run: dict, workers: int) -> str:
    """One line: when each worker finished its steps, and how long each waited in pulls."""
    ranks = run["ranks"]
    ends = [max((b for k, _, b, *_ in ranks[w] if k in ("compute", "straggle")), default=0.0)
            for w in range(1, workers + 1)]
    waits = [sum(b - a for k, a, b, *_ in ranks[w] if k == "pull") for w in range(1, workers + 1)]
    name = f"{label(run['mode'], run['staleness'])}, {run['condition']}"
    return (f"  {name:22s} workers done at " + ", ".join(f"{e * 1e3:5.0f}" for e in ends)
            + " ms; waited in pulls " + ", ".join(f"{w * 1e3:5.0f}" for w in waits) + " ms")


# -- one server's capacity ---------------------------------------------------------------------


def capacity_run(args: argparse.Namespace, servers: int, workers: int) -> dict | None:
    """Pushes per second into ``servers`` async servers from ``workers`` idle workers.

    Collective: every rank of the job calls it; rank 0 gets the numbers.
    """
    sub = subset(range(servers + workers))
    seen = None
    if sub != MPI.COMM_NULL:
        net = nn.Linear(1024, max(args.floats // 1024, 1), bias=False)
        ps = ParameterServer(net, comm=sub, servers=servers, mode="async", lr=1e-6, momentum=0.9)
        gradient = np.full(net.weight.data.shape, 1e-3, np.float32)
        sub.Barrier()
        t0 = time.perf_counter()
        if ps.is_server:
            ps.serve()
        else:
            for _ in range(args.pushes):
                ps.pull()
                net.weight.grad = gradient
                ps.push()
            ps.close()
        wall = time.perf_counter() - t0
        seen = {"server": ps.is_server, "wall": wall, "pushes": ps.stats.pushes,
                "busy": 1 - ps.stats.waiting / wall}
        sub.Free()
    settle()
    everyone = comm.gather(seen, root=0)
    if rank != 0:
        return None
    served = [s for s in everyone if s is not None and s["server"]]
    wall = max(s["wall"] for s in served)
    busy = float(np.mean([s["busy"] for s in served]))
    return {"rate": served[0]["pushes"] / wall, "busy": busy,
            "busy_per_push": busy * wall / served[0]["pushes"]}


# -- the report --------------------------------------------------------------------------------


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """``median (min-max)`` of ``values``."""
    if not values:
        return "-"
    return (fmt.format(np.median(values)) + " (" + fmt.format(min(values)) + "-"
            + fmt.format(max(values)) + ")")


def report_training(rows: dict, args: argparse.Namespace) -> None:
    """Part 1: the accuracy and time table, then each row's ratio to sync."""
    passes = args.passes
    print(f"\n1. time to {args.target:.2f} test accuracy, and final accuracy: digits MLP, "
          f"{args.epochs} epochs, batch {args.batch} over {args.workers} workers; straggler: "
          f"worker {args.workers} sleeps {args.straggler * 1e3:.0f} ms every step; jitter: every "
          f"worker sleeps {args.straggler * 1e3:.0f} ms on a random half of its steps; median "
          f"(range) over {passes} interleaved passes")
    print(f"{'row':>12s} {'slowdown':>9s} {'to target s':>18s} {'reached':>7s} "
          f"{'final accuracy':>22s} {'wall s':>18s} {'waiting':>8s}")
    for condition in args.conditions:
        for mode, s in args.rows:
            runs = rows[(mode, s, condition)]
            reached = [r["reach"] for r in runs if r["reach"] is not None]
            waiting = np.mean([np.mean(r["waiting"]) for r in runs])
            print(f"{label(mode, s):>12s} {condition:>9s} {spread(reached):>18s} "
                  f"{len(reached):3d}/{len(runs):<3d} "
                  f"{spread([r['final'] for r in runs], '{:.4f}'):>22s} "
                  f"{spread([r['wall'] for r in runs]):>18s} {waiting:8.0%}")
    print("  (to target: the first time a worker held parameters that reach it; waiting: the "
          "workers' mean share of the run spent in pulls, DDP's in all-reduces, Hogwild's "
          "waiting for the lock)")
    for condition in args.conditions:
        base = rows[("sync", 0, condition)]
        for mode, s in args.rows[1:]:
            ratios = [r["reach"] / b["reach"] for r, b in zip(rows[(mode, s, condition)], base)
                      if r["reach"] is not None and b["reach"] is not None]
            missing = passes - len(ratios)
            what = (f"ratio: {label(mode, s)} / sync PS time to {args.target:.2f} accuracy, "
                    f"{condition}:")
            if not ratios:
                print(f"{what} - (not reached in any pass)")
                continue
            note = f"; not reached in {missing} of {passes} passes" if missing else ""
            print(f"{what} {np.median(ratios):.2f}x (median of {len(ratios)} within-pass ratios, "
                  f"range {min(ratios):.2f}-{max(ratios):.2f}{note})")


def report_staleness(rows: dict, args: argparse.Namespace) -> None:
    """Part 2: the servers' staleness histograms, summed over the passes."""
    print(f"\n2. staleness of the applied gradients (updates between a worker's pull and the "
          f"apply; count), summed over {args.passes} passes; worker {args.workers} is the "
          "straggler")
    columns = list(range(8))
    print(f"{'row':>12s} {'slowdown':>9s} " + " ".join(f"{c:>5d}" for c in columns)
          + f" {'8+':>5s} {'mean':>5s} {'max':>4s}   mean per worker")
    for condition in args.conditions:
        for mode, s in [(m, s) for m, s in args.rows if m in ("sync", "ssp", "async")]:
            counts, by_worker = histograms(rows[(mode, s, condition)])
            cells = [counts.get(c, 0) for c in columns]
            cells.append(sum(n for age, n in counts.items() if age > columns[-1]))
            means = ", ".join(f"w{w}: {mean_age(by_worker[w]):.2f}" for w in sorted(by_worker))
            print(f"{label(mode, s):>12s} {condition:>9s} " + " ".join(f"{n:5d}" for n in cells)
                  + f" {mean_age(counts):5.2f} {max(counts):4d}   {means}")


def histograms(runs: list[dict]) -> tuple[dict[int, int], dict[int, dict[int, int]]]:
    """The runs' staleness histograms summed: over all, and per worker."""
    counts: dict[int, int] = {}
    by_worker: dict[int, dict[int, int]] = {}
    for run in runs:
        for age, n in run["staleness"].items():
            counts[age] = counts.get(age, 0) + n
        for w, hist in run["by_worker"].items():
            mine = by_worker.setdefault(w, {})
            for age, n in hist.items():
                mine[age] = mine.get(age, 0) + n
    return counts, by_worker


def mean_age(hist: dict[int, int]) -> float:
    """The mean staleness of a histogram ``{staleness: count}``."""
    return sum(a * n for a, n in hist.items()) / max(sum(hist.values()), 1)


def report_capacity(capacity: dict, args: argparse.Namespace, cores: int) -> None:
    """Part 4: pushes per second and the servers' busy share, 1 and 2 servers."""
    print(f"\n4. pushes per second into async servers from workers that compute nothing "
          f"({args.floats} floats per push, {args.pushes} pushes per worker; median (range) "
          f"over {args.passes} passes); busy: the servers' share of the run not asleep for want "
          "of a message, and that time per push")
    print(f"{'servers':>7s} {'workers':>7s} {'pushes/s':>20s} {'busy':>6s} {'busy ms/push':>13s}")
    for (servers, workers), runs in capacity.items():
        print(f"{servers:7d} {workers:7d} {spread([r['rate'] for r in runs], '{:.0f}'):>20s} "
              f"{np.median([r['busy'] for r in runs]):6.0%} "
              f"{np.median([r['busy_per_push'] for r in runs]) * 1e3:13.3f}")
    ones = sorted(w for s, w in capacity if s == 1)
    saturated = [w for w in ones if np.median([r["busy"] for r in capacity[(1, w)]]) >= 0.9]
    if saturated:
        print(f"one server is busy 90% of the time or more from {saturated[0]} workers on: "
              "there it is the bottleneck (compare the pushes per second beyond)")
    else:
        print("one server is never busy 90% of the time here: it is not the bottleneck yet")
    for w in sorted(w for s, w in capacity if s == 2):
        ratios = [a["rate"] / b["rate"] for a, b in zip(capacity[(2, w)], capacity[(1, w)])]
        print(f"ratio: 2 servers / 1 server pushes per second with {w} workers: "
              f"{np.median(ratios):.2f}x (median of {len(ratios)} within-pass ratios, range "
              f"{min(ratios):.2f}-{max(ratios):.2f}; {2 + w} ranks on {cores} cores)")
    if 3 > cores:
        print(f"  (on {cores} cores, a second server takes a core from the workers and the "
              "first server: sharding can pay only where each server has a core of its own)")


# -- main --------------------------------------------------------------------------------------


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``--quick`` shrinks every part to a smoke run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="workers in the training runs")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per training run")
    parser.add_argument("--batch", type=int, default=32, help="global batch (split over workers)")
    parser.add_argument("--lr", type=float, default=0.05, help="peak learning rate")
    parser.add_argument("--target", type=float, default=0.9, help="test accuracy to reach")
    parser.add_argument("--straggler", type=float, default=0.005,
                        help="seconds a slowed worker sleeps in a step")
    parser.add_argument("--passes", type=int, default=3, help="interleaved passes")
    parser.add_argument("--timeline-steps", type=int, default=8,
                        help="steps per worker in the traced runs")
    parser.add_argument("--floats", type=int, default=2**18, help="floats per push (capacity)")
    parser.add_argument("--pushes", type=int, default=100, help="pushes per worker (capacity)")
    parser.add_argument("--rows", default=",".join(ROWS),
                        help=f"training rows, comma-separated, sync first (default: all: "
                        f"{','.join(ROWS)})")
    parser.add_argument("--conditions", default=",".join(CONDITIONS),
                        help=f"slowdowns, comma-separated (default: all: {','.join(CONDITIONS)})")
    parser.add_argument("--json", type=Path, help="write every number and timeline here")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 epoch to 0.4 accuracy, 1 pass, 3 traced steps, "
                        "small pushes")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.passes, args.timeline_steps, args.target = 1, 1, 3, 0.4
        args.floats, args.pushes, args.straggler = 2**14, 10, 0.002
    if size < args.workers + 1 or args.workers < 1:
        parser.error(f"--workers {args.workers}: the training runs need at least 1 worker and "
                     f"a server, {args.workers + 1} ranks; mpiexec started {size}")
    rows = args.rows.split(",")
    if rows[0] != "sync" or not set(rows) <= set(ROWS):
        parser.error(f"--rows must start with sync (the ratios' base) and name rows among "
                     f"{', '.join(ROWS)}; got {args.rows!r}")
    args.rows = [ROWS[name] for name in rows]
    args.conditions = args.conditions.split(",")
    if not set(args.conditions) <= set(CONDITIONS):
        parser.error(f"--conditions must name some of {', '.join(CONDITIONS)}; "
                     f"got {','.join(args.conditions)!r}")
    if args.floats < 1024:
        parser.error(f"--floats must be at least 1024 (a 1024-wide layer), got {args.floats}")
    return args


def main() -> None:
    """Run the four parts on every rank; rank 0 prints them (and writes --json)."""
    args = parse()
    kernels.set_num_threads(1)
    threadpool_limits(1, user_api="blas")  # one core per rank: the ranks share the machine
    data = Digits(seed=0)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if rank == 0:
        crowded = ("oversubscribed: ranks take turns on the cores, so every time here is this "
                   "machine's" if size > cores else "a core each")
        print(f"bench_consistency: {size} ranks on {cores} cores ({crowded}); training rows use "
              f"{args.workers + 1} ranks, the capacity rows up to {size}")

    names = [(m, s, c) for c in args.conditions for m, s in args.rows]
    rows: dict = {name: [] for name in names}
    for k in range(args.passes):
        for name in names[k % len(names):] + names[: k % len(names)]:
            row = training_run(data, args, *name)
            if rank == 0:
                rows[name].append(row)
    if rank == 0:
        report_training(rows, args)
        report_staleness(rows, args)

    timelines = [timeline_run(data, args, *name) for name in TIMELINES]
    if rank == 0:
        print(f"\n3. timelines: {args.timeline_steps} steps per worker, traced; when each worker "
              "finished, and how long it waited in pulls")
        for run in timelines:
            print(timeline_summary(run, args.workers))

    shapes = [(1, w) for w in range(1, size)] + [(2, w) for w in range(1, size - 1)]
    capacity: dict = {shape: [] for shape in shapes}
    for k in range(args.passes):
        for shape in shapes[k % len(shapes):] + shapes[: k % len(shapes)]:
            run = capacity_run(args, *shape)
            if rank == 0:
                capacity[shape].append(run)
    if rank == 0:
        report_capacity(capacity, args, cores)
    if rank == 0 and args.json:
        args.json.write_text(json.dumps({
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "ranks": size, "cores": cores,
            "training": [{"mode": m, "staleness": s, "condition": c, "runs": runs}
                         for (m, s, c), runs in rows.items()],
            "timelines": timelines,
            "capacity": [{"servers": s, "workers": w, "runs": runs}
                         for (s, w), runs in capacity.items()],
        }, default=_jsonable))


def _jsonable(value: Any) -> Any:
    """numpy numbers as Python numbers, for ``json.dumps``."""
    return value.item() if isinstance(value, np.generic) else str(value)


if __name__ == "__main__":
    main()
