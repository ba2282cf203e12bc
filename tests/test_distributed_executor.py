"""minidl.distributed.fast.executor: compiled plans say exactly what the schedules say, in MPI
messages.

The MPI executor does not walk the schedule generators on every call: it
compiles each rank's rounds once into a plan of MPI messages, cutting long
ones into segments so that the reduction of one overlaps the arrival of the
next. These tests hold the plans to the schedules without MPI: merged back,
the segments are the schedule's steps; every segment sent has a receive with
the same tag and range; short exchanges travel in pieces cut alike on both
sides; and the plans, played message by message on p in-memory ranks, give
the reference result for p up to 64. The same plans on real ranks are
tested in test_distributed_mpi.
"""

from __future__ import annotations

from collections import defaultdict, deque

import numpy as np
import pytest
from test_distributed_simulate import rank_data, reference

from minidl import kernels
from minidl.distributed import ALGORITHMS, OPS, chunk_bounds, schedule
from minidl.distributed.fast.executor import (
    IN_FLIGHT,
    PIECE_BYTES,
    TAG,
    Plan,
    compile_plan,
    plan_of,
)
from minidl.distributed.schedules import rounds_of
from minidl.distributed.steps import Recv, Round, Send

COLLECTIVES = [(c, a) for c, algorithms in ALGORITHMS.items() for a in algorithms]
SEGMENTS = (1, 3, 64)  # elements: every message cut, some cut unevenly, few cut
PIECES = ((0, 0), (2, 200))  # (piece, pieced_up_to) elements: never, or most exchanges


def plans(collective: str, algorithm: str, p: int, n: int, segment: int, root=0, pieces=(0, 0)):
    return [
        compile_plan(rounds_of(collective, algorithm, p, rank, n, root), segment, n, *pieces)
        for rank in range(p)
    ]


def merged(messages) -> list[tuple[int, int, int]]:
    """The segments (or pieces) of each schedule step joined again: (peer, start, stop) per step."""
    steps: dict[int, list] = {}
    for m in messages:
        steps.setdefault(m.part, []).append(m)
    joined = []
    for part in sorted(steps):
        pieces = steps[part]
        for before, after in zip(pieces, pieces[1:]):
            assert before.stop == after.start, "segments must tile"
        # Segments share their step's tag (MPI keeps their order); pieces have tags of their own.
        tags = [m.tag for m in pieces]
        assert len(set(tags)) in (1, len(tags))
        joined.append((pieces[0].peer, pieces[0].start, pieces[-1].stop))
    return joined


