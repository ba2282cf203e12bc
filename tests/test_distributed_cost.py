"""minidl.distributed.cost: the alpha-beta-gamma model, derived from the schedules.

The closed forms of Thakur, Rabenseifner & Gropp (2005) are the test: the cost
model never sees them, it only counts what the schedules send and reduce.
"""

from __future__ import annotations

import math

import pytest

from minidl.distributed import ALGORITHMS, Calibration, calibration, cost

ALPHA, BETA, GAMMA = 2e-6, 1e-9, 3e-10


def closed_form(algorithm: str, p: int, n: int) -> float:
    """The textbook time of an allreduce of n bytes on p ranks, plus the fold if p is not 2^k."""
    lg = math.ceil(math.log2(p)) if p > 1 else 0
    p2 = 1 << (p.bit_length() - 1)
    lg2 = p2.bit_length() - 1
    fold = 0.0 if p == p2 else 2 * (ALPHA + n * BETA) + n * GAMMA
    if algorithm == "ring":
        return 2 * (p - 1) * ALPHA + 2 * (p - 1) / p * n * BETA + (p - 1) / p * n * GAMMA
    if algorithm == "recursive_doubling":
        return lg2 * (ALPHA + n * BETA + n * GAMMA) + fold
    if algorithm == "rabenseifner":
        return 2 * lg2 * ALPHA + 2 * (p2 - 1) / p2 * n * BETA + (p2 - 1) / p2 * n * GAMMA + fold
    if algorithm == "tree":
        return 2 * lg * (ALPHA + n * BETA) + lg * n * GAMMA
    if algorithm == "naive":
        return 2 * (p - 1) * (ALPHA + n * BETA) + (p - 1) * n * GAMMA
    raise AssertionError(algorithm)


@pytest.mark.parametrize("p", [1, 2, 3, 4, 5, 6, 7, 8, 16, 64])
@pytest.mark.parametrize("algorithm", list(ALGORITHMS["allreduce"]))
def test_cost_matches_the_closed_form(algorithm, p):
    n = 3 * 64 * 5 * 7 * 1024  # divisible by every p above, so no chunk is uneven
    predicted = cost(algorithm, p, n, ALPHA, BETA, GAMMA)
    assert predicted.seconds == pytest.approx(closed_form(algorithm, p, n), rel=1e-12)


@pytest.mark.parametrize("p", [2, 3, 8, 64])
def test_ring_terms(p):
    n = p * 1000
    c = cost("ring", p, n, ALPHA, BETA, GAMMA)
    assert (c.rounds, c.messages) == (2 * (p - 1), 2 * (p - 1))
    assert c.wire_bytes == 2 * (p - 1) * n // p
    assert c.reduced_bytes == (p - 1) * n // p


