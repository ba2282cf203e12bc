"""PyTorch habits that just work: layers, losses and optimizers (issue 14, item 2).

Each habit is checked twice:

- against a float64 NumPy reference written out here, and by gradcheck (float64
  central differences): these run everywhere, PyTorch or not;
- against PyTorch itself (values, gradients, several optimizer steps), in the
  tests named ``..._match_pytorch``, which skip when torch is not installed
  (CI does not install it).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from minidl import optim
from minidl.testing import gradcheck

NO_TORCH = "PyTorch is not installed: the comparison with it is skipped"
REDUCTIONS = ["mean", "sum", "none"]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def weighted(y):
    """A non-uniform weighting of every output, so that gradcheck sees each one."""
    return y * np.arange(1.0, y.size + 1).reshape(y.shape) / y.size


def gradcheck_layer(layer: nn.Module, x) -> bool:
    """gradcheck ``layer`` through its input and every parameter, in float64.

    gradcheck makes its own float64 leaves, so each call puts them in the
    layer's parameter slots before running the layer.
    """
    slots = [(m, name) for m in layer.modules() for name in m._parameters]

    def run(x, *values):
        for (module, name), value in zip(slots, values):
            module._parameters[name] = value
        return weighted(layer(x))

    return gradcheck(run, x, *[m._parameters[n].data.astype(np.float64) for m, n in slots])


def log_softmax_reference(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def reduce_reference(losses: np.ndarray, reduction: str) -> np.ndarray:
    return {"mean": losses.mean, "sum": losses.sum, "none": lambda: losses}[reduction]()


# --- Losses: reduction="mean" | "sum" | "none" --------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_and_nll_loss_reductions_match_numpy(reduction):
    logits = rng().standard_normal((5, 4))
    targets = np.array([3, 0, 0, 2, 1])
    per_row = -log_softmax_reference(logits)[np.arange(5), targets]
    want = reduce_reference(per_row, reduction)

    got = F.cross_entropy(minidl.tensor(logits), targets, reduction=reduction)
    np.testing.assert_allclose(got.data, want, rtol=1e-12)
    assert got.shape == np.shape(want)
    log_probs = F.log_softmax(minidl.tensor(logits), axis=1)
    np.testing.assert_allclose(F.nll_loss(log_probs, targets, reduction).data, want, rtol=1e-12)
    module = nn.CrossEntropyLoss(reduction=reduction)
    np.testing.assert_allclose(module(minidl.tensor(logits), targets).data, want, rtol=1e-12)
    module = nn.NLLLoss(reduction=reduction)
    np.testing.assert_allclose(module(log_probs, targets).data, want, rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_and_nll_loss_pass_gradcheck(reduction):
    logits = rng(1).standard_normal((4, 3))
    targets = np.array([2, 2, 0, 1])  # a class twice, a class never
    assert gradcheck(lambda t: weighted(F.cross_entropy(t, targets, reduction)), logits)
    assert gradcheck(lambda t: weighted(F.nll_loss(t, targets, reduction)), logits)


def test_cross_entropy_gradient_is_softmax_minus_one_hot_times_each_share():
    logits = rng(2).standard_normal((3, 4))
    targets = np.array([1, 3, 1])
    one_hot = np.eye(4)[targets]
    softmax = np.exp(log_softmax_reference(logits))
    shares = {"mean": 1 / 3, "sum": 1.0, "none": np.array([[0.5], [-1.0], [2.0]])}
    for reduction, share in shares.items():
        x = minidl.tensor(logits, requires_grad=True)
        loss = F.cross_entropy(x, targets, reduction=reduction)
        loss.backward(np.array([0.5, -1.0, 2.0]) if reduction == "none" else None)
        np.testing.assert_allclose(x.grad, (softmax - one_hot) * share, rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_reductions_match_numpy_and_gradcheck(reduction):
    x, y = rng(3).standard_normal((2, 3, 2)), rng(4).standard_normal((2, 3, 2))
    want = reduce_reference((x - y) ** 2, reduction)
    got = F.mse_loss(minidl.tensor(x), minidl.tensor(y), reduction=reduction)
    np.testing.assert_allclose(got.data, want, rtol=1e-12)
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(nn.MSELoss(reduction)(minidl.tensor(x), y).data, want, rtol=1e-12)
    assert gradcheck(lambda a, b: weighted(F.mse_loss(a, b, reduction=reduction)), x, y)


def test_float32_losses_stay_float32_with_every_reduction():
    logits = minidl.randn(3, 4, requires_grad=True)
    for reduction in REDUCTIONS:
        loss = F.cross_entropy(logits, [0, 1, 2], reduction=reduction)
        assert loss.dtype == np.float32
        loss.sum().backward()
        assert logits.grad.dtype == np.float32


@pytest.mark.parametrize("bad", ["avg", "Mean", None, 1, "elementwise_mean"])
def test_a_bad_reduction_names_the_allowed_values(bad):
    allowed = r"reduction must be 'mean', 'sum' or 'none', got "
    logits, targets = minidl.zeros(2, 3), [0, 1]
    with pytest.raises(ValueError, match=rf"cross_entropy: {allowed}{re.escape(repr(bad))}"):
        F.cross_entropy(logits, targets, reduction=bad)
    with pytest.raises(ValueError, match=rf"nll_loss: {allowed}"):
        F.nll_loss(logits, targets, reduction=bad)
    with pytest.raises(ValueError, match=rf"mse_loss: {allowed}"):
        F.mse_loss(logits, minidl.zeros(2, 3), reduction=bad)
    for loss in (nn.CrossEntropyLoss, nn.NLLLoss, nn.MSELoss):
        with pytest.raises(ValueError, match=rf"{loss.__name__}: {allowed}"):
            loss(reduction=bad)


def test_nll_loss_checks_its_targets_like_cross_entropy():
    log_probs = minidl.zeros(3, 4)
    with pytest.raises(ValueError, match=r"nll_loss: target 4 is out of range for 4 classes"):
        F.nll_loss(log_probs, [0, 1, 4])
    with pytest.raises(TypeError, match="nll_loss expects integer class targets"):
        F.nll_loss(log_probs, [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"nll_loss expects log-probabilities of shape"):
        F.nll_loss(minidl.zeros(3), [0, 1, 2])


# --- ModuleList and ModuleDict ------------------------------------------------------------


class Tower(nn.Module):
    """A model that keeps its layers in a ModuleList and its heads in a ModuleDict."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.BatchNorm1d(4)])
        self.heads = nn.ModuleDict({"digit": nn.Linear(4, 10), "parity": nn.Linear(4, 2)})

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return {name: head(x) for name, head in self.heads.items()}


