"""minidl.distributed.schedule: the rounds of one rank, as plain data a student can print."""

from __future__ import annotations

import pytest

from minidl.distributed import ALGORITHMS, Recv, Round, Send, schedule
from minidl.distributed.schedules import ROOTED


def test_ring_schedule_reads_like_the_textbook():
    s = schedule("ring", 4, 0, 8)
    assert (s.collective, s.algorithm, s.p, s.rank, s.n, len(s)) == (
        "allreduce",
        "ring",
        4,
        0,
        8,
        6,
    )
    first = s.rounds[0]
    assert first.sends == (Send(peer=1, chunks=range(3, 4), start=6, stop=8),)
    assert first.recvs == (Recv(peer=3, chunks=range(2, 3), start=4, stop=6, reduce=True),)
    assert all(not r.reduce for rnd in s.rounds[3:] for r in rnd.recvs)  # the allgather copies
    assert (
        str(s).splitlines()[1]
        == "  round 0: send chunk 3 [6:8] to rank 1; reduce chunk 2 [4:6] from rank 3"
    )


def test_idle_rounds_print_as_idle():
    text = str(schedule("tree", 4, 3, 10))
    assert "round 0: send chunk 0 [0:10] to rank 2" in text
    assert "round 1: idle" in text


def test_multi_chunk_messages_name_their_chunks():
    first = schedule("rabenseifner", 4, 0, 8).rounds[0]
    assert str(first) == "send chunks 2-3 [4:8] to rank 2; reduce chunks 0-1 [0:4] from rank 2"


def test_rooted_schedules_move_with_the_root():
    # Root 2 of 4: rank 2 plays rank 0, so it sends first, to rank 2 + 2 = 0.
    s = schedule("binomial", 4, 2, 5, collective="broadcast", root=2)
    assert s.rounds[0] == Round.of(Send(0, range(0, 1), 0, 5))
    assert "root 2" in str(s).splitlines()[0]


@pytest.mark.parametrize("collective", list(ALGORITHMS))
def test_every_algorithm_has_a_schedule_on_every_rank(collective):
    for algorithm in ALGORITHMS[collective]:
        for p in (1, 2, 5, 8):
            n = 7 * p if collective == "alltoall" else 7  # an alltoall needs equal blocks
            for root in range(p) if collective in ROOTED else (0,):
                lengths = {
                    len(schedule(algorithm, p, rank, n, collective=collective, root=root))
                    for rank in range(p)
                }
                assert len(lengths) == 1


def test_a_schedule_of_your_own():
    def ping(p, rank, n):
        yield (
            Round.of(Send(1, range(1), 0, n))
            if rank == 0
            else Round.of(Recv(0, range(1), 0, n, False))
        )

    assert schedule(ping, 2, 1, 3).algorithm == "ping"


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("ring", 4, 4, 8), {}, "rank 4 is not a rank of p=4"),
        (("ring", 0, 0, 8), {}, "p=0"),
        (("ring", 4, 0, -1), {}, "n=-1"),
        (
            ("butterfly", 4, 0, 8),
            {},
            r"unknown allreduce algorithm 'butterfly'; expected one of \('naive'",
        ),
        (("ring", 4, 0, 8), {"collective": "gossip"}, "unknown collective 'gossip'"),
        (
            ("binomial", 4, 0, 8),
            {"collective": "broadcast", "root": 4},
            "root 4 is not a rank of p=4",
        ),
        (
            ("pairwise", 4, 0, 10),
            {"collective": "alltoall"},
            "alltoall: n=10 elements do not split into p=4 equal blocks",
        ),
    ],
)
def test_bad_arguments_are_named(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        schedule(*args, **kwargs)
