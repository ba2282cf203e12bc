"""Scatter, gather and alltoall: simulated on every p and root, priced, printed and drawn.

Every result is compared with a NumPy reference computed here, independently
of the schedules: chunks come from :func:`numpy.array_split` (the split
``chunk_bounds`` documents), an alltoall is a transpose of the stacked blocks.
The inputs depend on the rank and the index, so a block or chunk that lands
on the wrong rank or in the wrong place is caught.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from minidl.distributed import ALGORITHMS, Round, ScheduleError, cost, schedule, simulate
from minidl.distributed.schedules import rounds_of
from minidl.distributed.steps import copy_from, reduce_from, send
from minidl.distributed.tree import scatter_allgather_broadcast

ALPHA, BETA, GAMMA = 2e-6, 1e-9, 3e-10
DTYPES = (np.float32, np.float64, np.int32, np.int64)


def rank_data(p: int, n: int, dtype: type = np.int64) -> list[np.ndarray]:
    """Rank ``r``'s buffer: ``1000 r + i + 1``, distinct across every rank and index."""
    return [(1000 * r + np.arange(n) + 1).astype(dtype) for r in range(p)]


def chunks(n: int, p: int) -> list[np.ndarray]:
    """The element indices of each of the ``p`` chunks, as NumPy splits them."""
    return np.array_split(np.arange(n), p)


def sizes(p: int) -> list[int]:
    """Empty, one element, fewer than p, a prime, sizes p does not divide, larger."""
    return sorted({0, 1, max(p - 1, 0), p + 1, 13, 3 * p + 2, 101})


def sent_chunks(trace, rank: int) -> set[int]:
    """The chunks ``rank`` sent to another rank, by the trace."""
    return {c for e in trace.events if e.rank == rank and e.kind == "send" for c in e.chunks}


# --- Scatter --------------------------------------------------------------------


@pytest.mark.parametrize("p", range(1, 9))
@pytest.mark.parametrize("algorithm", list(ALGORITHMS["scatter"]))
def test_scatter_gives_rank_r_chunk_r_of_the_root_from_every_root(algorithm, p):
    for n in sizes(p):
        inputs = rank_data(p, n)
        split = chunks(n, p)
        for root in range(p):
            outputs, trace = simulate(algorithm, inputs, collective="scatter", root=root)
            assert np.array_equal(outputs[root], inputs[root]), (p, n, root)
            for r, out in enumerate(outputs):
                where = f"{algorithm} p={p} n={n} root={root} rank {r}"
                assert np.array_equal(out[split[r]], inputs[root][split[r]]), where
                if r == root:
                    continue
                # Elsewhere: the root's chunks it passed on, its own data in the rest.
                passed_on = sent_chunks(trace, r)
                for c in range(p):
                    if c != r:
                        mine = inputs[root] if c in passed_on else inputs[r]
                        assert np.array_equal(out[split[c]], mine[split[c]]), (where, c)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scatter_keeps_every_dtype_and_shape(dtype):
    inputs = [x.reshape(3, 5) for x in rank_data(4, 15, dtype)]
    outputs, _ = simulate("binomial", inputs, collective="scatter", root=3)
    assert outputs[1].shape == (3, 5) and outputs[1].dtype == dtype
    assert np.array_equal(outputs[1].reshape(-1)[4:8], inputs[3].reshape(-1)[4:8])


@pytest.mark.parametrize("p", range(1, 9))
def test_the_root_sends_each_chunk_once_and_linear_only_their_own_to_each(p):
    n = 5 * p + 3
    split = chunks(n, p)
    for root in range(p):
        for algorithm in ALGORITHMS["scatter"]:
            _, trace = simulate(algorithm, rank_data(p, n), collective="scatter", root=root)
            sends = [e for e in trace.events if e.rank == root and e.kind == "send"]
            assert sorted(c for e in sends for c in e.chunks) == [c for c in range(p) if c != root]
            assert sum(e.count for e in sends) == n - len(split[root])
        _, trace = simulate("linear", rank_data(p, n), collective="scatter", root=root)
        assert all(e.peer == root for e in trace.events if e.kind == "recv")


@pytest.mark.parametrize("p", range(1, 10))
def test_the_long_buffer_broadcast_starts_with_the_binomial_scatter_from_root_0(p):
    for rank in range(p):
        ours = rounds_of("scatter", "binomial", p, rank, 23)
        assert ours == tuple(scatter_allgather_broadcast(p, rank, 23))[: len(ours)]