def test_containers_register_their_modules():
    model = Tower()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias",
                     "heads.digit.weight", "heads.digit.bias", "heads.parity.weight",
                     "heads.parity.bias"]
    assert len(list(model.parameters())) == 8
    assert set(model.state_dict()) == {*names, "blocks.1.running_mean", "blocks.1.running_var"}
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    assert repr(model) == (
        "Tower(\n"
        "  (blocks): ModuleList(\n"
        "    (0): Linear(in_features=4, out_features=4, bias=True)\n"
        "    (1): BatchNorm1d(4, eps=1e-05, momentum=0.1)\n"
        "  )\n"
        "  (heads): ModuleDict(\n"
        "    (digit): Linear(in_features=4, out_features=10, bias=True)\n"
        "    (parity): Linear(in_features=4, out_features=2, bias=True)\n"
        "  )\n"
        ")"
    )


def test_parameters_in_containers_are_trained_and_saved():
    model = Tower()
    before = {name: value.copy() for name, value in model.state_dict().items()}
    opt = optim.SGD(model.parameters(), lr=0.1)
    out = model(minidl.randn(6, 4))
    (F.cross_entropy(out["digit"], np.arange(6)) + F.cross_entropy(out["parity"], [0, 1] * 3)
     ).backward()
    opt.step()
    after = model.state_dict()
    for name in ("blocks.0.weight", "heads.digit.weight", "heads.parity.bias"):
        assert not np.array_equal(before[name], after[name]), name
    fresh = Tower()
    fresh.load_state_dict(after)
    for name, value in fresh.state_dict().items():
        np.testing.assert_array_equal(value, after[name])


