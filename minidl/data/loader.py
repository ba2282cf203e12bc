"""``DataLoader``: a dataset, a sampler and a batch size become an iterable of batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from minidl.autograd.tensor import Tensor
from minidl.data.batching import as_batch, collate
from minidl.data.dataset import TensorDataset
from minidl.data.sampler import BatchSampler, RandomSampler, SequentialSampler


class DataLoader:
    """Iterate over a dataset in batches: each batch is a tuple of Tensors, one per field.

    Parameters
    ----------
    dataset : Dataset
        Anything with ``__getitem__`` (and ``__len__``, unless a sampler is
        given), such as a :class:`TensorDataset`.
    batch_size : int, default 1
        Samples per batch.
    shuffle : bool, default False
        Visit the samples in a new random order every epoch (a
        :class:`RandomSampler`); otherwise in order.
    drop_last : bool, default False
        Skip the last batch of an epoch when it is smaller than
        ``batch_size``.
    sampler : iterable with a len, optional
        Decides which indices an epoch visits and in what order, instead of
        ``shuffle`` and ``seed``. Any object that can be iterated and has a
        ``len`` will do; a new pass is started every epoch, so a sampler
        with ``set_epoch`` works as expected.
    seed : int, optional
        Seed of the shuffling (see :class:`RandomSampler`): the order of each
        epoch then depends on the seed and the epoch number only. Without it
        the order is drawn from minidl's generator, which
        :func:`minidl.manual_seed` seeds.

    Attributes
    ----------
    sampler : iterable with a len
        The sampler in use; call ``loader.sampler.set_epoch(e)`` to resume a
        seeded shuffle at epoch ``e``.
    batch_sampler : BatchSampler
        Groups the sampler's indices into batches.

    Raises
    ------
    ValueError
        If ``batch_size`` is not a positive integer, or a sampler is given
        together with ``shuffle=True`` or a seed, or a seed without
        ``shuffle=True``.
    TypeError
        If ``dataset`` cannot be indexed or ``sampler`` is not an iterable
        with a length.

    Notes
    -----
    Floating data comes out as float32 Tensors, except float64 arrays,
    which stay float64; integers come out as int64 (see
    :func:`minidl.data.batching.batch_dtype`). A :class:`TensorDataset` gives
    each batch by indexing its arrays once with the batch's indices; other
    datasets are read sample by sample and stacked by :func:`collate`. Both
    give the same batches.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.data import DataLoader, TensorDataset
    >>> images = np.zeros((5, 1, 8, 8), dtype=np.float32)
    >>> labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    >>> loader = DataLoader(TensorDataset(images, labels), batch_size=2, shuffle=True, seed=0)
    >>> len(loader)
    3
    >>> for x, y in loader:
    ...     print(x.shape, x.dtype, y.dtype)
    (2, 1, 8, 8) float32 int64
    (2, 1, 8, 8) float32 int64
    (1, 1, 8, 8) float32 int64
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        sampler: Any = None,
        seed: int | None = None,
    ) -> None:
        if not hasattr(dataset, "__getitem__"):
            raise TypeError(
                f"DataLoader needs a dataset that can be indexed, got a {type(dataset).__name__}"
            )
        if sampler is not None:
            if shuffle:
                raise ValueError(
                    "DataLoader got a sampler and shuffle=True: the sampler decides the order, "
                    "so leave shuffle=False (or pass a RandomSampler)"
                )
            if seed is not None:
                raise ValueError(
                    "DataLoader's seed seeds its own shuffling; "
                    "with a sampler, seed the sampler instead"
                )
            if not (hasattr(sampler, "__iter__") and hasattr(sampler, "__len__")):
                raise TypeError(
                    f"a sampler must be iterable and have a len(), got a {type(sampler).__name__}"
                )
        elif shuffle:
            sampler = RandomSampler(dataset, seed=seed)
        elif seed is not None:
            raise ValueError(
                f"seed={seed} only seeds shuffling, and shuffle is False: "
                "pass shuffle=True or no seed"
            )
        else:
            sampler = SequentialSampler(dataset)
        self.dataset = dataset
        self.sampler = sampler
        self.batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_size = self.batch_sampler.batch_size
        self.drop_last = self.batch_sampler.drop_last
        # The fast path hands a whole array of indices to __getitem__. A
        # subclass that overrides __getitem__ (to augment data, say) may
        # expect one index, so it goes through collate like any dataset.
        self._index_whole_batches = (isinstance(dataset, TensorDataset)
                                     and type(dataset).__getitem__ is TensorDataset.__getitem__)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        for indices in self.batch_sampler:
            if self._index_whole_batches:
                arrays = tuple(as_batch(a) for a in self.dataset[indices])
            else:
                arrays = collate([self.dataset[i] for i in indices.tolist()])
            # Fresh arrays of supported dtypes: wrap them without another copy.
            yield tuple(Tensor._make(a, False) for a in arrays)
