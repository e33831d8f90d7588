"""SELU gradients: against F.selu and a float64 reference, gradcheck / gradgradcheck in
float64 through both autograd bindings (the operators' C++ autograd, and the
torch.autograd.Function SELUFunction). Dropout's are in test_dropout_gradients.py,
what autograd keeps in memory in test_saved_memory.py."""

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import selu_ext
from conftest import (DEVICES, DTYPES, F64_SECOND_DERIVATIVE, TOL, assert_close_dtype,
                      make_input, ops, require_device, selu_grad_reference)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (1,), (17,), (64, 33), (2, 3, 4, 5)], ids=str)
def test_backward_matches_torch(device, dtype, shape):
    require_device(device)
    x = make_input(shape, dtype, device).requires_grad_()
    g = make_input(shape, dtype, device, seed=7, scale=1.0)
    (gx,) = torch.autograd.grad(selu_ext.selu(x), x, g)
    x2 = x.detach().clone().requires_grad_()
    (gt,) = torch.autograd.grad(F.selu(x2), x2, g)
    assert_close_dtype(gx, selu_grad_reference(x, g), dtype, which="backward")
    rtol, atol = TOL[dtype][2:]
    torch.testing.assert_close(gx, gt, rtol=2 * rtol, atol=2 * atol)


@pytest.mark.parametrize("device", DEVICES)
def test_gradient_at_zero_and_edges(device):
    # The x <= 0 branch at exactly zero: d selu/dx (0) = scale * alpha, as PyTorch.
    require_device(device)
    x = torch.tensor([0.0, -0.0, 1e-30, -1e-30, float("inf"), float("-inf"), float("nan")],
                     device=device, requires_grad=True)
    (g,) = torch.autograd.grad(selu_ext.selu(x).sum(), x)
    x2 = x.detach().clone().requires_grad_()
    (gt,) = torch.autograd.grad(F.selu(x2).sum(), x2)
    torch.testing.assert_close(g, gt, equal_nan=True)
    assert g[0].item() == pytest.approx(selu_ext.SCALE * selu_ext.ALPHA)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("binding", ["op", "function"])
def test_second_derivative_at_zero_and_edges(device, binding):
    # PyTorch's second derivative at exactly x = +-0 is 0 (elu_double_backward tests
    # x < 0), though the first derivative there takes the x <= 0 branch; selu_ext
    # recovers the same from y = selu(x).
    require_device(device)
    fn = selu_ext.selu if binding == "op" else (lambda t: selu_ext.SELUFunction.apply(t))
    vals = [0.0, -0.0, -1.0, 1.0, -1e-30, 1e-30, -50.0]
    for f in (fn, F.selu):
        x = torch.tensor(vals, dtype=torch.float64, device=device, requires_grad=True)
        (g,) = torch.autograd.grad(f(x).sum(), x, create_graph=True)
        (gg,) = torch.autograd.grad(g.sum(), x)
        if f is fn:
            ours = gg
        else:
            torch.testing.assert_close(ours, gg, **F64_SECOND_DERIVATIVE)
    assert ours[0].item() == 0.0 and ours[1].item() == 0.0
    assert ours[6].item() == 0.0  # saturated: y == -scale*alpha exactly


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("binding", ["op", "function"])
def test_gradcheck_and_gradgradcheck(device, binding):
    require_device(device)
    fn = selu_ext.selu if binding == "op" else (lambda t: selu_ext.SELUFunction.apply(t))
    g = torch.Generator().manual_seed(0)
    # Keep clear of the kink at 0, where finite differences are meaningless.
    x = torch.randn(37, generator=g, dtype=torch.float64)
    x = (x + 0.05 * x.sign()).to(device).requires_grad_()
    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))


@pytest.mark.parametrize("device", DEVICES)
def test_backward_op_is_differentiable(device):
    require_device(device)
    g = torch.Generator().manual_seed(1)
    y = ops.selu(torch.randn(23, generator=g, dtype=torch.float64) + 0.1).to(device)
    grad = torch.randn(23, generator=g, dtype=torch.float64).to(device)
    assert gradcheck(ops.selu_backward, (grad.requires_grad_(), y.requires_grad_()))
    assert gradgradcheck(ops.selu_backward, (grad, y))


@pytest.mark.parametrize("device", DEVICES)
def test_backward_accepts_any_gradient_strides(device):
    require_device(device)
    x = make_input((16, 9), torch.float32, device).requires_grad_()
    y = selu_ext.selu(x)
    # sum() hands backward an expanded, stride-0 gradient; .t() a transposed one.
    (g1,) = torch.autograd.grad(y.sum(), x, retain_graph=True)
    (g2,) = torch.autograd.grad(y, x, torch.ones(9, 16, device=device).t())
    x2 = x.detach().clone().requires_grad_()
    (gt,) = torch.autograd.grad(F.selu(x2).sum(), x2)
    # As test_backward_matches_torch: two float32 backwards, each within TOL of exact.
    rtol, atol = TOL[torch.float32][2:]
    torch.testing.assert_close(g1, gt, rtol=2 * rtol, atol=2 * atol)
    torch.testing.assert_close(g2, gt, rtol=2 * rtol, atol=2 * atol)


def test_autograd_function_and_op_agree():
    x = torch.randn(1000, dtype=torch.float64, requires_grad=True)
    g = torch.randn(1000, dtype=torch.float64)
    a = torch.autograd.grad(selu_ext.selu(x), x, g, create_graph=True)[0]
    b = torch.autograd.grad(selu_ext.SELUFunction.apply(x), x, g, create_graph=True)[0]
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(torch.autograd.grad(a.sum(), x)[0],
                               torch.autograd.grad(b.sum(), x)[0], rtol=0, atol=0)