def test_module_list_behaves_like_a_list():
    a, b, c, d = (nn.Linear(1, i) for i in range(1, 5))
    layers = nn.ModuleList([a, b])
    assert len(layers) == 2 and layers[0] is a and layers[-1] is b and list(layers) == [a, b]
    assert layers.append(c) is layers and list(layers) == [a, b, c]
    layers.insert(1, d)
    assert list(layers) == [a, d, b, c]
    # Positions are the names, renumbered after an insertion.
    assert [n for n, _ in layers.named_parameters()][::2] == [f"{i}.weight" for i in range(4)]
    assert layers[1].out_features == 4
    sliced = layers[1:3]
    assert isinstance(sliced, nn.ModuleList) and list(sliced) == [d, b]
    layers[0] = c
    assert layers[0] is c
    del layers[0]
    assert list(layers) == [d, b, c] and list(layers._modules) == ["0", "1", "2"]
    layers.extend(nn.ModuleList([a]))
    assert list(layers) == [d, b, c, a]
    assert len(nn.ModuleList()) == 0


def test_module_list_errors_name_the_problem():
    layers = nn.ModuleList([nn.ReLU()])
    with pytest.raises(IndexError, match="ModuleList index 3 is out of range for 1 modules"):
        layers[3]
    with pytest.raises(IndexError, match="index -2"):
        layers[-2] = nn.ReLU()
    with pytest.raises(TypeError, match="ModuleList indices are integers or slices, got str"):
        layers["0"]
    with pytest.raises(TypeError, match="ModuleList holds Modules, index 1 is a list"):
        layers.append([nn.ReLU()])
    with pytest.raises(TypeError, match="index 0 is a function"):
        nn.ModuleList([lambda x: x])
    with pytest.raises(TypeError, match="does not define forward"):
        layers(minidl.zeros(1))


def test_module_dict_behaves_like_a_dict():
    enc, dec, extra = nn.Linear(2, 3), nn.Linear(3, 2), nn.Tanh()
    parts = nn.ModuleDict([("encoder", enc), ("decoder", dec)])
    assert parts["encoder"] is enc and len(parts) == 2 and "decoder" in parts
    assert list(parts) == ["encoder", "decoder"] == parts.keys()
    assert parts.values() == [enc, dec] and parts.items() == [("encoder", enc), ("decoder", dec)]
    parts["act"] = extra
    assert parts.keys() == ["encoder", "decoder", "act"]
    parts.update({"encoder": dec})
    assert parts["encoder"] is dec
    assert parts.pop("act") is extra and "act" not in parts
    del parts["decoder"]
    assert parts.keys() == ["encoder"]
    assert [n for n, _ in parts.named_parameters()] == ["encoder.weight", "encoder.bias"]


def test_module_dict_errors_name_the_problem():
    parts = nn.ModuleDict({"a": nn.ReLU()})
    with pytest.raises(KeyError, match=r"no key 'b'; its keys are \['a'\]"):
        parts["b"]
    with pytest.raises(KeyError, match="no key 'b'"):
        del parts["b"]
    with pytest.raises(KeyError, match=r"'x.y' must be non-empty and contain no '\.'"):
        parts["x.y"] = nn.ReLU()
    with pytest.raises(TypeError, match="ModuleDict keys are strings, got int 1"):
        parts[1] = nn.ReLU()
    with pytest.raises(TypeError, match="ModuleDict holds Modules, the value for 'c' is a int"):
        nn.ModuleDict({"c": 3})


# --- LayerNorm ----------------------------------------------------------------------------


def layer_norm_reference(x, dims, weight=None, bias=None, eps=1e-5):
    axes = tuple(range(x.ndim - dims, x.ndim))
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    out = (x - mean) / np.sqrt(var + eps)
    out = out if weight is None else out * weight
    return out if bias is None else out + bias