def test_every_message_of_the_binomial_trees_is_one_run_of_chunks():
    # Root 5 of 8: rank 5's subtree would wrap past rank 7 in renumbered ranks.
    s = schedule("binomial", 8, 5, 16, collective="scatter", root=5)
    assert [str(rnd) for rnd in s] == [
        "send chunks 0-3 [0:8] to rank 0",
        "send chunks 6-7 [12:16] to rank 6",
        "send chunk 4 [8:10] to rank 4",
    ]
    for root in range(7):
        for rank in range(7):
            for rnd in schedule("binomial", 7, rank, 20, collective="gather", root=root):
                assert len(rnd.sends) + len(rnd.recvs) <= 1


# --- Gather ---------------------------------------------------------------------


@pytest.mark.parametrize("p", range(1, 9))
@pytest.mark.parametrize("algorithm", list(ALGORITHMS["gather"]))
def test_gather_gives_the_root_chunk_r_of_rank_r_at_every_root(algorithm, p):
    for n in sizes(p):
        inputs = rank_data(p, n, np.float64)
        split = chunks(n, p)
        gathered = np.concatenate([inputs[r][split[r]] for r in range(p)]) if n else np.zeros(0)
        for root in range(p):
            outputs, _ = simulate(algorithm, inputs, collective="gather", root=root)
            assert np.array_equal(outputs[root], gathered), (algorithm, p, n, root)
            for r, out in enumerate(outputs):
                # A chunk holds what the rank had, or the chunk of its owner.
                for c in range(p):
                    ok = (inputs[r][split[c]], inputs[c][split[c]])
                    assert any(np.array_equal(out[split[c]], x) for x in ok), (p, n, root, r, c)
                if algorithm == "linear" and r != root:
                    assert np.array_equal(out, inputs[r])


# --- Alltoall -------------------------------------------------------------------


def transposed(inputs: list[np.ndarray]) -> np.ndarray:
    """Block ``j`` of rank ``i`` afterwards: block ``i`` of rank ``j``, by NumPy."""
    p = len(inputs)
    blocks = np.stack(inputs).reshape(p, p, -1)  # [rank, block, element]
    return blocks.transpose(1, 0, 2).reshape(p, -1)


@pytest.mark.parametrize("p", range(1, 9))
@pytest.mark.parametrize("algorithm", list(ALGORITHMS["alltoall"]))
def test_alltoall_transposes_the_blocks(algorithm, p):
    for k in (0, 1, 2, 3, 7):
        for dtype in (np.int32, np.float32):
            inputs = rank_data(p, p * k, dtype)
            outputs, _ = simulate(algorithm, inputs, collective="alltoall")
            expected = transposed(inputs)
            for rank, out in enumerate(outputs):
                assert out.dtype == dtype
                assert np.array_equal(out, expected[rank]), f"{algorithm} p={p} k={k} rank {rank}"


@pytest.mark.parametrize("algorithm", list(ALGORITHMS["alltoall"]))
def test_alltoall_on_many_ranks(algorithm):
    for p in (13, 16, 31):
        inputs = rank_data(p, 3 * p)
        outputs, _ = simulate(algorithm, inputs, collective="alltoall")
        assert np.array_equal(np.stack(outputs), transposed(inputs)), p


def test_alltoall_twice_gives_the_buffers_back():
    inputs = [x.reshape(5, 2) for x in rank_data(5, 10, np.float64)]
    once, _ = simulate("bruck", inputs, collective="alltoall")
    twice, _ = simulate("pairwise", once, collective="alltoall")
    assert all(np.array_equal(a, b) for a, b in zip(twice, inputs))


@pytest.mark.parametrize(
    "run",
    [
        lambda: schedule("pairwise", 3, 0, 7, collective="alltoall"),
        lambda: simulate("bruck", rank_data(3, 7), collective="alltoall"),
        lambda: cost("pairwise", 3, 7, ALPHA, BETA, GAMMA, collective="alltoall"),
    ],
    ids=["schedule", "simulate", "cost"],
)
def test_alltoall_refuses_a_size_p_does_not_divide(run):
    with pytest.raises(ValueError, match=r"alltoall: n=7 .* p=3 equal blocks.*such as 6 or 9"):
        run()


