"""Parameter servers on real ranks: sync equals one process, SSP bounds staleness, async races."""

from pathlib import Path

import numpy as np
import pytest

from minidl import nn
from minidl.parallel import ParameterServer
from minidl.testing import MPIJobError, run_mpi

SCRIPTS = Path(__file__).parent / "mpi_scripts"


def servers_and_workers(results):
    return ([r for r in results if r["role"] == "server"],
            [r for r in results if r["role"] == "worker"])


@pytest.mark.mpi
@pytest.mark.parametrize("servers, workers, optimizer", [
    (1, 1, "sgd"), (1, 2, "sgd"), (1, 3, "sgd"), (2, 1, "sgd"), (2, 2, "sgd"), (2, 3, "sgd"),
    (1, 1, "adam"), (1, 3, "adam"), (2, 2, "adam"),
])
def test_sync_equals_one_process_on_the_union_of_the_batches(servers, workers, optimizer):
    results = run_mpi(SCRIPTS / "ps_cases.py", servers + workers,
                      args=[servers, "sync", 0, optimizer], timeout=60).results
    served, worked = servers_and_workers(results)
    assert len(served) == servers and len(worked) == workers
    for w in worked:
        for key, value in w["mine"].items():
            np.testing.assert_allclose(value, w["single"][key], rtol=1e-5, atol=1e-6,
                                       err_msg=key)
    for s in served:
        assert s["staleness"] == {0: 5 * workers} and s["applied"] == 5


@pytest.mark.mpi
def test_ssp_with_no_staleness_is_sync_bit_for_bit():
    sync = run_mpi(SCRIPTS / "ps_cases.py", 4, args=[2, "sync", 0, "sgd"], timeout=60).results
    ssp = run_mpi(SCRIPTS / "ps_cases.py", 4, args=[2, "ssp", 0, "sgd"], timeout=60).results
    for a, b in zip(sync, ssp):
        if a["role"] == "server":
            assert np.array_equal(a["shard"], b["shard"])
        else:
            assert all(np.array_equal(v, b["mine"][k]) for k, v in a["mine"].items())


@pytest.mark.mpi
def test_ssp_bounds_staleness_and_the_fast_worker_runs_ahead():
    # Worker 2 (rank 2) sleeps 50 ms a step; worker 1 may run 2 steps ahead of it.
    results = run_mpi(SCRIPTS / "ps_cases.py", 3, args=[1, "ssp", 2, "sgd", 2, 10],
                      timeout=60).results
    server = results[0]
    assert max(server["staleness"]) <= 2  # the bound, never exceeded
    assert sum(server["staleness"].values()) == 20 and server["applied"] == 10
    fast, slow = server["by_worker"][1], server["by_worker"][2]
    # SSP applies each step's pushes together, once every worker has pushed it: the fast
    # worker's gradients are the stale ones (it read up to 2 steps behind), the straggler's
    # never are (the step it reads is always complete when it gets there).
    assert max(fast) == 2 and slow == {0: 10}


@pytest.mark.mpi
def test_async_lets_the_fast_worker_race_and_the_straggler_is_the_stalest():
    results = run_mpi(SCRIPTS / "ps_cases.py", 3, args=[1, "async", 0, "sgd", 2, 10],
                      timeout=60).results
    server = results[0]
    arrivals = server["arrivals"]
    assert len(arrivals) == 20 and server["applied"] == 20  # every push applied on arrival
    # The fast worker (rank 1) is never held back: all its pushes arrive before the
    # straggler's half (a 50 ms sleep a step against a few milliseconds of work).
    fast = [i for i, w in enumerate(arrivals) if w == 1]
    slow = [i for i, w in enumerate(arrivals) if w == 2]
    assert fast[-1] < slow[4]
    assert max(server["by_worker"][2]) > max(server["by_worker"][1])


@pytest.mark.mpi
def test_a_worker_that_raises_ends_the_job():
    script = """
        from mpi4py import MPI
        from minidl import nn
        from minidl.parallel import ParameterServer

        ps = ParameterServer(nn.Linear(3, 2))
        if ps.is_server:
            ps.serve()
        else:
            ps.pull()
            raise RuntimeError("worker failed on purpose")
    """
    with pytest.raises(MPIJobError, match="worker failed on purpose"):
        run_mpi(script, 2, timeout=60)