@pytest.mark.parametrize("shape, normalized", [((4, 5), 5), ((2, 3, 4), (3, 4)), ((3, 2), (2,))])
def test_layer_norm_matches_numpy(shape, normalized):
    x = rng(5).standard_normal(shape) * 3 + 1
    norm = nn.LayerNorm(normalized, eps=1e-3, dtype=np.float64)
    norm.weight.data[...] = rng(6).standard_normal(norm.weight.shape)
    norm.bias.data[...] = rng(7).standard_normal(norm.bias.shape)
    dims = 1 if isinstance(normalized, int) else len(normalized)
    want = layer_norm_reference(x, dims, norm.weight.data, norm.bias.data, eps=1e-3)
    np.testing.assert_allclose(norm(minidl.tensor(x)).data, want, rtol=1e-12, atol=1e-12)
    plain = F.layer_norm(minidl.tensor(x), normalized, eps=1e-3).data
    np.testing.assert_allclose(plain, layer_norm_reference(x, dims, eps=1e-3), atol=1e-12)
    # The sample's own statistics: no running averages, the same in eval mode.
    norm.eval()
    np.testing.assert_allclose(norm(minidl.tensor(x)).data, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: nn.LayerNorm(4, dtype=np.float64), (3, 4)),
        (lambda: nn.LayerNorm((2, 3), dtype=np.float64), (2, 2, 3)),
        (lambda: nn.LayerNorm(3, bias=False, dtype=np.float64), (2, 3)),
        (lambda: nn.LayerNorm(3, elementwise_affine=False), (2, 3)),
    ],
    ids=["last-axis", "two-axes", "no-bias", "no-affine"],
)
def test_layer_norm_passes_gradcheck(make, shape):
    norm = make()
    if norm.weight is not None:  # not ones and zeros, so their gradients matter
        norm.weight.data[...] = rng(8).standard_normal(norm.weight.shape)
    assert gradcheck_layer(norm, rng(9).standard_normal(shape))


def test_layer_norm_parameters_and_errors():
    norm = nn.LayerNorm((2, 3))
    assert [n for n, _ in norm.named_parameters()] == ["weight", "bias"]
    assert norm.weight.shape == (2, 3) and norm.weight.dtype == np.float32
    assert norm.weight.data.tolist() == [[1.0] * 3] * 2 and not norm.bias.data.any()
    assert repr(norm) == "LayerNorm((2, 3), eps=1e-05, elementwise_affine=True, bias=True)"
    assert list(nn.LayerNorm(3, elementwise_affine=False).parameters()) == []
    assert [n for n, _ in nn.LayerNorm(3, bias=False).named_parameters()] == ["weight"]
    with pytest.raises(ValueError, match=r"normalized_shape \(2, 3\) must be the last axes .* "
                                         r"got input of shape \(4, 3, 2\)"):
        norm(minidl.zeros(4, 3, 2))
    with pytest.raises(ValueError, match=r"shape \(2, 3\) .* got input of shape \(3,\)"):
        norm(minidl.zeros(3))
    with pytest.raises(ValueError, match=r"LayerNorm: normalized_shape must be a positive int"):
        nn.LayerNorm(0)
    with pytest.raises(ValueError, match=r"got \(\)"):
        nn.LayerNorm(())
    with pytest.raises(ValueError, match=r"layer_norm: weight has shape \(4,\), expected"):
        F.layer_norm(minidl.zeros(2, 3), 3, weight=minidl.ones(4))


# --- Embedding ----------------------------------------------------------------------------


def test_embedding_looks_up_rows_of_any_index_shape():
    table = nn.Embedding(5, 3, dtype=np.float64)
    indices = np.array([[4, 0, 4], [1, 1, 2]])
    out = table(minidl.tensor(indices))
    assert out.shape == (2, 3, 3) and out.dtype == np.float64
    np.testing.assert_array_equal(out.data, table.weight.data[indices])
    np.testing.assert_array_equal(F.embedding(indices, table.weight).data, out.data)
    assert table(minidl.tensor(3)).shape == (3,)  # one index: one row
    assert table(minidl.tensor(np.zeros((2, 0), dtype=np.int64))).shape == (2, 0, 3)
    assert repr(table) == "Embedding(5, 3)"


def test_embedding_gradient_adds_up_repeated_indices():
    table = nn.Embedding(4, 2, dtype=np.float64)
    indices = np.array([2, 0, 2, 2])
    g = rng(10).standard_normal((4, 2))
    table(minidl.tensor(indices)).backward(g)
    want = np.zeros((4, 2))
    want[0] = g[1]
    want[2] = g[0] + g[2] + g[3]  # three lookups of row 2: three gradients, added
    np.testing.assert_allclose(table.weight.grad, want, rtol=1e-12)
    assert not table.weight.grad[[1, 3]].any()  # rows never looked up get nothing


def test_embedding_passes_gradcheck():
    indices = np.array([[0, 2], [2, 2], [1, 0]])
    assert gradcheck(lambda w: weighted(F.embedding(indices, w)), rng(11).standard_normal((3, 4)))


