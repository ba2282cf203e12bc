"""Samplers: the order in which a DataLoader visits a dataset.

A sampler is anything that can be iterated (one pass is one epoch, yielding
dataset indices) and has a ``len`` (how many indices a pass yields). The
loader starts a new pass at every epoch, so a sampler may change between
epochs, for example through a ``set_epoch(e)`` method; a distributed sampler,
which gives each rank its own share of the indices, is one more sampler of
this kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized

import numpy as np

from minidl.random import generator


class Sampler:
    """Base class of samplers: iterating yields indices; ``len`` says how many.

    Subclasses define ``__iter__`` and ``__len__``. A DataLoader accepts any
    object with both, subclass of this or not.
    """

    def __iter__(self) -> Iterator[int]:
        raise TypeError(f"{type(self).__name__} does not define __iter__()")

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__} does not define __len__()")


class SequentialSampler(Sampler):
    """Visit ``0, 1, ..., len(data_source) - 1`` in order, every epoch.

    Parameters
    ----------
    data_source : sized
        The dataset (only its length is used).

    Examples
    --------
    >>> from minidl.data import SequentialSampler
    >>> list(SequentialSampler(range(4)))
    [0, 1, 2, 3]
    """

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """Visit every index once per epoch, in a new random order each epoch.

    Parameters
    ----------
    data_source : sized
        The dataset (only its length is used).
    seed : int, optional
        Without a seed, each epoch's order is drawn from minidl's generator
        (:func:`minidl.random.generator`), so :func:`minidl.manual_seed`
        makes it repeatable, and saving that generator's state in a
        checkpoint lets a resumed run shuffle as the original did. With a
        seed, the order of epoch ``e`` depends on ``(seed, e)`` alone, not
        on any other random numbers the program draws.

    Attributes
    ----------
    epoch : int
        The epoch the next pass will be. It starts at 0 and goes up by one at
        every pass; :meth:`set_epoch` sets it.

    Examples
    --------
    >>> from minidl.data import RandomSampler
    >>> sampler = RandomSampler(range(5), seed=0)
    >>> first, second = list(sampler), list(sampler)
    >>> sorted(first) == sorted(second) == [0, 1, 2, 3, 4]
    True
    >>> sampler.set_epoch(0)
    >>> list(sampler) == first
    True
    """

    def __init__(self, data_source: Sized, seed: int | None = None) -> None:
        if seed is not None:
            _check_int("seed", seed, minimum=0)
        self.data_source = data_source
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch``: with a seed, it then repeats that epoch's order.

        Parameters
        ----------
        epoch : int
            The number of the next epoch, from 0. Set it when resuming
            after a checkpoint taken at the end of epoch ``epoch - 1``, or at
            the top of every epoch to follow the training loop's own counter
            (as a distributed sampler needs).
        """
        _check_int("epoch", epoch, minimum=0)
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        if self.seed is None:
            rng = generator()
        else:
            # One fresh generator per (seed, epoch): any epoch's order can be
            # recomputed without replaying the epochs before it.
            rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        return iter(rng.permutation(len(self.data_source)).tolist())

    def __len__(self) -> int:
        return len(self.data_source)


class BatchSampler(Sampler):
    """Group the indices of one pass of ``sampler`` into batches.

    Parameters
    ----------
    sampler : iterable with a len
        Yields the indices of one epoch.
    batch_size : int
        Indices per batch, at least 1.
    drop_last : bool, default False
        Drop the last batch when it is smaller than ``batch_size``.

    Raises
    ------
    ValueError
        If ``batch_size`` is not a positive integer.

    Notes
    -----
    Batches are NumPy arrays of int64 indices (PyTorch's are lists), so that
    a dataset of arrays can take a whole batch with one fancy index.

    Examples
    --------
    >>> from minidl.data import BatchSampler, SequentialSampler
    >>> [b.tolist() for b in BatchSampler(SequentialSampler(range(5)), batch_size=2)]
    [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool = False) -> None:
        _check_int("batch_size", batch_size, minimum=1)
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)

    def __iter__(self) -> Iterator[np.ndarray]:
        indices = np.fromiter(self.sampler, dtype=np.int64)
        stop = len(indices) - len(indices) % self.batch_size if self.drop_last else len(indices)
        for start in range(0, stop, self.batch_size):
            yield indices[start:start + self.batch_size]

    def __len__(self) -> int:
        n = len(self.sampler)
        if self.drop_last:
            return n // self.batch_size
        return (n + self.batch_size - 1) // self.batch_size


def _check_int(name: str, value: object, minimum: int) -> None:
    """Raise a ValueError unless ``value`` is an integer >= ``minimum`` (bools are not
    integers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
