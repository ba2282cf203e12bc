"""``DistributedSampler``: each rank's disjoint shard of a data set, as in PyTorch."""

from __future__ import annotations

import math
from typing import Iterator, Sized

import numpy as np

from minidl.distributed.world import world


class DistributedSampler:
    """Split the indices of a data set into one disjoint shard per rank.

    Every epoch all ranks draw the *same* permutation (from the seed and the
    epoch), then rank ``r`` of ``p`` takes positions ``r, r + p, r + 2p, ...``.
    So the shards never overlap and together cover the data set. When the
    length does not divide by ``p``, the permutation is padded with its own
    first indices so every rank gets the same number of samples (a few samples
    then count twice in that epoch), unless ``drop_last`` drops the tail
    instead. Both rules are PyTorch's.

    Parameters
    ----------
    dataset : sized
        The data set (only its length is used).
    num_replicas : int, optional
        Number of ranks; the size of ``MPI.COMM_WORLD`` when None.
    rank : int, optional
        This rank; its rank in ``MPI.COMM_WORLD`` when None.
    shuffle : bool, default True
        Permute each epoch; otherwise shard ``0, 1, 2, ...`` in order.
    seed : int, default 0
        Must be the same on every rank.
    drop_last : bool, default False
        Drop the tail that does not divide by ``num_replicas`` instead of padding.

    Examples
    --------
    >>> from minidl.parallel import DistributedSampler
    >>> [list(DistributedSampler(range(10), num_replicas=3, rank=r, shuffle=False))
    ...  for r in range(3)]
    [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]
    """

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if num_replicas is None or rank is None:
            comm = world()
            num_replicas = comm.Get_size() if num_replicas is None else num_replicas
            rank = comm.Get_rank() if rank is None else rank
        if num_replicas < 1:
            raise ValueError(f"num_replicas must be at least 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(
                f"rank {rank} is out of range for {num_replicas} replicas (0 to {num_replicas - 1})"
            )
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0
        n = len(dataset)
        if drop_last:
            self.num_samples = n // num_replicas
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s permutation; call it with the same epoch on every rank."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch, as an array."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(n)
        else:
            order = np.arange(n)
        if self.drop_last:
            order = order[: self.total_size]
        elif self.total_size > n:
            order = np.concatenate([order, np.resize(order, self.total_size - n)])
        return order[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (
            f"DistributedSampler(rank={self.rank}, num_replicas={self.num_replicas}, "
            f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, "
            f"epoch={self.epoch})"
        )
