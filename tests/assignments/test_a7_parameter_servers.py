"""Assignment 7, parameter servers: SSP's staleness bound.

Handout: docs/assignments/parameter_servers.rst. Graded on real ranks under
``mpiexec`` (through :func:`minidl.testing.run_mpi`, with a timeout): one
server and two workers, the second a straggler that sleeps before each push,
train in ``"sync"`` mode and in ``"ssp"`` mode with staleness 0, 1 and 2,
all in one job. The server's own count of the staleness of every gradient
it applied (:attr:`~minidl.parallel.parameter_server.PSStats.staleness`)
must never exceed ``s``; with ``s = 0`` SSP must be sync bit for bit; and
with ``s > 0`` the fast worker must run ahead of the straggler, or SSP is
only sync under another name.
"""

from __future__ import annotations

import numpy as np
import pytest

from minidl.testing import run_mpi

TIMEOUT = 90
STEPS = 8

MPI_SCRIPT = """
import sys
import time
import numpy as np
from mpi4py import MPI
import minidl
import minidl.functional as F
from minidl import nn
from minidl.parallel import ParameterServer
from minidl.testing import report

steps, straggler = int(sys.argv[1]), 2  # rank 2, the second worker, sleeps before each push
rng = np.random.default_rng(0)
batches = [(rng.standard_normal((8, 6)).astype(np.float32), rng.integers(0, 3, 8))
           for _ in range(steps)]
runs = {}
for mode, s in (("sync", 0), ("ssp", 0), ("ssp", 1), ("ssp", 2)):
    minidl.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 3))
    ps = ParameterServer(net, servers=1, mode=mode, staleness=s, lr=0.1)
    if ps.is_server:
        ps.serve()
        runs[f"{mode} {s}"] = {"staleness": ps.stats.staleness, "applied": ps.stats.applied,
                               "by_worker": ps.stats.staleness_by_worker,
                               "params": ps.parameters().copy()}
    else:
        rows = slice(4 * (ps.rank - 1), 4 * ps.rank)  # this worker's half of each batch
        for x, y in batches:
            ps.pull()
            net.zero_grad()
            F.cross_entropy(net(minidl.tensor(x[rows])), y[rows]).backward()
            if ps.rank == straggler:
                time.sleep(0.02)
            ps.push()
        ps.pull()
        ps.close()
        runs[f"{mode} {s}"] = {"params": np.concatenate([q.data.ravel()
                                                         for q in net.parameters()])}
report(runs)
"""


@pytest.fixture(scope="module")
def runs():
    """Per rank (0 the server, 1 the fast worker, 2 the straggler): ``{"MODE S": what it saw}``."""
    return run_mpi(MPI_SCRIPT, 3, args=[STEPS], timeout=TIMEOUT).results


@pytest.mark.a7_ssp_staleness_bound
@pytest.mark.parametrize("s", [0, 1, 2])
def test_no_applied_gradient_is_staler_than_the_bound(runs, s):
    server = runs[0][f"ssp {s}"]
    assert server["applied"] == STEPS and sum(server["staleness"].values()) == 2 * STEPS
    assert max(server["staleness"]) <= s, (
        f"staleness={s}: the server applied gradients this stale: {server['staleness']} "
        "({staleness: count}); a worker ran more than s steps ahead of the slowest")


@pytest.mark.a7_ssp_staleness_bound
def test_ssp_with_staleness_zero_is_sync_bit_for_bit(runs):
    for rank, per_rank in enumerate(runs):
        assert np.array_equal(per_rank["ssp 0"]["params"], per_rank["sync 0"]["params"]), (
            f"rank {rank}: parameters after SSP with s = 0 differ from sync's")
    assert runs[0]["ssp 0"]["staleness"] == {0: 2 * STEPS}


@pytest.mark.a7_ssp_staleness_bound
@pytest.mark.parametrize("s", [1, 2])
def test_the_fast_worker_runs_ahead_of_the_straggler(runs, s):
    fast = runs[0][f"ssp {s}"]["by_worker"][1]
    assert max(fast) >= 1, (
        f"staleness={s}: the fast worker's gradients were never stale ({fast}): it waited for "
        "the straggler every step, as sync does, instead of running up to s steps ahead")
