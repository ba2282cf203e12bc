"""Layers and the Module machinery: gradcheck in float64, modes, state dicts, repr."""

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from minidl import models
from minidl.testing import gradcheck

rng = np.random.default_rng(0)


def weighted(y):
    return y * np.arange(1.0, y.size + 1).reshape(y.shape) / y.size


def params_as_inputs(layer, x, train=True):
    """gradcheck a layer in float64 through its input and every parameter.

    gradcheck makes its own leaf tensors, so each call puts them in the
    layer's parameter slots before running the layer.
    """
    slots = [(m, name) for m in layer.modules() for name in m._parameters]
    layer.train(train)

    def run(x, *values):
        for (module, name), value in zip(slots, values):
            module._parameters[name] = value
        return weighted(layer(x))

    return gradcheck(run, x, *[m._parameters[n].data.astype(np.float64) for m, n in slots])


@pytest.mark.parametrize(
    "layer, shape",
    [
        (lambda: nn.Linear(4, 3), (5, 4)),
        (lambda: nn.Conv2d(2, 3, 3), (2, 2, 5, 5)),
        (lambda: nn.Conv2d(2, 3, (3, 2), stride=2, padding=1), (2, 2, 5, 6)),
        (lambda: nn.Conv2d(1, 2, 4), (1, 1, 4, 4)),  # kernel = input size
        (lambda: nn.Conv2d(2, 2, 3, bias=False), (1, 2, 4, 4)),
        (lambda: nn.BatchNorm1d(3), (6, 3)),
        (lambda: nn.BatchNorm2d(2), (3, 2, 3, 3)),
        (lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2), nn.Sigmoid()), (5, 3)),
        (lambda: nn.Flatten(), (2, 3, 2, 2)),
        (lambda: nn.ReLU(), (4, 5)),
    ],
    ids=["linear", "conv", "conv-stride-pad-rect", "conv-full", "conv-nobias", "bn1d", "bn2d",
         "mlp", "flatten", "relu"],
)
def test_layers_pass_gradcheck(layer, shape):
    x = rng.standard_normal(shape)
    assert params_as_inputs(layer(), x)


def test_batchnorm_eval_mode_passes_gradcheck():
    bn = nn.BatchNorm2d(2)
    bn.running_mean[:] = [0.5, -0.5]
    bn.running_var[:] = [2.0, 0.5]
    bn.running_mean, bn.running_var = (
        bn.running_mean.astype(np.float64),
        bn.running_var.astype(np.float64),
    )
    assert params_as_inputs(bn, rng.standard_normal((2, 2, 3, 3)), train=False)


@pytest.mark.parametrize(
    "pool, shape",
    [
        (lambda x: F.max_pool2d(x, 2), (2, 3, 4, 4)),
        (lambda x: F.max_pool2d(x, 3, stride=2, padding=1), (1, 2, 5, 5)),
        (lambda x: F.avg_pool2d(x, 2), (2, 3, 4, 4)),
        (lambda x: F.avg_pool2d(x, (3, 2), stride=1, padding=1), (1, 2, 4, 5)),
    ],
    ids=["max", "max-overlap-pad", "avg", "avg-rect-pad"],
)
def test_pooling_gradcheck(pool, shape):
    x = rng.permutation(int(np.prod(shape))).reshape(shape) / 10.0  # distinct: no ties at the max
    assert gradcheck(lambda t: weighted(pool(t)), x)


