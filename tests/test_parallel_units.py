"""The parts of data parallelism that need no MPI: shards, buckets, the reducer's bookkeeping."""

import math
import time

import numpy as np
import pytest

from minidl import models
from minidl.nn import Parameter
from minidl.parallel import DistributedSampler, assign_buckets


@pytest.mark.parametrize("n, p", [(10, 3), (12, 4), (7, 7), (5, 8), (100, 1)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_shards_are_disjoint_and_cover_with_pytorch_padding(n, p, shuffle):
    shards = [list(DistributedSampler(range(n), num_replicas=p, rank=r, shuffle=shuffle, seed=4))
              for r in range(p)]
    sizes = {len(s) for s in shards}
    assert sizes == {math.ceil(n / p)}
    flat = [i for s in shards for i in s]
    assert sorted(set(flat)) == list(range(n))  # covers
    assert len(flat) - n == p * math.ceil(n / p) - n  # only the padding repeats


def test_drop_last_drops_the_tail_and_never_repeats():
    shards = [list(DistributedSampler(range(10), num_replicas=3, rank=r, drop_last=True))
              for r in range(3)]
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


# ----------------------------------------------------------------------------- the reducer, alone
# A communicator of one rank sends nothing, so the Reducer's bookkeeping (views, hooks, the
# end-of-backward callback, no_sync, a broken pass, close) is tested here without MPI; its
# all-reduces are tested on real ranks in test_parallel_ddp.py.


class _OneRank:
    """A stand-in for a communicator of one rank: the reducer duplicates, asks and frees it."""

    freed = False

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1

    def Dup(self):
        return self

    def Free(self):
        self.freed = True


class _Notes:
    """An observer that writes down the points a reducer reports."""

    def __init__(self):
        from minidl.parallel.observer import Observer

        self.events, self._quiet = [], Observer()

    def communicating(self):
        return self._quiet.communicating()

    def bucket_started(self, bucket):
        self.events.append(("started", bucket.index))

    def bucket_done(self, bucket):
        self.events.append(("done", bucket.index))

    def waiting(self, what, bucket=None):
        self.events.append(("waiting", what))
        return self._quiet.waiting(what, bucket)


def _reducer(cap=0.0, observer=None):
    import minidl
    from minidl.parallel import Reducer

    minidl.manual_seed(0)
    model = models.mlp()
    buckets = assign_buckets(list(model.named_parameters()), cap)
    comm = _OneRank()
    return model, Reducer(buckets, comm, observer=observer), comm


def _backward(model):
    import minidl
    import minidl.functional as F

    F.cross_entropy(model(minidl.randn(4, 64)), np.arange(4)).backward()


def test_a_reducer_makes_every_grad_a_view_of_its_bucket_and_keeps_it_one():
    model, reducer, _ = _reducer(cap=math.inf)
    (bucket,) = reducer.buckets
    assert all(p.grad.base is bucket.data for p in model.parameters())
    _backward(model)
    assert bucket.data.any() and all(p.grad.base is bucket.data for p in model.parameters())
    model.zero_grad()  # gradients dropped before forward...
    reducer.prepare_for_backward()
    assert all(p.grad.base is bucket.data for p in model.parameters()) and not bucket.data.any()
    first = next(iter(model.parameters()))
    first.grad = np.ones_like(first.data)  # ...or a fresh array, kept by value
    reducer.prepare_for_backward()
    assert first.grad.base is bucket.data and (first.grad == 1).all()


def test_zero_grad_between_forward_and_backward_is_put_back_by_the_hook():
    import minidl
    import minidl.functional as F

    model, reducer, _ = _reducer()
    reducer.prepare_for_backward()
    loss = F.cross_entropy(model(minidl.randn(4, 64)), np.arange(4))
    model.zero_grad()
    loss.backward()
    for bucket in reducer.buckets:
        (_, p), = bucket.params
        assert p.grad.base is bucket.data and bucket.data.any()


def test_a_reducer_alone_finishes_each_pass_once_and_no_sync_passes_not_at_all():
    notes = _Notes()
    model, reducer, _ = _reducer(observer=notes)
    _backward(model)
    # One rank: nothing to all-reduce, but the pass ends (once) and the next may start.
    assert notes.events == [("waiting", "all-reduces")] and reducer.steps.step == 1
    reducer.syncing = False
    _backward(model)
    assert notes.events == [("waiting", "all-reduces")] and reducer.steps.step == 1
    reducer.syncing = True
    _backward(model)
    assert reducer.steps.step == 2


def test_a_pass_that_stopped_half_way_is_not_carried_on_from():
    model, reducer, _ = _reducer()
    first = next(iter(model.parameters()))

    def fail(param):
        raise ValueError("a hook failed on purpose")

    handle = first.register_post_accumulate_grad_hook(fail)
    with pytest.raises(ValueError, match="on purpose"):
        _backward(model)
    handle.remove()
    with pytest.raises(RuntimeError, match="the last backward pass stopped half-way"):
        reducer.prepare_for_backward()


def test_closing_a_reducer_unhooks_the_model_and_frees_its_communicator():
    notes = _Notes()
    model, reducer, comm = _reducer(observer=notes)
    reducer.close()
    reducer.close()  # a second close does nothing
    _backward(model)
    assert notes.events == [] and comm.freed


def test_the_recorder_turns_a_reducers_reports_into_stats_and_spans():
    from minidl.parallel.observer import Recorder
    from minidl.parallel.timeline import Timeline

    buckets = assign_buckets(list(models.mlp().named_parameters()), math.inf)
    timeline = Timeline(rank=0)
    recorder = Recorder([1000], timeline)
    with recorder.waiting("all-reduces"):
        with recorder.waiting("peers", buckets[0]):
            time.sleep(0.001)  # a peer still computing
        recorder.bucket_started(buckets[0])
        with recorder.communicating():
            time.sleep(0.001)
        recorder.bucket_done(buckets[0])
    stats = recorder.reset()
    assert (stats.steps, stats.allreduces, stats.bytes_sent) == (1, 1, 1000)
    assert stats.wait_seconds > stats.comm_seconds > 0
    assert recorder.stats.steps == 0
    assert [(s.lane, s.name, s.args.get("bucket")) for s in timeline.spans] == [
        ("main", "wait for peers", 0), ("comm", "all-reduce bucket 0", None),
        ("main", "wait for all-reduces", None)]
    assert timeline.spans[1].args["bytes"] == buckets[0].nbytes


def test_the_step_check_names_every_ranks_step():
    from minidl.parallel.step_check import StepCheck

    class Done:
        def Test(self):
            return True

    class TwoRanks:
        """Rank 0 at step 0 of a pass, rank 1 closing after step 0: what an exchange would bring."""

        def Get_size(self):
            return 2

        def Iallgather(self, mine, everyone):
            everyone[...] = [[0, 0], [0, 1]]
            return Done()

    with pytest.raises(RuntimeError, match=r"rank 0: at step 0, rank 1: finished after step 0"):
        StepCheck(TwoRanks()).test()


# ----------------------------------------------------------------------------- the algorithm
def _my_ring(p, rank, n):
    """A ring all-reduce as a student writes it (chunks shifted by one from minidl's)."""
    from minidl.distributed import Round, chunk_bounds, copy_from, reduce_from, send

    bounds = chunk_bounds(n, p)
    right, left = (rank + 1) % p, (rank - 1) % p
    for s in range(p - 1):
        yield Round.of(send(right, bounds, (rank - s) % p),
                       reduce_from(left, bounds, (rank - s - 1) % p))
    for s in range(p - 1):
        yield Round.of(send(right, bounds, (rank - s + 1) % p),
                       copy_from(left, bounds, (rank - s) % p))


def test_every_algorithm_allreduce_takes_is_taken_and_named():
    from minidl.distributed import ALGORITHMS
    from minidl.parallel.algorithm import check_algorithm

    for name in [*ALGORITHMS["allreduce"], "auto", "mpi"]:
        assert check_algorithm(name, "test") == name
    assert check_algorithm(_my_ring, "test") == "_my_ring"


@pytest.mark.parametrize("bad", ["butterfly", "Ring", None, 3])
def test_an_unknown_algorithm_is_refused_before_any_message(bad):
    from minidl import nn
    from minidl.parallel import DistributedDataParallel, allreduce_gradients

    told = (f"unknown all-reduce algorithm {bad!r}; "
            "expected one of naive, .*, auto, mpi, or a schedule function")
    with pytest.raises(ValueError, match=f"DistributedDataParallel: {told}"):
        DistributedDataParallel(nn.Linear(2, 2), algorithm=bad)
    with pytest.raises(ValueError, match=f"allreduce_gradients: {told}"):
        allreduce_gradients(nn.Linear(2, 2), algorithm=bad)


@pytest.mark.parametrize("p, n", [(2, 10), (3, 7), (4, 0), (5, 13)])
def test_bytes_sent_are_read_off_the_schedule_a_students_too(p, n):
    from minidl.distributed import schedule
    from minidl.parallel.observer import bytes_sent

    for rank in range(p):
        sends = [s for rnd in schedule(_my_ring, p, rank, n) for s in rnd.sends]
        assert bytes_sent(_my_ring, p, rank, n, 4) == 4 * sum(s.stop - s.start for s in sends)
        ring_estimate = 8 * (p - 1) * math.ceil(n / p)  # what MPI's own is counted as
        assert bytes_sent("mpi", p, rank, n, 4) == ring_estimate
        assert bytes_sent("auto", p, rank, n, 4) == ring_estimate
    # Every ring sends each element 2 (p - 1) times in all, whichever rank owns which chunk.
    for ring in ("ring", _my_ring):
        assert sum(bytes_sent(ring, p, r, n, 4) for r in range(p)) == 8 * (p - 1) * n
    assert bytes_sent(_my_ring, 1, 0, n, 4) == 0


def test_a_closed_ddp_refuses_to_run_rather_than_train_unaveraged():
    import minidl
    from minidl import nn
    from minidl.parallel import DistributedDataParallel

    ddp = DistributedDataParallel(nn.Linear(2, 2))  # one rank: no mpiexec needed
    ddp.close()
    with pytest.raises(RuntimeError, match="was closed.*ddp.module"):
        ddp(minidl.randn(3, 2))
