"""Tensor parallelism and hybrid grids on real ranks: each equals one process."""

from pathlib import Path

import numpy as np
import pytest

from minidl.parallel import ColumnParallelLinear, ProcessGrid, RowParallelLinear
from minidl.testing import run_mpi

SCRIPTS = Path(__file__).parent / "mpi_scripts"


@pytest.mark.mpi
@pytest.mark.parametrize("p", [2, 3])
@pytest.mark.parametrize("case", ["mlp", "gathered"])
def test_a_tensor_parallel_mlp_trains_as_one_process(p, case):
    # 7 hidden features: uneven on 2 and on 3 ranks.
    results = run_mpi(SCRIPTS / "tensor_parallel_equal.py", p, args=[case], timeout=60).results
    sizes = [r["shards"][0][0] for r in results]
    assert sum(sizes) == 7 and max(sizes) - min(sizes) == 1
    for rank, r in enumerate(results):
        np.testing.assert_allclose(r["losses"]["split"], r["losses"]["whole"], rtol=1e-5,
                                   err_msg=f"rank {rank}: losses")
        for (w, b), (w1, b1) in zip(r["after"], r["whole"]):
            np.testing.assert_allclose(w, w1, rtol=1e-5, atol=1e-6, err_msg=f"rank {rank}")
            np.testing.assert_allclose(b, b1, rtol=1e-5, atol=1e-6, err_msg=f"rank {rank}")


@pytest.mark.mpi
@pytest.mark.parametrize("p", [2, 3])
def test_to_linear_undoes_from_linear(p):
    results = run_mpi(SCRIPTS / "tensor_parallel_equal.py", p, args=["round_trip"],
                      timeout=60).results
    assert all(r["same"] == [True, True] for r in results)


@pytest.mark.mpi
@pytest.mark.parametrize("case", ["dp_pp", "pp_tp"])
def test_a_2_by_2_grid_trains_as_one_process(case):
    results = run_mpi(SCRIPTS / "grid_equal.py", 4, args=[case], timeout=90).results
    for rank, r in enumerate(results):
        for key, value in r["mine"].items():
            np.testing.assert_allclose(value, r["single"][key], rtol=1e-5, atol=1e-6,
                                       err_msg=f"{case}, rank {rank}: {key}")
        np.testing.assert_allclose(r["losses"], r["single_losses"], rtol=1e-5)
    keys = [sorted(r["mine"]) for r in results]
    # dp_pp: ranks 0 and 2 are stage 0's replicas; pp_tp: ranks 0 and 1 its tensor slices.
    twin = 2 if case == "dp_pp" else 1
    assert keys[0] == keys[twin] and keys[0] != keys[3]
    assert set(keys[0]) | set(keys[3]) == set(results[0]["single"])


def test_a_grid_whose_product_is_not_the_ranks_is_refused():
    with pytest.raises(ValueError, match=r"dp \* pp \* tp = 2 \* 1 \* 1 = 2, but the "
                                         r"communicator has 1 ranks"):
        ProcessGrid(dp=2)
    with pytest.raises(ValueError, match="tp must be an integer >= 1, got 0"):
        ProcessGrid(tp=0)


def test_a_one_rank_grid_and_tensor_parallel_layers_are_the_plain_ones():
    grid = ProcessGrid()
    assert (grid.dp_rank, grid.pp_rank, grid.tp_rank) == (0, 0, 0)
    assert grid.tp_comm.Get_size() == 1
    column = ColumnParallelLinear(3, 4)
    assert column.weight.shape == (4, 3)
    with pytest.raises(ValueError, match="in_features must be an integer >= 1, got 0"):
        RowParallelLinear(0, 4)
