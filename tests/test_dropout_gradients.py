"""AlphaDropout, FeatureAlphaDropout and the fused SELU + AlphaDropout, gradients:
backward values against the float64 reference with the operators' own keep mask
(the fused CPU backward from z included), gradcheck / gradgradcheck with the mask
fixed by a seed or an explicit rng_state through every binding, PyTorch's second
derivative at zero, and the backward operators' own derivatives."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import selu_ext
from conftest import (DEVICES, F64_SECOND_DERIVATIVE, FUSED_BACKWARD_FROM_Z, TOL, make_input,
                      ops, require_device, selu_grad_reference)
from dropout_common import is_dropped, keep_mask, rng_state


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_fused_backward_from_z_without_the_mask(dtype):
    """The CPU fused backward tells dropped units by z == the dropped value, and
    regenerates the mask only in 256-element blocks (here a row each) holding a NaN z
    (NaN or infinite x), whose kept and dropped units have different gradients. Saturated kept units
    (row 3) keep their gradient of ~0 within z's rounding, whichever way they go."""
    p = 0.5
    x = make_input((8, 256), torch.float32, "cpu", seed=11, scale=3.0).to(dtype)
    rng = rng_state(21)
    keep = keep_mask(rng, x, p)
    nan_at = (0, int((~keep[0]).nonzero()[0]))  # a dropped unit: its z is NaN too
    inf_at = (2, int(keep[2].nonzero()[0]))      # a kept one: z = +inf
    x[nan_at] = math.nan
    x[inf_at] = math.inf
    x[0, int(keep[0].nonzero()[0])] = math.nan  # and a kept NaN in the same block
    x[3, :64] = -200.0  # saturated: about half of them kept
    g = make_input((8, 256), torch.float32, "cpu", seed=12, scale=1.0).to(dtype)
    z = ops.selu_alpha_dropout(x, p, rng)
    gx = ops.selu_alpha_dropout_backward(g, z, p, rng)
    a = selu_ext.alpha_dropout_coefficients(p)[0]
    x64, g64 = x.to(torch.float64), g.to(torch.float64)
    want = torch.where(keep, a * selu_grad_reference(x64, g64), 0 * g64)
    nan = x64.isnan() | x64.isinf()
    tol = FUSED_BACKWARD_FROM_Z[dtype]
    torch.testing.assert_close(gx.to(torch.float64)[~nan], want[~nan], rtol=tol, atol=tol)
    # Rows 0 and 2 hold NaN z: the mask decides, so a dropped NaN unit gets grad * 0
    # (PyTorch: alpha_dropout's grad * 0, then selu's backward of 0) and a kept one
    # grad * a * scale (NaN x takes selu's scale branch, as in PyTorch).
    assert gx[nan_at].item() == 0.0
    for i, j in nan.nonzero().tolist():
        want_ij = a * selu_ext.SCALE * g64[i, j].item() if keep[i, j] else 0.0
        assert gx[i, j].item() == pytest.approx(want_ij, rel=tol, abs=tol)
    dropped = ~keep & ~nan
    assert (gx[dropped] == 0).all() and torch.equal(gx[dropped].signbit(), (g[dropped] < 0))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_alpha_dropout_backward_values(device, dtype):
    require_device(device)
    p = 0.3
    x = make_input((100, 37), dtype, device).requires_grad_()
    g = make_input((100, 37), dtype, device, seed=4, scale=1.0)
    (gx,) = torch.autograd.grad(selu_ext.alpha_dropout(x, p, True, seed=6), x, g)
    a = selu_ext.alpha_dropout_coefficients(p)[0]
    keep = keep_mask(rng_state(6), x, p)
    want = torch.where(keep, a * g.to(torch.float64), torch.zeros((), dtype=torch.float64,
                                                                   device=device))
    rtol, atol = TOL[dtype][2:]
    torch.testing.assert_close(gx.to(torch.float64), want, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------
# gradcheck with the mask fixed by an explicit rng_state / seed


def _away_from_zero(shape, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    return (x + 0.1 * x.sign()).to(device).requires_grad_()


GRAD_FUNCTIONS = {
    "alpha_dropout": lambda t: selu_ext.alpha_dropout(t, 0.3, True, seed=17),
    "alpha_dropout-op": lambda t: ops.alpha_dropout(t, 0.3, rng_state(17, 4)),
    "alpha_dropout-function": lambda t: selu_ext.AlphaDropoutFunction.apply(
        t, 0.3, rng_state(17, 4)),
    "alpha_dropout-inplace": lambda t: selu_ext.alpha_dropout(t * 1.0, 0.3, True, True, seed=17),
    "selu_alpha_dropout": lambda t: selu_ext.selu_alpha_dropout(t, 0.3, True, seed=17),
    "selu_alpha_dropout-op": lambda t: ops.selu_alpha_dropout(t, 0.3, rng_state(17, 4)),
    "selu_alpha_dropout-function": lambda t: selu_ext.SELUAlphaDropoutFunction.apply(
        t, 0.3, rng_state(17, 4)),
    "feature_alpha_dropout": lambda t: selu_ext.feature_alpha_dropout(
        t.view(6, 5, -1), 0.3, True, seed=17),
    "feature_alpha_dropout-inplace": lambda t: selu_ext.feature_alpha_dropout(
        t.view(6, 5, -1) * 1.0, 0.3, True, True, seed=17),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(GRAD_FUNCTIONS))
def test_gradcheck_and_gradgradcheck(device, name):
    require_device(device)
    fn = GRAD_FUNCTIONS[name]
    x = _away_from_zero((60,), device)
    y = fn(x)
    # The fixed mask must drop some units and keep others, or this proves little.
    n_dropped = int(is_dropped(y, 0.3).sum())
    assert 0 < n_dropped < 60
    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("binding", ["op", "function"])
def test_fused_second_derivative_matches_pytorch_at_zero(device, binding):
    # selu then PyTorch's AlphaDropout formula with the same mask, in float64, over
    # exact zeros (zero padding) and ordinary values: first and second derivatives
    # equal, including PyTorch's 0 second derivative at x = +-0.
    require_device(device)
    p, rng = 0.3, rng_state(7, 0)
    vals = torch.tensor([0.0, -0.0] * 8 + [-1.0, 1.0, -0.25, 2.0] * 4, dtype=torch.float64)
    keep = keep_mask(rng, vals, p).to(device)
    a, b, dropped = selu_ext.alpha_dropout_coefficients(p)
    assert keep[:16].any() and (~keep[:16]).any()
    if binding == "op":
        fused = lambda t: ops.selu_alpha_dropout(t, p, rng)
    else:
        fused = lambda t: selu_ext.SELUAlphaDropoutFunction.apply(t, p, rng)
    results = []
    for f in (fused, lambda t: torch.where(keep, a * F.selu(t) + b, dropped + 0 * t)):
        x = vals.clone().to(device).requires_grad_()
        (g,) = torch.autograd.grad(f(x).sum(), x, create_graph=True)
        (gg,) = torch.autograd.grad(g.sum(), x)
        results.append((g, gg))
    torch.testing.assert_close(results[0][0], results[1][0], **F64_SECOND_DERIVATIVE)
    torch.testing.assert_close(results[0][1], results[1][1], **F64_SECOND_DERIVATIVE)
    assert (results[0][1][:16] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
def test_backward_ops_gradcheck(device):
    # The backward operators are themselves differentiable (double backward).
    require_device(device)
    rng = rng_state(31, 2)
    g = _away_from_zero((40,), device, seed=1)
    z = ops.selu_alpha_dropout(_away_from_zero((40,), device, seed=2).detach(), 0.4, rng)
    assert gradcheck(lambda t: ops.alpha_dropout_backward(t, 0.4, rng), (g,))
    assert gradcheck(lambda t: ops.selu_alpha_dropout_backward(t, z, 0.4, rng), (g,))
