"""minidl.distributed.simulate: every schedule, run on p in-memory ranks, gives the right answer.

The inputs depend on the rank and on the index (never all ones), so a schedule
that moves a chunk to the wrong place, or reduces one twice, fails. They are
also chosen so that every result is exactly representable in every dtype
(small multiples of 1/8, products of +-1 and a few 2s): the float results are
then exact whatever the order of the reduction, and are compared with a
float64 NumPy reference for equality.
"""

from __future__ import annotations

import numpy as np
import pytest

from minidl.distributed import ALGORITHMS, OPS, Round, ScheduleError, chunk_bounds, simulate
from minidl.distributed.steps import copy_from, reduce_from, send

DTYPES = (np.float32, np.float64, np.int32, np.int64)
REFERENCE = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min}


def rank_data(p: int, n: int, dtype: type, op: str) -> list[np.ndarray]:
    """Inputs of ``p`` ranks: rank- and index-dependent, each result exact in ``dtype``."""
    i = np.arange(n)
    inputs = []
    for r in range(p):
        if op == "prod":
            # +-1, times 2 on at most p / 16 + 1 ranks per index: no overflow.
            x = np.where((3 * r + i) % 5 == 0, -1, 1) * np.where((r + 3 * i) % 16 == 0, 2, 1)
        else:
            # Distinct per rank and index, both signs, |x| <= 1001.
            x = (r * 7919 + i * 104729) % 2003 - 1001
        if np.issubdtype(dtype, np.floating):
            x = x / 8
        inputs.append(x.astype(dtype))
    return inputs


def reference(inputs: list[np.ndarray], op: str) -> np.ndarray:
    """The reduction over ranks, in float64."""
    return REFERENCE[op](np.stack(inputs).astype(np.float64), axis=0)


def sizes(p: int) -> list[int]:
    """The sizes every schedule must handle: empty, fewer than p, p +- 1, a prime, larger."""
    return sorted({0, 1, max(p - 1, 0), p, p + 1, 13, 257})


def check_allreduce(algorithm: str, p: int, n: int, dtype: type, op: str) -> None:
    inputs = rank_data(p, n, dtype, op)
    outputs, _ = simulate(algorithm, inputs, op)
    expected = reference(inputs, op)
    for rank, out in enumerate(outputs):
        assert out.dtype == dtype and out.shape == (n,)
        assert np.array_equal(out.astype(np.float64), expected), (
            f"{algorithm} {op} {np.dtype(dtype).name} p={p} n={n}: rank {rank} is wrong"
        )


@pytest.mark.parametrize("p", range(1, 10))
@pytest.mark.parametrize("algorithm", list(ALGORITHMS["allreduce"]))
def test_allreduce_every_size_op_and_dtype(algorithm, p):
    for n in sizes(p):
        for op in OPS:
            for dtype in DTYPES:
                check_allreduce(algorithm, p, n, dtype, op)


@pytest.mark.parametrize("p", [16, 17, 31, 32, 64])
@pytest.mark.parametrize("algorithm", list(ALGORITHMS["allreduce"]))
def test_allreduce_many_ranks(algorithm, p):
    for n in (0, p - 1, p + 1, 1009):
        check_allreduce(algorithm, p, n, np.float32, "sum")
        check_allreduce(algorithm, p, n, np.int64, "max")
    check_allreduce(algorithm, p, 2 * p + 3, np.int32, "prod")


@pytest.mark.parametrize("algorithm", list(ALGORITHMS["allreduce"]))
def test_allreduce_a_million_elements(algorithm):
    check_allreduce(algorithm, 5, 10**6 + 3, np.float32, "sum")


@pytest.mark.parametrize("algorithm", list(ALGORITHMS["allreduce"]))
def test_rounded_floats_are_close_to_float64_and_identical_on_every_rank(algorithm):
    p, n = 7, 1000
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(n).astype(np.float32) for _ in range(p)]
    outputs, _ = simulate(algorithm, inputs)
    expected = reference(inputs, "sum")
    # Summing p terms in any order is off by at most (p - 1) roundings of the
    # partial sums, each at most half an ulp of the sum of magnitudes.
    bound = (p - 1) * np.finfo(np.float32).eps * np.sum(np.abs(inputs), axis=0)
    for out in outputs:
        assert np.all(np.abs(out - expected) <= bound)
        assert np.array_equal(out, outputs[0])


