"""``Pipeline``: each rank runs one stage of an ``nn.Sequential``, micro-batch by micro-batch.

The model's layers are cut into consecutive pieces, one per rank (or
``chunks`` per rank, interleaved). :meth:`Pipeline.step` cuts the batch into
micro-batches and performs this stage's actions of the schedule
(:func:`~minidl.parallel.pipeline_schedules.pipeline_schedule`) one after
the other: a forward of a micro-batch through this stage's layers, a
backward, or a message with the next or previous stage. Nothing else decides
the order: what :func:`~minidl.parallel.pipeline_schedules.simulate_pipeline`
shows is what runs.

Why it equals one process: one process's loss is the mean over the batch,
``sum_i (n_i / N) * mean_loss_i`` over micro-batches ``i`` of ``n_i`` of the
``N`` samples. So the last stage scales each micro-batch's mean loss by
``n_i / N`` before its backward, and every parameter's ``.grad`` sums the
micro-batches' contributions: after the step it is one process's gradient,
whatever the number of micro-batches, even when they are not all the same
size. (Scaling by ``1 / M`` instead is right only when ``M`` divides ``N``,
and not scaling at all makes the gradient ``M`` times too large: two mistakes
pipelines are known for.) With data-parallel replicas of each stage
(``dp_comm``), the gradients are averaged over them once, after the last
micro-batch's backward.

Messages: each activation (forward) and gradient (backward) goes as two
messages, a header with its shape and dtype, then its data; a send does not
block (``Isend``, completed at the step's end), a receive waits politely
(:func:`~minidl.parallel.comm.wait_politely`) and tells the watchdog what it
waits for (:mod:`minidl.distributed.watchdog`). Each message's tag names its
micro-batch, direction and piece, so no message can meet the wrong receive.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from minidl.autograd import Tensor, no_grad
from minidl.distributed.chunking import chunk_bounds
from minidl.distributed.watchdog import watching
from minidl.distributed.world import mpi_module, world
from minidl.nn.containers import Sequential
from minidl.nn.module import Module
from minidl.parallel.comm import wait_politely
from minidl.parallel.naive import allreduce_gradients
from minidl.parallel.pipeline_schedules import (
    BACKWARD,
    FORWARD,
    RECV_BACKWARD,
    RECV_FORWARD,
    SEND_BACKWARD,
    SEND_FORWARD,
    STEP,
    Action,
    checked_schedules,
)

_DTYPES = (np.float32, np.float64, np.float16, np.int64, np.int32)
"""What an activation may be; a header names its dtype by its index here."""

_HEADER = 8  # int64s: [ndim, dtype, *shape]: up to six dimensions


@dataclass
class PipelineStats:
    """Where one stage's time went, over the steps since the last reset.

    Attributes
    ----------
    steps : int
        Steps taken.
    seconds : dict
        Seconds per action kind (``"forward"``, ``"backward"``,
        ``"recv_forward"``, ...); a receive's time is time spent waiting.
    bubble : float
        Seconds this stage waited: in receives and for its sends at the end
        (the stage's share of the pipeline's bubble).
    peak_in_flight : int
        The most micro-batches (per chunk) whose forward was done and
        backward not yet, at once.
    peak_activation_bytes : int
        The most bytes of activations held at once between a forward and
        its backward: the stage's inputs and outputs at its boundaries
        (what the autograd graph saves inside the stage grows with the same
        count of micro-batches in flight).
    """

    steps: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    bubble: float = 0.0
    peak_in_flight: int = 0
    peak_activation_bytes: int = 0


class Pipeline(Module):
    """Train an ``nn.Sequential`` cut into stages, one per rank of ``comm``, on micro-batches.

    Collective to construct: every rank of ``comm`` passes the same model
    architecture and arguments (checked). Each rank keeps only its stage's
    layers, under their names in the model (``"3.weight"``), so
    :meth:`parameters` and :meth:`state_dict` are this stage's and an
    ordinary optimizer steps them.

    Parameters
    ----------
    model : nn.Sequential
        The whole model (every rank builds it; each keeps its layers).
    comm : mpi4py.MPI.Intracomm, optional
        The pipeline's ranks, stage ``s`` on rank ``s``; None means ``MPI.COMM_WORLD``.
    micro_batches : int, default 4
        Micro-batches per step.
    schedule : str, default "1f1b"
        ``"naive"``, ``"gpipe"``, ``"1f1b"`` or ``"interleaved"``
        (see :mod:`minidl.parallel.pipeline_schedules`).
    split : list of int, optional
        The layer index where each piece after the first starts (``stages *
        chunks - 1`` of them, increasing). By default the pieces hold about
        the same number of parameters, at least one layer each.
    chunks : int, default 1
        Pieces of the model per stage (at least 2 for ``"interleaved"``).
    dp_comm : mpi4py.MPI.Intracomm, optional
        This stage's data-parallel replicas (see
        :class:`~minidl.parallel.ProcessGrid`): each passes its own shard of
        the global batch, and the gradients are averaged over them once per
        step.

    Attributes
    ----------
    stage, stages : int
        This rank's stage, and how many there are.
    bounds : tuple of int
        Where each piece of the model starts, and the number of layers last.
    actions : StageSchedule
        This stage's actions in one step (print it).
    stats : PipelineStats
    timeline : Timeline or None
        While set (a :class:`~minidl.parallel.timeline.Timeline`), every
        action of :meth:`step` is recorded as a span.
    """

    def __init__(self, model: Module, comm: Any = None, micro_batches: int = 4,
                 schedule: str = "1f1b", split: list[int] | None = None, chunks: int = 1,
                 dp_comm: Any = None) -> None:
        super().__init__()
        if not isinstance(model, Sequential):
            raise TypeError(f"Pipeline: model must be an nn.Sequential (its layers are cut "
                            f"into stages in order), got {type(model).__name__}")
        comm = world(comm, "Pipeline")
        self.stage, self.stages = comm.Get_rank(), comm.Get_size()
        self.micro_batches, self.chunks, self.schedule = micro_batches, chunks, schedule
        # Every stage's schedule, checked on every rank before anything runs (cached).
        self.actions = checked_schedules(schedule, self.stages, micro_batches, chunks)[self.stage]
        self.pieces = self.stages * chunks
        self.bounds = _bounds(model, self.pieces, split)
        self.dp_comm = None if dp_comm is None else world(dp_comm, "Pipeline dp_comm")
        for c in range(chunks):  # this stage's layers, under their names in the model
            v = c * self.stages + self.stage
            for i in range(self.bounds[v], self.bounds[v + 1]):
                self.add_module(str(i), model[i])
        with watching(f"Pipeline's construction on {self.stages} ranks (collective)"):
            self._check_same_everywhere(comm, model)
            self.comm = comm.Dup()  # its own tags: no message of the program's can meet them
        self.stats = PipelineStats()
        self.timeline: Any = None  # a minidl.parallel.timeline.Timeline: records every action
        self._held = 0

    def _check_same_everywhere(self, comm: Any, model: Module) -> None:
        """Every rank must cut the same model the same way, or the stages would not match."""
        mine = (self.schedule, self.micro_batches, self.chunks, self.bounds,
                [type(layer).__name__ for layer in model])
        everyone = comm.allgather(mine)  # once, small: pickling is fine
        for rank, theirs in enumerate(everyone):
            if theirs != everyone[0]:
                raise ValueError(
                    f"Pipeline: rank {rank} has schedule {theirs[0]!r}, {theirs[1]} "
                    f"micro-batches, {theirs[2]} chunks, pieces starting at {theirs[3][:-1]} "
                    f"of {len(theirs[4])} layers; rank 0 {everyone[0][0]!r}, {everyone[0][1]}, "
                    f"{everyone[0][2]}, {everyone[0][3][:-1]} of {len(everyone[0][4])}: pass "
                    "the same model and arguments on every rank")

    # -- one training step --------------------------------------------------------------------

    def step(self, x: Any, y: Any, loss_fn: Callable[[Tensor, Any], Tensor]) -> float:
        """Forward and backward over the batch's micro-batches, as the schedule says.

        Collective over the pipeline's ranks. Every rank passes the same
        ``(x, y)`` (only the first stage reads ``x``, only the last ``y``);
        ``loss_fn(output, y_micro_batch)`` must return the *mean* loss of its
        micro-batch, as ``F.cross_entropy`` does. Afterwards every ``.grad``
        of this stage holds one process's gradient of the mean loss over the
        batch (added to what it held: call ``zero_grad()`` first, as usual).

        Returns
        -------
        float
            The mean loss over the batch (over every replica's batch, with
            ``dp_comm``), the same on every rank.
        """
        n = len(x)
        if len(y) != n:
            raise ValueError(f"Pipeline.step: x has {n} samples but y has {len(y)}")
        if n < self.micro_batches:
            raise ValueError(f"Pipeline.step: a batch of {n} cannot be cut into "
                             f"{self.micro_batches} micro-batches")
        edges = chunk_bounds(n, self.micro_batches)
        inputs: dict[tuple[int, int], Tensor] = {}  # (micro-batch, chunk) -> input of a piece
        outputs: dict[tuple[int, int], Tensor] = {}  # ... its output, until its backward
        grads: dict[tuple[int, int], np.ndarray] = {}  # ... the gradient of that output
        sends: list[Any] = []  # (request, array) until they are done
        loss_sum, in_flight = 0.0, 0
        last = self.pieces - 1
        for k, action in enumerate(self.actions):
            started = time.perf_counter()
            key, v = (action.micro_batch, action.chunk), action.chunk * self.stages + self.stage
            if action.kind == RECV_FORWARD:
                arrived = self._recv(action, f"action {k} of step {self.stats.steps} "
                                     f"({self.schedule})")
                inputs[key] = self._hold(Tensor(arrived, requires_grad=True))
            elif action.kind == FORWARD:
                a, b = edges[action.micro_batch], edges[action.micro_batch + 1]
                given = inputs.get(key)
                out = self._forward_piece(action, x[a:b] if given is None else given)
                if v == last:
                    # The micro-batch's share of the batch's mean loss (see the module).
                    loss = loss_fn(out, y[a:b]) * ((b - a) / n)
                    loss_sum += float(loss.data)
                    outputs[key] = loss
                else:
                    outputs[key] = self._hold(out)
                in_flight += 1
                self.stats.peak_in_flight = max(self.stats.peak_in_flight, in_flight)
            elif action.kind == SEND_FORWARD:
                sends += self._send(outputs[key].data, action)
            elif action.kind == RECV_BACKWARD:
                grads[key] = self._recv(action, f"action {k} of step {self.stats.steps} "
                                        f"({self.schedule})")
            elif action.kind == BACKWARD:
                out = self._release(outputs.pop(key)) if v != last else outputs.pop(key)
                out.backward(grads.pop(key) if v != last else None)
                in_flight -= 1
                if v == 0:
                    inputs.pop(key, None)
            elif action.kind == SEND_BACKWARD:
                given = self._release(inputs.pop(key))
                sends += self._send(given.grad, action)
            elif action.kind == STEP:
                self._finish(sends)
                sends = []
            kind, ended = action.kind, time.perf_counter()
            self.stats.seconds[kind] = self.stats.seconds.get(kind, 0.0) + (ended - started)
            if self.timeline is not None:
                lane = "main" if kind in (FORWARD, BACKWARD, STEP) else kind.split("_")[0]
                self.timeline.add(lane, str(action), started, ended, step=self.stats.steps)
        self.stats.steps += 1
        return self._loss_everywhere(loss_sum)

    def _forward_piece(self, action: Action, given: Any) -> Tensor:
        """Chunk ``action.chunk``'s layers on ``given``, naming the layer and stages on a misfit."""
        v = action.chunk * self.stages + self.stage
        out = given if isinstance(given, Tensor) else Tensor(np.asarray(given))
        for i in range(self.bounds[v], self.bounds[v + 1]):
            layer = self._modules[str(i)]
            try:
                out = layer(out)
            except (ValueError, TypeError) as exc:
                if i != self.bounds[v] or v == 0:
                    raise
                came = (v - 1) % self.stages
                raise ValueError(
                    f"Pipeline: stage {self.stage} cannot take the activation stage {came} "
                    f"sent (micro-batch {action.micro_batch}: shape {out.shape}, "
                    f"{out.data.dtype}): its first layer, {i} ({layer!r}), says: {exc}"
                ) from exc
        return out

    def _finish(self, sends: list[Any]) -> None:
        """The step's end: every send done; gradients averaged over the replicas, once."""
        self._wait_for(sends)
        if self.dp_comm is not None and self.dp_comm.Get_size() > 1:
            allreduce_gradients(self, comm=self.dp_comm)

    def _wait_for(self, sends: list[Any]) -> None:
        """Wait until every send of ``sends`` is done (its peer has received it)."""
        started = time.perf_counter()
        requests = [request for request, _ in sends]
        if requests:
            wait_politely(_AllOf(requests), what=f"Pipeline stage {self.stage}: its sends "
                          "(the stages they go to receive them)")
        self.stats.bubble += time.perf_counter() - started

    def _loss_everywhere(self, loss_sum: float) -> float:
        """The last stage's loss, on every rank (and averaged over the replicas)."""
        last_stage = (self.pieces - 1) % self.stages
        loss = np.array([loss_sum if self.stage == last_stage else 0.0])
        mpi = mpi_module()
        with watching(f"Pipeline stage {self.stage}: the step's loss from stage {last_stage}"):
            self.comm.Bcast(loss, root=last_stage)
            if self.dp_comm is not None and self.dp_comm.Get_size() > 1:
                self.dp_comm.Allreduce(mpi.IN_PLACE, loss, op=mpi.SUM)
                loss /= self.dp_comm.Get_size()
        return float(loss[0])

    # -- messages -----------------------------------------------------------------------------

    def _tag(self, micro_batch: int, to_piece: int, backward: bool) -> int:
        """One tag per micro-batch, receiving piece and direction (MPI allows up to 32767)."""
        return (2 * (micro_batch * self.pieces + to_piece) + backward) % 32_000

    def _tag_of(self, action: Action) -> int:
        v = action.chunk * self.stages + self.stage
        backward = action.kind in (SEND_BACKWARD, RECV_BACKWARD)
        to_piece = {SEND_FORWARD: v + 1, RECV_FORWARD: v, SEND_BACKWARD: v - 1,
                    RECV_BACKWARD: v}[action.kind]
        return self._tag(action.micro_batch, to_piece, backward)

    def _send(self, array: np.ndarray, action: Action) -> list[Any]:
        """Post ``array`` (header, then data) to ``action.peer``; returns what to wait for."""
        array = np.ascontiguousarray(array)
        header = np.zeros(_HEADER, np.int64)
        header[:2] = array.ndim, _DTYPES.index(array.dtype.type)
        header[2 : 2 + array.ndim] = array.shape
        tag = self._tag_of(action)
        return [(self.comm.Isend(header, action.peer, tag), header),
                (self.comm.Isend(array, action.peer, tag), array)]

    def _recv(self, action: Action, where: str) -> np.ndarray:
        """Receive what ``action`` names: its header, then an array of that shape and dtype.

        ``where`` says, for the watchdog, where in the step it is received.
        """
        what = f"Pipeline stage {self.stage} of {self.stages}: {action}, {where}"
        tag, header = self._tag_of(action), np.empty(_HEADER, np.int64)
        started = time.perf_counter()
        wait_politely(self.comm.Irecv(header, action.peer, tag), what=what)
        ndim, dtype = int(header[0]), _DTYPES[int(header[1])]
        array = np.empty(tuple(int(d) for d in header[2 : 2 + ndim]), dtype)
        wait_politely(self.comm.Irecv(array, action.peer, tag), what=what)
        self.stats.bubble += time.perf_counter() - started
        return array

    def _hold(self, t: Tensor) -> Tensor:
        self._held += t.data.nbytes
        self.stats.peak_activation_bytes = max(self.stats.peak_activation_bytes, self._held)
        return t

    def _release(self, t: Tensor) -> Tensor:
        self._held -= t.data.nbytes
        return t

    # -- the whole model ----------------------------------------------------------------------

    def forward(self, x: Any) -> Tensor:
        """The whole model's output on ``x``, on every rank, without gradients (for evaluation).

        Collective over the pipeline's ranks: the batch goes through the
        pieces in order, whole, and the last stage's output is broadcast.
        """
        out: Any = None
        with no_grad():
            for v in range(self.pieces):
                owner, chunk = v % self.stages, v // self.stages
                if owner != self.stage:
                    continue
                if v == 0:
                    given = Tensor(np.asarray(x.data if isinstance(x, Tensor) else x))
                else:
                    came = Action(RECV_FORWARD, -1, chunk, (v - 1) % self.stages)
                    given = Tensor(self._recv(came, "in Pipeline.forward (evaluation)"))
                out = self._forward_piece(Action(FORWARD, -1, chunk), given)
                if v < self.pieces - 1:
                    action = Action(SEND_FORWARD, -1, chunk, (v + 1) % self.stages)
                    self._wait_for(self._send(out.data, action))
        last_stage = (self.pieces - 1) % self.stages
        with watching(f"Pipeline.forward: the output from stage {last_stage}"):
            result = self.comm.bcast(out.data if self.stage == last_stage else None,
                                     root=last_stage)
        return Tensor(result)

    def full_state_dict(self) -> OrderedDict[str, np.ndarray] | None:
        """The whole model's state dict, with its original keys, on rank 0 (None elsewhere).

        Collective over the pipeline's ranks.
        """
        with watching("Pipeline.full_state_dict() (collective: every stage sends its part)"):
            parts = self.comm.gather(self.state_dict(), root=0)
        if parts is None:
            return None
        merged = {key: value for part in parts for key, value in part.items()}
        order = sorted(merged, key=lambda k: (int(k.split(".", 1)[0]), list(merged).index(k)))
        return OrderedDict((key, merged[key]) for key in order)

    def extra_repr(self) -> str:
        starts = ", ".join(str(b) for b in self.bounds[:-1])
        return (f"stage={self.stage} of {self.stages}, schedule={self.schedule!r}, "
                f"micro_batches={self.micro_batches}, chunks={self.chunks}, "
                f"pieces start at layers [{starts}] of {self.bounds[-1]}")


