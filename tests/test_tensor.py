"""Tensor basics: creation, dtypes, properties, and clear errors."""

import numpy as np
import pytest

import minidl
import minidl.functional as F


def test_dtype_rules():
    assert minidl.tensor([1.0, 2.0]).dtype == np.float32
    assert minidl.tensor(np.zeros(2)).dtype == np.float64
    assert minidl.tensor([1, 2]).dtype == np.int64
    assert minidl.tensor(np.zeros(2, np.int32)).dtype == np.int32
    assert minidl.tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert minidl.zeros(2, 3).dtype == np.float32
    assert minidl.ones((2, 3), dtype=np.float64).shape == (2, 3)


def test_tensor_copies_its_data():
    a = np.zeros(3)
    t = minidl.tensor(a)
    a[0] = 1
    assert t.data[0] == 0


def test_creation_functions():
    assert minidl.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert minidl.arange(5).dtype == np.int64
    assert minidl.arange(0, 1, 0.25).dtype == np.float32
    assert minidl.zeros_like(np.ones((2, 2), np.float64)).dtype == np.float64
    assert minidl.ones_like(minidl.zeros(3)).data.tolist() == [1, 1, 1]
    assert minidl.randn_like(minidl.zeros(4, 2)).shape == (4, 2)
    minidl.manual_seed(3)
    a = minidl.randn(5)
    minidl.manual_seed(3)
    np.testing.assert_array_equal(minidl.randn(5).data, a.data)


def test_properties_and_conversions():
    t = minidl.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert (t.shape, t.ndim, t.size, len(t)) == ((2, 3), 2, 6, 2)
    assert t.T.shape == (3, 2)
    assert t.numpy() is t.data
    assert np.asarray(t) is t.data
    assert t.sum().item() == 15.0
    assert t.is_leaf and t.grad is None and t.requires_grad
    d = t.detach()
    assert d.data is t.data and not d.requires_grad
    assert "requires_grad=True" in repr(t)
    assert "grad_fn=<Sum>" in repr(t.sum())


def test_comparisons_give_boolean_tensors():
    t = minidl.tensor([1.0, 2.0, 3.0])
    assert (t > 1.5).data.tolist() == [False, True, True]
    assert t.eq(2.0).data.tolist() == [False, True, False]


def test_only_floats_require_grad():
    with pytest.raises(
        TypeError, match="only float32 and float64 tensors can require gradients, this one is int64"
    ):
        minidl.tensor([1, 2], requires_grad=True)


def test_unsupported_dtype_names_it():
    with pytest.raises(TypeError, match="unsupported dtype complex128"):
        minidl.tensor(np.zeros(2, np.complex128))
    with pytest.raises(TypeError, match="unsupported dtype <U1"):
        minidl.tensor(["a"])


def test_matmul_shape_error_names_both_shapes():
    a, b = minidl.zeros(2, 3), minidl.zeros(4, 5)
    with pytest.raises(
        ValueError, match=r"shapes \(2, 3\) and \(4, 5\) are not aligned: 3 .* != 4"
    ):
        a @ b


def test_broadcast_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"Add: cannot combine shapes \(2, 3\) and \(4,\)"):
        minidl.zeros(2, 3) + minidl.zeros(4)


def test_reshape_error_names_the_shapes():
    with pytest.raises(
        ValueError, match=r"cannot reshape a tensor of shape \(2, 3\) \(6 elements\) into \(4,\)"
    ):
        minidl.zeros(2, 3).reshape(4)


def test_item_needs_one_element():
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        minidl.zeros(2).item()


def test_cross_entropy_errors():
    logits = minidl.zeros(3, 4)
    with pytest.raises(
        ValueError, match=r"targets of shape \(2,\) do not match logits of shape \(3, 4\)"
    ):
        F.cross_entropy(logits, [0, 1])
    with pytest.raises(ValueError, match="target 4 is out of range for 4 classes"):
        F.cross_entropy(logits, [0, 1, 4])
    with pytest.raises(TypeError, match="integer class targets"):
        F.cross_entropy(logits, [0.0, 1.0, 2.0])


def test_mse_and_linear_shape_errors():
    with pytest.raises(
        ValueError, match=r"mse_loss: input of shape \(3,\) and target of shape \(4,\)"
    ):
        F.mse_loss(minidl.zeros(3), np.zeros(4))
    with pytest.raises(
        ValueError, match=r"input has 3 features .* weight of shape \(2, 4\) expects 4"
    ):
        F.linear(minidl.zeros(5, 3), minidl.zeros(2, 4))


def test_softmax_is_stable_for_huge_logits():
    x = minidl.tensor([[1000.0, 0.0, -1000.0]])
    np.testing.assert_allclose(F.softmax(x).data, [[1.0, 0.0, 0.0]])
    assert np.isfinite(F.log_softmax(x).data).all()
    assert np.isfinite(F.cross_entropy(x, [2]).item())


def test_cross_entropy_matches_the_formula():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((5, 3))
    targets = np.array([0, 2, 1, 1, 0])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -np.log(probs[np.arange(5), targets]).mean()
    np.testing.assert_allclose(F.cross_entropy(minidl.tensor(logits), targets).item(), expected)
