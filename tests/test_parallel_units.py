"""The parts of data parallelism that need no MPI: shards and buckets."""

import math

import numpy as np
import pytest

from minidl import models
from minidl.nn import Parameter
from minidl.parallel import DistributedSampler, assign_buckets


@pytest.mark.parametrize("n, p", [(10, 3), (12, 4), (7, 7), (5, 8), (100, 1)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_shards_are_disjoint_and_cover_with_pytorch_padding(n, p, shuffle):
    shards = [list(DistributedSampler(range(n), num_replicas=p, rank=r, shuffle=shuffle, seed=4)) for r in range(p)]
    sizes = {len(s) for s in shards}
    assert sizes == {math.ceil(n / p)}
    flat = [i for s in shards for i in s]
    assert sorted(set(flat)) == list(range(n))  # covers
    assert len(flat) - n == p * math.ceil(n / p) - n  # only the padding repeats


def test_drop_last_drops_the_tail_and_never_repeats():
    shards = [list(DistributedSampler(range(10), num_replicas=3, rank=r, drop_last=True)) for r in range(3)]
    flat = [i for s in shards for i in s]
    assert all(len(s) == 3 for s in shards) and len(set(flat)) == 9


def test_same_permutation_on_every_rank_for_a_seed_and_epoch():
    a = DistributedSampler(range(20), num_replicas=2, rank=0, seed=1)
    b = DistributedSampler(range(20), num_replicas=2, rank=1, seed=1)
    first = set(a) | set(b)
    assert first == set(range(20)) and not set(a) & set(b)
    before = list(a)
    a.set_epoch(1)
    assert list(a) != before
    a.set_epoch(0)
    assert list(a) == before


def test_sampler_errors():
    with pytest.raises(ValueError, match="rank 3 is out of range for 3 replicas"):
        DistributedSampler(range(5), num_replicas=3, rank=3)
    with pytest.raises(ValueError, match="num_replicas must be at least 1"):
        DistributedSampler(range(5), num_replicas=0, rank=0)


def test_buckets_fill_in_reverse_parameter_order_under_the_cap():
    model = models.mlp()  # weights 128x64, 64x128, 10x64 and their biases, float32
    named = list(model.named_parameters())
    one_each = assign_buckets(named, 0)
    assert [b.params[0][0] for b in one_each] == [n for n, _ in reversed(named)]
    everything = assign_buckets(named, math.inf)
    assert len(everything) == 1 and everything[0].data.size == sum(p.size for _, p in named)
    capped = assign_buckets(named, 33 * 1024)  # 32 KiB weights fit one per bucket
    assert all(b.nbytes <= 33 * 1024 or len(b.params) == 1 for b in capped)
    assert [n for b in capped for n, _ in b.params] == [n for n, _ in reversed(named)]


def test_bucket_views_share_memory_and_buckets_split_on_dtype():
    named = [("a", Parameter(np.ones((2, 3), np.float32))),
             ("b", Parameter(np.ones(4, np.float64))),
             ("c", Parameter(np.ones(5, np.float64)))]
    buckets = assign_buckets(named, math.inf)
    assert [[n for n, _ in b.params] for b in buckets] == [["c", "b"], ["a"]]
    view = buckets[0].view(1)
    view[...] = 7
    assert buckets[0].data[5:].tolist() == [7.0] * 4 and view.base is buckets[0].data


class _ReadyAfter:
    """A stand-in for an MPI request: its Test() is true from the k-th call on."""

    def __init__(self, k):
        self.k, self.calls = k, 0

    def Test(self):
        self.calls += 1
        return self.calls >= self.k


@pytest.mark.parametrize("k", [1, 2, 50, 5000])
def test_wait_politely_returns_as_soon_as_the_request_is_done(k):
    from minidl.parallel.comm import wait_politely

    request = _ReadyAfter(k)
    wait_politely(request, spin=0.0)  # straight to yielding, then to sleeping
    assert request.calls == k


def test_wait_politely_sleeps_once_spinning_and_yielding_are_over():
    import time

    from minidl.parallel import comm

    class ReadyLater:
        """Done 20 ms after the yielding is over."""

        done_at = time.perf_counter() + comm.YIELD_FOR + 0.02

        def Test(self):
            return time.perf_counter() >= self.done_at

    started = time.process_time()
    comm.wait_politely(ReadyLater(), spin=0.0)
    # 20 ms of waiting after the yields, mostly asleep: far less CPU than wall time.
    assert time.process_time() - started < comm.YIELD_FOR + 0.015