def test_embedding_init_and_float32_gradient():
    minidl.manual_seed(0)
    table = nn.Embedding(2000, 8)
    assert table.weight.dtype == np.float32
    assert abs(table.weight.data.std() - 1) < 0.02 and abs(table.weight.data.mean()) < 0.02
    table(minidl.tensor([1, 1])).sum().backward()
    assert table.weight.grad.dtype == np.float32 and table.weight.grad[1].tolist() == [2.0] * 8


def test_embedding_refuses_bad_indices():
    table = nn.Embedding(3, 2)
    with pytest.raises(IndexError, match=r"index 3 is out of range for an embedding table of 3 "
                                         r"rows \(valid: 0 to 2\)"):
        table(minidl.tensor([0, 3]))
    with pytest.raises(IndexError, match="index -1 is out of range"):
        table(minidl.tensor([-1]))  # NumPy would quietly read the last row
    with pytest.raises(TypeError, match="indices must be integers .* got dtype float32"):
        table(minidl.tensor([1.0]))
    with pytest.raises(ValueError, match="Embedding: num_embeddings must be a positive integer"):
        nn.Embedding(0, 2)
    with pytest.raises(ValueError, match=r"weight must have shape .* got \(3,\)"):
        F.embedding([0], minidl.zeros(3))


# --- GELU ---------------------------------------------------------------------------------