def test_pairwise_swaps_one_block_with_each_rank_in_turn():
    for p in range(1, 9):
        for rank in range(p):
            s = schedule("pairwise", p, rank, 2 * p, collective="alltoall")
            assert len(s) == p
            busy = [rnd for rnd in s if rnd.sends]
            assert len(busy) == p - 1
            assert sorted(rnd.sends[0].peer for rnd in busy) == [r for r in range(p) if r != rank]
            for rnd in busy:  # the block sent is the block received into, from the same peer
                (out,), (into,) = rnd.sends, rnd.recvs
                assert (out.peer, out.start, out.stop) == (into.peer, into.start, into.stop)


def test_bruck_takes_lg_p_messages_and_the_rest_is_local():
    for p in range(2, 18):
        lg = math.ceil(math.log2(p))
        for rank in range(p):
            s = schedule("bruck", p, rank, 3 * p, collective="alltoall")
            assert len(s) == 2 * lg + 1
            remote = [step for rnd in s for step in (*rnd.sends, *rnd.recvs) if step.peer != rank]
            assert len(remote) == 2 * lg  # one message out and one in per round
            local = [step for rnd in s.rounds[::2] for step in (*rnd.sends, *rnd.recvs)]
            assert all(step.peer == rank for step in local)


def test_alltoall_schedules_print_their_local_copies():
    text = str(schedule("bruck", 4, 1, 8, collective="alltoall"))
    lines = text.splitlines()
    assert lines[0] == "bruck alltoall on rank 1 of 4, n=8: 5 rounds"
    assert lines[2] == (
        "  round 1: send chunks 2-3 [4:8] to rank 2; copy chunks 2-3 [4:8] from rank 0"
    )
    assert "local copy [2:4] to [0:2]" in lines[1]
    assert "to rank 1" not in text and "from rank 1" not in text  # itself, said as local
    assert str(schedule("pairwise", 4, 0, 8, collective="alltoall")).splitlines()[1:3] == [
        "  round 0: idle",
        "  round 1: send chunk 1 [2:4] to rank 1; copy chunk 1 [2:4] from rank 1",
    ]


# --- The relaxed rules ----------------------------------------------------------


def test_a_copy_may_overlap_a_send_of_its_round_and_the_two_swap():
    def swap(p, rank, n):
        whole = (0, n)
        yield Round.of(send(1 - rank, whole, 0), copy_from(1 - rank, whole, 0))

    inputs = rank_data(2, 5)
    # Not an all-reduce (whose result the simulator checks): run it under allgather's rules.
    outputs, _ = simulate(swap, inputs, collective="allgather")
    assert np.array_equal(outputs[0], inputs[1]) and np.array_equal(outputs[1], inputs[0])


def test_a_copy_overlapping_another_receive_is_still_refused():
    def two_into_one(p, rank, n):
        bounds = (0, 2, 4)
        if rank == 0:
            yield Round.of(copy_from(1, bounds, 0, 2), copy_from(2, bounds, 1))
        else:
            yield Round.of(send(0, bounds, 0, 2) if rank == 1 else send(0, bounds, 1))

    with pytest.raises(
        ScheduleError,
        match=r"round 0: rank 0 does 'copy chunks 0-1 \[0:4\] from rank 1', which overlaps "
        r"'copy chunk 1 \[2:4\] from rank 2'.*no other receive",
    ):
        simulate(two_into_one, rank_data(3, 4))


def test_a_reduce_overlapping_a_copy_is_refused_too():
    def reduce_onto_a_copy(p, rank, n):
        whole = (0, n)
        if rank == 0:
            yield Round.of(copy_from(1, whole, 0), reduce_from(2, whole, 0))
        else:
            yield Round.of(send(0, whole, 0))

    with pytest.raises(ScheduleError, match="overlaps 'reduce chunk 0"):
        simulate(reduce_onto_a_copy, rank_data(3, 4))