@pytest.mark.mpi
def test_a_server_does_not_wait_for_a_worker_that_closed():
    # Worker 1 stops after 1 step, worker 2 goes on for 4: the steps after the first
    # complete with worker 2's pushes alone, and the server returns when both have closed.
    script = """
        import minidl
        import minidl.functional as F
        import numpy as np
        from mpi4py import MPI
        from minidl import nn
        from minidl.parallel import ParameterServer
        from minidl.testing import report

        net = nn.Linear(3, 2)
        ps = ParameterServer(net, mode="sync")
        if ps.is_server:
            ps.serve()
            report(ps.stats.applied)
        else:
            for _ in range(1 if MPI.COMM_WORLD.rank == 1 else 4):
                ps.pull()
                F.mse_loss(net(minidl.ones(2, 3)), np.zeros((2, 2), np.float32)).backward()
                ps.push()
            ps.close()
            report(ps.stats.pushes)
    """
    assert run_mpi(script, 3, timeout=60).results == [4, 1, 4]


@pytest.mark.mpi
def test_sync_applies_the_schedule_on_the_servers_clock_as_one_process_does():
    # 2 workers, 5 steps; the learning rate halves every 2 server updates (steps in sync),
    # as StepLR stepped after every step halves it in one process on the union of the batches.
    script = """
        import minidl
        import minidl.functional as F
        import numpy as np
        from mpi4py import MPI
        from minidl import nn, optim
        from minidl.parallel import ParameterServer
        from minidl.testing import report

        def model():
            minidl.manual_seed(0)
            return nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 3))

        rng = np.random.default_rng(1)
        batches = [(rng.standard_normal((8, 6)).astype(np.float32), rng.integers(0, 3, 8))
                   for _ in range(5)]
        alone = model()
        opt = optim.SGD(alone.parameters(), lr=0.2, momentum=0.9)
        schedule = optim.StepLR(opt, step_size=2, gamma=0.5)
        for x, y in batches:
            opt.zero_grad()
            F.cross_entropy(alone(minidl.tensor(x)), y).backward()
            opt.step()
            schedule.step()

        net = model()
        ps = ParameterServer(net, lr=0.2, momentum=0.9, lr_schedule=lambda t: 0.5 ** (t // 2))
        if ps.is_server:
            ps.serve()
            report(ps.stats.applied)
        else:
            mine = slice(4 * (ps.rank - 1), 4 * ps.rank)
            for x, y in batches:
                ps.pull()
                net.zero_grad()
                F.cross_entropy(net(minidl.tensor(x[mine])), y[mine]).backward()
                ps.push()
            ps.pull()
            ps.close()
            report(max(float(np.abs(a.data - b.data).max())
                       for a, b in zip(net.parameters(), alone.parameters())))
    """
    applied, *differences = run_mpi(script, 3, timeout=60).results
    assert applied == 5
    assert all(d <= 1e-6 for d in differences), differences


@pytest.mark.mpi
def test_ranks_with_different_schedules_are_refused():
    script = """
        from mpi4py import MPI
        from minidl import nn
        from minidl.parallel import ParameterServer

        rank = MPI.COMM_WORLD.rank
        ParameterServer(nn.Linear(3, 2), lr_schedule=lambda t: 1.0 if rank == 0 else 0.5)
    """
    with pytest.raises(MPIJobError, match="rank 1's lr_schedule gives"):
        run_mpi(script, 2, timeout=60)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"lr_schedule": "cosine"}, TypeError, "lr_schedule must be a function from the number of "
                                           "updates applied to a learning-rate factor, or None; "
                                           "got str"),
    ({"lr_schedule": lambda t: 1.0 - t / 10}, ValueError,
     r"lr_schedule\(100\) must be a finite number >= 0 \(the factor of lr for update 100\), "
     r"got -9.0"),
    ({"lr_schedule": lambda t: float("nan")}, ValueError, r"lr_schedule\(0\) must be a finite"),
])
def test_a_bad_schedule_is_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        ParameterServer(nn.Linear(2, 2), **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({}, r"servers must be an integer in \[1, 0\] on 1 ranks \(at least one rank must be a "
         r"worker\)"),
    ({"mode": "gossip"}, "mode must be one of sync, ssp, async, got 'gossip'"),
    ({"staleness": 2}, "staleness=2 bounds mode='ssp' only"),
    ({"mode": "ssp", "staleness": -1}, "staleness must be an integer >= 0"),
    ({"optimizer": "lamb"}, "optimizer must be one of sgd, adam"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ParameterServer(nn.Linear(2, 2), **kwargs)