@pytest.mark.parametrize("pieces", PIECES)
@pytest.mark.parametrize("segment", SEGMENTS)
@pytest.mark.parametrize("p", [1, 2, 3, 4, 5, 7, 8, 9])
@pytest.mark.parametrize("collective, algorithm", COLLECTIVES)
def test_the_plan_is_the_schedule_cut_into_segments(collective, algorithm, p, segment, pieces):
    for n in sorted({0, 1, p - 1, p, p + 1, 13, 257}):
        for rank in range(p):
            rounds = rounds_of(collective, algorithm, p, rank, n, 0)
            plan = compile_plan(rounds, segment, n, *pieces)
            busy = [k for k, rnd in enumerate(rounds) if rnd.sends or rnd.recvs]
            assert [planned.index for planned in plan.rounds] == busy
            for planned in plan.rounds:
                rnd = rounds[planned.index]
                assert planned.round is rnd
                assert merged(planned.sends) == [(s.peer, s.start, s.stop) for s in rnd.sends]
                received = sorted(planned.copies + planned.reduces, key=lambda m: m.part)
                assert merged(received) == [(r.peer, r.start, r.stop) for r in rnd.recvs]
                # Received into scratch: reduced, or copied into a range the round sends (a swap).
                for m, copied in zip(planned.reduces, planned.copied, strict=True):
                    assert rnd.recvs[m.part].reduce != copied
                assert not any(rnd.recvs[m.part].reduce for m in planned.copies)
                piece, pieced_up_to = pieces
                for steps, messages in (
                    (rnd.sends, planned.sends),
                    (rnd.recvs, planned.copies + planned.reduces),
                ):
                    for m in messages:
                        count = steps[m.part].count
                        cut = 0 < piece < count <= min(pieced_up_to, segment)
                        assert m.stop - m.start <= (piece if cut else segment)
                        assert TAG <= m.tag < TAG + len(steps) * (-(-count // piece) if cut else 1)


def test_segments_are_even_and_each_reduction_waits_for_the_sends_it_overwrites():
    plan = compile_plan(schedule("recursive_doubling", 2, 0, 10).rounds, segment=4)
    (planned,) = plan.rounds
    assert [(m.start, m.stop) for m in planned.sends] == [(0, 4), (4, 7), (7, 10)]
    assert planned.waits == ((0,), (1,), (2,))  # the range sent is the range reduced
    assert planned.exchange is None and plan.scratch == IN_FLIGHT * 4
    # The ring never reduces what it sends in the same round: nothing to wait for.
    ring = compile_plan(schedule("ring", 2, 0, 40).rounds, segment=4)
    assert all(w == () for w in ring.rounds[0].waits)


def test_a_round_of_one_message_each_way_is_an_exchange():
    plan = compile_plan(schedule("ring", 4, 1, 100).rounds, segment=1000)
    assert all(planned.exchange is not None for planned in plan.rounds)
    first = plan.rounds[0].exchange
    assert (first.sends[0].peer, first.recvs[0].peer, first.reduce) == (2, 0, True)
    assert not plan.rounds[-1].exchange.reduce  # the allgather copies
    assert plan.scratch == 25  # one chunk: the ring's O(n / p)


@pytest.mark.parametrize("n", [50, 101, 200, 201, 1000])
def test_exchanges_of_mid_length_go_in_pieces_cut_alike_on_both_sides(n):
    p, piece, pieced_up_to = 3, 8, 40
    compiled = plans("allreduce", "ring", p, n, 1000, pieces=(piece, pieced_up_to))
    for rank, plan in enumerate(compiled):
        for planned in plan.rounds:
            exchange = planned.exchange
            out, into = planned.round.sends[0], planned.round.recvs[0]
            for step, messages in ((out, exchange.sends), (into, exchange.recvs)):
                cut = piece < step.count <= pieced_up_to
                assert len(messages) == (-(-step.count // piece) if cut else 1)
                assert [m.tag for m in messages] == [TAG + i for i in range(len(messages))]
                sizes = [m.stop - m.start for m in messages]
                assert max(sizes) - min(sizes) <= 1  # even pieces
            # What this rank sends in a round, its peer receives, cut the same way.
            peer_round = next(r for r in compiled[out.peer].rounds if r.index == planned.index)
            assert [(m.start, m.stop, m.tag) for m in exchange.sends] == [
                (m.start, m.stop, m.tag) for m in peer_round.exchange.recvs
            ]
        # A reduced step lands whole in scratch, pieces and all: one chunk, as before.
        assert plan.scratch == max(r.round.recvs[0].count for r in plan.rounds if r.exchange.reduce)


@pytest.mark.parametrize("p", [2, 3, 8])
def test_scratch_is_two_segments_at_most(p):
    n, segment = 10_000, 64
    for rank in range(p):
        plan = compile_plan(schedule("ring", p, rank, n).rounds, segment)
        assert IN_FLIGHT * (segment - 1) <= plan.scratch <= IN_FLIGHT * segment
        rd = compile_plan(schedule("recursive_doubling", p, rank, n).rounds, segment)
        assert rd.scratch <= IN_FLIGHT * segment


def test_plans_are_compiled_once_per_call_signature():
    args = ("allreduce", "ring", 4, 2, 1000, 0, 4, 64, 0)
    first = plan_of(*args)
    assert plan_of(*args) is first
    assert plan_of("allreduce", "ring", 4, 2, 1000, 0, 8, 64, 0) is not first  # float64: new cuts
    assert isinstance(first, Plan)


def test_pieces_of_several_steps_to_one_peer_have_tags_of_their_own():
    # No built-in schedule sends two steps to one peer in a round; a custom one may.
    rnd = Round(
        sends=(
            Send(1, range(0, 1), 0, 10),
            Send(2, range(1, 2), 10, 13),
            Send(1, range(2, 3), 13, 20),
        ),
        recvs=(Recv(1, range(3, 4), 20, 29, True), Recv(1, range(4, 5), 29, 30, False)),
    )
    plan = compile_plan([rnd], segment=100, n=30, piece=4, pieced_up_to=100)
    (planned,) = plan.rounds
    for messages in (planned.sends, planned.copies + planned.reduces):
        keys = [(m.peer, m.tag) for m in messages]
        assert len(set(keys)) == len(keys), keys  # Startall may start them in any order
    to_one = [(m.start, m.stop, m.tag - TAG) for m in planned.sends if m.peer == 1]
    # Two steps to rank 1: step j's piece i gets TAG + j + 2 i.
    assert to_one == [(0, 4, 0), (4, 7, 2), (7, 10, 4), (13, 17, 1), (17, 20, 3)]


def test_plans_never_bound_send_every_step_whole():
    # The tree's rounds are not exchanges: no rank binds it, so pieces would cost Python.
    for rank in range(4):
        plan = plan_of("allreduce", "tree", 4, rank, 8000, 0, 4, 1 << 20, PIECE_BYTES)
        assert all(len({m.part for m in r.sends}) == len(r.sends) for r in plan.rounds)
    # Recursive doubling on 3 ranks: rank 1 exchanges only, ranks 0 and 2 fold in and out.
    plans = [plan_of("allreduce", "recursive_doubling", 3, r, 8000, 0, 4, 1 << 20, PIECE_BYTES)
             for r in range(3)]
    assert [p.bindable for p in plans] == [False, True, False]
    assert all(len(r.sends) <= 1 for p in plans for r in p.rounds)  # whole, on every rank


def test_piece_bytes_under_1024_are_refused():
    with pytest.raises(ValueError, match="PIECE_BYTES"):
        plan_of("allreduce", "ring", 2, 0, 5000, 0, 4, 1 << 20, 100)


def test_pieces_are_under_piece_bytes_and_stop_at_pieced_up_to_bytes():
    for kib, pieces in ((4, 1), (8, 2), (32, 5), (64, 9), (128, 1)):  # 128 KiB: never bound
        n = kib * 256  # float32: recursive doubling on 2 ranks sends the whole buffer
        plan = plan_of("allreduce", "recursive_doubling", 2, 0, n, 0, 4, 1 << 20, PIECE_BYTES)
        sends = plan.rounds[0].exchange.sends
        assert len(sends) == pieces, f"{kib} KiB"
        assert all((m.stop - m.start) * 4 <= PIECE_BYTES for m in sends) or pieces == 1


# --- The plans, played message by message ---------------------------------------


def play(all_plans: list[Plan], inputs: list[np.ndarray], op: str) -> list[np.ndarray]:
    """Run every rank's plan in one process, round by round, one MPI message at a time.

    What MPI guarantees, and no more: a receive takes the oldest message
    from its peer with its tag, and must be as long as it. All sends of a
    round read the buffers as the round began (the executor waits for them
    before it reduces into what they read).
    """
    buffers = [x.copy() for x in inputs]
    rounds = [{planned.index: planned for planned in plan.rounds} for plan in all_plans]
    last = max((k for ranks in rounds for k in ranks), default=-1)
    for k in range(last + 1):
        in_flight: dict[tuple[int, int, int], deque] = defaultdict(deque)
        for rank, mine in enumerate(rounds):
            for m in mine[k].sends if k in mine else ():
                in_flight[rank, m.peer, m.tag].append(buffers[rank][m.start : m.stop].copy())
        for rank, mine in enumerate(rounds):
            planned = mine.get(k)
            if planned is None:
                continue
            for messages, reduce in ((planned.copies, False), (planned.reduces, True)):
                for m in messages:
                    data = in_flight[m.peer, rank, m.tag].popleft()
                    assert data.size == m.stop - m.start, f"round {k}: rank {rank}: wrong length"
                    if reduce:
                        kernels.reduce_into(op, buffers[rank][m.start : m.stop], data)
                    else:
                        buffers[rank][m.start : m.stop] = data
        assert not any(in_flight.values()), f"round {k}: a message was sent but never received"
    return buffers


@pytest.mark.parametrize("pieces", PIECES)
@pytest.mark.parametrize("segment", SEGMENTS)
@pytest.mark.parametrize("p", [1, 2, 3, 5, 8, 17, 64])
@pytest.mark.parametrize("algorithm", list(ALGORITHMS["allreduce"]))
def test_played_plans_equal_the_reference(algorithm, p, segment, pieces):
    every_op = list(zip(OPS, (np.float32, np.int64, np.float64, np.int32)))
    for n in sorted({0, p - 1, p + 1, 3 * p + 2}):
        for op, dtype in every_op if p <= 8 else every_op[:1]:
            inputs = rank_data(p, n, dtype, op)
            outputs = play(plans("allreduce", algorithm, p, n, segment, pieces=pieces), inputs, op)
            for rank, out in enumerate(outputs):
                assert np.array_equal(out.astype(np.float64), reference(inputs, op)), (
                    f"{algorithm} p={p} n={n} {op} segment={segment} pieces={pieces}: "
                    f"rank {rank} is wrong"
                )


@pytest.mark.parametrize("p", [2, 3, 7])
def test_played_plans_of_the_building_blocks(p):
    n = 5 * p + 2
    bounds = chunk_bounds(n, p)
    inputs = rank_data(p, n, np.int64, "sum")
    scattered = play(plans("reduce_scatter", "ring", p, n, 2), inputs, "sum")
    for r, out in enumerate(scattered):
        mine = slice(bounds[r], bounds[r + 1])
        assert np.array_equal(out[mine], reference(inputs, "sum")[mine])
    for algorithm in ALGORITHMS["broadcast"]:
        for root in range(p):
            got = play(plans("broadcast", algorithm, p, n, 2, root), inputs, "sum")
            assert all(np.array_equal(out, inputs[root]) for out in got)


# --- Bindings (persistent requests), without MPI ------------------------------


class FakeRequest:
    """What ``Recv_init``/``Send_init`` return, as far as binding cares."""

    def __init__(self) -> None:
        self.freed = False

    def Free(self) -> None:
        self.freed = True


class FakeComm:
    def Recv_init(self, buf, peer, tag) -> FakeRequest:
        return FakeRequest()

    Send_init = Recv_init


def test_bindings_hold_at_most_bound_held_bytes_but_never_free_one_in_flight(monkeypatch):
    from minidl.distributed.fast import executor

    monkeypatch.setattr(executor, "_BOUND_PLANS", {})
    monkeypatch.setattr(executor, "BOUND_HELD_BYTES", 3 * 16_000)  # three bindings of 1000 float64
    plan = compile_plan(schedule("recursive_doubling", 2, 0, 1000).rounds, segment=10**6, n=1000)
    comm, buffers = FakeComm(), [np.zeros(1000) for _ in range(4)]
    first = executor._bind(plan, buffers[0], comm)
    first.busy = True  # started, not done
    second = executor._bind(plan, buffers[1], comm)
    for buf in buffers[2:]:
        executor._bind(plan, buf, comm)
    held = [b.buf for b in plan.bound.values()]
    assert held == [buffers[0], buffers[2], buffers[3]]  # the oldest idle one went
    assert sum(b.nbytes for b in plan.bound.values()) <= executor.BOUND_HELD_BYTES
    assert second.rounds == []  # its requests were freed
    assert not any(request.freed for requests, *_ in first.rounds for request in requests)