def test_a_message_to_oneself_is_a_local_copy():
    def rotate(p, rank, n):
        # Each rank moves its blocks one place down, by messages to itself.
        blocks = tuple(range(0, n + 1, n // p))
        moves = [(j, (j - 1) % p) for j in range(p)]
        yield Round.of(
            *(send(rank, blocks, a) for a, _ in moves),
            *(copy_from(rank, blocks, b) for _, b in moves),
        )

    inputs = rank_data(3, 6)
    outputs, trace = simulate(rotate, inputs, collective="alltoall")
    for x, out in zip(inputs, outputs):
        assert np.array_equal(out, np.roll(x, -2))
    assert all(e.peer == e.rank for e in trace.events)
    c = cost(rotate, 3, 6, ALPHA, BETA, GAMMA, collective="alltoall")
    assert (c.rounds, c.messages, c.wire_bytes, c.local_bytes, c.seconds) == (0, 0, 0, 6, 0.0)


def test_a_message_to_oneself_keeps_its_place_outside_an_alltoall():
    def move(p, rank, n):
        yield Round.of(send(rank, (0, 1, 2), 0), copy_from(rank, (0, 1, 2), 1))

    with pytest.raises(ScheduleError, match="element ranges differ"):
        simulate(move, rank_data(2, 2))


@pytest.mark.parametrize(
    "steps, message",
    [
        (
            lambda rank, n: [send(rank, (0, n), 0)],
            r"rank 0 does 'send chunk 0 \[0:4\] to rank 0', but rank 0 posts no matching receive",
        ),
        (
            lambda rank, n: [send(rank, (0, n), 0), reduce_from(rank, (0, n), 0)],
            "a message from itself.*must copy",
        ),
        (
            lambda rank, n: [send(2, (0, n), 0)],
            r"the peer must be a rank of p=2 \(0 <= peer < 2\)",
        ),
        (lambda rank, n: [copy_from(-1, (0, n), 0)], "the peer must be a rank of p=2"),
    ],
    ids=["unmatched", "reduce-from-self", "peer-too-big", "peer-negative"],
)
def test_bad_messages_to_oneself_and_bad_peers_are_named(steps, message):
    def bad(p, rank, n):
        yield Round.of(*steps(rank, n))

    with pytest.raises(ScheduleError, match=message):
        simulate(bad, rank_data(2, 4))


def test_alltoall_messages_need_the_same_length_only():
    def uneven(p, rank, n):
        if rank == 0:
            yield Round.of(send(1, (0, 1, 4), 0))
        else:
            yield Round.of(copy_from(0, (0, 2, 4), 1))

    with pytest.raises(ScheduleError, match="1 elements sent, 2 expected"):
        simulate(uneven, rank_data(2, 4), collective="alltoall")


# --- Rooted schedules of your own -----------------------------------------------


def test_a_scatter_of_your_own_needs_a_root_parameter_for_other_roots():
    def direct(p, rank, n, root=0):
        bounds = tuple(np.linspace(0, n, p + 1).astype(int))
        if rank == root:
            yield Round.of(*(send(r, bounds, r) for r in range(p) if r != root))
        else:
            yield Round.of(copy_from(root, bounds, rank))

    def root_zero_only(p, rank, n):
        yield from direct(p, rank, n)

    inputs = rank_data(4, 8)
    outputs, _ = simulate(direct, inputs, collective="scatter", root=2)
    assert np.array_equal(outputs[3][6:8], inputs[2][6:8])
    outputs, _ = simulate(root_zero_only, inputs, collective="scatter")
    assert np.array_equal(outputs[3][6:8], inputs[0][6:8])
    with pytest.raises(
        ValueError,
        match=r"scatter from root 2: the schedule 'root_zero_only' takes no root.*"
        r"def root_zero_only\(p, rank, n, root=0\)",
    ):
        simulate(root_zero_only, inputs, collective="scatter", root=2)


@pytest.mark.parametrize("collective", ["scatter", "gather"])
def test_scatter_and_gather_name_a_bad_root(collective):
    with pytest.raises(ValueError, match=f"{collective}: root 4 is not a rank of p=4"):
        schedule("binomial", 4, 0, 8, collective=collective, root=4)
    with pytest.raises(ValueError, match="alltoall has no root, but root=1 was given"):
        schedule("pairwise", 4, 0, 8, collective="alltoall", root=1)


# --- Cost: the closed forms are the test ------------------------------------------


@pytest.mark.parametrize("p", [1, 2, 4, 8, 16, 64])
@pytest.mark.parametrize("collective", ["scatter", "gather"])
def test_binomial_scatter_and_gather_cost_lg_p_messages_and_each_byte_once(collective, p):
    n, lg = p * 1000, p.bit_length() - 1
    for root in sorted({0, 1 % p, p // 2, p - 1}):
        c = cost("binomial", p, n, ALPHA, BETA, GAMMA, collective=collective, root=root)
        terms = (c.rounds, c.messages, c.wire_bytes, c.reduced_bytes)
        assert terms == (lg, lg, (p - 1) * n // p, 0)
        assert c.seconds == pytest.approx(lg * ALPHA + (p - 1) / p * n * BETA, rel=1e-12)


@pytest.mark.parametrize("p", [3, 5, 6, 7])
@pytest.mark.parametrize("collective", ["scatter", "gather"])
def test_binomial_trees_on_other_p_take_ceil_lg_p_messages(collective, p):
    lg = math.ceil(math.log2(p))
    for root in range(p):
        c = cost("binomial", p, 60 * p, ALPHA, BETA, GAMMA, collective=collective, root=root)
        assert (c.rounds, c.messages) == (lg, lg)
        assert c.wire_bytes == (p - 1) * 60  # as much as the root sends, whatever the root


@pytest.mark.parametrize("p", range(1, 9))
@pytest.mark.parametrize("collective", ["scatter", "gather"])
def test_linear_scatter_and_gather_cost_p_minus_1_messages_in_one_round(collective, p):
    n = 840  # divisible by every p here
    c = cost("linear", p, n, ALPHA, BETA, GAMMA, collective=collective, root=p - 1)
    assert (c.rounds, c.messages) == (min(p - 1, 1), p - 1)
    assert c.seconds == pytest.approx((p - 1) * ALPHA + (p - 1) / p * n * BETA, rel=1e-12)


@pytest.mark.parametrize("p", range(1, 10))
def test_pairwise_alltoall_costs_p_exchanges_on_the_critical_path(p):
    # Each rank makes p - 1 exchanges of one block, (p - 1) (alpha + n / p beta);
    # but each rank idles in a different round, so for p >= 3 every one of the
    # p rounds has a busy rank, and the critical path is p of them.
    n = 2520  # divisible by every p here
    c = cost("pairwise", p, n, ALPHA, BETA, GAMMA, collective="alltoall")
    busy = p if p >= 3 else p - 1
    assert (c.rounds, c.messages, c.wire_bytes, c.local_bytes) == (busy, busy, busy * n // p, 0)
    assert c.seconds == pytest.approx(busy * (ALPHA + n / p * BETA), rel=1e-12)


@pytest.mark.parametrize("p", range(1, 18))
def test_bruck_alltoall_costs_lg_p_messages(p):
    n, lg = 60 * p, math.ceil(math.log2(p)) if p > 1 else 0
    moving = sum(bin(t).count("1") for t in range(p))  # blocks sent, over all rounds
    c = cost("bruck", p, n, ALPHA, BETA, GAMMA, collective="alltoall")
    assert (c.rounds, c.messages, c.wire_bytes) == (lg, lg, moving * n // p)
    assert c.seconds == pytest.approx(lg * ALPHA + moving * n / p * BETA, rel=1e-12)
    if p & (p - 1) == 0:  # a power of two: half the buffer each round
        assert c.seconds == pytest.approx(lg * (ALPHA + n / 2 * BETA), rel=1e-12)
    assert (c.local_bytes > 0) == (p > 1)  # the rotations and packing: not priced


def test_bruck_beats_pairwise_only_for_short_buffers():
    def seconds(algorithm, nbytes):
        return cost(algorithm, 16, nbytes, ALPHA, BETA, GAMMA, collective="alltoall").seconds

    assert seconds("bruck", 16 * 64) < seconds("pairwise", 16 * 64)
    assert seconds("pairwise", 16 << 20) < seconds("bruck", 16 << 20)


# --- Drawing ----------------------------------------------------------------------


DRAWN = [
    *((c, a, root) for c in ("scatter", "gather") for a in ALGORITHMS[c] for root in (0, 2)),
    *(("alltoall", a, 0) for a in ALGORITHMS["alltoall"]),
]


@pytest.mark.parametrize("collective, algorithm, root", DRAWN)
def test_the_new_collectives_draw_an_arrow_per_message_between_ranks(collective, algorithm, root):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.text import Annotation

    from minidl.viz import draw_schedule

    p, n = 5, 10
    ax = draw_schedule(algorithm, p, n, collective=collective, root=root)
    _, trace = simulate(algorithm, rank_data(p, n), collective=collective, root=root)
    arrows = [c for c in ax.get_children() if isinstance(c, Annotation)]
    assert len(arrows) == sum(e.kind == "send" and e.peer != e.rank for e in trace.events)
    local = sum(e.kind == "send" and e.peer == e.rank for e in trace.events)
    notes = [t.get_text() for t in ax.texts if t.get_text().endswith(" local")]
    assert sum(int(t.split()[0]) for t in notes) == local
    if collective != "alltoall":
        way = "from" if collective == "scatter" else "to"
        assert f"{collective} {way} root {root}" in ax.get_title()
    plt.close(ax.figure)