def test_inputs_keep_their_shape_and_are_not_modified():
    inputs = [np.arange(12.0).reshape(3, 4) * (r + 1) for r in range(3)]
    before = [x.copy() for x in inputs]
    outputs, _ = simulate("ring", inputs)
    assert outputs[0].shape == (3, 4)
    assert np.array_equal(outputs[1], np.arange(12.0).reshape(3, 4) * 6)
    assert all(np.array_equal(x, y) for x, y in zip(inputs, before))


@pytest.mark.parametrize("p", range(1, 10))
def test_reduce_scatter_leaves_chunk_r_on_rank_r(p):
    for n in sizes(p):
        for op in ("sum", "min"):
            inputs = rank_data(p, n, np.int64, op)
            outputs, _ = simulate("ring", inputs, op, collective="reduce_scatter")
            expected = reference(inputs, op)
            bounds = chunk_bounds(n, p)
            for r, out in enumerate(outputs):
                chunk = slice(bounds[r], bounds[r + 1])
                assert np.array_equal(out[chunk], expected[chunk]), (p, n, op, r)


@pytest.mark.parametrize("p", range(1, 10))
def test_allgather_gives_every_rank_every_chunk(p):
    for n in sizes(p):
        full = rank_data(1, n, np.float64, "sum")[0]
        bounds = chunk_bounds(n, p)
        inputs = []
        for r in range(p):
            x = np.full(n, -1.0)  # garbage outside this rank's own chunk
            x[bounds[r] : bounds[r + 1]] = full[bounds[r] : bounds[r + 1]]
            inputs.append(x)
        outputs, _ = simulate("ring", inputs, collective="allgather")
        assert all(np.array_equal(out, full) for out in outputs), (p, n)


@pytest.mark.parametrize("p", range(1, 10))
@pytest.mark.parametrize("algorithm", list(ALGORITHMS["broadcast"]))
def test_broadcast_from_every_root(algorithm, p):
    for n in sizes(p):
        inputs = rank_data(p, n, np.int32, "sum")
        for root in range(p):
            outputs, _ = simulate(algorithm, inputs, collective="broadcast", root=root)
            assert all(np.array_equal(out, inputs[root]) for out in outputs), (p, n, root)


@pytest.mark.parametrize("p", range(1, 10))
def test_reduce_to_every_root(p):
    for n in sizes(p):
        for op in OPS:
            inputs = rank_data(p, n, np.float64, op)
            for root in range(p):
                outputs, _ = simulate("binomial", inputs, op, collective="reduce", root=root)
                assert np.array_equal(outputs[root], reference(inputs, op)), (p, n, op, root)


def test_many_ranks_are_fast_enough_to_watch():
    # p = 64, the ring's 126 rounds: well under a second.
    outputs, trace = simulate("ring", rank_data(64, 64 * 100 + 5, np.float32, "sum"))
    assert len(outputs) == 64 and max(e.round for e in trace.events) == 125


# --- Traffic, counted from the trace --------------------------------------------


def assert_ring_traffic(trace, p: int, n: int) -> None:
    """Each rank sends and receives 2 (p - 1) messages, at most 2 ceil(n / p) (p - 1) elements."""
    stats = trace.stats()
    assert sorted(stats) == list(range(p)), "every rank must take part"
    for rank, s in stats.items():
        assert s.messages_sent == 2 * (p - 1), f"rank {rank} sent {s.messages_sent} messages"
        assert s.messages_received == 2 * (p - 1), f"rank {rank} received {s.messages_received}"
        assert s.elements_sent <= 2 * -(-n // p) * (p - 1), (
            f"rank {rank} sent {s.elements_sent} elements"
        )


@pytest.mark.parametrize("p", [2, 3, 4, 5, 7, 8, 9, 64])
def test_ring_sends_2_p_minus_1_messages_per_rank(p):
    for n in (p - 1, p, p + 1, 1000):
        _, trace = simulate("ring", rank_data(p, n, np.float64, "sum"))
        assert_ring_traffic(trace, p, n)