class _AllOf:
    """Requests waited on together, with ``Test()`` as one request has it."""

    def __init__(self, requests: list[Any]) -> None:
        self.requests = requests

    def Test(self) -> bool:
        return bool(mpi_module().Request.Testall(self.requests))


def _bounds(model: Sequential, pieces: int, split: list[int] | None) -> tuple[int, ...]:
    """Where each of ``pieces`` pieces of ``model`` starts, then ``len(model)``."""
    layers = len(model)
    if pieces > layers:
        raise ValueError(f"Pipeline: {pieces} pieces (stages x chunks) but the model has only "
                         f"{layers} layers: every piece needs at least one")
    if split is not None:
        split = list(split)
        if (len(split) != pieces - 1 or any(not isinstance(i, int) for i in split)
                or list(split) != sorted(set(split)) or (split and not 0 < split[0])
                or (split and split[-1] >= layers)):
            raise ValueError(
                f"Pipeline: split must list {pieces - 1} increasing layer indices in "
                f"(0, {layers}) where the pieces after the first start, got {split}")
        return (0, *split, layers)
    # Balanced by parameter count: each cut nearest its share of the total,
    # leaving every piece at least one layer.
    counts = [sum(p.data.size for p in layer.parameters()) for layer in model]
    before = np.concatenate([[0], np.cumsum(counts)])
    starts = [0]
    for k in range(1, pieces):
        target = before[-1] * k / pieces
        lo, hi = starts[-1] + 1, layers - (pieces - k)
        starts.append(min(range(lo, hi + 1), key=lambda i: (abs(before[i] - target), i)))
    return (*starts, layers)
