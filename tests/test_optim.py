"""Optimizers and schedules against their update rules written out."""

import math

import numpy as np
import pytest

import minidl
from minidl import optim


def param(values):
    return minidl.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


GRADS = [np.array([0.5, -1.0]), np.array([0.25, 2.0]), np.array([-1.0, 0.5])]


@pytest.mark.parametrize(
    "momentum, dampening, nesterov, wd",
    [
        (0.0, 0.0, False, 0.0),
        (0.9, 0.0, False, 0.0),
        (0.9, 0.1, False, 0.01),
        (0.9, 0.0, True, 0.01),
    ],
)
def test_sgd_matches_the_pytorch_formula(momentum, dampening, nesterov, wd):
    p = param([1.0, -2.0])
    opt = optim.SGD(
        [p], lr=0.1, momentum=momentum, dampening=dampening, nesterov=nesterov, weight_decay=wd
    )
    expected, buf = np.array([1.0, -2.0]), None
    for t, g in enumerate(GRADS):
        p.grad = g.copy()
        opt.step()
        d = g + wd * expected
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        expected = expected - 0.1 * d
        np.testing.assert_allclose(p.data, expected, rtol=1e-14)


def test_adam_matches_the_formula():
    p = param([1.0, -2.0])
    opt = optim.Adam([p], lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    expected, m, v = np.array([1.0, -2.0]), 0, 0
    for t, g in enumerate(GRADS, start=1):
        p.grad = g.copy()
        opt.step()
        d = g + 0.1 * expected
        m = 0.9 * m + 0.1 * d
        v = 0.99 * v + 0.01 * d * d
        expected = expected - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.99**t)) + 1e-8)
        np.testing.assert_allclose(p.data, expected, rtol=1e-12)


def test_parameters_without_grad_are_skipped_and_zero_grad_resets():
    a, b = param([1.0]), param([2.0])
    opt = optim.SGD([a, b], lr=1.0)
    a.grad = np.array([1.0])
    opt.step()
    assert a.data.tolist() == [0.0] and b.data.tolist() == [2.0]
    opt.zero_grad()
    assert a.grad is None


def test_param_groups_override_defaults():
    a, b = param([1.0]), param([1.0])
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad, b.grad = np.array([1.0]), np.array([1.0])
    opt.step()
    np.testing.assert_allclose([a.item(), b.item()], [0.9, 0.5])


def test_bad_hyper_parameters_are_named():
    with pytest.raises(ValueError, match="invalid learning rate -1"):
        optim.SGD([param([1.0])], lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([param([1.0])], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="require grad"):
        optim.SGD([minidl.zeros(2)], lr=0.1)


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps, lr=0.1),
                                  lambda ps: optim.AdamW(ps, lr=0.1, weight_decay=0.1)],
                         ids=["sgd", "adam", "adamw"])
def test_optimizer_state_dict_resumes_exactly(make):
    a = param([1.0, 2.0])
    opt = make([a])
    for g in GRADS[:2]:
        a.grad = g.copy()
        opt.step()
    saved_p, saved = a.data.copy(), opt.state_dict()
    a.grad = GRADS[2].copy()
    opt.step()
    straight = a.data.copy()

    b = param(saved_p)
    opt2 = make([b])
    opt2.load_state_dict(saved)
    b.grad = GRADS[2].copy()
    opt2.step()
    np.testing.assert_array_equal(b.data, straight)


def test_step_lr_and_cosine():
    p = param([1.0])
    opt = optim.SGD([p], lr=1.0)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25]

    opt = optim.SGD([p], lr=1.0)
    cos = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.1)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        cos.step()
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)]
    np.testing.assert_allclose(lrs, expected)

    state = cos.state_dict()
    opt3 = optim.SGD([p], lr=1.0)
    cos3 = optim.CosineAnnealingLR(opt3, T_max=4, eta_min=0.1)
    cos3.load_state_dict(state)
    assert opt3.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])
