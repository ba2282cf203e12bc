"""The backward pass: order, accumulation, hooks, no_grad, deep graphs, errors."""

import numpy as np
import pytest

import minidl
import minidl.functional as F


def leaf(values, dtype=np.float64):
    return minidl.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


def test_deep_chain_of_ten_thousand_ops_needs_no_recursion():
    x = leaf([1.0])
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0001**10_000], rtol=1e-10)


def test_leaf_gradients_accumulate_across_calls():
    x = leaf([1.0, 2.0])
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])


def test_two_fresh_graphs_give_exactly_twice_the_gradient():
    w = leaf(np.linspace(-1, 1, 12).reshape(3, 4))
    x = np.linspace(0, 2, 8).reshape(2, 4)

    def loss():
        return F.cross_entropy(F.linear(minidl.tensor(x), w).tanh(), [0, 2])

    loss().backward()
    once = w.grad.copy()
    w.grad = None
    loss().backward()
    loss().backward()
    np.testing.assert_array_equal(w.grad, 2 * once)


def test_a_value_used_twice_gets_both_contributions():
    x = leaf([3.0])
    y = x * x + x  # dy/dx = 2x + 1
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [7.0])


def test_diamond_graph():
    x = leaf([2.0])
    a, b = x * 3, x.exp()
    (a * b).sum().backward()  # d(3x e^x)/dx = 3 e^x (1 + x)
    np.testing.assert_allclose(x.grad, 3 * np.exp(2.0) * 3)


def test_intermediates_keep_no_grad_unless_retained():
    x = leaf([1.0, 2.0])
    h = x * 2
    h.retain_grad()
    k = h * 3
    k.sum().backward()
    assert k.grad is None
    np.testing.assert_array_equal(h.grad, [3.0, 3.0])


def test_backward_on_non_scalar_needs_a_gradient():
    x = leaf([1.0, 2.0])
    y = x * 2
    with pytest.raises(RuntimeError, match=r"has shape \(2,\).*gradient=\.\.\."):
        y.backward()
    y.backward(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 20.0])
    with pytest.raises(ValueError, match=r"gradient has shape \(3,\) but the tensor has shape"):
        y.backward(np.ones(3))


def test_backward_without_requires_grad_says_so():
    with pytest.raises(RuntimeError, match="does not require grad"):
        minidl.tensor([1.0]).sum().backward()


def test_no_grad_builds_no_graph_and_restores_the_mode():
    w = leaf([1.0, 2.0])
    with minidl.no_grad():
        y = w * 2 + 1
        assert not minidl.is_grad_enabled()
        with minidl.enable_grad():
            z = w * 2
    assert minidl.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad


def test_no_grad_restores_the_mode_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with minidl.no_grad():
            1 / 0
    assert minidl.is_grad_enabled()


def test_requires_grad_propagates():
    a = leaf([1.0])
    b = minidl.tensor([2.0])
    assert (a * b).requires_grad
    assert not (b * b).requires_grad
    assert (a * b).detach().requires_grad is False


def test_hook_sees_the_final_gradient_and_can_replace_it():
    x = leaf([1.0, 2.0])
    seen = []
    x.register_hook(lambda g: seen.append(g.copy()))
    handle = x.register_hook(lambda g: g * 10)
    (x * x + x).sum().backward()  # two consumers: the hook fires once, with the sum
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [3.0, 5.0])
    np.testing.assert_array_equal(x.grad, [30.0, 50.0])
    handle.remove()
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])


def test_leaf_hooks_fire_while_backward_goes_on():
    """Last layer's weight is final before the first layer's: what DDP overlap relies on."""
    order = []
    w1, w2, w3 = (leaf(np.full((2, 2), 0.5)) for _ in range(3))
    for name, w in (("w1", w1), ("w2", w2), ("w3", w3)):
        w.register_hook(lambda g, name=name: order.append(name))
    x = minidl.tensor(np.ones((1, 2)))
    h = F.linear(F.linear(F.linear(x, w1).tanh(), w2).tanh(), w3)
    h.sum().backward()
    assert order == ["w3", "w2", "w1"]


def test_post_accumulate_hook_sees_the_updated_grad():
    x = leaf([1.0])
    x.grad = np.array([5.0])
    got = []
    x.register_post_accumulate_grad_hook(lambda t: got.append(t.grad.copy()))
    (x * 2).sum().backward()
    assert got[0].tolist() == [7.0]


def test_grad_accumulates_in_place_so_views_survive():
    buffer = np.zeros(4)
    x = leaf([1.0, 2.0])
    x.grad = buffer[1:3]
    (x * 3).sum().backward()
    np.testing.assert_array_equal(buffer, [0.0, 3.0, 3.0, 0.0])


def test_branch_without_gradient_does_not_stall_the_rest():
    class Stop(minidl.Function):
        """An op that passes no gradient back (like a straight-through cut)."""

        def forward(self, x):
            return x.copy()

        def backward(self, g):
            return None

    x = leaf([1.0, 2.0])
    h = x * 2
    (Stop.apply(h) + h * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])


def test_float32_stays_float32():
    w = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = (w * 2.0 + 1 - w / 3.0) ** 2
    assert y.dtype == np.float32
    y.sum().backward()
    assert w.grad.dtype == np.float32


def test_no_grad_as_a_decorator():
    w = leaf([1.0])

    @minidl.no_grad()
    def predict():
        return w * 2

    assert not predict().requires_grad
    assert minidl.is_grad_enabled()
