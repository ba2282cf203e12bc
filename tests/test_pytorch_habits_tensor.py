"""PyTorch habits that just work, tensor half: names, ``==``, ``dim=``, casts, ``retain_graph``.

The first part checks each habit against a float64 NumPy reference and, where
it is differentiable, against :func:`~minidl.testing.gradcheck`: it runs
everywhere, PyTorch or not. The last part (the ``torch`` fixture) runs the
same habits in PyTorch and compares values and gradients; it is skipped where
PyTorch is not installed, as in CI.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
import minidl.optim as optim
from minidl.testing import gradcheck

rng = np.random.default_rng(14)


def values(*shape):
    """Distinct float64 values (no ties, so a max has one winner)."""
    return rng.permutation(np.prod(shape, dtype=int)).reshape(shape) * 0.25 - 1.0


def leaf(array):
    return minidl.tensor(np.array(array, dtype=np.float64), requires_grad=True)


# ------------------------------------------------------------------ packages
def test_packages_are_attributes_of_minidl():
    assert minidl.nn.Linear is nn.Linear
    assert minidl.nn.functional is minidl.functional is F
    assert minidl.optim.SGD is optim.SGD
    assert minidl.data.DataLoader is not None
    assert callable(minidl.models.mlp)
    assert minidl.distributed.allreduce is not None  # lazily loaded, then an attribute
    assert minidl.parallel.DistributedDataParallel is not None
    assert {"distributed", "parallel", "nn"} <= set(dir(minidl))
    with pytest.raises(AttributeError, match="module 'minidl' has no attribute 'tensorflow'"):
        minidl.tensorflow  # noqa: B018


def test_minidl_shows_only_its_own_names():
    # Tab completion on `minidl.` lists the framework: its __all__ and its subpackages,
    # not the modules its __init__ uses (np, sys, importlib, Any).
    import types

    extra = {n for n in dir(minidl) if not n.startswith("_")} - set(minidl.__all__)
    assert [n for n in extra if not isinstance(getattr(minidl, n), types.ModuleType)] == []
    assert not {"np", "sys", "importlib", "Any"} & set(dir(minidl))


def test_import_minidl_nn_functional_as_f():
    import minidl.nn.functional as functional

    assert functional is minidl.functional


# ------------------------------------------------------------------ == and !=
@pytest.mark.parametrize("other", [
    np.array([[1.0, 5.0, 3.0]]), 3.0, [1.0, 2.0, 3.0], np.float64(2.0),
], ids=["broadcast array", "python float", "list", "numpy scalar"])
def test_eq_and_ne_are_elementwise_like_numpy(other):
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    t = leaf(a)
    for got, want in ((t == other, a == other), (t != other, a != other),
                      (t == minidl.tensor(other), a == np.asarray(other))):
        assert got.dtype == np.bool_ and not got.requires_grad
        np.testing.assert_array_equal(got.data, want)
    np.testing.assert_array_equal((other == t).data, other == a)  # reflected


def test_eq_with_none_is_false_and_shapes_must_broadcast():
    t = minidl.zeros(2)
    assert (t == None) is False  # noqa: E711 -- what `x == None` in old code now means
    assert (t != None) is True  # noqa: E711
    with pytest.raises(ValueError, match="could not be broadcast"):
        t == minidl.zeros(3)  # noqa: B015


def test_tensors_hash_by_identity():
    a, b = minidl.zeros(3), minidl.zeros(3)  # equal values, two tensors
    assert hash(a) == object.__hash__(a) and hash(a) != hash(b)
    assert len({a, b, a}) == 2
    seen = {a: "a", b: "b"}
    assert seen[a] == "a" and seen[b] == "b"


def test_one_element_equal_tensors_look_alike_to_in_but_not_to_is():
    """As in PyTorch: ``in`` and ``list.index`` use ``==``; find a tensor with ``is``."""
    a, b = minidl.tensor([1.0]), minidl.tensor([1.0])
    assert b in [a]  # elementwise equal: a lookup by value, not identity
    assert not any(t is b for t in [a])
    with pytest.raises(ValueError, match="truth value of a tensor with 3 elements"):
        minidl.zeros(3) in [minidl.zeros(3)]  # noqa: B015


def test_module_parameters_deduplicate_a_shared_parameter_by_identity():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.encode = nn.Linear(3, 3, bias=False)
            self.decode = nn.Linear(3, 3, bias=False)
            self.decode.weight = self.encode.weight  # tied: one parameter, twice
            self.other = nn.Linear(3, 3, bias=False)  # same shape ...
            self.other.weight.data[...] = self.encode.weight.data  # ... and same values

    params = list(Tied().parameters())
    assert len(params) == 2 and params[0] is not params[1]


def test_optimizer_tells_equal_parameters_apart():
    """Two (2, 2) and two one-element parameters, each pair equal in value.

    Looked up by ``==`` (``list.index``, ``in``), the (2, 2) pair would raise
    and the one-element pair would both map to the first: the state of one
    would be saved and restored as the other's.
    """
    pairs = [minidl.ones(2, 2, requires_grad=True), minidl.ones(2, 2, requires_grad=True),
             minidl.ones(1, requires_grad=True), minidl.ones(1, requires_grad=True)]
    opt = optim.Adam(pairs, lr=0.1)
    for i, p in enumerate(pairs):
        p.grad = np.full(p.shape, float(i + 1), dtype=np.float32)
    opt.step()
    state = opt.state_dict()
    for i, p in enumerate(pairs):
        np.testing.assert_allclose(state["state"][str(i)]["exp_avg"], 0.1 * (i + 1), rtol=1e-6)
    copies = [minidl.tensor(p.data, requires_grad=True) for p in pairs]
    restored = optim.Adam(copies, lr=0.1)
    restored.load_state_dict(state)
    for i, p in enumerate(copies):
        np.testing.assert_allclose(restored.state[id(p)]["exp_avg"], 0.1 * (i + 1), rtol=1e-6)
    opt.zero_grad()
    assert all(p.grad is None for p in pairs)


def test_hook_handles_remove_their_own_hook():
    x = leaf([1.0, 2.0])
    seen = []
    first = x.register_hook(lambda g: seen.append("first"))
    x.register_hook(lambda g: seen.append("second"))
    first.remove()
    first.remove()  # a second remove does nothing
    (x * 2).sum().backward()
    assert seen == ["second"]


# ------------------------------------------------------------ dim= and keepdim=
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("axis", [0, 1, -1, (0, 2), None])
@pytest.mark.parametrize("keepdim", [False, True])
def test_reductions_take_dim_and_keepdim(name, axis, keepdim):
    a = values(2, 3, 4)
    want = getattr(np, name)(a, axis=axis, keepdims=keepdim)
    numpy_style = getattr(leaf(a), name)(axis=axis, keepdims=keepdim)
    np.testing.assert_allclose(numpy_style.data, want)
    if name in ("max", "min") and axis is not None:
        return  # max(dim=) / min(dim=) give (values, indices): tested below
    torch_style = getattr(leaf(a), name)(dim=axis, keepdim=keepdim)
    np.testing.assert_allclose(torch_style.data, want)
    assert gradcheck(lambda x: getattr(x, name)(dim=axis, keepdim=keepdim), a)


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_and_min_with_dim_give_values_and_indices(name, dim, keepdim):
    a = values(3, 4, 2)
    result = getattr(leaf(a), name)(dim=dim, keepdim=keepdim)
    values_, indices = result  # unpacks as in PyTorch
    assert result.values is values_ and result.indices is indices
    np.testing.assert_allclose(values_.data, getattr(np, name)(a, axis=dim, keepdims=keepdim))
    arg = np.argmax if name == "max" else np.argmin
    np.testing.assert_array_equal(indices.data, arg(a, axis=dim, keepdims=keepdim))
    assert indices.dtype == np.int64 and not indices.requires_grad
    assert gradcheck(lambda x: getattr(x, name)(dim=dim, keepdim=keepdim).values, a)
    with pytest.raises(TypeError, match=r"dim= takes one axis.*axis=\(0, 1\)"):
        getattr(leaf(a), name)(dim=(0, 1))


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_argmax_and_argmin(name, axis, keepdim):
    a = values(3, 4)
    want = getattr(np, name)(a, axis=axis, keepdims=keepdim)
    for got in (getattr(leaf(a), name)(axis, keepdim),
                getattr(leaf(a), name)(dim=axis, keepdim=keepdim),
                getattr(leaf(a), name)(axis=axis, keepdims=keepdim)):
        assert got.dtype == np.int64 and not got.requires_grad
        np.testing.assert_array_equal(got.data, want)


def test_argmax_takes_the_first_of_ties_and_refuses_an_empty_tensor():
    assert minidl.tensor([1.0, 3.0, 3.0]).argmax().item() == 1
    with pytest.raises(ValueError, match=r"argmin\(\) of an empty tensor of shape \(0,\)"):
        minidl.zeros(0).argmin()


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_takes_dim(name, dim):
    a = values(3, 4)
    log_p = a - np.log(np.exp(a).sum(axis=dim, keepdims=True))
    want = log_p if name == "log_softmax" else np.exp(log_p)
    fn = getattr(F, name)
    np.testing.assert_allclose(fn(leaf(a), dim=dim).data, want, rtol=1e-12)
    np.testing.assert_allclose(fn(leaf(a), axis=dim).data, want, rtol=1e-12)
    np.testing.assert_allclose(fn(leaf(a), dim).data, want, rtol=1e-12)
    assert gradcheck(lambda x: fn(x, dim=dim), a)
    np.testing.assert_allclose(fn(leaf(a)).data, fn(leaf(a), dim=-1).data)  # last by default


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_concatenate_and_stack_take_dim(dim):
    a, b = values(2, 3), values(2, 3)
    for join in (minidl.cat, minidl.concatenate):
        np.testing.assert_allclose(join([leaf(a), leaf(b)], dim=dim).data,
                                   np.concatenate([a, b], axis=dim))
        assert gradcheck(lambda x, y: join([x, y], dim=dim), a, b)
    np.testing.assert_allclose(minidl.stack([leaf(a), leaf(b)], dim=dim).data,
                               np.stack([a, b], axis=dim))
    assert gradcheck(lambda x, y: minidl.stack([x, y], dim=dim), a, b)
    assert minidl.cat is minidl.concatenate
    assert minidl.cat([leaf(a), leaf(b)]).shape == (4, 3)  # axis 0 by default


@pytest.mark.parametrize("call", [
    lambda t: t.sum(axis=0, dim=1),
    lambda t: t.mean(axis=0, dim=0),
    lambda t: t.max(axis=1, dim=1),
    lambda t: t.min(axis=0, dim=1),
    lambda t: t.argmax(axis=0, dim=1),
    lambda t: t.argmin(axis=0, dim=1),
    lambda t: F.softmax(t, axis=0, dim=1),
    lambda t: F.log_softmax(t, axis=0, dim=1),
    lambda t: minidl.cat([t, t], axis=0, dim=1),
    lambda t: minidl.stack([t, t], axis=0, dim=1),
], ids=["sum", "mean", "max", "min", "argmax", "argmin", "softmax", "log_softmax", "cat",
        "stack"])
def test_axis_and_dim_together_is_a_type_error_naming_both(call):
    with pytest.raises(TypeError, match=r"got both axis=\d and dim=\d"):
        call(minidl.zeros(2, 3))


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "argmax", "argmin"])
def test_keepdims_and_keepdim_together_is_a_type_error_naming_both(name):
    with pytest.raises(TypeError, match=rf"{name}\(\) got both keepdims=True and keepdim=True"):
        getattr(minidl.zeros(2, 3), name)(axis=0, keepdims=True, keepdim=True)


# ------------------------------------------------------------- shape methods
def test_dim_numel_and_size():
    t = minidl.zeros(2, 3, 4)
    assert (t.dim(), t.numel()) == (3, 24)
    assert t.size() == (2, 3, 4) and t.size(0) == 2 and t.size(-1) == 4
    assert t.size == 24 and isinstance(t.size, int)  # NumPy's meaning stays: an int
    assert np.zeros(t.size).shape == (24,) and t.size * 2 == 48
    assert minidl.tensor(5.0).size() == () and minidl.tensor(5.0).size == 1
    with pytest.raises(IndexError, match=r"size\(3\): a tensor of shape \(2, 3, 4\) has no axis 3"):
        t.size(3)


@pytest.mark.parametrize("shape", [(6, 2), ((6, 2),), (-1, 4), ([3, -1],), (12,)], ids=str)
def test_view_is_reshape(shape):
    a = values(2, 3, 2)
    want = a.reshape(*shape)
    np.testing.assert_array_equal(leaf(a).view(*shape).data, want)
    assert gradcheck(lambda x: x.view(*shape), a)


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_unsqueeze(dim):
    a = values(2, 3)
    np.testing.assert_array_equal(leaf(a).unsqueeze(dim).data, np.expand_dims(a, dim))
    assert gradcheck(lambda x: x.unsqueeze(dim), a)


def test_unsqueeze_names_a_dim_out_of_range():
    with pytest.raises(np.exceptions.AxisError, match="axis 3 is out of bounds"):
        minidl.zeros(2, 3).unsqueeze(3)


@pytest.mark.parametrize("dim,shape", [
    (None, (2, 3)), (0, (2, 1, 3)), (2, (1, 2, 3)), (-2, (1, 2, 3)), (1, (1, 2, 1, 3)),
    ((0, 2), (2, 3)),
], ids=str)
def test_squeeze(dim, shape):
    a = values(1, 2, 1, 3)
    np.testing.assert_array_equal(leaf(a).squeeze(dim).data, a.reshape(shape))
    assert gradcheck(lambda x: x.squeeze(dim), a)


def test_squeeze_names_a_dim_out_of_range():
    with pytest.raises(np.exceptions.AxisError, match="squeeze: axis 4 is out of bounds"):
        minidl.zeros(1, 2).squeeze(4)


# ---------------------------------------------------------------------- dtypes
def test_dtypes_are_numpys():
    assert minidl.float32 == np.float32 and minidl.float64 == np.float64
    assert minidl.int32 == np.int32 and minidl.int64 == np.int64
    assert minidl.tensor([1.0]).dtype is minidl.float32
    assert minidl.tensor([1.0], dtype=minidl.float64).dtype is minidl.float64
    assert minidl.tensor([1], dtype=minidl.int32).dtype == np.int32
    for make in (minidl.zeros, minidl.ones, minidl.randn):
        assert make(2, dtype=minidl.float64).dtype == np.float64
    assert minidl.arange(3, dtype=minidl.float64).dtype == np.float64
    assert minidl.zeros_like(minidl.zeros(2), dtype=minidl.int64).dtype == np.int64


@pytest.mark.parametrize("cast,source,target", [
    (lambda t: t.double(), np.float32, np.float64),
    (lambda t: t.float(), np.float64, np.float32),
    (lambda t: t.to(minidl.float64), np.float32, np.float64),
    (lambda t: t.to(dtype=minidl.float32), np.float64, np.float32),
    (lambda t: t.to(minidl.zeros(1, dtype=np.float64)), np.float32, np.float64),
    (lambda t: t.to("cpu", minidl.float64), np.float32, np.float64),
], ids=["double", "float", "to", "to dtype=", "to tensor", "to cpu dtype"])
def test_casts_are_differentiable_and_send_the_gradient_back_in_the_source_dtype(
        cast, source, target):
    a = values(2, 3)
    x = minidl.tensor(a, dtype=source, requires_grad=True)
    y = cast(x)
    assert y.dtype == target and y.requires_grad
    np.testing.assert_array_equal(y.data, a.astype(source).astype(target))
    weights = values(2, 3).astype(target)
    (y * minidl.tensor(weights)).sum().backward()
    assert x.grad.dtype == source
    np.testing.assert_array_equal(x.grad, weights.astype(source))


def test_casts_pass_gradcheck_through_float32_and_back():
    assert gradcheck(lambda x: (x.float() ** 2).double(), values(2, 3), eps=1e-3, atol=1e-3,
                     rtol=1e-3)


def test_casts_to_the_same_dtype_return_the_tensor_itself():
    t = minidl.zeros(2, requires_grad=True)
    assert t.float() is t and t.to(minidl.float32) is t and t.to("cpu") is t and t.to() is t


def test_casts_to_integers_have_no_gradient():
    x = leaf([1.7, -2.2])
    for y in (x.long(), x.to(minidl.int64), x.to(minidl.int32)):
        assert not y.requires_grad and y.dtype.kind == "i"
        np.testing.assert_array_equal(y.data, [1, -2])


def test_to_refuses_other_devices_and_dtypes():
    with pytest.raises(ValueError, match="to\\('cuda:0'\\): minidl runs on the CPU only"):
        minidl.zeros(2).to("cuda:0")
    with pytest.raises(ValueError, match="CPU only"):
        minidl.zeros(2).to(device="mps")
    with pytest.raises(TypeError, match="not complex128"):
        minidl.zeros(2).to(np.complex128)


def test_from_numpy_shares_memory_both_ways():
    a = np.arange(4.0)
    t = minidl.from_numpy(a)
    assert t.data is a and t.dtype == np.float64 and not t.requires_grad
    a[0] = 7.0
    t.data[1] = 8.0
    assert t.tolist() == [7.0, 8.0, 2.0, 3.0] and a.tolist() == [7.0, 8.0, 2.0, 3.0]
    assert minidl.tensor(a).data is not a  # tensor() copies
    with pytest.raises(TypeError, match="expects a NumPy array, got list"):
        minidl.from_numpy([1.0, 2.0])
    with pytest.raises(TypeError, match="unsupported dtype complex128"):
        minidl.from_numpy(np.zeros(2, np.complex128))


# ------------------------------------------------------ Python scalar conversions
@pytest.mark.parametrize("shape", [(), (1,), (1, 1)], ids=str)
def test_int_float_bool_and_item_read_one_element(shape):
    t = minidl.tensor(np.full(shape, -2.75))
    assert int(t) == -2 and float(t) == -2.75 and bool(t) is True and t.item() == -2.75
    assert bool(minidl.zeros(*shape)) is False
    assert isinstance(float(minidl.tensor(np.full(shape, 3))), float)
    if minidl.zeros(3)[0]:
        raise AssertionError("zero is falsy")


@pytest.mark.parametrize("convert", [int, float, bool, lambda t: t.item()],
                         ids=["int", "float", "bool", "item"])
def test_scalar_conversions_of_several_elements_say_how_many(convert):
    with pytest.raises(ValueError, match="with 2 elements"):
        convert(minidl.zeros(2))
    with pytest.raises(ValueError, match="with 0 elements"):
        convert(minidl.zeros(0))


# ------------------------------------------------------ backward(retain_graph)
def test_a_second_backward_through_a_freed_graph_raises_and_changes_nothing():
    x = leaf([1.0, 2.0])
    loss = (x * x).sum()
    loss.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
    with pytest.raises(RuntimeError, match=r"(?s)Trying to backward through the graph a second "
                       r"time.*Specify retain_graph=True"):
        loss.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])  # refused before any gradient moved
    assert loss.grad_fn.released and loss.grad_fn.parents == ()


def test_retain_graph_keeps_it_for_another_backward_that_accumulates():
    x = leaf([1.0, 2.0])
    loss = (x * x.exp()).sum()
    once = (1 + np.array([1.0, 2.0])) * np.exp([1.0, 2.0])
    loss.backward(retain_graph=True)
    loss.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad, 2 * once)
    loss.backward()  # the last one may free it
    np.testing.assert_allclose(x.grad, 3 * once)
    with pytest.raises(RuntimeError, match="a second time"):
        loss.backward()


def test_two_losses_sharing_a_trunk_need_retain_graph_on_the_first():
    x = leaf([1.0, 2.0])
    h = x * x
    h.sum().backward(retain_graph=True)
    (h * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, 4 * np.array([2.0, 4.0]))
    h2 = x * x
    h2.sum().backward()
    with pytest.raises(RuntimeError, match="the Mul op on the way already ran its backward"):
        (h2 * 3).sum().backward()


def test_backward_frees_the_arrays_the_graph_held():
    x = leaf(values(50, 40))
    middle = x.tanh()
    alive = weakref.ref(middle.data)
    loss = (middle * 2.0).sum()
    del middle
    loss.backward(retain_graph=True)
    gc.collect()
    assert alive() is not None  # retained: still reachable from loss
    loss.backward()
    gc.collect()
    assert alive() is None  # freed: loss no longer reaches the tanh's output


def test_backward_releases_what_each_op_saved():
    class Saves(minidl.Function):
        def forward(self, x):
            self.big = np.ones(10_000)
            return x * 2

        def backward(self, g):
            return g * 2

    x = leaf([1.0])
    y = Saves.apply(x)
    saved = weakref.ref(y.grad_fn.big)
    y.sum().backward()
    assert saved() is None and y.grad_fn.released


def test_backward_takes_gradient_or_grad_and_refuses_create_graph():
    x = leaf([1.0, 2.0])
    (x * 2).backward(gradient=np.array([1.0, 10.0]))
    (x * 2).backward(grad=np.array([1.0, 10.0]))
    (x * 2).backward(np.array([1.0, 10.0]), False)
    np.testing.assert_array_equal(x.grad, [6.0, 60.0])
    with pytest.raises(TypeError, match="both gradient= and grad="):
        (x * 2).backward(gradient=np.ones(2), grad=np.ones(2))
    with pytest.raises(NotImplementedError, match="create_graph=True"):
        (x * 2).sum().backward(create_graph=True)


def test_hooks_and_retained_grads_fire_on_each_retained_backward():
    x = leaf([1.0, 2.0])
    h = x * 3
    h.retain_grad()
    fired = []
    x.register_hook(lambda g: fired.append(g.copy()))
    loss = (h * h).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    assert len(fired) == 2
    np.testing.assert_array_equal(h.grad, 2 * 2 * np.array([3.0, 6.0]))


# ------------------------------------------------------------- against PyTorch
@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="the PyTorch comparisons need torch (CI has none)")


def twins(torch, array):
    """The same float64 values as a minidl leaf and a torch leaf."""
    return leaf(array), torch.tensor(array, dtype=torch.float64, requires_grad=True)


def same(ours, theirs, **tolerance):
    """Compare a minidl tensor (or array) with a torch tensor, values and dtype kind."""
    theirs = theirs.detach().numpy()
    ours = np.asarray(ours.data if isinstance(ours, minidl.Tensor) else ours)
    assert ours.shape == theirs.shape and ours.dtype.kind == theirs.dtype.kind
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, **tolerance)


def test_torch_packages(torch):
    assert hasattr(torch, "nn") and hasattr(torch.nn, "functional") and hasattr(torch, "optim")
    assert hasattr(minidl, "nn") and hasattr(minidl.nn, "functional") and hasattr(minidl, "optim")


def test_torch_eq_ne_and_hash(torch):
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    ours, theirs = twins(torch, a)
    for other in (2.0, np.array([1.0, 5.0, 3.0])):
        same(ours == other, theirs == torch.as_tensor(other))
        same(ours != other, theirs != torch.as_tensor(other))
    assert (ours == None) is (theirs == None) is False  # noqa: E711
    assert len({ours, ours}) == len({theirs, theirs}) == 1


@pytest.mark.parametrize("name", ["sum", "mean"])
@pytest.mark.parametrize("dim", [0, -1, (0, 2)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_torch_sum_and_mean_with_dim(torch, name, dim, keepdim):
    a = values(2, 3, 4)
    ours, theirs = twins(torch, a)
    got = getattr(ours, name)(dim=dim, keepdim=keepdim)
    want = getattr(theirs, name)(dim=dim, keepdim=keepdim)
    same(got, want)
    weights = values(*want.shape)
    (got * minidl.tensor(weights)).sum().backward()
    (want * torch.tensor(weights)).sum().backward()
    same(ours.grad, theirs.grad)


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_torch_max_and_min_with_dim(torch, name, dim, keepdim):
    a = values(3, 4, 2)  # no ties: PyTorch sends the gradient to one winner, minidl shares it
    ours, theirs = twins(torch, a)
    got_values, got_indices = getattr(ours, name)(dim=dim, keepdim=keepdim)
    want = getattr(theirs, name)(dim=dim, keepdim=keepdim)
    same(got_values, want.values)
    same(got_indices, want.indices)
    got_values.sum().backward()
    want.values.sum().backward()
    same(ours.grad, theirs.grad)
    same(getattr(ours, name)(), getattr(theirs, name)())  # no dim: the value alone, in both


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("dim", [None, 0, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_torch_argmax_and_argmin(torch, name, dim, keepdim):
    ours, theirs = twins(torch, values(3, 4))
    got, want = getattr(ours, name)(dim=dim, keepdim=keepdim), getattr(theirs, name)(dim, keepdim)
    same(got, want)
    assert got.dtype == np.int64 and want.dtype == torch.int64


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, -1])
def test_torch_softmax_with_dim(torch, name, dim):
    ours, theirs = twins(torch, values(3, 4))
    got = getattr(F, name)(ours, dim=dim)
    want = getattr(torch.nn.functional, name)(theirs, dim=dim)
    same(got, want)
    weights = values(3, 4)
    (got * minidl.tensor(weights)).sum().backward()
    (want * torch.tensor(weights)).sum().backward()
    same(ours.grad, theirs.grad)


@pytest.mark.parametrize("name", ["cat", "stack"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_torch_cat_and_stack_with_dim(torch, name, dim):
    (a, ta), (b, tb) = twins(torch, values(2, 3)), twins(torch, values(2, 3))
    got = getattr(minidl, name)([a, b], dim=dim)
    want = getattr(torch, name)([ta, tb], dim=dim)
    same(got, want)
    weights = values(*want.shape)
    (got * minidl.tensor(weights)).sum().backward()
    (want * torch.tensor(weights)).sum().backward()
    same(a.grad, ta.grad)
    same(b.grad, tb.grad)


@pytest.mark.parametrize("change", [
    lambda t: t.view(6, 2), lambda t: t.view((-1, 4)), lambda t: t.unsqueeze(1),
    lambda t: t.unsqueeze(-1), lambda t: t.squeeze(), lambda t: t.squeeze(0),
    lambda t: t.squeeze(1), lambda t: t.squeeze((0, 2)),
], ids=["view", "view tuple", "unsqueeze 1", "unsqueeze -1", "squeeze", "squeeze 0",
        "squeeze 1 (not 1 long)", "squeeze tuple"])
def test_torch_view_unsqueeze_squeeze(torch, change):
    ours, theirs = twins(torch, values(1, 12, 1))
    got, want = change(ours), change(theirs)
    same(got, want)
    weights = values(*want.shape)
    (got * minidl.tensor(weights)).sum().backward()
    (want * torch.tensor(weights)).sum().backward()
    same(ours.grad, theirs.grad)


def test_torch_dim_numel_size(torch):
    ours, theirs = minidl.zeros(2, 3, 4), torch.zeros(2, 3, 4)
    assert ours.dim() == theirs.dim() and ours.numel() == theirs.numel()
    assert ours.size() == tuple(theirs.size()) and ours.size(-2) == theirs.size(-2)


@pytest.mark.parametrize("cast", ["float", "double", "to float64", "to float32", "long"])
def test_torch_casts(torch, cast):
    a = values(2, 3)
    for source, torch_source in ((np.float32, torch.float32), (np.float64, torch.float64)):
        ours = minidl.tensor(a, dtype=source, requires_grad=True)
        theirs = torch.tensor(a, dtype=torch_source, requires_grad=True)
        if cast.startswith("to"):
            name = cast.split()[1]
            got, want = ours.to(getattr(minidl, name)), theirs.to(getattr(torch, name))
        else:
            got, want = getattr(ours, cast)(), getattr(theirs, cast)()
        same(got, want)
        assert got.data.dtype.itemsize == want.element_size()
        assert got.requires_grad == want.requires_grad
        assert (got is ours) == (want is theirs)  # same dtype: the tensor itself, in both
        if want.requires_grad:
            weights = values(2, 3)
            (got * minidl.tensor(weights, dtype=got.dtype)).sum().backward()
            (want * torch.tensor(weights, dtype=want.dtype)).sum().backward()
            assert ours.grad.dtype.itemsize == theirs.grad.element_size()
            same(ours.grad, theirs.grad, atol=1e-6)


def test_torch_scalar_conversions(torch):
    for shape in ((), (1,), (1, 1)):
        a = np.full(shape, -2.75)
        ours, theirs = minidl.tensor(a), torch.tensor(a)
        assert int(ours) == int(theirs) and float(ours) == float(theirs)
        assert bool(ours) == bool(theirs) and ours.item() == theirs.item()
    for convert in (int, float, bool):
        # PyTorch raises ValueError for int/float and RuntimeError for bool; minidl
        # raises ValueError for all three, as NumPy does, naming the shape.
        with pytest.raises((ValueError, RuntimeError)):
            convert(torch.zeros(2))
        with pytest.raises(ValueError, match=r"shape \(2,\)"):
            convert(minidl.zeros(2))


def test_torch_from_numpy(torch):
    a, b = np.arange(3.0), np.arange(3.0)
    ours, theirs = minidl.from_numpy(a), torch.from_numpy(b)
    a[0] = b[0] = 9.0
    same(ours, theirs)


def test_torch_second_backward_and_retain_graph(torch):
    ours, theirs = twins(torch, values(3))
    our_loss, their_loss = (ours * ours).sum(), (theirs * theirs).sum()
    our_loss.backward(retain_graph=True)
    their_loss.backward(retain_graph=True)
    our_loss.backward()
    their_loss.backward()
    same(ours.grad, theirs.grad)
    for loss in (our_loss, their_loss):
        with pytest.raises(RuntimeError, match="Trying to backward through the graph a second"):
            loss.backward()
