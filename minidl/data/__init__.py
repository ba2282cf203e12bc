"""Data: datasets, the loader that batches them, samplers, and data sets to learn on.

- :class:`Dataset` is the interface (``len`` and ``[i]``);
  :class:`TensorDataset` holds arrays in memory.
- :class:`DataLoader` turns a dataset into batches of Tensors, in the order a
  sampler gives (:class:`SequentialSampler`, :class:`RandomSampler`, or any
  iterable with a ``len``); :func:`collate` stacks samples into a batch.
- :func:`load_digits` gives the bundled 8×8 handwritten digits,
  :func:`load_mnist` reads MNIST or Fashion-MNIST from files you downloaded,
  and :func:`make_spirals` and :func:`make_blobs` make small 2-D sets.

>>> from minidl.data import DataLoader, load_digits
>>> train, test = load_digits()
>>> images, labels = next(iter(DataLoader(train, batch_size=32, shuffle=True, seed=0)))
>>> images.shape, labels.shape
((32, 1, 8, 8), (32,))
"""

from minidl.data.batching import collate
from minidl.data.dataset import Dataset, TensorDataset
from minidl.data.digits import load_digits
from minidl.data.loader import DataLoader
from minidl.data.mnist import load_mnist
from minidl.data.sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler
from minidl.data.synthetic import make_blobs, make_spirals

__all__ = [
    "Dataset", "TensorDataset", "DataLoader", "Sampler", "SequentialSampler", "RandomSampler",
    "BatchSampler", "collate", "load_digits", "load_mnist", "make_spirals", "make_blobs",
]