def gelu_reference(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return x * 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_numpy_and_passes_gradcheck(approximate):
    x = np.linspace(-5, 5, 41)
    got = nn.GELU(approximate)(minidl.tensor(x)).data
    np.testing.assert_allclose(got, gelu_reference(x, approximate), rtol=1e-12, atol=1e-15)
    assert gradcheck(lambda t: weighted(F.gelu(t, approximate=approximate)), x.reshape(-1, 1))
    y32 = F.gelu(minidl.tensor(x.astype(np.float32), requires_grad=True), approximate)
    assert y32.dtype == np.float32


def test_gelu_values_and_errors():
    # x * Phi(x): Phi(1) = 0.8413447460685429, so GELU(1) = Phi(1) and GELU(-1) = Phi(1) - 1.
    got = F.gelu(minidl.tensor(np.array([-1.0, 0.0, 1.0]))).data
    np.testing.assert_allclose(got, [0.8413447460685429 - 1, 0.0, 0.8413447460685429])
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    for approximate in ("none", "tanh"):  # a scalar and an empty tensor are tensors too
        assert F.gelu(minidl.tensor(0.0), approximate).shape == ()
        assert F.gelu(minidl.zeros(0, 3), approximate).shape == (0, 3)
    with pytest.raises(ValueError, match="GELU: approximate must be 'none' or 'tanh', got 'erf'"):
        nn.GELU("erf")
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh'"):
        F.gelu(minidl.zeros(2), approximate=True)


# --- AdamW --------------------------------------------------------------------------------


GRADS = [np.array([0.5, -1.0]), np.array([0.25, 2.0]), np.array([-1.0, 0.5]),
         np.array([3.0, -0.5])]


def adamw_reference(p, grads, lr, betas, eps, wd):
    """PyTorch's AdamW, written out: decay the weight, then the Adam step on g alone."""
    m = v = 0
    for t, g in enumerate(grads, start=1):
        p = p * (1 - lr * wd)
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        p = p - lr * (m / (1 - betas[0] ** t)) / (np.sqrt(v / (1 - betas[1] ** t)) + eps)
        yield p


def param(values):
    return minidl.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


@pytest.mark.parametrize("wd", [0.0, 0.01, 0.5])
def test_adamw_matches_the_decoupled_formula(wd):
    p = param([1.0, -2.0])
    opt = optim.AdamW([p], lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd)
    expected = adamw_reference(np.array([1.0, -2.0]), GRADS, 0.01, (0.9, 0.99), 1e-8, wd)
    for g, want in zip(GRADS, expected):
        p.grad = g.copy()
        opt.step()
        np.testing.assert_allclose(p.data, want, rtol=1e-12)


def test_adamw_defaults_are_pytorchs_and_differ_from_adam_only_in_the_decay():
    p = param([1.0])
    defaults = optim.AdamW([p]).defaults
    assert defaults == {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}
    # Without weight decay, AdamW is Adam.
    a, b = param([1.0, -2.0]), param([1.0, -2.0])
    adam, adamw = optim.Adam([a], lr=0.1), optim.AdamW([b], lr=0.1, weight_decay=0)
    for g in GRADS:
        a.grad, b.grad = g.copy(), g.copy()
        adam.step()
        adamw.step()
    np.testing.assert_array_equal(a.data, b.data)
    # With it, a weight with no gradient signal still shrinks by exactly (1 - lr * wd) a step.
    c = param([2.0])
    opt = optim.AdamW([c], lr=0.1, weight_decay=0.5)
    c.grad = np.zeros(1)
    opt.step()
    np.testing.assert_allclose(c.data, [2.0 * (1 - 0.1 * 0.5)], rtol=1e-15)


def test_adamw_param_groups_and_float32():
    a, b = param([1.0]), param([1.0])
    opt = optim.AdamW([{"params": [a]}, {"params": [b], "weight_decay": 0.0}], lr=0.1)
    a.grad, b.grad = np.zeros(1), np.zeros(1)
    opt.step()
    np.testing.assert_allclose([a.item(), b.item()], [1 - 0.1 * 0.01, 1.0], rtol=1e-15)
    w = minidl.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.AdamW([w])
    w.grad = np.array([0.5, 0.5], dtype=np.float32)
    opt.step()
    assert w.data.dtype == np.float32


def test_adamw_state_dict_resumes_exactly():
    a = param([1.0, 2.0])
    opt = optim.AdamW([a], lr=0.1, weight_decay=0.1)
    for g in GRADS[:2]:
        a.grad = g.copy()
        opt.step()
    saved_p, saved = a.data.copy(), opt.state_dict()
    a.grad = GRADS[2].copy()
    opt.step()

    b = param(saved_p)
    resumed = optim.AdamW([b], lr=0.1, weight_decay=0.1)
    resumed.load_state_dict(saved)
    b.grad = GRADS[2].copy()
    resumed.step()
    np.testing.assert_array_equal(b.data, a.data)


def test_adamw_bad_hyper_parameters_are_named():
    with pytest.raises(ValueError, match="AdamW: invalid weight_decay -0.1"):
        optim.AdamW([param([1.0])], weight_decay=-0.1)
    with pytest.raises(ValueError, match="AdamW: invalid learning rate nan"):
        optim.AdamW([param([1.0])], lr=float("nan"))
    with pytest.raises(ValueError, match=r"AdamW: betas must be two numbers in \[0, 1\)"):
        optim.AdamW([param([1.0])], betas=(0.9, 1.0))


# --- One dtype per layer: mixing is an error, as in PyTorch --------------------------------


LAYERS_WITH_PARAMETERS = {
    "Linear": (lambda dtype: nn.Linear(3, 2, dtype=dtype), (4, 3)),
    "Conv2d": (lambda dtype: nn.Conv2d(1, 2, 3, dtype=dtype), (2, 1, 4, 4)),
    "BatchNorm1d": (lambda dtype: nn.BatchNorm1d(3, dtype=dtype), (4, 3)),
    "BatchNorm2d": (lambda dtype: nn.BatchNorm2d(1, dtype=dtype), (2, 1, 3, 3)),
    "LayerNorm": (lambda dtype: nn.LayerNorm(3, dtype=dtype), (4, 3)),
}


@pytest.mark.parametrize("name", LAYERS_WITH_PARAMETERS)
@pytest.mark.parametrize("layer_dtype, input_dtype, fix", [
    (np.float32, np.float64, "model.double()"),
    (np.float64, np.float32, "model.float()"),
])
def test_a_layer_refuses_an_input_of_another_dtype(name, layer_dtype, input_dtype, fix):
    make, shape = LAYERS_WITH_PARAMETERS[name]
    layer = make(layer_dtype)
    x = minidl.tensor(rng().standard_normal(shape).astype(input_dtype))
    have, want = np.dtype(input_dtype).name, np.dtype(layer_dtype).name
    with pytest.raises(TypeError) as error:
        layer(x)
    message = str(error.value)
    assert message.startswith(f"{name}: input is {have} but the layer's parameters are {want}")
    assert f"minidl.tensor(x, dtype=np.{want})" in message and fix in message
    assert layer(minidl.tensor(x.data.astype(layer_dtype))).dtype == layer_dtype
    assert layer.to(input_dtype)(x).dtype == input_dtype  # or convert the layer


def test_integer_input_to_a_float_layer_is_refused():
    with pytest.raises(TypeError, match=r"Linear: input is int64 but the layer's parameters are "
                                        r"float32; convert the input with minidl.tensor\(x, "
                                        r"dtype=np.float32\)$"):
        nn.Linear(2, 1)(minidl.tensor([[1, 2]]))


def test_a_numpy_array_or_list_input_is_judged_by_what_it_becomes():
    layer = nn.Linear(2, 1)
    assert layer(np.zeros((1, 2), dtype=np.float32)).dtype == np.float32
    assert layer([[0.5, 1.5]]).dtype == np.float32  # Python floats become float32
    with pytest.raises(TypeError, match="input is float64"):
        layer(np.zeros((1, 2)))


def test_layers_without_parameters_follow_their_input():
    for layer in (nn.LayerNorm(3, elementwise_affine=False), nn.GELU(), nn.ReLU()):
        for dtype in (np.float32, np.float64):
            assert layer(minidl.zeros(2, 3, dtype=dtype)).dtype == dtype


def test_a_model_in_float64_trains_in_float64():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.GELU(), nn.Linear(4, 2)).double()
    assert {p.dtype for p in model.parameters()} == {np.dtype(np.float64)}
    assert model[1].running_mean.dtype == np.float64
    loss = F.cross_entropy(model(minidl.tensor(rng().standard_normal((5, 3)))), [0, 1, 0, 1, 1])
    loss.backward()
    assert {p.grad.dtype for p in model.parameters()} == {np.dtype(np.float64)}
    with pytest.raises(TypeError, match="Linear: input is float32 but the layer's parameters "
                                        "are float64"):
        model(minidl.zeros(5, 3))


