"""Data parallelism on real ranks: DDP equals one process, and fails loudly, never hangs."""

import os
from pathlib import Path

import numpy as np
import pytest

from minidl.testing import MPIJobError, run_mpi

SCRIPTS = Path(__file__).parent / "mpi_scripts"
pytestmark = pytest.mark.mpi


def assert_states_close(a, b, rtol, atol=0.0):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=rtol, atol=atol, err_msg=key)


def assert_states_equal(a, b, what):
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), f"{what}: {key} differs"


@pytest.mark.parametrize("p", [2, 3, 4])
@pytest.mark.parametrize("dtype, rtol, atol", [("float64", 1e-10, 1e-13), ("float32", 1e-5, 1e-6)])
@pytest.mark.parametrize("model", ["mlp", "lenet"])
def test_ddp_equals_one_process_with_the_whole_batch(p, dtype, rtol, atol, model):
    result = run_mpi(
        SCRIPTS / "ddp_equivalence.py", p, args=["ring", "1", "overlap", dtype, model], timeout=90
    )
    first = result.results[0]
    for rank, r in enumerate(result.results):
        assert r["hashes"] == first["hashes"], f"rank {rank}'s replica drifted from rank 0's"
        assert_states_close(r["ddp"], r["single"], rtol=rtol, atol=atol)
    assert first["stats"]["steps"] == 4 and first["stats"]["bytes_sent"] > 0


@pytest.mark.parametrize(
    "p, algorithm", [(2, "ring"), (3, "recursive_doubling"), (4, "rabenseifner")]
)
def test_bucket_caps_overlap_no_sync_and_the_explicit_version(p, algorithm):
    results = run_mpi(SCRIPTS / "ddp_variants.py", p, args=[algorithm], timeout=120).results
    mine = results[0]
    configs = [k for k in mine if k.startswith("cap=")]
    # Bitwise identical, whatever the buckets and overlap. (A tree-shaped sum adds
    # every element in the same order; the ring's order depends on where an
    # element falls in its chunk, so with p > 2 it is compared on trees only.)
    for k in configs:
        assert_states_equal(mine[k]["state"], mine[configs[0]]["state"], k)
    assert "cap=0.0 overlap=True chatty" in configs
    assert all(not r[k]["wrong"] for r in results for k in configs), (
        "a collective beside DDP's went wrong"
    )
    assert mine["cap=0.0 overlap=True"]["buckets"] == 8  # lenet(8): one per parameter
    assert mine["cap=inf overlap=True"]["buckets"] == 1
    # Replicas that start from different seeds are identical after construction.
    assert len({r[k]["initial_hash"] for r in results for k in configs}) == 1
    for r in results[1:]:
        assert_states_equal(r[configs[0]]["state"], mine[configs[0]]["state"], "across ranks")
    assert_states_close(
        mine["allreduce_gradients"]["state"], mine[configs[0]]["state"], rtol=1e-12, atol=1e-15
    )
    # no_sync: gradients stay local until the synchronised step...
    for a, b in zip(results[0]["no_sync"]["unsynced"], results[1]["no_sync"]["unsynced"]):
        assert not np.array_equal(a, b)
    # ...which then equals one step with k times the batch.
    assert_states_close(
        mine["no_sync"]["state"], mine["big_batch"]["state"], rtol=1e-10, atol=1e-13
    )


def test_a_model_that_differs_across_ranks_is_named():
    result = run_mpi(
        SCRIPTS / "ddp_failures.py", 3, args=["different_model"], timeout=60, check=False
    )
    assert result.returncode != 0
    assert "the model differs between ranks: rank 1 vs rank 0" in result.stderr
    assert "'1.weight' of shape (100, 64)" in result.stderr


@pytest.mark.parametrize("overlap", ["overlap", "no-overlap"])
def test_a_rank_that_skips_a_step_fails_instead_of_hanging(overlap):
    # Its step counts fall one behind, equal until the end: the others' last pass waits for it
    # in the step check, and the watchdog ends the job (nothing collective runs at exit).
    result = run_mpi(SCRIPTS / "ddp_failures.py", 2, args=["skipped_step", overlap], timeout=60,
                     check=False, env={"MINIDL_TIMEOUT": "3"})
    assert result.returncode == 3, result.stderr
    assert "timed out" in result.stderr
    assert "DistributedDataParallel's step check at step 2" in result.stderr


@pytest.mark.parametrize("overlap", ["overlap", "no-overlap"])
def test_ranks_out_of_step_at_close_are_named(overlap):
    result = run_mpi(SCRIPTS / "ddp_failures.py", 2, args=["skipped_step_then_close", overlap],
                     timeout=60, check=False)
    assert result.returncode != 0
    assert "ranks are at different steps (rank 0: at step 2, rank 1: finished after step 2)" \
        in result.stderr


def test_an_exception_on_one_rank_ends_the_job():
    with pytest.raises(MPIJobError, match="rank 2 failed on purpose"):
        run_mpi(SCRIPTS / "ddp_failures.py", 3, args=["raise_on_one_rank"], timeout=60)


