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
from dropout_common import SA, is_dropped, keep_mask, rng_state, stored


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_fused_backward_from_z_without_the_mask(dtype):
    """The CPU fused backward tells dropped units by z == the dropped value, and
    regenerates the mask only in 256-element blocks (here a row each) holding a NaN z
    (NaN or infinite x), whose kept and dropped units have different gradients. Saturated kept units
    (row 3): test_fused_backward_saturated_units."""
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


INT_OF = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32,
          torch.float64: torch.int64}


def _saturation_inputs(dtype, p, rng):
    """x = -inf, x far below saturation, the 17 values of dtype centred on the first
    (largest) x whose kept z is saturated, and two ordinary values. Saturated: z is
    z(-inf) or the dropped value as stored (the same number in float16 / bfloat16; an
    ULP apart at some p in float and double). The boundary is the kernel's own, found
    by bisection on the bits of x: in float and double it is where the forward's
    expm1 rounds to -1, about 0.5 below where a float64 z would round onto z(-inf)."""
    k = int(keep_mask(rng, torch.empty(64), p).nonzero()[0])  # a kept position
    dropped = stored(selu_ext.alpha_dropout_coefficients(p)[2], dtype)

    def z_kept(v):
        x = torch.zeros(k + 1, dtype=torch.float64)
        x[k] = v
        return ops.selu_alpha_dropout(x.to(dtype), p, rng)[k]

    floor = z_kept(-math.inf)

    def is_saturated(v):
        z = z_kept(v)
        return bool(z == floor or z == dropped)

    def bits(v):
        return int(torch.tensor(v, dtype=dtype).view(INT_OF[dtype]))

    def value(i):
        return torch.tensor(i, dtype=INT_OF[dtype]).view(dtype)

    # For negative x the signed bit patterns grow as x falls.
    ordinary, saturated = bits(-1.0), bits(-45.0)
    assert is_saturated(-45.0) and not is_saturated(-1.0)
    while saturated - ordinary > 1:
        mid = (saturated + ordinary) // 2
        if is_saturated(value(mid).item()):
            saturated = mid
        else:
            ordinary = mid
    around = torch.stack([value(saturated + i) for i in range(-8, 9)])
    return torch.cat([torch.tensor([-math.inf, -1e4, -100.0, -40.0], dtype=dtype), around,
                      torch.tensor([-1.0, 0.5], dtype=dtype)])


def _check_saturated_units(device, dtype, p):
    rng = rng_state(8)
    x0 = _saturation_inputs(dtype, p, rng)
    n = 4096
    x = x0.repeat(n // x0.numel() + 1)[:n].to(device)
    g = torch.randn(n, generator=torch.Generator().manual_seed(3),
                    dtype=torch.float64).to(device, dtype)
    w = torch.randn(n, generator=torch.Generator().manual_seed(4),
                    dtype=torch.float64).to(device, dtype)
    keep = keep_mask(rng, x, p)
    a, b, dropped = selu_ext.alpha_dropout_coefficients(p)
    z = ops.selu_alpha_dropout(x, p, rng)
    gx = ops.selu_alpha_dropout_backward(g, z, p, rng)
    # Saturated as in _saturation_inputs.
    at_dropped = z == stored(dropped, dtype).to(device)
    floor = z[keep & (x == -math.inf)]
    assert floor.numel() > 0 and (floor == floor[0]).all()
    saturated = keep & (at_dropped | (z == floor[0]))
    zero = saturated | ~keep
    near = keep & (x >= x0[4:21].min().to(device)) & (x <= x0[4:21].max().to(device))
    assert (near & saturated).any() and (near & ~saturated).any() and (~keep).any()
    # grad * 0 exactly, signed as it, where saturated or dropped; elsewhere the
    # float64 reference within z's rounding.
    assert torch.equal(gx[zero], (g * 0)[zero])
    assert torch.equal(gx[zero].signbit(), g[zero].signbit())
    want = a * selu_grad_reference(x.to(torch.float64), g.to(torch.float64))
    tol = FUSED_BACKWARD_FROM_Z[dtype]
    torch.testing.assert_close(gx.to(torch.float64)[~zero], want[~zero], rtol=tol, atol=tol)
    # Forward-mode AD gives the same tangent, double backward the same zeros: in grad
    # (D(z) * w), in x, and in z itself, whose D'(z) is 0 where z is the dropped value.
    _, tangent = torch.func.jvp(lambda v: ops.selu_alpha_dropout(v, p, rng), (x,), (g,))
    assert torch.equal(tangent, gx)
    xr, gr = x.clone().requires_grad_(), g.clone().requires_grad_()
    (gxr,) = torch.autograd.grad(ops.selu_alpha_dropout(xr, p, rng), xr, gr, create_graph=True)
    assert torch.equal(gxr, gx)
    d_x, d_g = torch.autograd.grad(gxr, (xr, gr), w)
    assert torch.equal(d_g, ops.selu_alpha_dropout_backward(w, z, p, rng))
    assert (d_x[zero] == 0).all() and (d_g[zero] == 0).all()
    zr = z.clone().requires_grad_()
    (d_z,) = torch.autograd.grad(ops.selu_alpha_dropout_backward(g, zr, p, rng), zr, w)
    negative = keep & ~saturated & (z < stored(b, dtype).to(device))
    assert (d_z[~negative] == 0).all() and torch.equal(d_z[negative], (w * g)[negative])
    assert (negative & near).any()
    return at_dropped, saturated


# A p at which the two saturated values (the dropped value and the forward's z at
# x = -inf) are different numbers of the dtype: rare in float16 and bfloat16.
SPLIT_P = {torch.float16: 0.11347, torch.bfloat16: 0.94876, torch.float32: 0.3,
           torch.float64: 0.2}


@pytest.mark.parametrize("p", [0.1, 0.5, "split"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_fused_backward_saturated_units(cpu_capability, dtype, p):
    """Issue 22: a saturated kept unit (x = -inf, far below, or from the first x whose
    z is saturated) gets exactly a dropped unit's gradient, grad * 0, in the backward
    kernel, its jvp and its double backward; the units just above get the float64
    reference's. Once per CPU variant (SELU_EXT_SCALAR_KERNELS=1 builds make
    "baseline" the scalar loops)."""
    split = p == "split"
    at_dropped, saturated = _check_saturated_units("cpu", dtype, SPLIT_P[dtype] if split else p)
    if split:  # kept units met the saturated value that is not the dropped one
        assert (saturated & ~at_dropped).any()


@pytest.mark.cuda
@pytest.mark.parametrize("p", [0.1, 0.5, "split"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_fused_backward_saturated_units_cuda(dtype, p):
    require_device("cuda")
    _check_saturated_units("cuda", dtype, SPLIT_P[dtype] if p == "split" else p)


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