def test_module_to_keeps_the_parameters_and_refuses_other_dtypes_and_devices():
    model = nn.Linear(2, 2)
    weight = model.weight
    model(minidl.ones(1, 2)).sum().backward()
    assert model.to("float64") is model and model.weight is weight
    assert weight.dtype == np.float64 and weight.grad.dtype == np.float64
    assert model.to("cpu").float().weight.dtype == np.float32
    assert model.to(minidl.zeros(1, dtype=np.float64)).weight.dtype == np.float64
    assert model.to(device="cpu", dtype=np.float32).weight.dtype == np.float32
    for bad in (np.int64, "int32", np.complex128):
        with pytest.raises(TypeError, match=r"Linear.to: parameters can be float32 or float64"):
            model.to(bad)
    with pytest.raises(ValueError, match=r"Linear.to\('cuda:0'\): minidl runs on the CPU only"):
        model.to("cuda:0")


# --- Against PyTorch (skipped without it) ---------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_losses_match_pytorch(reduction):
    torch = pytest.importorskip("torch", reason=NO_TORCH)
    logits, targets = rng(12).standard_normal((6, 5)), np.array([4, 0, 0, 3, 1, 2])
    upstream = rng(13).standard_normal(6) if reduction == "none" else None

    def compare(ours, theirs, x, y=None):
        mine = minidl.tensor(x, requires_grad=True)
        out = ours(mine, y)
        out.backward(upstream)
        ref = torch.tensor(x, requires_grad=True)
        ref_out = theirs(ref, None if y is None else torch.tensor(y))
        ref_out.backward(None if upstream is None else torch.tensor(upstream))
        np.testing.assert_allclose(out.data, ref_out.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(mine.grad, ref.grad.numpy(), rtol=1e-12, atol=1e-15)

    tf = torch.nn.functional
    compare(lambda t, y: F.cross_entropy(t, y, reduction=reduction),
            lambda t, y: tf.cross_entropy(t, y, reduction=reduction), logits, targets)
    log_probs = log_softmax_reference(logits)
    compare(lambda t, y: F.nll_loss(t, y, reduction=reduction),
            lambda t, y: tf.nll_loss(t, y, reduction=reduction), log_probs, targets)
    prediction, target = rng(14).standard_normal((6,)), rng(15).standard_normal((6,))
    compare(lambda t, y: F.mse_loss(t, y, reduction=reduction),
            lambda t, y: tf.mse_loss(t, y, reduction=reduction), prediction, target)


@pytest.mark.parametrize("normalized", [4, (3, 4)])
def test_layer_norm_matches_pytorch(normalized):
    torch = pytest.importorskip("torch", reason=NO_TORCH)
    x = rng(16).standard_normal((2, 3, 4)) * 2 + 0.5
    ours = nn.LayerNorm(normalized, eps=1e-4, dtype=np.float64)
    theirs = torch.nn.LayerNorm(normalized, eps=1e-4, dtype=torch.float64)
    weight, bias = (rng(seed).standard_normal(ours.weight.shape) for seed in (17, 18))
    ours.weight.data[...], ours.bias.data[...] = weight, bias
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(weight))
        theirs.bias.copy_(torch.tensor(bias))
    upstream = rng(19).standard_normal(x.shape)

    mine, ref = minidl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, ref_out = ours(mine), theirs(ref)
    out.backward(upstream)
    ref_out.backward(torch.tensor(upstream))
    np.testing.assert_allclose(out.data, ref_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mine.grad, ref.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=1e-10)
    assert repr(ours) == repr(theirs)