def broken_ring(p: int, rank: int, n: int):
    """A ring allreduce whose allgather runs p rounds instead of p - 1.

    The extra round copies in a chunk the rank already has, so the result is
    still right: only counting the traffic catches it.
    """
    bounds = chunk_bounds(n, p)
    right, left = (rank + 1) % p, (rank - 1) % p
    for s in range(p - 1):
        yield Round.of(
            send(right, bounds, (rank - s - 1) % p), reduce_from(left, bounds, (rank - s - 2) % p)
        )
    for s in range(p):
        yield Round.of(
            send(right, bounds, (rank - s) % p), copy_from(left, bounds, (rank - s - 1) % p)
        )


def test_a_ring_with_p_rounds_fails_the_traffic_check():
    p, n = 4, 40
    inputs = rank_data(p, n, np.float64, "sum")
    outputs, trace = simulate(broken_ring, inputs)
    assert all(np.array_equal(out, reference(inputs, "sum")) for out in outputs)
    with pytest.raises(AssertionError, match="sent 7 messages"):
        assert_ring_traffic(trace, p, n)


@pytest.mark.parametrize("p", [2, 4, 8, 16, 64])
def test_recursive_doubling_sends_lg_p_messages_of_n_elements(p):
    n = 100
    _, trace = simulate("recursive_doubling", rank_data(p, n, np.float32, "sum"))
    for rank in range(p):
        sends = [e for e in trace.events if e.rank == rank and e.kind == "send"]
        assert len(sends) == p.bit_length() - 1
        assert all(e.count == n for e in sends)


@pytest.mark.parametrize("p", [2, 4, 8, 16, 64])
def test_rabenseifner_sends_as_little_as_the_ring_in_2_lg_p_messages(p):
    n = 64 * 10
    _, trace = simulate("rabenseifner", rank_data(p, n, np.float32, "sum"))
    for s in trace.stats().values():
        assert s.messages_sent == 2 * (p.bit_length() - 1)
        assert s.elements_sent == 2 * (p - 1) * n // p


# --- The simulator catches broken schedules ---------------------------------------


def test_a_send_without_a_receive_is_named():
    def lonely_send(p, rank, n):
        yield Round.of(send(1, (0, n), 0)) if rank == 0 else Round()

    with pytest.raises(
        ScheduleError,
        match=r"round 0: rank 0 does 'send chunk 0 \[0:4\] to rank 1'.*no matching receive",
    ):
        simulate(lonely_send, rank_data(2, 4, np.float64, "sum"))


def test_a_receive_without_a_send_is_named():
    def lonely_receive(p, rank, n):
        yield Round.of(copy_from(0, (0, n), 0)) if rank == 1 else Round()

    with pytest.raises(
        ScheduleError,
        match=r"round 0: rank 1 does 'copy chunk 0 \[0:4\] from rank 0'.*sends nothing",
    ):
        simulate(lonely_receive, rank_data(2, 4, np.float64, "sum"))


def test_a_message_landing_in_the_wrong_place_is_named():
    def shifted(p, rank, n):
        bounds = chunk_bounds(n, 2)
        yield Round.of(send(1, bounds, 0)) if rank == 0 else Round.of(copy_from(0, bounds, 1))

    with pytest.raises(ScheduleError, match="element ranges differ"):
        simulate(shifted, rank_data(2, 4, np.float64, "sum"))


def test_ranks_with_different_numbers_of_rounds_are_named():
    def uneven(p, rank, n):
        for _ in range(rank):
            yield Round()

    with pytest.raises(ScheduleError, match="rank 0: 0, rank 1: 1, rank 2: 2"):
        simulate(uneven, rank_data(3, 4, np.float64, "sum"))


@pytest.mark.parametrize(
    "bad_step, message",
    [
        (lambda rank, n: send(5, (0, n), 0), r"the peer must be a rank of p=2 \(0 <= peer < 2\)"),
        (lambda rank, n: copy_from(-1, (0, n), 0), "the peer must be a rank of p=2"),
        (lambda rank, n: send(1 - rank, (0, n + 1), 0), "outside the buffer"),
    ],
)
def test_bad_peers_and_ranges_are_named(bad_step, message):
    def bad(p, rank, n):
        yield Round.of(bad_step(rank, n))

    with pytest.raises(ScheduleError, match=message):
        simulate(bad, rank_data(2, 4, np.float64, "sum"))


