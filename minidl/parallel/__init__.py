"""Training strategies that meet models with messages.

- :func:`allreduce_gradients`: the explicit data-parallel step a student writes
  first, one all-reduce per parameter;
- :class:`DistributedDataParallel`: the same with flat gradient buckets and
  all-reduces overlapped with backward;
- :class:`DistributedSampler`: each rank's shard of the data;
- :func:`broadcast_parameters`, :func:`parameters_hash`: keeping replicas identical.

Importing this package does not start MPI; the first collective does.
"""

from minidl.parallel.buckets import Bucket, assign_buckets
from minidl.parallel.ddp import CommStats, DistributedDataParallel
from minidl.parallel.naive import allreduce_gradients
from minidl.parallel.replicas import broadcast_parameters, check_same_architecture, parameters_hash
from minidl.parallel.sampler import DistributedSampler

__all__ = [
    "DistributedDataParallel", "DistributedSampler", "allreduce_gradients", "broadcast_parameters",
    "parameters_hash", "check_same_architecture", "assign_buckets", "Bucket", "CommStats",
]