@pytest.mark.parametrize("p", [2, 4, 8, 64])
def test_recursive_doubling_and_rabenseifner_terms(p):
    n, lg = p * 1000, p.bit_length() - 1
    rd = cost("recursive_doubling", p, n, ALPHA, BETA, GAMMA)
    assert (rd.rounds, rd.messages, rd.wire_bytes, rd.reduced_bytes) == (lg, lg, lg * n, lg * n)
    rab = cost("rabenseifner", p, n, ALPHA, BETA, GAMMA)
    assert (rab.rounds, rab.wire_bytes) == (2 * lg, 2 * (p - 1) * n // p)


def test_uneven_chunks_cost_the_longest_chunk():
    # 10 bytes on 4 ranks: chunks of 3, 3, 2, 2; every round waits for a 3-byte chunk.
    c = cost("ring", 4, 10, ALPHA, BETA, GAMMA)
    assert c.wire_bytes == 6 * 3 and c.reduced_bytes == 3 * 3


def test_one_rank_costs_nothing():
    for algorithm in ALGORITHMS["allreduce"]:
        assert cost(algorithm, 1, 1000, ALPHA, BETA, GAMMA).seconds == 0.0


def test_building_blocks_are_priced_too():
    p, n = 8, 8000
    rs = cost("ring", p, n, ALPHA, BETA, GAMMA, collective="reduce_scatter")
    assert rs.seconds == pytest.approx((p - 1) * (ALPHA + n / p * (BETA + GAMMA)))
    bc = cost("binomial", p, n, ALPHA, BETA, GAMMA, collective="broadcast", root=3)
    assert bc.seconds == pytest.approx(3 * (ALPHA + n * BETA))
    sag = cost("scatter_allgather", p, n, ALPHA, BETA, GAMMA, collective="broadcast")
    # van de Geijn: lg p + p - 1 messages, about 2 (p - 1) / p n bytes.
    assert sag.messages == 3 + p - 1
    assert sag.wire_bytes == (p - 1) * n // p + (p - 1) * n // p


def test_scatter_gather_and_alltoall_are_priced_from_their_schedules():
    # More cases, every p and root, in test_distributed_family.
    p, n = 8, 8000
    sc = cost("binomial", p, n, ALPHA, BETA, GAMMA, collective="scatter", root=5)
    assert sc.seconds == pytest.approx(3 * ALPHA + (p - 1) / p * n * BETA)
    ga = cost("linear", p, n, ALPHA, BETA, GAMMA, collective="gather", root=2)
    assert ga.seconds == pytest.approx((p - 1) * ALPHA + (p - 1) / p * n * BETA)
    # Pairwise: each rank idles in a different round, so all p rounds are on the critical path.
    pw = cost("pairwise", p, n, ALPHA, BETA, GAMMA, collective="alltoall")
    assert pw.seconds == pytest.approx(p * (ALPHA + n / p * BETA))
    # Bruck: lg p messages of half the buffer; its local copies are counted, not priced.
    br = cost("bruck", p, n, ALPHA, BETA, GAMMA, collective="alltoall")
    assert br.seconds == pytest.approx(3 * (ALPHA + n / 2 * BETA))
    assert br.local_bytes > 0 and pw.local_bytes == sc.local_bytes == 0


def test_no_other_algorithm_copies_locally():
    for collective, algorithms in ALGORITHMS.items():
        for algorithm in algorithms:
            if (collective, algorithm) != ("alltoall", "bruck"):
                c = cost(algorithm, 6, 600, ALPHA, BETA, GAMMA, collective=collective)
                assert c.local_bytes == 0, (collective, algorithm)


def test_ring_beats_recursive_doubling_only_for_long_buffers():
    def seconds(algorithm, nbytes):
        return cost(algorithm, 8, nbytes, ALPHA, BETA, GAMMA).seconds

    assert seconds("recursive_doubling", 1024) < seconds("ring", 1024)
    assert seconds("ring", 64 << 20) < seconds("recursive_doubling", 64 << 20)


@pytest.mark.parametrize(
    "args, message",
    [
        (("ring", 0, 10, ALPHA, BETA, GAMMA), "p=0"),
        (("ring", 2, -1, ALPHA, BETA, GAMMA), "nbytes must be >= 0"),
        (("ring", 2, 10, -1.0, BETA, GAMMA), "alpha must be >= 0"),
        (("wheel", 2, 10, ALPHA, BETA, GAMMA), "unknown allreduce algorithm 'wheel'"),
    ],
)
def test_bad_arguments_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        cost(*args)


def test_the_model_picks_the_algorithm_it_predicts_fastest():
    model = Calibration(alpha=5e-6, beta=2e-10, gamma=1e-10)
    for p in (2, 3, 8, 64):
        for nbytes in (0, 1 << 10, 1 << 16, 1 << 20, 64 << 20):
            times = {a: model.predict(a, p, nbytes) for a in ALGORITHMS["allreduce"]}
            assert times[model.choose(p, nbytes)] == min(times.values())
    assert model.choose(8, 1 << 10) == "recursive_doubling"  # latency-bound: fewest rounds
    assert model.choose(8, 64 << 20) in ("ring", "rabenseifner")  # bandwidth-bound
    assert model.choose(8, 64 << 20, collective="broadcast") == "scatter_allgather"


def test_auto_uses_the_default_model_until_calibrated():
    assert calibration.current() == calibration.DEFAULT


def test_predictions_add_the_per_call_overhead_but_choose_alike():
    plain = Calibration(alpha=ALPHA, beta=BETA, gamma=GAMMA)
    model = Calibration(alpha=ALPHA, beta=BETA, gamma=GAMMA, overhead=7e-6)
    for nbytes in (0, 1 << 10, 1 << 20):
        terms = cost("ring", 4, nbytes, ALPHA, BETA, GAMMA)
        assert model.predict("ring", 4, nbytes) == pytest.approx(7e-6 + terms.seconds)
        assert model.choose(4, nbytes) == plain.choose(4, nbytes)


def test_calibration_times_every_size_in_each_sweep_after_a_warm_up():
    log: list[int] = []
    calls = [lambda i=i: log.append(i) for i in range(2)]
    medians = calibration._median_times(calls, repeats=4, sweeps=2)
    assert len(medians) == 2 and all(m >= 0 for m in medians)
    # Per sweep, each call in turn: a warm-up, then repeats / sweeps timed calls.
    assert log == ([0] * 3 + [1] * 3) * 2


def test_calibration_fits_one_slope_to_every_size_by_relative_error():
    sizes = (1 << 20, 1 << 22, 1 << 24)
    times = [1e-5 + 2e-10 * n for n in sizes]  # exactly linear: the slope comes back
    assert calibration.fit_per_byte(sizes, times, 1e-5) == pytest.approx(2e-10)


@pytest.mark.parametrize("bad", [1e6, "1024", None])
def test_sizes_must_be_ints(bad):
    with pytest.raises(TypeError, match="cost: nbytes must be an int"):
        cost("ring", 4, bad, 1e-6, 1e-9, 1e-10)
    with pytest.raises(TypeError, match="cost: p must be an int"):
        cost("ring", bad, 1024, 1e-6, 1e-9, 1e-10)


def test_fit_per_byte_refuses_what_it_cannot_fit():
    with pytest.raises(ValueError, match="same non-zero length"):
        calibration.fit_per_byte([1, 2], [1e-6], 0.0)
    with pytest.raises(ValueError, match="same non-zero length"):
        calibration.fit_per_byte([], [], 0.0)
    with pytest.raises(ValueError, match="every one of times must be a finite number > 0"):
        calibration.fit_per_byte([1, 2], [1e-6, float("nan")], 0.0)
    with pytest.raises(ValueError, match="every one of sizes"):
        calibration.fit_per_byte([0, 2], [1e-6, 2e-6], 0.0)
    with pytest.raises(ValueError, match="fixed must be a finite number >= 0"):
        calibration.fit_per_byte([1, 2], [1e-6, 2e-6], -1.0)


def test_crossover_refuses_bad_input():
    model = Calibration(5e-6, 1.2e-10, 7e-11)
    with pytest.raises(ValueError, match="p must be >= 1"):
        model.crossover(0)
    with pytest.raises(TypeError, match="p must be an int"):
        model.crossover(2.0)
    with pytest.raises(ValueError, match="'binomial' is not an algorithm of 'allreduce'"):
        model.crossover(4, small="binomial")
    with pytest.raises(ValueError, match="'ring' is not an algorithm of 'broadcast'"):
        model.crossover(4, small="binomial", collective="broadcast")