def test_conv2d_matches_a_direct_loop():
    x = rng.standard_normal((2, 3, 6, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    got = F.conv2d(minidl.tensor(x), minidl.tensor(w), minidl.tensor(b), stride=2, padding=1).data
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    expected = np.zeros((2, 4, 3, 3))
    for i in range(3):
        for j in range(3):
            patch = xp[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
            expected[:, :, i, j] = np.einsum("nchw,fchw->nf", patch, w) + b
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_conv2d_same_on_both_kernel_backends():
    x = minidl.tensor(rng.standard_normal((2, 3, 7, 7)))
    w = minidl.tensor(rng.standard_normal((4, 3, 3, 3)))
    fast = F.conv2d(x, w, stride=2, padding=1).data
    with minidl.kernels.use("numpy"):
        ref = F.conv2d(x, w, stride=2, padding=1).data
    np.testing.assert_allclose(fast, ref, rtol=1e-12)


def test_conv2d_channel_mismatch_is_named():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"input has 1 channels .* expects 3"):
        conv(minidl.zeros(1, 1, 5, 5))


def test_dropout_train_and_eval():
    minidl.manual_seed(0)
    drop = nn.Dropout(0.25)
    x = minidl.ones(1000, 10)
    y = drop(x).data
    assert 0.2 < (y == 0).mean() < 0.3
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.75], rtol=1e-6)
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\], got 1.5"):
        nn.Dropout(1.5)


def test_batchnorm_running_statistics_follow_pytorch():
    bn = nn.BatchNorm1d(2, momentum=0.1)
    x = np.array([[1.0, 10.0], [3.0, 14.0], [5.0, 12.0]], dtype=np.float32)
    out = bn(minidl.tensor(x)).data
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(bn.running_mean, 0.1 * x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * x.var(axis=0, ddof=1), rtol=1e-6)
    bn.eval()
    y = bn(minidl.tensor(x)).data
    expected = (x - bn.running_mean) / np.sqrt(bn.running_var + bn.eps)
    np.testing.assert_allclose(y, expected, rtol=1e-5)


def test_module_registry_and_modes():
    model = models.lenet(8)
    names = [n for n, _ in model.named_parameters()]
    assert names[:2] == ["0.weight", "0.bias"] and len(names) == 8
    assert len(list(model.children())) == 10
    assert all(m.training for m in model.modules())
    model.eval()
    assert not any(m.training for m in model.modules())
    out = model(minidl.zeros(2, 1, 8, 8))
    assert out.shape == (2, 10)
    assert models.lenet(28)(minidl.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_zero_grad():
    model = nn.Linear(3, 2)
    model(minidl.ones(1, 3)).sum().backward()
    grad = model.weight.grad
    model.zero_grad(set_to_none=False)
    assert model.weight.grad is grad and not grad.any()
    model.zero_grad()
    assert model.weight.grad is None


def test_state_dict_round_trip_and_errors():
    a, b = models.mlp(), models.mlp()
    b.load_state_dict(a.state_dict())
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
    state = a.state_dict()
    state["1.weight"] = state["1.weight"][:, :10]
    with pytest.raises(
        ValueError, match=r"'1.weight' has shape \(128, 10\) in the state dict but \(128, 64\)"
    ):
        b.load_state_dict(state)
    state = a.state_dict()
    del state["5.bias"]
    state["extra"] = np.zeros(1)
    with pytest.raises(KeyError, match=r"missing keys \['5.bias'\], unexpected keys \['extra'\]"):
        b.load_state_dict(state)
    b.load_state_dict(state, strict=False)


def test_buffers_are_in_the_state_dict():
    bn = nn.BatchNorm2d(3)
    bn(minidl.randn(4, 3, 2, 2))
    state = bn.state_dict()
    assert set(state) == {"weight", "bias", "running_mean", "running_var"}
    fresh = nn.BatchNorm2d(3)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.running_mean, bn.running_mean)


def test_init_draws_from_the_seeded_generator():
    minidl.manual_seed(7)
    a = models.lenet(8).state_dict()
    minidl.manual_seed(7)
    b = models.lenet(8).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_init_statistics():
    minidl.manual_seed(0)
    w = nn.Parameter(np.empty((400, 300), dtype=np.float32))
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.data.std() - np.sqrt(2 / 300)) < 0.01 * np.sqrt(2 / 300) * 5
    nn.init.xavier_uniform_(w)
    assert abs(w.data.max() - np.sqrt(6 / 700)) < 1e-3
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        nn.init.xavier_uniform_(nn.Parameter(np.zeros(3)))


def test_module_without_super_init_gets_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match=r"call super\(\).__init__\(\) first"):
        Broken()