def test_unknown_algorithm_is_named():
    result = run_mpi(
        SCRIPTS / "ddp_failures.py", 1, args=["unknown_algorithm"], timeout=60, check=False
    )
    assert result.returncode != 0
    assert "unknown all-reduce algorithm 'butterfly'" in result.stderr
    assert "or a schedule function fn(p, rank, n)" in result.stderr


def test_ranks_that_pass_different_schedule_functions_are_told():
    result = run_mpi(
        SCRIPTS / "ddp_failures.py", 2, args=["different_schedule"], timeout=60, check=False
    )
    assert result.returncode != 0
    assert "rank 1 uses algorithm 'my_tree', overlap=True" in result.stderr
    assert "rank 0 'my_ring'" in result.stderr


@pytest.mark.parametrize("p", [2, 3])
def test_ddp_with_a_schedule_a_student_wrote_equals_one_process(p):
    results = run_mpi(SCRIPTS / "ddp_student_schedule.py", p, args=["ddp"], timeout=90).results
    first = results[0]
    assert first["buckets"] > 1 and "algorithm='my_ring'" in first["repr"]
    for rank, r in enumerate(results):
        assert r["hashes"] == first["hashes"], f"rank {rank}'s replica drifted from rank 0's"
        assert_states_close(r["mine"], r["single"], rtol=1e-10, atol=1e-13)
        assert r["stats"]["steps"] == 4
        # Counted from the student's schedule.
        assert r["stats"]["bytes_sent"] == r["expected_bytes"] > 0


@pytest.mark.parametrize("p", [2, 3])
def test_allreduce_gradients_with_a_schedule_a_student_wrote_equals_one_process(p):
    job = run_mpi(SCRIPTS / "ddp_student_schedule.py", p, args=["allreduce_gradients"], timeout=90)
    results = job.results
    for rank, r in enumerate(results):
        assert r["hashes"] == results[0]["hashes"], f"rank {rank}'s replica drifted from rank 0's"
        assert_states_close(r["mine"], r["single"], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("p, overlap", [(2, "overlap"), (3, "overlap"), (3, "no-overlap")])
def test_the_reducer_on_its_own_averages_in_bucket_order(p, overlap):
    results = run_mpi(SCRIPTS / "ddp_reducer.py", p, args=[overlap], timeout=60).results
    n = results[0]["buckets"]
    assert n > 2
    for r in results:
        assert r["views"]
        assert_states_close(r["averaged"], r["expected"], rtol=1e-12, atol=1e-15)
        events = r["events"]
        # Every bucket started in order, each done before the next starts (one in flight), all
        # inside the one wait at backward's end or before it, which closes the pass.
        started = [e[1] for e in events if e[0] == "started"]
        done = [e[1] for e in events if e[0] == "done"]
        assert started == done == list(range(n))
        pairs = [e for e in events if e[0] in ("started", "done")]
        assert pairs == [(kind, k) for k in range(n) for kind in ("started", "done")]
        assert events[-1] == ("waited", "all-reduces")
        assert [e for e in events if e[0] == "waiting"][0] == ("waiting", "all-reduces", None)
        # Blocking all-reduces wait for their peers first: with overlap the last bucket's, else all.
        blocking = [e[2] for e in events if e[:2] == ("waiting", "peers")]
        assert blocking == ([n - 1] if overlap == "overlap" else list(range(n)))
        # A pass with syncing off reports nothing and leaves the gradients local.
        assert r["unsynced_events"] == []
    unsynced = [r["unsynced"]["0.weight"] for r in results]
    assert not np.array_equal(unsynced[0], unsynced[1])


def test_ranks_that_disagree_on_overlap_are_told():
    result = run_mpi(
        SCRIPTS / "ddp_failures.py", 2, args=["different_overlap"], timeout=60, check=False
    )
    assert result.returncode != 0
    assert "rank 1 uses algorithm 'ring', overlap=False" in result.stderr


def test_a_backward_that_failed_half_way_is_not_carried_on_from():
    result = run_mpi(
        SCRIPTS / "ddp_failures.py",
        2,
        args=["forward_after_a_failed_backward"],
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "the last backward pass stopped half-way" in result.stderr


def test_close_unhooks_the_model():
    result = run_mpi(
        SCRIPTS / "ddp_failures.py", 2, args=["close_unhooks"], timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("p", [1, 2, 3])
def test_ranks_have_own_cores_counts_the_ranks_on_this_machine_against_its_cores(p):
    code = """
        import os
        from mpi4py import MPI
        from minidl.parallel.comm import ranks_have_own_cores
        from minidl.testing import report
        report(ranks_have_own_cores(MPI.COMM_WORLD))
    """
    results = run_mpi(code, p, timeout=60).results
    cores = len(os.sched_getaffinity(0))
    assert results == [p <= cores] * p
