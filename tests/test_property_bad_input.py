"""Property-based tests of the public API on bad input: only documented errors, each named.

Hypothesis draws wrong dtypes, shapes that do not fit, axes and roots out of
range, unknown algorithm, op and collective names, strided and read-only
buffers, sizes and hyper-parameters that are negative, NaN, fractional or not
numbers at all. Every call must raise one of the exception types its docstring
documents (an IndexError or ZeroDivisionError from deep inside is a bug), with
a message that names the bad argument or its value: what a student needs to
fix the call.

Everything runs in this one process: the collectives on ``MPI.COMM_WORLD`` of
one rank (no ``mpiexec``), where validation is the same as on many ranks.
"""

from __future__ import annotations

import math
import string

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidl
import minidl.distributed as D
import minidl.functional as F
import minidl.nn as nn
import minidl.optim as optim
from minidl.data import DataLoader, TensorDataset, collate
from minidl.distributed import ALGORITHMS, OPS, chunk_bounds, chunk_range, cost, schedule, simulate
from minidl.distributed.schedules import ROOTED

# Deterministic in CI (the same examples every run, nothing saved between runs),
# and no per-example deadline: the machine is shared and noisy.
PROPERTY = settings(
    max_examples=30,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def refused(call, errors, *names: str) -> str:
    """``call()`` raises one of ``errors`` whose message contains one of ``names``.

    Any other exception propagates and fails the test: it is not documented.
    """
    with pytest.raises(errors) as info:
        call()
    message = str(info.value)
    assert any(name in message for name in names), (
        f"{type(info.value).__name__}: {message!r} names none of {names}"
    )
    return message


SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
NAMES = st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)
NOT_AN_INT = st.one_of(st.floats(), st.text(string.digits, min_size=1, max_size=3), st.none())
BAD_DTYPES = st.sampled_from(
    [np.float16, np.int8, np.int16, np.uint8, np.uint16, np.uint32, np.uint64, np.complex64,
     np.complex128, np.object_, "U3", "S2"]
)


def tensor(shape, requires_grad: bool = False) -> minidl.Tensor:
    return minidl.tensor(np.arange(math.prod(shape), dtype=np.float64).reshape(shape) / 7,
                         requires_grad=requires_grad)


# --- Tensors and autograd -----------------------------------------------------------


@PROPERTY
@given(dtype=BAD_DTYPES, shape=SHAPES, how=st.sampled_from(["tensor", "dtype=", "zeros"]))
def test_tensors_refuse_dtypes_they_cannot_hold(dtype, shape, how):
    dtype = np.dtype(dtype)
    data = np.zeros(shape, dtype=dtype)
    call = {
        "tensor": lambda: minidl.tensor(data),
        "dtype=": lambda: minidl.Tensor(np.zeros(shape), dtype=dtype),
        "zeros": lambda: minidl.zeros(shape, dtype=dtype),
    }[how]
    refused(call, TypeError, f"dtype {dtype}")


@PROPERTY
@given(dtype=st.sampled_from([np.int32, np.int64, np.bool_]), shape=SHAPES)
def test_only_float_tensors_require_grad(dtype, shape):
    refused(lambda: minidl.tensor(np.zeros(shape, dtype), requires_grad=True), TypeError,
            np.dtype(dtype).name)