def test_a_copy_onto_a_range_another_receive_writes_is_refused():
    # Rule 3 (a copy onto a range the round sends is a swap, allowed, and
    # messages to oneself): tested with the alltoall in test_distributed_family.
    def two_copies_into_one_range(p, rank, n):
        whole = (0, n)
        if rank == 0:
            yield Round.of(copy_from(1, whole, 0), copy_from(2, whole, 0))
        else:
            yield Round.of(send(0, whole, 0))

    with pytest.raises(ScheduleError, match="overlaps 'copy chunk 0 \\[0:4\\] from rank 2'"):
        simulate(two_copies_into_one_range, rank_data(3, 4, np.float64, "sum"))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(algorithm="rings"), ValueError, "unknown allreduce algorithm 'rings'"),
        (dict(algorithm="ring", collective="gossip"), ValueError, "unknown collective"),
        (dict(algorithm="ring", collective="alltoall"), ValueError, "unknown alltoall algorithm"),
        (dict(algorithm="ring", op="mean"), ValueError, "unknown op 'mean'"),
        (dict(algorithm="binomial", collective="broadcast", root=3), ValueError, "root 3"),
        (dict(algorithm="ring", root=1), ValueError, "has no root"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        simulate(inputs=rank_data(2, 4, np.float64, "sum"), **kwargs)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="rank 0 has .4,. float64, rank 1 has .5,. float64"):
        simulate("ring", [np.zeros(4), np.zeros(5)])
    with pytest.raises(TypeError, match="unsupported dtype float16"):
        simulate("ring", [np.zeros(4, np.float16)] * 2)
    with pytest.raises(ValueError, match="one array per rank"):
        simulate("ring", [])


def test_yielding_something_other_than_a_round_is_named():
    def forgot_round(p, rank, n):
        yield send(1 - rank, (0, n), 0)

    with pytest.raises(ScheduleError, match="rank 0 yielded Send.* as round 0; a schedule yields"):
        simulate(forgot_round, rank_data(2, 4, np.float64, "sum"))


def test_an_op_error_guesses_the_usual_slips():
    class Op:  # stands for mpi4py's MPI.Op (importing mpi4py here would start MPI in pytest)
        pass

    inputs = [np.ones(3), np.ones(3)]
    with pytest.raises(ValueError, match=r"'ring' is an algorithm: the op comes second"):
        simulate("ring", inputs, op="ring")
    with pytest.raises(ValueError, match=r"op='sum' for MPI.SUM"):
        simulate("ring", inputs, op=Op())


def test_swapped_arguments_and_real_only_algorithms_are_named():
    inputs = [np.ones(3), np.ones(3)]
    with pytest.raises(TypeError, match=r"the algorithm comes first.*simulate\('ring', inputs\)"):
        simulate(inputs, "ring")
    for name in ("auto", "mpi"):
        with pytest.raises(ValueError, match=f"'{name}' is no schedule"):
            simulate(name, inputs)


def test_an_allreduce_that_keeps_the_rules_but_not_the_result_is_named():
    def ring_without_allgather(p, rank, n):  # every round matches; no rank ends with the sum
        bounds = chunk_bounds(n, p)
        for k in range(p - 1):
            yield Round.of(
                send((rank + 1) % p, bounds, (rank - k) % p),
                reduce_from((rank - 1) % p, bounds, (rank - k - 1) % p),
            )

    with pytest.raises(ScheduleError, match="does not all-reduce"):
        simulate(ring_without_allgather, rank_data(3, 7, np.int64, "sum"))


def test_check_schedule_finds_what_would_hang_without_data():
    from minidl.distributed.simulate import check_schedule

    def wrong_peer(p, rank, n):  # rank 0 sends to 1, but 1 expects it from 2
        bounds = chunk_bounds(n, p)
        yield Round.of(send((rank + 1) % p, bounds, 0), reduce_from((rank + 2) % p, bounds, 0))

    with pytest.raises(ScheduleError, match="posts no matching receive|sends nothing"):
        check_schedule("allreduce", wrong_peer, 4, 8)
    check_schedule("allreduce", "ring", 5, 11)  # a good one passes
