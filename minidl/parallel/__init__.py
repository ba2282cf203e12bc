"""Training strategies that meet models with messages.

- :func:`allreduce_gradients`: the explicit data-parallel step a student writes
  first, one all-reduce per parameter;
- :class:`DistributedDataParallel`: the same with flat gradient buckets and
  all-reduces overlapped with backward, as PyTorch structures it: the
  :class:`Reducer` (buckets, gradient hooks, all-reduces started in bucket
  order, averaging; in :mod:`minidl.parallel.reducer`) apart from the Module
  wrapper (checks, broadcast, ``no_sync``, ``close``); the step check, the
  waiting policy and the statistics stand beside the reducer;
- :class:`DistributedSampler`: each rank's shard of the data;
- :func:`broadcast_parameters`, :func:`parameters_hash`: keeping replicas identical;
- :class:`Pipeline`: an ``nn.Sequential`` cut into stages, one per rank,
  trained on micro-batches as a schedule says; the schedules are data
  (:func:`pipeline_schedule`, :func:`check_pipeline`, :func:`simulate_pipeline`,
  in :mod:`minidl.parallel.pipeline_schedules`);
- :class:`ColumnParallelLinear`, :class:`RowParallelLinear`: tensor
  parallelism, one layer's weight split over the ranks (Megatron-LM's f and g);
- :class:`ProcessGrid`: the ranks as a data × pipeline × tensor grid;
- :class:`ParameterServer`: server ranks hold the parameters, worker ranks
  pull and push, synchronously, stale-synchronously or asynchronously;
- :class:`Hogwild`: the ranks of one node update parameters in shared memory,
  unlocked (Hogwild!) or one at a time; :func:`shared_counter_race` shows
  the race on one shared number;
- :class:`Straggler`: one rank made slow on purpose, to watch the others.

Importing this package does not start MPI; the first collective does.
"""

from minidl.parallel.buckets import Bucket, assign_buckets
from minidl.parallel.ddp import DistributedDataParallel
from minidl.parallel.grid import ProcessGrid
from minidl.parallel.hogwild import Hogwild, HogwildStats, shared_counter_race
from minidl.parallel.naive import allreduce_gradients
from minidl.parallel.observer import CommStats
from minidl.parallel.parameter_server import ParameterServer, PSStats
from minidl.parallel.pipeline import Pipeline, PipelineStats
from minidl.parallel.pipeline_schedules import (
    SCHEDULES,
    Action,
    PipelineSimulation,
    StageSchedule,
    check_pipeline,
    pipeline_schedule,
    simulate_pipeline,
)
from minidl.parallel.reducer import Reducer
from minidl.parallel.replicas import broadcast_parameters, check_same_architecture, parameters_hash
from minidl.parallel.sampler import DistributedSampler
from minidl.parallel.straggler import Straggler
from minidl.parallel.tensor_parallel import (
    ColumnParallelLinear,
    RowParallelLinear,
    parallelize_linears,
)

__all__ = [
    "DistributedDataParallel", "DistributedSampler", "Reducer", "allreduce_gradients",
    "broadcast_parameters", "parameters_hash", "check_same_architecture", "assign_buckets",
    "Bucket", "CommStats", "Pipeline", "PipelineStats", "SCHEDULES", "Action",
    "PipelineSimulation", "StageSchedule", "check_pipeline", "pipeline_schedule",
    "simulate_pipeline", "ColumnParallelLinear", "RowParallelLinear", "ProcessGrid",
    "parallelize_linears", "ParameterServer", "PSStats", "Hogwild", "HogwildStats",
    "shared_counter_race", "Straggler",
]
