"""Pipeline schedules as data: what each stage does, in order, printed, checked and simulated.

A pipeline cuts a model into ``stages`` consecutive pieces, one per rank,
and cuts each batch into ``micro_batches`` pieces that flow through them:
stage ``s`` runs the forward of a micro-batch once stage ``s - 1`` has sent
its activations, and its backward once stage ``s + 1`` has sent the gradient
of those activations back. A *schedule* says in which order each stage does
its forwards and backwards; the messages follow from it. Like a collective's
schedule (:mod:`minidl.distributed.steps`), it is plain data:
:func:`pipeline_schedule` returns one stage's list of :class:`Action`,
:func:`check_pipeline` checks every stage's lists against the rules any
valid schedule keeps, and :func:`simulate_pipeline` runs them against each
other in one process with costs, for the timeline, the bubble and the
activations held. :func:`checked_schedules` is what
:class:`~minidl.parallel.Pipeline` runs: every stage's list, checked first.

The schedules (Huang et al. 2019; Narayanan et al. 2021):

- ``"naive"``: one micro-batch at a time, forward through every stage and
  back, before the next starts: only one stage ever works;
- ``"gpipe"``: every forward, then every backward. The bubble (the idle
  share of the stages' time) is ``(p - 1) / (m + p - 1)`` for ``p`` stages
  and ``m`` micro-batches, and every stage holds all ``m`` micro-batches'
  activations at the turn;
- ``"1f1b"`` (PipeDream-Flush): stage ``s`` does ``p - s - 1`` warm-up
  forwards, then alternates one forward and one backward, then cools down
  with the backwards left. The same bubble as GPipe, but stage ``s`` holds
  at most ``p - s`` micro-batches' activations, whatever ``m``;
- ``"interleaved"`` (Megatron-LM): each stage holds ``chunks`` pieces of the
  model (chunk ``c`` of stage ``s`` is piece ``c * p + s``), so a
  micro-batch goes round the stages ``chunks`` times; 1F1B over those
  smaller pieces divides the bubble by about ``chunks``, for ``chunks``
  times as many messages. It needs ``m`` to be a multiple of ``p``.

Sends do not block (a stage posts its message and goes on, as ``Isend``
does); a receive waits until its message has been sent. The micro-batches'
messages are told apart by micro-batch and chunk, never by order alone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

from minidl.distributed.steps import ScheduleError

SCHEDULES = ("naive", "gpipe", "1f1b", "interleaved")
"""The names :func:`pipeline_schedule` knows."""

FORWARD, BACKWARD = "forward", "backward"
RECV_FORWARD, SEND_FORWARD = "recv_forward", "send_forward"
RECV_BACKWARD, SEND_BACKWARD = "recv_backward", "send_backward"
STEP = "step"
COMPUTE = (FORWARD, BACKWARD)
KINDS = (FORWARD, BACKWARD, RECV_FORWARD, SEND_FORWARD, RECV_BACKWARD, SEND_BACKWARD, STEP)


class Action(NamedTuple):
    """One thing a stage does.

    Its fields: ``kind``, what it does: ``"forward"`` or ``"backward"``
    (compute a micro-batch through this stage's chunk), ``"recv_forward"`` /
    ``"send_forward"`` (the activations between two pieces of the model),
    ``"recv_backward"`` / ``"send_backward"`` (their gradient, going back), or
    ``"step"`` (the optimizer, once every backward is done); ``micro_batch``,
    which micro-batch (-1 for the step); ``chunk``, which of this stage's
    model chunks (0 unless interleaved); ``peer``, the stage a message goes to
    or comes from (-1 for the others).
    """

    kind: str
    micro_batch: int = -1
    chunk: int = 0
    peer: int = -1

    def __str__(self) -> str:
        on = f" (chunk {self.chunk})" if self.chunk else ""
        if self.kind == STEP:
            return "optimizer step"
        if self.kind in COMPUTE:
            return f"{self.kind} {self.micro_batch}{on}"
        what = "activation" if self.kind.endswith("forward") else "gradient"
        verb, way = ("recv", "from") if self.kind.startswith("recv") else ("send", "to")
        return f"{verb} {what} {self.micro_batch}{on} {way} stage {self.peer}"


class StageSchedule(list):
    """One stage's actions, in order: a list of :class:`Action` that prints as a table.

    Attributes
    ----------
    name : str
        The schedule's name (see :data:`SCHEDULES`).
    stages, micro_batches, stage, chunks : int
        What it was made for.
    """

    def __init__(self, actions: list[Action], name: str, stages: int, micro_batches: int,
                 stage: int, chunks: int) -> None:
        super().__init__(actions)
        self.name, self.stages, self.micro_batches = name, stages, micro_batches
        self.stage, self.chunks = stage, chunks

    def __str__(self) -> str:
        chunks = f", {self.chunks} chunks per stage" if self.chunks > 1 else ""
        head = (f"{self.name} pipeline, stage {self.stage} of {self.stages}, "
                f"{self.micro_batches} micro-batch{'es' if self.micro_batches != 1 else ''}"
                f"{chunks}: {len(self)} actions")
        width = len(str(max(len(self) - 1, 0)))
        return "\n".join([head, *(f"  {k:>{width}}: {a}" for k, a in enumerate(self))])

    def __repr__(self) -> str:
        return (f"<StageSchedule {self.name!r} stage {self.stage} of {self.stages}, "
                f"{self.micro_batches} micro-batches, {len(self)} actions>")


def pipeline_schedule(
    name: str, stages: int, micro_batches: int, stage: int, chunks: int = 1
) -> StageSchedule:
    """The actions stage ``stage`` of ``stages`` performs in one training step, in order.

    Parameters
    ----------
    name : str
        ``"naive"``, ``"gpipe"``, ``"1f1b"`` or ``"interleaved"`` (see the module).
    stages : int
        Number of stages (ranks of the pipeline), at least 1.
    micro_batches : int
        Number of micro-batches per step, at least 1.
    stage : int
        This stage, in ``[0, stages)``.
    chunks : int, default 1
        Model chunks per stage: at least 2 for ``"interleaved"``, 1 for the others.

    Returns
    -------
    StageSchedule
        A list of :class:`Action`; ``print`` it to read it.

    Raises
    ------
    ValueError
        For an unknown name, counts out of range, or a number of
        micro-batches the interleaved schedule cannot run (with the reason).

    Examples
    --------
    >>> print(pipeline_schedule("1f1b", 2, 3, stage=0))
    1f1b pipeline, stage 0 of 2, 3 micro-batches: 13 actions
       0: forward 0
       1: send activation 0 to stage 1
       2: forward 1
       3: send activation 1 to stage 1
       4: recv gradient 0 from stage 1
       5: backward 0
       6: forward 2
       7: send activation 2 to stage 1
       8: recv gradient 1 from stage 1
       9: backward 1
      10: recv gradient 2 from stage 1
      11: backward 2
      12: optimizer step
    """
    _check_counts(name, stages, micro_batches, stage, chunks)
    units = _compute_order(name, stages, micro_batches, stage, chunks)
    actions = []
    last = stages * chunks - 1  # the last piece of the model, where the loss is
    for kind, mb, c in units:
        v = c * stages + stage  # this chunk's place in the whole model
        if kind == FORWARD:
            if v > 0:
                actions.append(Action(RECV_FORWARD, mb, c, (v - 1) % stages))
            actions.append(Action(FORWARD, mb, c))
            if v < last:
                actions.append(Action(SEND_FORWARD, mb, c, (v + 1) % stages))
        else:
            if v < last:
                actions.append(Action(RECV_BACKWARD, mb, c, (v + 1) % stages))
            actions.append(Action(BACKWARD, mb, c))
            if v > 0:
                actions.append(Action(SEND_BACKWARD, mb, c, (v - 1) % stages))
    actions.append(Action(STEP))
    return StageSchedule(actions, name, stages, micro_batches, stage, chunks)


def _check_counts(name: str, stages: int, micro_batches: int, stage: int, chunks: int) -> None:
    if name not in SCHEDULES:
        raise ValueError(f"unknown pipeline schedule {name!r}: choose one of "
                         f"{', '.join(SCHEDULES)}")
    for what, value, least in (("stages", stages, 1), ("micro_batches", micro_batches, 1),
                               ("chunks", chunks, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} pipeline: {what} must be an integer >= {least}, "
                             f"got {value!r}")
    if isinstance(stage, bool) or not isinstance(stage, int) or not 0 <= stage < stages:
        raise ValueError(f"{name} pipeline: stage must be an integer in [0, {stages}), "
                         f"got {stage!r}")
    if name == "interleaved":
        if chunks < 2:
            raise ValueError("interleaved pipeline: chunks must be at least 2 (each stage holds "
                             "several pieces of the model); with one, use '1f1b'")
        if micro_batches % stages:
            raise ValueError(
                f"interleaved pipeline: micro_batches ({micro_batches}) must be a multiple of "
                f"stages ({stages}): micro-batches go round the stages in groups of one per "
                "stage, chunk after chunk, and a group left short would stall the stages "
                "waiting for the rest of it")
    elif chunks != 1:
        raise ValueError(f"{name} pipeline: chunks must be 1 (only 'interleaved' splits a "
                         f"stage's model into chunks), got {chunks}")


def _compute_order(
    name: str, stages: int, m: int, stage: int, chunks: int
) -> list[tuple[str, int, int]]:
    """This stage's forwards and backwards in order, as ``(kind, micro_batch, chunk)``."""
    if name == "naive":
        return [(kind, i, 0) for i in range(m) for kind in COMPUTE]
    if name == "gpipe":
        return [(FORWARD, i, 0) for i in range(m)] + [(BACKWARD, i, 0) for i in range(m)]
    if name == "1f1b":
        # BEGIN SOLUTION 1f1b-schedule
        # every forward and every backward in micro-batch order; p - s - 1 warm-up forwards (<= m)
        forwards = [(FORWARD, i, 0) for i in range(m)]
        backwards = [(BACKWARD, i, 0) for i in range(m)]
        warmup = min(stages - stage - 1, m)
        # END SOLUTION
    else:  # interleaved: unit k is a micro-batch of one chunk, in groups of `stages`
        total, group = m * chunks, stages * chunks

        def unit(k: int, kind: str) -> tuple[str, int, int]:
            within = k % group
            chunk = within // stages if kind == FORWARD else chunks - 1 - within // stages
            return kind, (k // group) * stages + within % stages, chunk

        forwards = [unit(k, FORWARD) for k in range(total)]
        backwards = [unit(k, BACKWARD) for k in range(total)]
        # Megatron-LM's warm-up: enough forwards that the first backward's
        # gradient can come round; everything when there is one group only.
        warmup = total if m == stages else min((stages - stage - 1) * 2 + (chunks - 1) * stages,
                                               total)
    return one_forward_one_backward(forwards, backwards, warmup)


def one_forward_one_backward(forwards: list, backwards: list, warmup: int) -> list:
    """1F1B's three phases: warm-up, one forward and one backward in turn, cool-down.

    Parameters
    ----------
    forwards, backwards : list
        A stage's forwards, and its backwards, each in the order it does
        them (as many of each).
    warmup : int
        Forwards before the first backward (``0 <= warmup <= len(forwards)``).

    Returns
    -------
    list
        The first ``warmup`` forwards (the warm-up); then, while forwards
        are left, the next forward followed by the next backward (the steady
        state); then the backwards left (the cool-down).

    Examples
    --------
    >>> one_forward_one_backward(["F0", "F1", "F2"], ["B0", "B1", "B2"], 1)
    ['F0', 'F1', 'B0', 'F2', 'B1', 'B2']
    """
    # BEGIN SOLUTION 1f1b-schedule
    # warm-up forwards[:warmup]; steady: forwards[warmup + i], backwards[i]; cool-down: the rest
    order = forwards[:warmup]
    for i in range(len(forwards) - warmup):
        order += [forwards[warmup + i], backwards[i]]
    return order + backwards[len(forwards) - warmup:]
    # END SOLUTION


@functools.lru_cache(maxsize=64)
def checked_schedules(
    name: str, stages: int, micro_batches: int, chunks: int = 1
) -> tuple[StageSchedule, ...]:
    """Every stage's schedule, checked by :func:`check_pipeline` before anything runs.

    What :class:`~minidl.parallel.Pipeline` runs: a schedule that breaks a
    rule, or would deadlock, fails here on every rank alike, naming the
    stage and the action, instead of in the middle of a step (or never).
    Cached per arguments, so a training loop checks once; each rank checks
    every stage's schedule, which is pure computation, no message. The
    lists are shared by every caller with the same arguments: read them,
    do not change them.

    Examples
    --------
    >>> [len(s) for s in checked_schedules("1f1b", 2, 3)]
    [13, 13]
    """
    schedules = tuple(pipeline_schedule(name, stages, micro_batches, s, chunks)
                      for s in range(stages))
    check_pipeline([list(s) for s in schedules])
    return schedules


def check_pipeline(schedules: list[list[Action]]) -> None:
    """Check every stage's actions against the rules any valid pipeline schedule keeps.

    Parameters
    ----------
    schedules : list of list of Action
        Stage ``s``'s actions at index ``s`` (for example
        ``[pipeline_schedule(name, p, m, s) for s in range(p)]``, or lists
        of your own).

    Raises
    ------
    ScheduleError
        Naming the stage and the action that broke a rule: every
        micro-batch (of every chunk) has one forward and, after it, one
        backward; forwards, and backwards, come in micro-batch order; a
        piece of the model that is not the first receives its activation
        before the forward and one that is not the last sends it after,
        and likewise for gradients going back; every message sent is
        received once, by the stage it names; the step comes last; and,
        simulated, no stage waits for a message that never comes.
    """
    stages = len(schedules)
    if stages == 0:
        raise ScheduleError("check_pipeline: no stages")
    chunks = 1 + max((a.chunk for actions in schedules for a in actions), default=0)
    for s, actions in enumerate(schedules):
        _check_stage(s, list(actions), stages, chunks)
    _check_messages(schedules, stages)
    simulate_pipeline(schedules)  # raises if the stages would wait for each other forever


def _check_stage(s: int, actions: list[Action], stages: int, chunks: int) -> None:
    def fail(k: int, rule: str) -> ScheduleError:
        return ScheduleError(f"stage {s}, action {k} ({actions[k]}): {rule}")

    for k, a in enumerate(actions):
        if a.kind not in KINDS:
            raise ScheduleError(f"stage {s}, action {k}: unknown kind {a.kind!r} "
                                f"(one of {', '.join(KINDS)})")
        if a.kind != STEP and not 0 <= a.chunk < chunks:
            raise fail(k, f"chunk must be in [0, {chunks})")
        if a.kind in (RECV_FORWARD, SEND_FORWARD, RECV_BACKWARD, SEND_BACKWARD) and not (
                0 <= a.peer < stages):
            raise fail(k, f"its peer must be a stage in [0, {stages})")
    steps = [k for k, a in enumerate(actions) if a.kind == STEP]
    if steps != [len(actions) - 1]:
        raise ScheduleError(f"stage {s}: the optimizer step must be the last action, once "
                            f"(found at {steps or 'nowhere'})")
    last = stages * chunks - 1
    done: dict[tuple[str, int, int], int] = {}  # (kind, micro-batch, chunk) -> where
    next_mb: dict[tuple[str, int], int] = {}
    for k, a in enumerate(actions):
        key = (a.kind, a.micro_batch, a.chunk)
        if key in done and a.kind != STEP:
            raise fail(k, f"it already happened, at action {done[key]}")
        done[key] = k
        if a.kind in COMPUTE:
            expected = next_mb.get((a.kind, a.chunk), 0)
            if a.micro_batch != expected:
                raise fail(k, f"{a.kind}s of chunk {a.chunk} must come in micro-batch order: "
                              f"expected micro-batch {expected}")
            next_mb[(a.kind, a.chunk)] = expected + 1
            if a.kind == BACKWARD and (FORWARD, a.micro_batch, a.chunk) not in done:
                raise fail(k, "a backward needs its forward first")
    counts = {key: n for key, n in next_mb.items()}
    for c in range(chunks):
        m_f, m_b = counts.get((FORWARD, c), 0), counts.get((BACKWARD, c), 0)
        if m_f != m_b:
            raise ScheduleError(f"stage {s}, chunk {c}: {m_f} forwards but {m_b} backwards")
    for k, a in enumerate(actions):
        if a.kind not in COMPUTE:
            continue
        v = a.chunk * stages + s
        if a.kind == FORWARD:
            before, after = (RECV_FORWARD, v > 0), (SEND_FORWARD, v < last)
        else:
            before, after = (RECV_BACKWARD, v < last), (SEND_BACKWARD, v > 0)
        for (kind, needed), earlier in ((before, True), (after, False)):
            at = done.get((kind, a.micro_batch, a.chunk))
            if needed and (at is None or (at > k if earlier else at < k)):
                raise fail(k, f"it needs a {kind} of micro-batch {a.micro_batch} "
                              f"{'before' if earlier else 'after'} it")
            if not needed and at is not None:
                raise fail(at, f"piece {v} of the model has no {kind}: it is the "
                               f"{'first' if v == 0 else 'last'}")


def _message_key(s: int, a: Action, stages: int) -> tuple[str, int, int, int]:
    """``(direction, micro_batch, from stage's piece, to stage's piece)``, on both ends alike."""
    v = a.chunk * stages + s
    if a.kind == SEND_FORWARD:
        return ("forward", a.micro_batch, v, v + 1)
    if a.kind == RECV_FORWARD:
        return ("forward", a.micro_batch, v - 1, v)
    if a.kind == SEND_BACKWARD:
        return ("backward", a.micro_batch, v, v - 1)
    return ("backward", a.micro_batch, v + 1, v)  # RECV_BACKWARD


def _check_messages(schedules: list[list[Action]], stages: int) -> None:
    sends: dict[tuple[str, int, int, int], tuple[int, Action]] = {}
    recvs: dict[tuple[str, int, int, int], tuple[int, Action]] = {}
    for s, actions in enumerate(schedules):
        for a in actions:
            if a.kind in (SEND_FORWARD, SEND_BACKWARD, RECV_FORWARD, RECV_BACKWARD):
                key = _message_key(s, a, stages)
                peer_piece = key[3] if a.kind.startswith("send") else key[2]
                if a.peer != peer_piece % stages:
                    raise ScheduleError(
                        f"stage {s}: {a} names stage {a.peer}, but piece {peer_piece} of the "
                        f"model is on stage {peer_piece % stages}")
                (sends if a.kind.startswith("send") else recvs)[key] = (s, a)
    for key, (s, a) in sends.items():
        if key not in recvs:
            raise ScheduleError(f"stage {s}: {a} is never received by stage {a.peer}")
    for key, (s, a) in recvs.items():
        if key not in sends:
            raise ScheduleError(f"stage {s}: {a} is never sent by stage {a.peer}")


class Span(NamedTuple):
    """One action of a simulated stage, timed: a receive lasts from its turn until its message."""

    kind: str
    micro_batch: int
    chunk: int
    start: float
    end: float


@dataclass(frozen=True)
class PipelineSimulation:
    """What :func:`simulate_pipeline` found.

    Attributes
    ----------
    timeline : list of list of Span
        Per stage, every action with its start and end.
    makespan : float
        When the last stage finished.
    bubble : float
        The idle share of all stages' time until the makespan: ``1 -``
        (compute time) / (``stages`` * makespan).
    peak_in_flight : list of int
        Per stage, the most micro-batches (per chunk) whose forward it had
        done and backward not yet: the activations it holds at once.
    """

    timeline: list[list[Span]]
    makespan: float
    bubble: float
    peak_in_flight: list[int]


def simulate_pipeline(
    name: str | list[list[Action]],
    stages: int | None = None,
    micro_batches: int | None = None,
    forward: float = 1.0,
    backward: float = 2.0,
    chunks: int = 1,
    send: float = 0.0,
) -> PipelineSimulation:
    """Run every stage's actions against each other in one process, with costs.

    Parameters
    ----------
    name : str or list of list of Action
        A schedule's name (then ``stages`` and ``micro_batches`` are
        needed), or every stage's actions (stage ``s`` at index ``s``).
    stages, micro_batches : int
        As for :func:`pipeline_schedule`.
    forward, backward : float, default 1 and 2
        The time one micro-batch's forward, and backward, take on one stage
        (a chunk of an interleaved stage takes ``1 / chunks`` of it).
    chunks : int, default 1
        As for :func:`pipeline_schedule`.
    send : float, default 0
        The time between a send and the moment its message can be received.

    Returns
    -------
    PipelineSimulation

    Raises
    ------
    ScheduleError
        If the stages would wait for each other forever: names every stage
        still waiting, the message it waits for, and who should send it.

    Examples
    --------
    >>> sim = simulate_pipeline("gpipe", 4, 8, forward=1.0, backward=1.0)
    >>> round(sim.bubble, 4), round(3 / (8 + 4 - 1), 4)
    (0.2727, 0.2727)
    """
    if isinstance(name, str):
        if stages is None or micro_batches is None:
            raise ValueError("simulate_pipeline: give stages and micro_batches with a name")
        schedules = [pipeline_schedule(name, stages, micro_batches, s, chunks)
                     for s in range(stages)]
    else:
        schedules = [list(actions) for actions in name]
        chunks = 1 + max((a.chunk for actions in schedules for a in actions), default=0)
    for what, value in (("forward", forward), ("backward", backward), ("send", send)):
        if not 0 <= value < float("inf"):
            raise ValueError(f"simulate_pipeline: {what} must be a finite time >= 0, "
                             f"got {value!r}")
    p = len(schedules)
    cost = {FORWARD: forward / chunks, BACKWARD: backward / chunks}
    clock, at = [0.0] * p, [0] * p
    timeline: list[list[Span]] = [[] for _ in range(p)]
    sent: dict[tuple[str, int, int, int], float] = {}
    held, peak = [0] * p, [0] * p
    while True:
        moved = False
        for s, actions in enumerate(schedules):
            while at[s] < len(actions):
                a = actions[at[s]]
                start = clock[s]
                if a.kind in (RECV_FORWARD, RECV_BACKWARD):
                    arrival = sent.get(_message_key(s, a, p))
                    if arrival is None:
                        break  # its message is not sent yet: wait
                    clock[s] = max(clock[s], arrival)
                elif a.kind in (SEND_FORWARD, SEND_BACKWARD):
                    sent[_message_key(s, a, p)] = clock[s] + send
                elif a.kind in COMPUTE:
                    clock[s] += cost[a.kind]
                    held[s] += 1 if a.kind == FORWARD else -1
                    peak[s] = max(peak[s], held[s])
                timeline[s].append(Span(a.kind, a.micro_batch, a.chunk, start, clock[s]))
                at[s] += 1
                moved = True
        if all(at[s] == len(actions) for s, actions in enumerate(schedules)):
            break
        if not moved:
            raise ScheduleError("pipeline deadlock: " + "; ".join(
                f"stage {s} waits at action {at[s]} ({actions[at[s]]}), which stage "
                f"{actions[at[s]].peer} never sends before it waits itself"
                for s, actions in enumerate(schedules) if at[s] < len(actions)))
    makespan = max(clock)
    busy = sum(span.end - span.start for spans in timeline for span in spans
               if span.kind in COMPUTE)
    bubble = 1.0 - busy / (p * makespan) if makespan > 0 else 0.0
    return PipelineSimulation(timeline, makespan, bubble, peak)
