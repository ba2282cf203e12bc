"""Hogwild! on shared memory and the Straggler helper, on real ranks."""

import pytest

from minidl import nn
from minidl.parallel import Hogwild, Straggler, shared_counter_race
from minidl.testing import MPIJobError, run_mpi

# MPICH's debugging switch that makes odd and even ranks of one machine two "nodes": MPI's
# own COMM_TYPE_SHARED split then separates them, as on two machines.
TWO_NODES = {"MPIR_CVAR_ODD_EVEN_CLIQUES": "1"}


@pytest.mark.mpi
def test_the_lock_loses_no_addition_to_a_shared_counter():
    script = """
        from mpi4py import MPI
        from minidl.parallel import shared_counter_race
        from minidl.testing import report

        report({"unlocked": shared_counter_race(3000), "locked": shared_counter_race(3000,
                                                                                   lock=True)})
    """
    results = run_mpi(script, 3, timeout=60).results
    print("unlocked counts (of 9000; the additions lost vary from run to run):",
          [r["unlocked"] for r in results])
    assert all(r["locked"] == 3 * 3000 for r in results)  # exact, on every rank
    assert len({r["unlocked"] for r in results}) == 1  # every rank reads the same count
    # Not even each rank's own 3000 are safe: a rank preempted between its read and its write
    # puts back a value from before all the additions the others made meanwhile.
    assert all(2 <= r["unlocked"] <= 9000 for r in results)


HOGWILD_STEPS = """
    import sys

    import numpy as np
    from mpi4py import MPI

    import minidl
    from minidl import nn, optim
    from minidl.parallel import Hogwild
    from minidl.testing import report

    comm = MPI.COMM_WORLD
    lock = sys.argv[1] == "lock"
    minidl.manual_seed(comm.rank)  # a different start on every rank: rank 0's must win
    net = nn.Linear(3, 2)
    for q in net.parameters():  # integers, so that every sum below is exact in float32
        q.data[...] = np.round(q.data * 8)
    start = comm.bcast({k: v.copy() for k, v in net.state_dict().items()})
    hogwild = Hogwild(net, lock=lock)
    began = {k: v.copy() for k, v in net.state_dict().items()}
    comm.Barrier()  # every rank has looked before any rank updates
    opt = optim.SGD(net.parameters(), lr=0.5)
    for _ in range(200):  # a loss linear in the parameters: its gradient is rank + 1 everywhere
        net.zero_grad()
        ((net.weight * (comm.rank + 1)).sum() + (net.bias * (comm.rank + 1)).sum()).backward()
        hogwild.step(opt)
    hogwild.close()
    net.weight.data += comm.rank  # private memory now: the other ranks do not see this
    report({"began": began, "start": start, "end": {k: v.copy() for k, v in
            net.state_dict().items()}, "updates": hogwild.stats.updates,
            "lock_seconds": hogwild.stats.lock_seconds})
"""


@pytest.mark.mpi
@pytest.mark.parametrize("lock", ["lock", "nolock"])
def test_every_rank_updates_the_same_parameters(lock):
    results = run_mpi(HOGWILD_STEPS, 2, args=[lock], timeout=60).results
    start = results[0]["start"]
    for r in results:  # every rank began from rank 0's (rounded) weights
        for k, v in start.items():
            assert (r["began"][k] == v).all()
        assert r["updates"] == 200
    # Every update subtracts 0.5 * (rank + 1) from every element: 200 * 0.5 * (1 + 2) = 300
    # in all when none is lost. After close, rank 1 alone added 1 to its own weight.
    expected = {k: v - 300.0 for k, v in start.items()}
    end0, end1 = results[0]["end"], results[1]["end"]
    assert (end1["weight"] - 1 == end0["weight"]).all() and (end1["bias"] == end0["bias"]).all()
    lost = (end0["weight"] - expected["weight"]).sum() + (end0["bias"] - expected["bias"]).sum()
    print(f"lock={lock}: {lost / 0.5:.0f} element updates lost of {8 * 300 * 2}")
    if lock == "lock":
        for k in expected:
            assert (end0[k] == expected[k]).all(), k
    else:
        assert all(r["lock_seconds"] == 0 for r in results)