def test_embedding_matches_pytorch():
    torch = pytest.importorskip("torch", reason=NO_TORCH)
    ours = nn.Embedding(6, 3, dtype=np.float64)
    theirs = torch.nn.Embedding(6, 3, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.data))
    indices = np.array([[5, 1, 5], [0, 5, 1]])
    upstream = rng(20).standard_normal((2, 3, 3))
    out, ref_out = ours(minidl.tensor(indices)), theirs(torch.tensor(indices))
    out.backward(upstream)
    ref_out.backward(torch.tensor(upstream))
    np.testing.assert_array_equal(out.data, ref_out.detach().numpy())
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-14)
    assert repr(ours) == repr(theirs)
    with pytest.raises(IndexError):
        theirs(torch.tensor([6]))  # PyTorch refuses an index out of range too
    with pytest.raises(IndexError):
        ours(minidl.tensor([6]))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_pytorch(approximate):
    torch = pytest.importorskip("torch", reason=NO_TORCH)
    x = np.linspace(-6, 6, 49)
    mine, ref = minidl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out = nn.GELU(approximate)(mine)
    ref_out = torch.nn.GELU(approximate)(ref)
    upstream = rng(21).standard_normal(x.shape)
    out.backward(upstream)
    ref_out.backward(torch.tensor(upstream))
    # Far out in the tails both sides cancel nearly equal terms: compare to a few ulps of 1.
    np.testing.assert_allclose(out.data, ref_out.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mine.grad, ref.grad.numpy(), rtol=1e-12, atol=1e-14)
    assert repr(nn.GELU(approximate)) == repr(torch.nn.GELU(approximate))


@pytest.mark.parametrize("weight_decay", [None, 0.0, 0.3])
def test_adamw_matches_pytorch_over_several_steps(weight_decay):
    torch = pytest.importorskip("torch", reason=NO_TORCH)
    minidl.manual_seed(0)
    ours = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 3)).double()
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.LayerNorm(8),
                                 torch.nn.Linear(8, 3)).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    options = {} if weight_decay is None else {"weight_decay": weight_decay}  # None: default
    opt = optim.AdamW(ours.parameters(), lr=0.05, **options)
    ref_opt = torch.optim.AdamW(theirs.parameters(), lr=0.05, **options)
    data = rng(22)
    for _ in range(5):
        x, y = data.standard_normal((10, 4)), data.integers(0, 3, 10)
        opt.zero_grad()
        F.cross_entropy(ours(minidl.tensor(x)), y).backward()
        opt.step()
        ref_opt.zero_grad()
        torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y)).backward()
        ref_opt.step()
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name], value.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=name)


def test_containers_name_parameters_as_pytorch_does():
    torch = pytest.importorskip("torch", reason=NO_TORCH)

    def build(lib):
        layers = lib.ModuleList([lib.Linear(2, 2)])
        layers.append(lib.Linear(2, 3))
        layers.insert(0, lib.LayerNorm(2))
        heads = lib.ModuleDict({"b": lib.Linear(3, 1), "a": lib.Embedding(4, 3)})
        return lib.ModuleDict({"layers": layers, "heads": heads})

    ours, theirs = build(nn), build(torch.nn)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert len(ours["layers"]) == len(theirs["layers"]) == 3
    assert list(ours["heads"].keys()) == list(theirs["heads"].keys())


def test_pytorch_refuses_mixed_dtypes_too():
    torch = pytest.importorskip("torch", reason=NO_TORCH)
    with pytest.raises(RuntimeError, match="dtype"):
        torch.nn.Linear(2, 1)(torch.zeros(1, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="dtype"):
        nn.Linear(2, 1)(minidl.zeros(1, 2, dtype=np.float64))