@st.composite
def clashing_shapes(draw) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two shapes that do not broadcast: one trailing side differs and neither is 1."""
    a = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
    b = list(draw(hnp.broadcastable_shapes(a, min_dims=1, max_dims=3, min_side=1)))
    axis = draw(st.integers(1, min(len(a), len(b))))  # counted from the end
    b[-axis] = draw(st.sampled_from([s for s in (2, 3, 4, 5) if s != a[-axis]]))
    return a, tuple(b)


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
    "maximum": minidl.maximum,
    "minimum": minidl.minimum,
    "where": lambda a, b: minidl.where(True, a, b),
}


@PROPERTY
@given(shapes=clashing_shapes(), name=st.sampled_from(list(BINARY)), swap=st.booleans())
def test_binary_ops_name_shapes_that_do_not_broadcast(shapes, name, swap):
    a, b = shapes[::-1] if swap else shapes
    refused(lambda: BINARY[name](tensor(a, True), tensor(b)), ValueError, f"{a} and {b}")


@PROPERTY
@given(m=st.integers(1, 3), k=st.integers(1, 4), k2=st.integers(1, 4), n=st.integers(1, 3),
       batch=hnp.array_shapes(min_dims=0, max_dims=2, max_side=2), vector=st.booleans())
def test_matmul_names_the_sides_that_do_not_align(m, k, k2, n, batch, vector):
    assume(k != k2)
    a, b = batch + (m, k), (k2,) if vector else (k2, n)
    refused(lambda: tensor(a) @ tensor(b), ValueError, f"{a} and {b}")


@PROPERTY
@given(shape=SHAPES, target=hnp.array_shapes(min_dims=1, max_dims=3, max_side=5))
def test_reshape_names_both_shapes_when_the_sizes_differ(shape, target):
    assume(math.prod(shape) != math.prod(target))
    refused(lambda: tensor(shape).reshape(target), ValueError, f"{target}")


@PROPERTY
@given(shape=SHAPES, data=st.data())
def test_transpose_names_axes_that_are_no_permutation(shape, data):
    ndim = len(shape)
    axes = tuple(data.draw(st.lists(st.integers(-ndim - 2, ndim + 1), min_size=1,
                                    max_size=ndim + 1), label="axes"))
    assume(sorted(a % ndim if -ndim <= a < ndim else a for a in axes) != list(range(ndim)))
    refused(lambda: tensor(shape).transpose(axes), ValueError, f"{axes}",
            *(f"axis {a}" for a in axes))


@PROPERTY
@given(shape=SHAPES, data=st.data(), name=st.sampled_from(["sum", "mean", "max", "min"]))
def test_reductions_name_an_axis_out_of_range(shape, data, name):
    ndim = len(shape)
    axis = data.draw(st.one_of(st.integers(ndim, ndim + 3), st.integers(-ndim - 3, -ndim - 1)),
                     label="axis")
    refused(lambda: getattr(tensor(shape), name)(axis=axis), ValueError, f"axis {axis}")


@PROPERTY
@given(shape=SHAPES, data=st.data())
def test_indexing_names_an_index_out_of_range(shape, data):
    index = data.draw(st.one_of(st.integers(shape[0], shape[0] + 3),
                                st.integers(-shape[0] - 3, -shape[0] - 1)), label="index")
    refused(lambda: tensor(shape)[index], IndexError, f"index {index}")


@PROPERTY
@given(shape=SHAPES, data=st.data(), how=st.sampled_from(["concatenate", "stack"]))
def test_concatenate_and_stack_name_an_axis_out_of_range(shape, data, how):
    limit = len(shape) + (how == "stack")  # stack makes a new axis: one more to choose from
    axis = data.draw(st.one_of(st.integers(limit, limit + 3), st.integers(-limit - 3, -limit - 1)),
                     label="axis")
    join = getattr(minidl, how)
    refused(lambda: join([tensor(shape), tensor(shape)], axis=axis), ValueError, f"axis {axis}")


@PROPERTY
@given(shape=SHAPES, other=SHAPES)
def test_concatenate_names_shapes_that_differ_off_the_axis(shape, other):
    assume(len(shape) != len(other) or shape[1:] != other[1:])
    refused(lambda: minidl.concatenate([tensor(shape), tensor(other)]), ValueError,
            f"{shape} and {other}")


@PROPERTY
@given(shape=SHAPES, grad_shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4))
def test_backward_names_a_gradient_of_the_wrong_shape(shape, grad_shape):
    assume(grad_shape != shape)
    y = tensor(shape, True) * 2.0
    refused(lambda: y.backward(np.ones(grad_shape)), ValueError, f"{grad_shape}")
    if math.prod(shape) > 1:  # without a gradient, only a one-element tensor (a loss) will do
        refused(lambda: y.backward(), RuntimeError, f"{shape}")


# --- Functions of minidl.functional -------------------------------------------------


@PROPERTY
@given(batch=st.integers(1, 4), classes=st.integers(1, 4), data=st.data(),
       kind=st.sampled_from(["logits", "dtype", "shape", "range"]))
def test_cross_entropy_names_what_is_wrong_with_its_targets(batch, classes, data, kind):
    logits, targets = tensor((batch, classes), True), np.zeros(batch, dtype=np.int64)
    if kind == "logits":
        shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, max_side=3).filter(
            lambda s: len(s) != 2), label="logits shape")
        refused(lambda: F.cross_entropy(tensor(shape), targets), ValueError, f"{shape}")
    elif kind == "dtype":
        dtype = data.draw(st.sampled_from([np.float32, np.float64, np.bool_]), label="dtype")
        refused(lambda: F.cross_entropy(logits, targets.astype(dtype)), TypeError,
                np.dtype(dtype).name)
    elif kind == "shape":
        shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=5).filter(
            lambda s: s != (batch,)), label="targets shape")
        refused(lambda: F.cross_entropy(logits, np.zeros(shape, np.int64)), ValueError,
                f"{shape}")
    else:
        bad = data.draw(st.one_of(st.integers(classes, classes + 5), st.integers(-5, -1)),
                        label="target")
        targets[data.draw(st.integers(0, batch - 1), label="row")] = bad
        refused(lambda: F.cross_entropy(logits, targets), ValueError, f"target {bad}")


@PROPERTY
@given(shape=SHAPES, other=SHAPES)
def test_mse_loss_names_shapes_that_differ(shape, other):
    assume(shape != other)
    refused(lambda: F.mse_loss(tensor(shape, True), tensor(other)), ValueError,
            f"{shape} and target of shape {other}")


@PROPERTY
@given(x=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
       w=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
       b=st.one_of(st.none(), hnp.array_shapes(min_dims=0, max_dims=2, max_side=4)),
       data=st.data())
def test_linear_names_an_input_weight_or_bias_that_does_not_fit(x, w, b, data):
    if b is not None:  # often one that would broadcast against the output, wrongly
        b = data.draw(st.sampled_from([b, (1,), ()]), label="bias")
    fits = len(x) >= 1 and len(w) == 2 and x[-1] == w[1] and (b is None or b == (w[0],))
    assume(not fits)
    bias = None if b is None else tensor(b)
    refused(lambda: F.linear(tensor(x), tensor(w), bias), ValueError, f"{w}")


@st.composite
def bad_conv(draw) -> tuple[tuple, tuple, object, dict, str]:
    """A conv2d call with one thing wrong, and the text that names it."""
    n, c, h, w, f = (draw(st.integers(1, 3)) for _ in range(5))
    x, wt, bias, options = (n, c, h, w), (f, c, 1, 1), None, {}
    kind = draw(st.sampled_from(["ndim", "channels", "kernel", "stride", "padding", "bias"]))
    if kind == "ndim":
        x = draw(hnp.array_shapes(min_dims=1, max_dims=5, max_side=3).filter(lambda s: len(s) != 4))
        return x, wt, bias, options, f"{x}"
    if kind == "channels":
        wt = (f, draw(st.sampled_from([k for k in range(1, 5) if k != c])), 1, 1)
        return x, wt, bias, options, f"{wt}"
    if kind == "kernel":  # larger than the padded image
        wt = (f, c, h + draw(st.integers(1, 3)), w)
        return x, wt, bias, options, f"kernel {wt[2]}x{w}"
    if kind == "bias":  # some of these broadcast against the output: only the shape check sees
        bias = draw(st.one_of(st.sampled_from([(1,), (), (1, f), (f + 1,)]),
                              hnp.array_shapes(min_dims=0, max_dims=2, max_side=4)).filter(
            lambda s: s != (f,)))
        return x, wt, bias, options, f"{bias}"
    value = draw(st.integers(-3, 0) if kind == "stride" else st.integers(-3, -1))
    options[kind] = value
    return x, wt, bias, options, f"{kind} must be"


@PROPERTY
@given(call=bad_conv())
def test_conv2d_names_the_argument_that_does_not_fit(call):
    x, w, b, options, name = call
    bias = None if b is None else tensor(b)
    refused(lambda: F.conv2d(tensor(x), tensor(w), bias, **options), ValueError, name)


@PROPERTY
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 4),
                       st.integers(1, 4)),
       name=st.sampled_from(["max_pool2d", "avg_pool2d"]),
       kind=st.sampled_from(["ndim", "kernel", "large", "stride"]), data=st.data())
def test_pooling_names_a_window_that_does_not_fit(shape, name, kind, data):
    pool, options, x = getattr(F, name), {"kernel_size": 1}, shape
    if kind == "ndim":
        x = data.draw(hnp.array_shapes(min_dims=1, max_dims=5, max_side=3).filter(
            lambda s: len(s) != 4), label="x")
        expect = "(N, C, H, W)"
    elif kind == "kernel":
        options["kernel_size"] = data.draw(st.integers(-2, 0), label="kernel")
        expect = "kernel_size must be positive"
    elif kind == "large":
        options["kernel_size"] = (shape[2] + data.draw(st.integers(1, 3), label="extra"), 1)
        expect = f"kernel {options['kernel_size'][0]}x1"
    else:
        options["stride"] = data.draw(st.integers(-2, 0), label="stride")
        expect = "stride must be positive"
    refused(lambda: pool(tensor(x), **options), ValueError, expect)


@PROPERTY
@given(p=st.one_of(st.floats(allow_nan=True).filter(lambda p: not 0 <= p <= 1), st.just(math.nan)),
       shape=SHAPES, layer=st.booleans())
def test_dropout_names_a_probability_outside_0_1(p, shape, layer):
    call = (lambda: nn.Dropout(p)) if layer else (lambda: F.dropout(tensor(shape), p))
    refused(call, ValueError, f"got {p}")


@PROPERTY
@given(shape=SHAPES, data=st.data())
def test_flatten_names_a_start_dim_that_is_no_axis(shape, data):
    ndim = len(shape)
    start = data.draw(st.one_of(st.integers(ndim, ndim + 3), st.integers(-ndim - 3, -ndim - 1)),
                      label="start_dim")
    refused(lambda: F.flatten(tensor(shape), start), ValueError, f"start_dim {start}")
    refused(lambda: nn.Flatten(start)(tensor(shape)), ValueError, f"start_dim {start}")


@PROPERTY
@given(shape=SHAPES, channels=st.integers(1, 4))
def test_batch_norm_names_an_input_without_those_channels(shape, channels):
    assume(len(shape) < 2 or shape[1] != channels)
    weight, bias = tensor((channels,)), tensor((channels,))
    refused(lambda: F.batch_norm(tensor(shape), None, None, weight, bias, training=True),
            ValueError, f"{shape}")


# --- Layers and optimizers ----------------------------------------------------------

BAD_SIZES = st.one_of(st.integers(-5, 0), NOT_AN_INT, st.booleans())


@PROPERTY
@given(bad=BAD_SIZES, which=st.sampled_from([
    ("Linear", "in_features"), ("Linear", "out_features"), ("Conv2d", "in_channels"),
    ("Conv2d", "out_channels"), ("Conv2d", "kernel_size"), ("BatchNorm1d", "num_features"),
    ("BatchNorm2d", "num_features"),
]))
def test_layers_name_a_size_that_is_not_a_positive_integer(bad, which):
    layer, argument = which
    sizes = {"Linear": {"in_features": 3, "out_features": 2},
             "Conv2d": {"in_channels": 1, "out_channels": 2, "kernel_size": 3},
             "BatchNorm1d": {"num_features": 3}, "BatchNorm2d": {"num_features": 3}}[layer]
    sizes[argument] = bad
    refused(lambda: getattr(nn, layer)(**sizes), ValueError, argument)


@PROPERTY
@given(items=st.lists(st.one_of(st.integers(), st.text(max_size=3), st.none()), min_size=1,
                      max_size=3), at=st.integers(0, 3))
def test_sequential_names_an_argument_that_is_no_module(items, at):
    modules: list = [nn.ReLU(), nn.Tanh(), nn.Sigmoid()]
    at = min(at, len(modules))
    modules[at:at] = items[:1]
    refused(lambda: nn.Sequential(*modules), TypeError, f"argument {at}")


BAD_RATES = st.one_of(st.floats(max_value=-1e-9), st.just(math.nan), st.text(max_size=3),
                      st.none())


@PROPERTY
@given(bad=BAD_RATES, which=st.sampled_from([
    ("SGD", "lr", "learning rate"), ("SGD", "momentum", "momentum"),
    ("SGD", "dampening", "dampening"), ("SGD", "weight_decay", "weight_decay"),
    ("Adam", "lr", "learning rate"), ("Adam", "eps", "eps"),
    ("Adam", "weight_decay", "weight_decay"),
]))
def test_optimizers_name_a_hyper_parameter_that_is_not_a_number_at_least_0(bad, which):
    name, argument, named = which
    options = {"lr": 0.1, argument: bad}
    refused(lambda: getattr(optim, name)([nn.Parameter(np.ones(2))], **options), ValueError,
            named)


@PROPERTY
@given(betas=st.one_of(
    st.tuples(st.floats(allow_nan=True), st.floats(allow_nan=True)).filter(
        lambda b: not all(0 <= x < 1 for x in b)),
    st.lists(st.floats(0, 0.99), max_size=4).filter(lambda b: len(b) != 2),
    st.floats(0, 0.99),
))
def test_adam_names_betas_that_are_not_two_numbers_in_0_1(betas):
    refused(lambda: optim.Adam([nn.Parameter(np.ones(2))], betas=betas), ValueError, "betas")


@PROPERTY
@given(params=st.sampled_from([[], [np.ones(2)], [minidl.zeros(2)], [3.0]]))
def test_optimizers_name_parameters_they_cannot_optimize(params):
    refused(lambda: optim.SGD(params, lr=0.1), (ValueError, TypeError), "empty parameter list",
            "require grad")


@PROPERTY
@given(bad=BAD_SIZES, which=st.sampled_from([("StepLR", "step_size"),
                                             ("CosineAnnealingLR", "T_max")]))
def test_schedulers_name_a_period_that_is_not_a_positive_integer(bad, which):
    name, argument = which
    optimizer = optim.SGD([nn.Parameter(np.ones(2))], lr=0.1)
    refused(lambda: getattr(optim, name)(optimizer, **{argument: bad}), ValueError, argument)


# --- Data ---------------------------------------------------------------------------

DATASET = TensorDataset(np.zeros((5, 2), np.float32), np.arange(5))


@PROPERTY
@given(bad=BAD_SIZES)
def test_data_loader_names_a_batch_size_that_is_not_a_positive_integer(bad):
    refused(lambda: DataLoader(DATASET, batch_size=bad), ValueError, "batch_size")


@PROPERTY
@given(bad=st.one_of(st.integers(max_value=-1), NOT_AN_INT.filter(lambda s: s is not None),
                     st.booleans()))
def test_data_loader_names_a_seed_that_is_not_a_natural_number(bad):
    refused(lambda: DataLoader(DATASET, shuffle=True, seed=bad), ValueError, "seed")


@PROPERTY
@given(kind=st.sampled_from(["dataset", "sampler", "sampler+shuffle", "sampler+seed",
                             "seed without shuffle"]),
       thing=st.one_of(st.integers(), st.floats(allow_nan=False), st.none()))
def test_data_loader_names_a_dataset_or_sampler_it_cannot_use(kind, thing):
    if kind == "dataset":
        refused(lambda: DataLoader(thing), TypeError, type(thing).__name__)
    elif kind == "sampler":
        assume(thing is not None)
        refused(lambda: DataLoader(DATASET, sampler=thing), TypeError, type(thing).__name__)
    elif kind == "sampler+shuffle":
        refused(lambda: DataLoader(DATASET, sampler=[0, 1], shuffle=True), ValueError, "shuffle")
    elif kind == "sampler+seed":
        refused(lambda: DataLoader(DATASET, sampler=[0, 1], seed=0), ValueError, "seed")
    else:
        refused(lambda: DataLoader(DATASET, seed=0), ValueError, "seed=0")


@PROPERTY
@given(lengths=st.lists(st.integers(1, 5), min_size=2, max_size=3), dtype=BAD_DTYPES)
def test_tensor_datasets_name_arrays_that_do_not_fit(lengths, dtype):
    if len(set(lengths)) > 1:
        arrays = [np.zeros((n, 2)) for n in lengths]
        refused(lambda: TensorDataset(*arrays), ValueError, ", ".join(f"({n}, 2)" for n in lengths))
    dtype = np.dtype(dtype)
    assume(dtype.kind not in "fiu")  # the narrower numbers widen into a batch
    refused(lambda: TensorDataset(np.zeros(3, dtype)), TypeError, f"dtype {dtype}")


@PROPERTY
@given(shapes=st.lists(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3), min_size=2,
                       max_size=4))
def test_collate_names_samples_whose_shapes_differ(shapes):
    assume(len(set(shapes)) > 1)
    refused(lambda: collate([np.zeros(s) for s in shapes]), ValueError, "different shapes")


# --- Collectives: simulated, scheduled, priced ---------------------------------------


@st.composite
def bad_simulations(draw) -> tuple[dict, type, str]:
    """A simulate() call with one argument wrong: (kwargs, error type, text naming it)."""
    collective = draw(st.sampled_from(list(ALGORITHMS)))
    p = draw(st.integers(1, 6))
    n = p * draw(st.integers(1, 3))
    call = {"algorithm": next(iter(ALGORITHMS[collective])), "collective": collective,
            "inputs": [np.arange(n, dtype=np.float64) + r for r in range(p)], "op": "sum",
            "root": 0}
    kind = draw(st.sampled_from(["algorithm", "collective", "op", "dtype", "shapes", "root",
                                 "root type", "blocks"]))
    if kind == "algorithm":
        call["algorithm"] = draw(NAMES.filter(lambda s: s not in ALGORITHMS[collective]))
        return call, ValueError, repr(call["algorithm"])
    if kind == "collective":
        call["collective"] = draw(NAMES.filter(lambda s: s not in ALGORITHMS))
        return call, ValueError, repr(call["collective"])
    if kind == "op":
        call["op"] = draw(NAMES.filter(lambda s: s not in OPS))
        return call, ValueError, repr(call["op"])
    if kind == "dtype":
        dtype = np.dtype(draw(st.one_of(BAD_DTYPES, st.just(np.bool_))))
        call["inputs"] = [x.astype(dtype) for x in call["inputs"]]
        return call, TypeError, f"dtype {dtype}"
    if kind == "shapes":
        assume(p > 1)
        rank = draw(st.integers(1, p - 1))
        call["inputs"][rank] = np.zeros(n + draw(st.integers(1, 3)))
        return call, ValueError, f"rank {rank}"
    if kind == "root":
        call["root"] = draw(st.one_of(st.integers(p, p + 5), st.integers(-5, -1)))
        return call, ValueError, f"root {call['root']}" if collective in ROOTED else "root="
    if kind == "root type":
        call["root"] = draw(NOT_AN_INT)
        return call, TypeError, "root"
    assume(p > 1)
    call["collective"], call["algorithm"] = "alltoall", "pairwise"
    call["inputs"] = [x[: n - 1] for x in call["inputs"]]
    return call, ValueError, f"n={n - 1}"


@settings(PROPERTY, max_examples=60)
@given(case=bad_simulations())
def test_simulate_names_the_argument_that_is_wrong(case):
    call, error, name = case
    refused(lambda: simulate(**call), error, name)


@st.composite
def bad_schedules(draw) -> tuple[tuple, dict, type, str]:
    """A schedule() call with p, rank, n or root wrong."""
    p, n = draw(st.integers(1, 8)), draw(st.integers(0, 20))
    collective = draw(st.sampled_from(["allreduce", "broadcast", "scatter"]))
    algorithm = next(iter(ALGORITHMS[collective]))
    args, kwargs = [algorithm, p, 0, n], {"collective": collective}
    which = draw(st.sampled_from(["p", "rank", "n", "root"]))
    position = {"p": 1, "rank": 2, "n": 3}.get(which)
    if draw(st.booleans()):  # the wrong type
        bad = draw(NOT_AN_INT)
        error = TypeError
        name = {"p": "ranks p must", "rank": "rank must", "n": "elements n must",
                "root": "root must"}[which]
    else:  # out of range
        bad = draw({"p": st.integers(-3, 0), "rank": st.one_of(st.integers(p, p + 3),
                                                               st.integers(-3, -1)),
                    "n": st.integers(-3, -1), "root": st.integers(p, p + 3)}[which])
        error, name = ValueError, f"{which}={bad}"
        if which == "rank" or (which == "root" and collective in ROOTED):
            name = f"{which} {bad} is not a rank"
    if position is None:
        kwargs["root"] = bad
    else:
        args[position] = bad
    return tuple(args), kwargs, error, name


@settings(PROPERTY, max_examples=50)
@given(case=bad_schedules())
def test_schedule_names_a_p_rank_n_or_root_out_of_range(case):
    args, kwargs, error, name = case
    refused(lambda: schedule(*args, **kwargs), error, name)


@PROPERTY
@given(n=st.one_of(st.integers(-5, -1), NOT_AN_INT), p=st.one_of(st.integers(-5, 0), NOT_AN_INT),
       which=st.sampled_from(["n", "p", "i"]), data=st.data())
def test_chunk_bounds_and_chunk_range_name_a_bad_argument(n, p, which, data):
    if which == "n":
        refused(lambda: chunk_bounds(n, 4), (ValueError, TypeError), "n=", "n must")
    elif which == "p":
        refused(lambda: chunk_bounds(4, p), (ValueError, TypeError), "p=", "p must")
    else:
        i = data.draw(st.one_of(st.integers(4, 8), st.integers(-4, -1), NOT_AN_INT), label="i")
        refused(lambda: chunk_range(10, 4, i), (ValueError, TypeError), "chunk ")


@PROPERTY
@given(which=st.sampled_from(["p", "nbytes", "alpha", "beta", "gamma", "algorithm"]),
       data=st.data())
def test_cost_names_a_bad_argument(which, data):
    args = {"algorithm": "ring", "p": 4, "nbytes": 64, "alpha": 1e-6, "beta": 1e-9,
            "gamma": 1e-10}
    if which in ("p", "nbytes"):
        args[which] = data.draw(st.one_of(NOT_AN_INT, st.integers(-5, 0 if which == "p" else -1)),
                                label=which)
        names = (f"{which} must", f"{which}=")
    elif which == "algorithm":
        args[which] = data.draw(NAMES.filter(lambda s: s not in ALGORITHMS["allreduce"]))
        names = (repr(args[which]),)
    else:
        args[which] = data.draw(st.one_of(st.floats(max_value=-1e-12), st.just(math.nan)),
                                label=which)
        names = (f"{which} must",)
    refused(lambda: cost(**args), (ValueError, TypeError), *names)


# --- Collectives on one real rank ----------------------------------------------------

COLLECTIVES = {  # name: (function, takes op, takes root)
    "allreduce": (D.allreduce, True, False),
    "iallreduce": (D.iallreduce, True, False),
    "reduce_scatter": (D.reduce_scatter, True, False),
    "allgather": (D.allgather, False, False),
    "broadcast": (D.broadcast, False, True),
    "reduce": (D.reduce, True, True),
    "scatter": (D.scatter, False, True),
    "gather": (D.gather, False, True),
    "alltoall": (D.alltoall, False, False),
}


@st.composite
def bad_collective_calls(draw) -> tuple[str, np.ndarray, dict, type, str]:
    """A collective's call on one rank with one argument wrong, and the text naming it."""
    name = draw(st.sampled_from(list(COLLECTIVES)))
    _, takes_op, takes_root = COLLECTIVES[name]
    collective = "allreduce" if name == "iallreduce" else name
    buf, kwargs = np.arange(6, dtype=np.float64), {}
    kinds = ["buffer type", "dtype", "strided", "read-only", "algorithm", "comm", "trace"]
    kinds += ["op", "no op"] if takes_op else []
    kinds += ["root", "root type"] if takes_root else []
    kind = draw(st.sampled_from(kinds))
    if kind == "buffer type":
        buf = draw(st.sampled_from([[1.0, 2.0], (1, 2), 3.0, None, "buf"]))
        return name, buf, kwargs, TypeError, "buf must be a NumPy array"
    if kind == "dtype":
        dtype = np.dtype(draw(st.one_of(BAD_DTYPES, st.just(np.bool_))))
        return name, np.zeros(6, dtype), kwargs, TypeError, f"dtype {dtype}"
    if kind == "strided":
        base = np.zeros(draw(st.tuples(st.integers(2, 4), st.integers(2, 4))))
        view = draw(st.sampled_from([base[:, ::2], base[::2, :1], base.T, base[:, 1:]]))
        assume(not view.flags.c_contiguous)
        return name, view, kwargs, ValueError, "not C-contiguous"
    if kind == "read-only":
        buf.flags.writeable = False
        return name, buf, kwargs, ValueError, "read-only"
    if kind == "algorithm":
        kwargs["algorithm"] = draw(st.one_of(
            NAMES.filter(lambda s: s not in (*ALGORITHMS[collective], "auto", "mpi")),
            st.integers(), st.none()))
        return name, buf, kwargs, ValueError, repr(kwargs["algorithm"])
    if kind == "comm":
        # An array too: the fast executor once asked bool(comm) before checking its type.
        kwargs["comm"] = draw(st.one_of(st.integers(), st.text(max_size=3), st.floats(),
                                        st.just(np.ones(3))))
        return name, buf, kwargs, TypeError, type(kwargs["comm"]).__name__
    if kind == "trace":
        kwargs["trace"] = D.Trace(clock="rounds")
        return name, buf, kwargs, ValueError, "clock='rounds'"
    if kind in ("op", "no op"):
        kwargs["op"] = draw(NAMES.filter(lambda s: s not in OPS)) if kind == "op" else None
        return name, buf, kwargs, ValueError, f"unknown op {kwargs['op']!r}"
    if kind == "root":
        kwargs["root"] = draw(st.one_of(st.integers(1, 100), st.integers(-100, -1)))
        return name, buf, kwargs, ValueError, f"root {kwargs['root']}"
    kwargs["root"] = draw(st.one_of(st.floats(), st.text(max_size=2), st.none()))
    return name, buf, kwargs, TypeError, "root must be an int"


@settings(PROPERTY, max_examples=80)
@given(case=bad_collective_calls(), executor=st.sampled_from(["reference", "fast"]))
def test_collectives_name_the_argument_that_is_wrong_and_on_which_rank(case, executor):
    name, buf, kwargs, error, text = case
    fn = COLLECTIVES[name][0]
    with D.use(executor):
        message = refused(lambda: fn(buf, **kwargs), error, text)
        # Which collective, and (once the communicator is known) on which rank.
        collective = "allreduce" if name == "iallreduce" else name
        assert message.startswith(collective), message
        assert "comm" in kwargs or "on rank 0" in message, message
        # A refused call leaves nothing behind: the next good one runs.
        good = np.arange(6, dtype=np.float64)
        D.allreduce(good)
        np.testing.assert_array_equal(good, np.arange(6))


@PROPERTY
@given(name=NAMES.filter(lambda s: s not in ("reference", "fast")))
def test_use_names_an_executor_it_does_not_know(name):
    refused(lambda: D.use(name), ValueError, repr(name))
    assert D.backend() == "fast"