@pytest.mark.mpi
def test_a_communicator_across_nodes_is_refused():
    script = """
        from mpi4py import MPI
        from minidl import nn
        from minidl.parallel import Hogwild

        Hogwild(nn.Linear(3, 2))
    """
    result = run_mpi(script, 2, env=TWO_NODES, timeout=60, check=False)
    assert result.returncode != 0
    assert ("Hogwild: comm has 2 ranks, but only 1 of them share memory with rank"
            in result.stderr), result.stderr
    assert "the ranks span several nodes" in result.stderr


@pytest.mark.mpi
def test_a_rank_that_raises_ends_the_job():
    script = """
        import minidl.functional as F
        import numpy as np
        from mpi4py import MPI
        import minidl
        from minidl import nn, optim
        from minidl.parallel import Hogwild

        net = nn.Linear(3, 2)
        hogwild = Hogwild(net)
        opt = optim.SGD(net.parameters(), lr=0.1)
        for step in range(1000):
            if MPI.COMM_WORLD.rank == 1 and step == 3:
                raise RuntimeError("rank 1 failed on purpose")
            net.zero_grad()
            F.mse_loss(net(minidl.ones(2, 3)), np.zeros((2, 2), np.float32)).backward()
            hogwild.step(opt)
        hogwild.close()  # rank 0 would wait here for ever, were the job not ended
    """
    with pytest.raises(MPIJobError, match="rank 1 failed on purpose"):
        run_mpi(script, 2, timeout=60)


@pytest.mark.mpi
def test_the_straggler_sleeps_on_its_rank_only():
    script = """
        from mpi4py import MPI
        from minidl.parallel import Straggler
        from minidl.testing import report

        straggler = Straggler(rank=1, seconds=0.01)
        for _ in range(3):
            straggler.step()
        report((straggler.is_straggler, straggler.steps, straggler.slept > 0, repr(straggler)))
    """
    results = run_mpi(script, 2, timeout=60).results
    assert results[0][:3] == (False, 0, False)
    assert results[1][:3] == (True, 3, True)
    assert results[1][3] == "<Straggler: rank 1 sleeps 0.01 s a step (this rank)>"


class _Empty(nn.Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize("make, kwargs, error, message", [
    (_Empty, {}, ValueError, "Hogwild: _Empty has no parameters to share"),
    (lambda: nn.Linear(2, 2), {"lock": "yes"}, TypeError,
     "Hogwild: lock must be True or False, got 'yes'"),
])
def test_bad_hogwild_arguments_are_named(make, kwargs, error, message):
    with pytest.raises(error, match=message):
        Hogwild(make(), **kwargs)


def test_integer_parameters_are_refused():
    net = nn.Linear(2, 2)
    for q in net.parameters():
        q.data = q.data.astype("int64")
    with pytest.raises(ValueError, match="Hogwild: every parameter must have one floating "
                                         "dtype, got int64"):
        Hogwild(net)


@pytest.mark.parametrize("args, message", [
    ((1, 0.1), r"Straggler: rank must be one of the 1 ranks of comm \(0 to 0\), got 1"),
    ((0, -1.0), "Straggler: seconds must be a finite number >= 0, got -1.0"),
    ((0, float("inf")), "Straggler: seconds must be a finite number >= 0, got inf"),
    ((True, 0.1), "Straggler: rank must be one of the 1 ranks of comm"),
])
def test_bad_straggler_arguments_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        Straggler(*args)


def test_bad_counter_arguments_are_named():
    with pytest.raises(ValueError, match="shared_counter_race: increments must be an integer "
                                         ">= 0, got -1"):
        shared_counter_race(-1)
