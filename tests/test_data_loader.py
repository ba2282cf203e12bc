"""Datasets, samplers and the DataLoader: order, coverage, dtypes, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest

import minidl
from minidl import Tensor
from minidl.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
    collate,
)


def make_dataset(n: int = 10) -> TensorDataset:
    """Rows that say which sample they are: x[i] = (i, 100 + i), y[i] = i."""
    x = np.stack([np.arange(n), 100 + np.arange(n)], axis=1).astype(np.float32)
    return TensorDataset(x, np.arange(n))


def epoch_order(loader: DataLoader) -> list[int]:
    """The sample indices one pass of the loader visits, read back from the labels."""
    return [i for _, y in loader for i in y.data.tolist()]


class RowDataset(Dataset):
    """A plain Dataset over the same arrays: the loader has to read it sample by sample."""

    def __init__(self, *arrays: np.ndarray) -> None:
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: int) -> tuple:
        return tuple(a[index] for a in self.arrays)


# ----------------------------------------------------------------- datasets
def test_dataset_base_class_names_what_is_missing():
    with pytest.raises(TypeError, match="does not define __len__"):
        len(Dataset())
    with pytest.raises(TypeError, match="does not define __getitem__"):
        Dataset()[0]


def test_tensor_dataset_indexes_every_array_and_shares_memory():
    x = np.arange(12.0).reshape(4, 3)
    labels = minidl.tensor(np.array([3, 1, 2, 0]))
    data = TensorDataset(x, labels)
    assert len(data) == 4
    row, label = data[2]
    np.testing.assert_array_equal(row, [6.0, 7.0, 8.0])
    assert label == 2
    assert data.arrays[0] is x and data.arrays[1] is labels.data


def test_tensor_dataset_converts_lists_like_minidl_tensor():
    data = TensorDataset([[0.5, 1.5], [2.5, 3.5]], [1, 0])
    assert data.arrays[0].dtype == np.float32
    assert data.arrays[1].dtype == np.int64


def test_tensor_dataset_rejects_mismatched_lengths_naming_the_shapes():
    with pytest.raises(ValueError, match=r"\(5, 2\), \(4,\)"):
        TensorDataset(np.zeros((5, 2)), np.zeros(4))


def test_tensor_dataset_rejects_no_arrays_scalars_and_strings():
    with pytest.raises(ValueError, match="at least one array"):
        TensorDataset()
    with pytest.raises(ValueError, match="scalar"):
        TensorDataset(np.zeros(3), np.float32(1.0))
    with pytest.raises(TypeError, match="<U1"):
        TensorDataset(np.array(["a", "b"]))


# ----------------------------------------------------------------- samplers
def test_sequential_sampler_visits_in_order():
    sampler = SequentialSampler(range(5))
    assert list(sampler) == list(sampler) == [0, 1, 2, 3, 4]
    assert len(sampler) == 5


def test_random_sampler_gives_a_new_permutation_each_epoch():
    sampler = RandomSampler(range(50), seed=3)
    epochs = [list(sampler) for _ in range(4)]
    for order in epochs:
        assert sorted(order) == list(range(50))
    assert len({tuple(order) for order in epochs}) == 4
    assert sampler.epoch == 4


def test_random_sampler_with_a_seed_repeats_its_sequence_of_epochs():
    first = RandomSampler(range(30), seed=7)
    second = RandomSampler(range(30), seed=7)
    assert [list(first) for _ in range(3)] == [list(second) for _ in range(3)]
    assert list(RandomSampler(range(30), seed=8)) != list(RandomSampler(range(30), seed=7))


def test_random_sampler_set_epoch_replays_that_epoch():
    sampler = RandomSampler(range(30), seed=1)
    epochs = [list(sampler) for _ in range(3)]
    resumed = RandomSampler(range(30), seed=1)
    resumed.set_epoch(2)
    assert list(resumed) == epochs[2]
    assert resumed.epoch == 3


def test_random_sampler_with_a_seed_ignores_minidl_generator():
    minidl.manual_seed(0)
    first = list(RandomSampler(range(30), seed=5))
    minidl.manual_seed(1)
    minidl.randn(10)
    assert list(RandomSampler(range(30), seed=5)) == first


def test_random_sampler_without_a_seed_follows_manual_seed():
    sampler = RandomSampler(range(30))
    minidl.manual_seed(4)
    first = [list(sampler) for _ in range(2)]
    minidl.manual_seed(4)
    assert [list(sampler) for _ in range(2)] == first
    assert first[0] != first[1]


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_random_sampler_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        RandomSampler(range(3), seed=seed)


def test_random_sampler_rejects_a_negative_epoch():
    with pytest.raises(ValueError, match="epoch must be an integer >= 0"):
        RandomSampler(range(3), seed=0).set_epoch(-1)


@pytest.mark.parametrize("drop_last, expected", [
    (False, [[4, 0, 3], [1, 2, 6], [5]]),
    (True, [[4, 0, 3], [1, 2, 6]]),
])
def test_batch_sampler_groups_any_sampler(drop_last, expected):
    # A list is iterable and has a len: it is a sampler too.
    batches = BatchSampler([4, 0, 3, 1, 2, 6, 5], batch_size=3, drop_last=drop_last)
    assert [b.tolist() for b in batches] == expected
    assert len(batches) == len(expected)
    assert all(b.dtype == np.int64 for b in batches)


# --------------------------------------------------------------- DataLoader
@pytest.mark.parametrize("n", [1, 7, 10])
@pytest.mark.parametrize("batch_size", [1, 3, 10, 12])
@pytest.mark.parametrize("drop_last", [False, True])
def test_loader_batch_sizes_and_len(n, batch_size, drop_last):
    loader = DataLoader(make_dataset(n), batch_size=batch_size, drop_last=drop_last)
    sizes = [len(y) for _, y in loader]
    full, rest = divmod(n, batch_size)
    expected = [batch_size] * full + ([rest] if rest and not drop_last else [])
    assert sizes == expected
    assert len(loader) == len(expected)


def test_loader_without_shuffle_visits_in_order():
    assert epoch_order(DataLoader(make_dataset(10), batch_size=4)) == list(range(10))


def test_loader_yields_tuples_of_tensors_matching_the_dataset():
    data = make_dataset(10)
    for x, y in DataLoader(data, batch_size=4, shuffle=True, seed=0):
        assert isinstance(x, Tensor) and isinstance(y, Tensor)
        assert not x.requires_grad
        np.testing.assert_array_equal(x.data, data.arrays[0][y.data])


def test_shuffled_loader_covers_every_index_once_per_epoch():
    loader = DataLoader(make_dataset(23), batch_size=5, shuffle=True, seed=0)
    orders = [epoch_order(loader) for _ in range(5)]
    for order in orders:
        assert sorted(order) == list(range(23))
    assert len({tuple(order) for order in orders}) == 5


def test_drop_last_gives_full_distinct_batches():
    loader = DataLoader(make_dataset(23), batch_size=5, shuffle=True, drop_last=True, seed=0)
    for _ in range(3):
        batches = [y.data.tolist() for _, y in loader]
        assert len(batches) == len(loader) == 4
        assert all(len(b) == 5 for b in batches)
        seen = [i for b in batches for i in b]
        assert len(set(seen)) == 20


def test_loader_with_a_seed_repeats_the_same_epochs():
    first = DataLoader(make_dataset(40), batch_size=8, shuffle=True, seed=11)
    second = DataLoader(make_dataset(40), batch_size=8, shuffle=True, seed=11)
    assert [epoch_order(first) for _ in range(3)] == [epoch_order(second) for _ in range(3)]
    other = DataLoader(make_dataset(40), batch_size=8, shuffle=True, seed=12)
    assert epoch_order(other) != epoch_order(DataLoader(make_dataset(40), shuffle=True, seed=11))


def test_loader_without_a_seed_follows_manual_seed():
    loader = DataLoader(make_dataset(40), batch_size=8, shuffle=True)
    minidl.manual_seed(5)
    first = [epoch_order(loader) for _ in range(2)]
    minidl.manual_seed(5)
    assert [epoch_order(loader) for _ in range(2)] == first
    assert first[0] != first[1]


def test_loader_resumes_a_seeded_shuffle_with_set_epoch():
    loader = DataLoader(make_dataset(40), batch_size=8, shuffle=True, seed=2)
    epochs = [epoch_order(loader) for _ in range(4)]
    resumed = DataLoader(make_dataset(40), batch_size=8, shuffle=True, seed=2)
    resumed.sampler.set_epoch(2)
    assert [epoch_order(resumed) for _ in range(2)] == epochs[2:]


def test_loader_starts_a_new_pass_of_any_sampler_every_epoch():
    class ShiftingSampler:
        """Not a minidl Sampler: only __iter__, __len__ and set_epoch, as a distributed sampler
        has."""

        def __init__(self, n: int) -> None:
            self.n, self.epoch = n, 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            return iter([(i + self.epoch) % self.n for i in range(self.n)])

        def __len__(self) -> int:
            return self.n

    sampler = ShiftingSampler(6)
    loader = DataLoader(make_dataset(6), batch_size=4, sampler=sampler)
    assert len(loader) == 2
    for epoch in range(3):
        sampler.set_epoch(epoch)
        assert epoch_order(loader) == [(i + epoch) % 6 for i in range(6)]


@pytest.mark.parametrize("dtype, expected", [
    (np.float32, np.float32), (np.float16, np.float32), (np.float64, np.float64),
    (np.uint8, np.int64), (np.int32, np.int64), (np.int64, np.int64), (np.bool_, np.bool_),
])
def test_loader_dtypes(dtype, expected):
    data = TensorDataset(np.arange(6).reshape(3, 2).astype(dtype))
    for generic in (False, True):
        dataset = RowDataset(*data.arrays) if generic else data
        (batch,) = next(iter(DataLoader(dataset, batch_size=2)))
        assert batch.dtype == expected


@pytest.mark.parametrize("drop_last", [False, True])
def test_fast_path_and_generic_path_give_identical_batches(drop_last):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(37, 1, 4, 4)).astype(np.uint8)
    targets = rng.standard_normal((37, 3))
    labels = rng.integers(0, 10, size=37).astype(np.int32)

    class Overriding(TensorDataset):
        """Overrides __getitem__, so the loader must call it one index at a time."""

        def __getitem__(self, index):
            assert np.ndim(index) == 0, "an overriding __getitem__ is called with one index"
            return super().__getitem__(index)

    datasets = [TensorDataset(images, targets, labels), RowDataset(images, targets, labels),
                Overriding(images, targets, labels)]
    loaders = [
        DataLoader(d, batch_size=8, shuffle=True, drop_last=drop_last, seed=3) for d in datasets
    ]
    for _ in range(2):
        fast, *others = [list(loader) for loader in loaders]
        for batches in others:
            assert len(batches) == len(fast)
            for fast_batch, batch in zip(fast, batches):
                for a, b in zip(fast_batch, batch):
                    assert a.dtype == b.dtype and a.shape == b.shape
                    np.testing.assert_array_equal(a.data, b.data)


def test_fast_path_indexes_once_per_batch(monkeypatch):
    calls = []
    original = TensorDataset.__getitem__

    def counting(self, index):
        calls.append(np.shape(index))
        return original(self, index)

    monkeypatch.setattr(TensorDataset, "__getitem__", counting)
    loader = DataLoader(make_dataset(10), batch_size=4)
    list(loader)
    assert calls == [(4,), (4,), (2,)]


def test_batches_are_copies_not_views_of_the_dataset():
    data = make_dataset(4)
    x, _ = next(iter(DataLoader(data, batch_size=4)))
    x.data[...] = -1
    assert data.arrays[0].min() == 0


def test_empty_dataset_gives_no_batches():
    loader = DataLoader(TensorDataset(np.zeros((0, 2))), batch_size=3, shuffle=True, seed=0)
    assert len(loader) == 0 and list(loader) == []


@pytest.mark.parametrize("batch_size", [0, -2, 2.5, True])
def test_loader_rejects_bad_batch_sizes(batch_size):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        DataLoader(make_dataset(), batch_size=batch_size)


def test_loader_rejects_conflicting_options():
    data = make_dataset()
    with pytest.raises(ValueError, match="sampler and shuffle=True"):
        DataLoader(data, shuffle=True, sampler=SequentialSampler(data))
    with pytest.raises(ValueError, match="seed the sampler"):
        DataLoader(data, sampler=SequentialSampler(data), seed=0)
    with pytest.raises(ValueError, match="shuffle is False"):
        DataLoader(data, seed=0)


def test_loader_rejects_what_is_not_a_dataset_or_a_sampler():
    with pytest.raises(TypeError, match="can be indexed"):
        DataLoader(42)
    with pytest.raises(TypeError, match="iterable and have a len"):
        DataLoader(make_dataset(), sampler=(i for i in range(10)))


# ------------------------------------------------------------------ collate
def test_collate_stacks_fields_and_follows_minidl_dtypes():
    x, y, w = collate([(np.zeros(2, np.float32), 1, 0.5), (np.ones(2, np.float32), 0, 1.5)])
    np.testing.assert_array_equal(x, [[0, 0], [1, 1]])
    assert (x.dtype, y.dtype, w.dtype) == (np.float32, np.int64, np.float32)


def test_collate_accepts_tensors_and_single_values():
    (x,) = collate([minidl.tensor([1.0, 2.0]), minidl.tensor([3.0, 4.0])])
    assert x.shape == (2, 2) and x.dtype == np.float32


def test_collate_names_what_is_wrong():
    with pytest.raises(ValueError, match="at least one sample"):
        collate([])
    with pytest.raises(ValueError, match="sample 1 has 1"):
        collate([(1, 2), (3,)])
    with pytest.raises(ValueError, match=r"field 0 has different shapes.*\(2,\), \(3,\)"):
        collate([(np.zeros(2), 0), (np.zeros(3), 1)])
    with pytest.raises(TypeError, match="field 1 of a sample is a str"):
        collate([(np.zeros(2), "cat")])
