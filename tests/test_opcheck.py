"""torch.library.opcheck on every operator: schema (mutation annotations), autograd
registration, fake kernels (shapes, dtypes, strides) and AOT dispatch with dynamic
shapes, with inputs that are contiguous, transposed, channels_last, 0-d, empty and
odd-sized, with requires_grad on and off."""

import pytest
import torch

from conftest import DEVICES, make_input, require_device

OPS = torch.ops.selu_ext
LAYOUTS = [
    ("contiguous", (7, 13)),
    ("transposed", (9, 5)),
    ("channels_last", (2, 3, 4, 5)),
    ("sliced", (5, 6)),
    ("contiguous", ()),
    ("contiguous", (0, 3)),
    ("contiguous", (1031,)),
]
IDS = [f"{lay}-{'x'.join(map(str, s)) or 'scalar'}" for lay, s in LAYOUTS]


def _x(layout, shape, device, requires_grad, dtype=torch.float32, seed=0):
    t = make_input(shape, dtype, device, layout=layout, seed=seed)
    # Away from 0, where the two branches of the derivative meet.
    t = (t + 0.1 * torch.sign(t)).requires_grad_(requires_grad)
    return t


def _rng(device):
    return torch.tensor([1234, 8], dtype=torch.int64, device=device)


def _check(op, args, **kw):
    torch.library.opcheck(op, args, **kw)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout,shape", LAYOUTS, ids=IDS)
@pytest.mark.parametrize("requires_grad", [False, True])
def test_selu_ops(device, layout, shape, requires_grad):
    require_device(device)
    x = _x(layout, shape, device, requires_grad)
    _check(OPS.selu.default, (x,))
    _check(OPS.selu_.default, (x.detach().clone(),))
    y = OPS.selu(x.detach()).requires_grad_(requires_grad)
    g = _x(layout, shape, device, requires_grad, seed=3)
    _check(OPS.selu_backward.default, (g, y))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout,shape", LAYOUTS, ids=IDS)
@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("p", [0.0, 0.2, 1.0])
def test_dropout_ops(device, layout, shape, requires_grad, p):
    require_device(device)
    rng = _rng(device)
    x = _x(layout, shape, device, requires_grad)
    _check(OPS.alpha_dropout.default, (x, p, rng))
    _check(OPS.alpha_dropout_.default, (x.detach().clone(), p, rng))
    g = _x(layout, shape, device, requires_grad, seed=5)
    _check(OPS.alpha_dropout_backward.default, (g, p, rng))
    _check(OPS.selu_alpha_dropout.default, (x, p, rng))
    z = OPS.selu_alpha_dropout(x.detach(), p, rng).requires_grad_(requires_grad)
    _check(OPS.selu_alpha_dropout_backward.default, (g, z, p, rng))


FEATURE_LAYOUTS = [(lay, s) for lay, s in LAYOUTS if len(s) >= 2]  # (N, C, *)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout,shape", FEATURE_LAYOUTS,
                         ids=[i for i, (_, s) in zip(IDS, LAYOUTS) if len(s) >= 2])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_feature_dropout_ops(device, layout, shape, requires_grad):
    # Composite operators (no kernel, fake kernel or autograd of their own): what is
    # checked is that they decompose into ops that trace, as their body's ops did
    # when functional.py ran a Python copy of it.
    require_device(device)
    rng = _rng(device)
    x = _x(layout, shape, device, requires_grad)
    _check(OPS.feature_alpha_dropout.default, (x, 0.3, rng))
    _check(OPS.feature_alpha_dropout_.default, (x.detach().clone(), 0.3, rng))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout,shape", LAYOUTS, ids=IDS)
@pytest.mark.parametrize("into_grad", [False, True], ids=["fresh", "into_grad_output"])
def test_backward_grad_input_forms(device, layout, shape, into_grad):
    """The backward ops' .grad_input forms, into a fresh contiguous buffer or into
    grad_output itself, as the autograd nodes call them."""
    require_device(device)
    rng = _rng(device)
    x = _x(layout, shape, device, False).contiguous()
    y = OPS.selu(x)
    z = OPS.selu_alpha_dropout(x, 0.3, rng)
    cases = [
        (OPS.selu_backward.grad_input, OPS.selu_backward, (y, True)),
        (OPS.selu_backward.grad_input, OPS.selu_backward, (x, False)),
        (OPS.alpha_dropout_backward.grad_input, OPS.alpha_dropout_backward, (0.3, rng)),
        (OPS.selu_alpha_dropout_backward.grad_input, OPS.selu_alpha_dropout_backward,
         (z, 0.3, rng)),
    ]
    for op, functional, rest in cases:
        g = _x("contiguous", shape, device, False, seed=5)
        out = g if into_grad else torch.empty_like(g)
        # opcheck's schema test would see grad_output mutated through the alias.
        _check(op, (g, *rest), kwargs={"grad_input": torch.empty_like(g)})
        want = functional(g, *rest)
        op(g, *rest, grad_input=out)
        assert torch.equal(out, want)


@pytest.mark.parametrize("device", DEVICES)
def test_dropout_ops_with_cpu_rng_state(device):
    # A CPU rng_state (a user-fixed seed) works with inputs on any device.
    require_device(device)
    x = _x("contiguous", (64,), device, True)
    _check(OPS.selu_alpha_dropout.default, (x, 0.3, _rng("cpu")))


@pytest.mark.parametrize("device", DEVICES)
def test_keep_mask_and_rng_state(device):
    require_device(device)
    _check(OPS.dropout_keep_mask.default, (_rng(device), 1000, 0.25))
    _check(OPS.dropout_keep_mask.default, (_rng(device), 0, 0.25))
    # dropout_rng_state draws from torch's generator on every call, so only checks
    # that need no two calls to agree apply.
    _check(OPS.dropout_rng_state.default, (torch.device(device),),
           test_utils=("test_schema", "test_faketensor"))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_dtypes(dtype):
    x = _x("contiguous", (5, 7), "cpu", dtype == torch.float64, dtype=dtype)
    _check(OPS.selu.default, (x,))
    _check(OPS.selu_alpha_dropout.default, (x, 0.5, _rng("cpu")))
