"""AlphaDropout, FeatureAlphaDropout and the fused SELU + AlphaDropout: values against
PyTorch's formulas applied with the operators' own keep mask (float64 reference,
every dtype and device), drop-in semantics (eval, p = 0 / 1, errors, in-place),
gradients (gradcheck / gradgradcheck with a fixed mask), the random stream
(torch.manual_seed, seed=, CPU vs CUDA) and what autograd keeps in memory.

The statistics of the mask and of the output (drop rate, mean 0 / variance 1) are in
test_dropout_statistics.py."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import selu_ext
from selu_ext.bench.memory import saved_bytes
from conftest import (DEVICES, DTYPES, TOL, make_input, ops, require_device,
                      selu_grad_reference, selu_reference)

SA = selu_ext.SCALE * selu_ext.ALPHA  # PyTorch's alpha' = -1.7580993408473766 is -SA

# Unit roundoff of the precision the kernels compute in (float for half/bf16).
U_COMPUTE = {torch.float64: 2.0 ** -53, torch.float32: 2.0 ** -24,
             torch.float16: 2.0 ** -24, torch.bfloat16: 2.0 ** -24}

SHAPES = [(1,), (7,), (127, 129), (3, 5, 7, 9), (65537,)]
LAYOUTS = ["transposed", "sliced", "channels_last"]


def _state(seed, offset=0, device="cpu"):
    return torch.tensor([seed, offset], dtype=torch.int64, device=device)


def _keep(rng_state, x, p):
    """The keep mask the dropout ops use for ``x`` with this state, shaped like x:
    element i of the flat mask belongs to x's i-th element in row-major order."""
    return ops.dropout_keep_mask(rng_state, x.numel(), p).to(x.device).view(x.shape)


def _is_value(y, v):
    """Elements of y equal to the constant v up to a few roundings in y's dtype (a
    kernel may form the constant in float or double)."""
    eps = torch.finfo(y.dtype).eps
    return (y.to(torch.float64) - v).abs() <= 2 * eps * abs(v)


def _dropped(y, p):
    """Where y holds the dropped units' value. Unambiguous: kept units are
    a*x + b with b > 0 > dropped, so a kept unit matches only if x sits within
    a few ULP of (dropped - b) / a = -SELU's scale*alpha."""
    return _is_value(y, selu_ext.alpha_dropout_coefficients(p)[2])


def _dropout_reference(s64, keep, p):
    """PyTorch's AlphaDropout formulas in float64 on ``s64``: kept a*s + b, dropped
    a*alpha' + b. Returns (reference, magnitude of the terms summed)."""
    a, b, dropped = selu_ext.alpha_dropout_coefficients(p)
    assert dropped == pytest.approx(a * -SA + b, rel=1e-15)
    ref = torch.where(keep, a * s64 + b, torch.full_like(s64, dropped))
    mag = torch.where(keep, (a * s64).abs() + abs(b), torch.full_like(s64, abs(dropped)))
    return ref, mag


def _assert_formula(y, ref64, mag64, dtype, units, u=None):
    """|y - ref| <= rtol(dtype) * |ref| + units * u * (|a*s| + |b|): the error of one
    rounding to dtype plus ``units`` roundoffs of the compute precision on the terms
    (a*s + b cancels near s = -b/a, so a bound relative to the result alone cannot
    hold)."""
    assert y.dtype == dtype
    rtol = TOL[dtype][0]
    want = ref64.to(dtype).to(torch.float64).cpu()
    got = y.detach().to(torch.float64).cpu()
    u = U_COMPUTE[dtype] if u is None else u
    bound = rtol * want.abs() + units * u * mag64.cpu()
    err = (got - want).abs()
    bad = err > bound
    assert not bad.any(), (f"{int(bad.sum())} of {bad.numel()} elements off; worst "
                           f"{(err / bound.clamp(min=1e-300)).max().item():.3g}x the bound")


# ---------------------------------------------------------------------------
# Values: PyTorch's formulas with the operators' own mask


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("p", [0.05, 0.5, 0.9])
def test_alpha_dropout_matches_formula(device, dtype, shape, p):
    require_device(device)
    x = make_input(shape, dtype, device)
    y = selu_ext.alpha_dropout(x, p, training=True, seed=1234)
    assert y.shape == x.shape and y.device == x.device
    keep = _keep(_state(1234), x, p)
    assert 0 < int(keep.sum()) < keep.numel() or keep.numel() < 50
    ref, mag = _dropout_reference(x.to(torch.float64), keep, p)
    _assert_formula(y, ref, mag, dtype, units=2)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("p", [0.05, 0.5, 0.9])
def test_selu_alpha_dropout_matches_formula(device, dtype, shape, p):
    require_device(device)
    x = make_input(shape, dtype, device)
    y = selu_ext.selu_alpha_dropout(x, p, training=True, seed=99)
    keep = _keep(_state(99), x, p)
    ref, mag = _dropout_reference(selu_reference(x).to(device), keep, p)
    # SELU's own error (<= 2 ULP of float, tests/test_values.py) enters scaled by a.
    _assert_formula(y, ref, mag, dtype, units=4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fn", ["alpha_dropout", "selu_alpha_dropout"])
def test_mask_follows_logical_row_major_index(device, dtype, layout, fn):
    # Element i of the mask belongs to the i-th element in row-major (logical)
    # order, whatever the memory layout: a strided input gets the same result as
    # its contiguous copy.
    require_device(device)
    shape = (3, 8, 5, 7) if layout != "transposed" else (37, 53)
    x = make_input(shape, dtype, device, layout=layout)
    f = getattr(selu_ext, fn)
    y = f(x, 0.3, training=True, seed=5)
    torch.testing.assert_close(y, f(x.contiguous(), 0.3, training=True, seed=5), rtol=0, atol=0)
    keep = _keep(_state(5), x, 0.3)
    s = x.to(torch.float64) if fn == "alpha_dropout" else selu_reference(x).to(device)
    ref, mag = _dropout_reference(s, keep, 0.3)
    _assert_formula(y, ref, mag, dtype, units=4)


@pytest.mark.parametrize("fn", ["alpha_dropout", "selu_alpha_dropout"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_cpu_kernel_variant(cpu_capability, fn, dtype):
    # Every compiled ISA variant, at lengths around the vector widths: the same mask
    # and the same formula.
    for n in (1, 15, 16, 17, 33, 64, 65, 1000):
        x = make_input((n,), dtype, "cpu", seed=n)
        y = getattr(selu_ext, fn)(x, 0.3, training=True, seed=n)
        s = x.to(torch.float64) if fn == "alpha_dropout" else selu_reference(x)
        ref, mag = _dropout_reference(s, _keep(_state(n), x, 0.3), 0.3)
        _assert_formula(y, ref, mag, dtype, units=4)


@pytest.mark.parametrize("device", DEVICES)
def test_mask_does_not_depend_on_dtype(device):
    require_device(device)
    x = torch.zeros(4099, device=device)
    masks = [_dropped(selu_ext.alpha_dropout(x.to(dt), 0.4, training=True, seed=12), 0.4)
             for dt in DTYPES]
    for m in masks[1:]:
        assert torch.equal(m, masks[0])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_alpha_dropout_matches_pytorch_code(device, dtype):
    """torch.nn.functional.alpha_dropout's own code (aten/src/ATen/native/Dropout.cpp)
    run in ``dtype`` with our mask as its Bernoulli noise."""
    require_device(device)
    p = 0.2
    x = make_input((61, 67), dtype, device)
    keep = _keep(_state(77), x, p)
    alpha = 1.7580993408473766
    a = 1.0 / math.sqrt((alpha * alpha * p + 1) * (1 - p))
    noise = keep.to(dtype)
    b = noise.add(-1).mul_(alpha * a).add_(alpha * a * p)
    theirs = x * noise.mul_(a) + b
    ours = selu_ext.alpha_dropout(x, p, training=True, seed=77)
    ref, mag = _dropout_reference(x.to(torch.float64), keep, p)
    # PyTorch rounds a, a*x, b and the sum to dtype itself: four roundoffs of dtype.
    # This pins down that the transcription above is PyTorch's formula.
    u_dtype = torch.finfo(dtype).eps / 2
    _assert_formula(theirs, ref, mag, dtype, units=4, u=u_dtype)
    # Ours is within a few float roundoffs of the exact value (computed in float),
    # so within theirs' bound of it too.
    _assert_formula(ours, ref, mag, dtype, units=2)
    err = (ours.double() - theirs.double()).abs()
    assert (err <= 2 * TOL[dtype][0] * theirs.double().abs() + 6 * u_dtype * mag).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6, 13), (6, 13, 11), (4, 9, 5, 3), (2, 3, 2, 2, 2)], ids=str)
def test_feature_alpha_dropout_drops_whole_channels(device, dtype, shape):
    require_device(device)
    p = 0.4
    x = make_input(shape, dtype, device)
    y = selu_ext.feature_alpha_dropout(x, p, training=True, seed=2024)
    n, c = shape[:2]
    # The mask is dropout_keep_mask over the N*C (n, c) pairs, broadcast over the rest.
    keep_nc = ops.dropout_keep_mask(_state(2024), n * c, p).to(device).view(n, c)
    assert 0 < int(keep_nc.sum()) < n * c
    keep = keep_nc.view((n, c) + (1,) * (len(shape) - 2)).expand(shape)
    ref, mag = _dropout_reference(x.to(torch.float64), keep, p)
    # Coefficients rounded to dtype, a multiply and an add in dtype, as PyTorch's own
    # feature_alpha_dropout computes: up to four roundings of dtype on the terms.
    _assert_formula(y, ref, mag, dtype, units=4, u=torch.finfo(dtype).eps / 2)
    # Every dropped channel is one constant; no kept channel holds it everywhere.
    # (Exactly the constant rounded to dtype: with one-element channels in bfloat16,
    # a tolerance would also match kept values.)
    d = torch.tensor(selu_ext.alpha_dropout_coefficients(p)[2], dtype=dtype).item()
    flat = y.reshape(n, c, -1)
    assert torch.equal((flat == d).all(dim=2), ~keep_nc)


@pytest.mark.parametrize("device", DEVICES)
def test_feature_alpha_dropout_matches_pytorch_code(device):
    """torch.nn.functional.feature_alpha_dropout's code (noise of shape (N, C, 1, 1))
    with our (N, C) mask."""
    require_device(device)
    p = 0.25
    x = make_input((5, 8, 4, 6), torch.float64, device)
    keep = ops.dropout_keep_mask(_state(3), 40, p).to(device).view(5, 8, 1, 1)
    alpha = 1.7580993408473766
    a = 1.0 / math.sqrt((alpha * alpha * p + 1) * (1 - p))
    noise = keep.to(torch.float64)
    b = noise.add(-1).mul_(alpha * a).add_(alpha * a * p)
    theirs = x * noise.mul_(a) + b
    ours = selu_ext.feature_alpha_dropout(x, p, training=True, seed=3)
    torch.testing.assert_close(ours, theirs, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_fused_equals_selu_then_alpha_dropout_float64(device, p):
    """selu_alpha_dropout == alpha_dropout(selu(x)) with the same mask and scale,
    forward and backward, in float64; and both equal the closed form."""
    require_device(device)
    x = make_input((257, 31), torch.float64, device).requires_grad_()
    g = make_input((257, 31), torch.float64, device, seed=3, scale=1.0)
    fused = selu_ext.selu_alpha_dropout(x, p, training=True, seed=8)
    split = selu_ext.alpha_dropout(selu_ext.selu(x), p, training=True, seed=8)
    torch.testing.assert_close(fused, split, rtol=1e-14, atol=1e-15)
    (gf,) = torch.autograd.grad(fused, x, g)
    (gs,) = torch.autograd.grad(split, x, g)
    torch.testing.assert_close(gf, gs, rtol=1e-13, atol=1e-14)
    keep = _keep(_state(8), x, p)
    a = selu_ext.alpha_dropout_coefficients(p)[0]
    want = torch.where(keep, a * selu_grad_reference(x, g), torch.zeros_like(g))
    torch.testing.assert_close(gf, want, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_fused_backward_from_z_without_the_mask(dtype):
    """The CPU fused backward tells dropped units by z == the dropped value, and
    regenerates the mask only in 128-element blocks holding a NaN z (NaN or infinite
    x), whose kept and dropped units have different gradients. Saturated kept units
    (row 3) keep their gradient of ~0 within z's rounding, whichever way they go."""
    p = 0.5
    x = make_input((8, 128), torch.float32, "cpu", seed=11, scale=3.0).to(dtype)
    rng = _state(21)
    keep = _keep(rng, x, p)
    nan_at = (0, int((~keep[0]).nonzero()[0]))  # a dropped unit: its z is NaN too
    inf_at = (2, int(keep[2].nonzero()[0]))      # a kept one: z = +inf
    x[nan_at] = math.nan
    x[inf_at] = math.inf
    x[0, int(keep[0].nonzero()[0])] = math.nan  # and a kept NaN in the same block
    x[3, :64] = -200.0  # saturated: about half of them kept
    g = make_input((8, 128), torch.float32, "cpu", seed=12, scale=1.0).to(dtype)
    z = ops.selu_alpha_dropout(x, p, rng)
    gx = ops.selu_alpha_dropout_backward(g, z, p, rng)
    a = selu_ext.alpha_dropout_coefficients(p)[0]
    x64, g64 = x.to(torch.float64), g.to(torch.float64)
    want = torch.where(keep, a * selu_grad_reference(x64, g64), 0 * g64)
    nan = x64.isnan() | x64.isinf()
    tol = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float64: 1e-12}[dtype]
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
    keep = _keep(_state(6), x, p)
    want = torch.where(keep, a * g.to(torch.float64), torch.zeros((), dtype=torch.float64,
                                                                   device=device))
    rtol, atol = TOL[dtype][2:]
    torch.testing.assert_close(gx.to(torch.float64), want, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------
# Drop-in semantics

FUNCTIONS = ["alpha_dropout", "feature_alpha_dropout"]
TORCH_FUNCTIONS = {"alpha_dropout": F.alpha_dropout,
                   "feature_alpha_dropout": F.feature_alpha_dropout}


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_eval_and_p0_return_the_input_itself(fn):
    x = torch.randn(4, 5)
    f = getattr(selu_ext, fn)
    assert f(x) is x  # training=False is the default, as in torch
    assert f(x, 0.5, training=False) is x
    assert f(x, 0.0, training=True) is x
    assert f(x, 0.5, training=False, inplace=True) is x
    assert TORCH_FUNCTIONS[fn](x, 0.5, training=False) is x  # what we copy
    module = {"alpha_dropout": selu_ext.nn.AlphaDropout,
              "feature_alpha_dropout": selu_ext.nn.FeatureAlphaDropout}[fn]
    m = module(0.5).eval()
    assert m(x) is x
    assert module(0.0)(x) is x


def test_fused_in_eval_mode_is_selu():
    x = make_input((33, 7), torch.float32, "cpu")
    for y in (selu_ext.selu_alpha_dropout(x, 0.5, training=False),
              selu_ext.selu_alpha_dropout(x, 0.0, training=True),
              selu_ext.nn.SELUAlphaDropout(0.5).eval()(x)):
        torch.testing.assert_close(y, F.selu(x), rtol=2.5e-7, atol=1e-38)
    assert torch.equal(x, make_input((33, 7), torch.float32, "cpu"))  # input untouched


@pytest.mark.parametrize("device", DEVICES)
def test_p1_gives_x_times_zero(device):
    require_device(device)
    x = torch.tensor([1.0, -2.0, 0.0, 3.5, float("inf"), float("-inf"), float("nan")],
                     device=device)
    # torch: input * 0 (so inf and NaN give NaN)
    want = F.alpha_dropout(x, 1.0, training=True)
    torch.testing.assert_close(selu_ext.alpha_dropout(x, 1.0, training=True), want,
                               equal_nan=True, rtol=0, atol=0)
    x2 = x.view(7, 1)
    torch.testing.assert_close(selu_ext.feature_alpha_dropout(x2, 1.0, training=True),
                               F.feature_alpha_dropout(x2, 1.0, training=True),
                               equal_nan=True, rtol=0, atol=0)
    torch.testing.assert_close(selu_ext.selu_alpha_dropout(x, 1.0, training=True),
                               F.alpha_dropout(F.selu(x), 1.0, training=True),
                               equal_nan=True, rtol=0, atol=0)
    m = selu_ext.nn.AlphaDropout(1.0)
    torch.testing.assert_close(m(x), want, equal_nan=True, rtol=0, atol=0)
    # No gradient flows through a unit that is always dropped.
    for f in (selu_ext.alpha_dropout, selu_ext.selu_alpha_dropout):
        t = torch.randn(50, device=device, requires_grad=True)
        f(t, 1.0, training=True).sum().backward()
        assert torch.equal(t.grad, torch.zeros_like(t))


@pytest.mark.parametrize("p", [-0.1, 1.1, -1e-12, 1 + 1e-12, float("inf"), float("nan")])
def test_invalid_p_raises_value_error(p):
    x = torch.randn(4, 3)
    if math.isnan(p):
        # As torch: its functions refuse NaN (RuntimeError from ATen's check) and its
        # module constructors let it through (`p < 0 or p > 1` is False), so the
        # module fails in training mode.
        with pytest.raises(RuntimeError, match="between 0 and 1"):
            F.alpha_dropout(x, p, training=True)
        for fn in ("alpha_dropout", "feature_alpha_dropout", "selu_alpha_dropout"):
            with pytest.raises(RuntimeError, match="between 0 and 1"):
                getattr(selu_ext, fn)(x, p, training=True)
        for module in (selu_ext.nn.AlphaDropout, selu_ext.nn.FeatureAlphaDropout,
                       selu_ext.nn.SELUAlphaDropout):
            with pytest.raises(RuntimeError, match="between 0 and 1"):
                module(p)(x)
        return
    for fn in ("alpha_dropout", "feature_alpha_dropout", "selu_alpha_dropout"):
        f = getattr(selu_ext, fn)
        for training in (True, False):  # torch checks p before looking at training
            with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
                f(x, p, training=training)
            if fn != "selu_alpha_dropout":
                with pytest.raises(ValueError):
                    TORCH_FUNCTIONS[fn](x, p, training=training)
    for module in (selu_ext.nn.AlphaDropout, selu_ext.nn.FeatureAlphaDropout,
                   selu_ext.nn.SELUAlphaDropout):
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
            module(p)
    with pytest.raises(ValueError):
        torch.nn.AlphaDropout(p)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_inplace_writes_the_input(device, fn):
    require_device(device)
    f = getattr(selu_ext, fn)
    x = make_input((16, 9, 3), torch.float32, device)
    want = f(x, 0.3, training=True, seed=10)
    y = x.clone()
    v0 = y._version
    out = f(y, 0.3, training=True, inplace=True, seed=10)
    assert out is y
    assert y._version > v0
    torch.testing.assert_close(y, want, rtol=0, atol=0)  # bitwise, as in torch
    # A strided view: the base sees the result.
    base = make_input((16, 9, 6), torch.float32, device)
    view = base[:, :, ::2]
    want = f(view, 0.3, training=True, seed=10)
    assert f(view, 0.3, training=True, inplace=True, seed=10) is view
    torch.testing.assert_close(base[:, :, ::2], want, rtol=0, atol=0)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_inplace_on_leaf_requiring_grad_errors_like_torch(fn):
    x = torch.randn(5, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        getattr(selu_ext, fn)(x, 0.5, training=True, inplace=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        TORCH_FUNCTIONS[fn](x, 0.5, training=True, inplace=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_inplace_gradients_equal_out_of_place(device, fn):
    require_device(device)
    f = getattr(selu_ext, fn)

    def grads(inplace):
        x = make_input((12, 6, 5), torch.float64, device).requires_grad_()
        h = x * 1.5
        y = f(h, 0.4, training=True, inplace=inplace, seed=21)
        (g,) = torch.autograd.grad((y * y).sum(), x)
        return y.detach(), g

    (y0, g0), (y1, g1) = grads(False), grads(True)
    torch.testing.assert_close(y1, y0, rtol=0, atol=0)
    torch.testing.assert_close(g1, g0, rtol=1e-14, atol=1e-14)


def test_inplace_modules():
    # As torch.nn's: the flag is stored and shown, and the input is left alone.
    x = torch.randn(8, 6, 4)
    for module in (selu_ext.nn.AlphaDropout, selu_ext.nn.FeatureAlphaDropout):
        m = module(0.5, inplace=True)
        assert "inplace=True" in repr(m)
        y = x.clone()
        torch.manual_seed(0)
        want = module(0.5)(y)
        torch.manual_seed(0)
        got = m(y)
        assert got is not y and torch.equal(y, x)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        assert m.eval()(y) is y


# ---------------------------------------------------------------------------
# Gradients with the mask fixed by an explicit rng_state / seed


def _away_from_zero(shape, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    return (x + 0.1 * x.sign()).to(device).requires_grad_()


GRAD_FUNCTIONS = {
    "alpha_dropout": lambda t: selu_ext.alpha_dropout(t, 0.3, True, seed=17),
    "alpha_dropout-op": lambda t: ops.alpha_dropout(t, 0.3, _state(17, 4)),
    "alpha_dropout-function": lambda t: selu_ext.AlphaDropoutFunction.apply(
        t, 0.3, _state(17, 4)),
    "alpha_dropout-inplace": lambda t: selu_ext.alpha_dropout(t * 1.0, 0.3, True, True, seed=17),
    "selu_alpha_dropout": lambda t: selu_ext.selu_alpha_dropout(t, 0.3, True, seed=17),
    "selu_alpha_dropout-op": lambda t: ops.selu_alpha_dropout(t, 0.3, _state(17, 4)),
    "selu_alpha_dropout-function": lambda t: selu_ext.SELUAlphaDropoutFunction.apply(
        t, 0.3, _state(17, 4)),
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
    a, b, dropped = selu_ext.alpha_dropout_coefficients(0.3)
    n_dropped = int(_dropped(y, 0.3).sum())
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
    p, rng = 0.3, _state(7, 0)
    vals = torch.tensor([0.0, -0.0] * 8 + [-1.0, 1.0, -0.25, 2.0] * 4, dtype=torch.float64)
    keep = _keep(rng, vals, p).to(device)
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
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-14, atol=4e-16)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-14, atol=4e-16)
    assert (results[0][1][:16] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
def test_backward_ops_gradcheck(device):
    # The backward operators are themselves differentiable (double backward).
    require_device(device)
    rng = _state(31, 2)
    g = _away_from_zero((40,), device, seed=1)
    z = ops.selu_alpha_dropout(_away_from_zero((40,), device, seed=2).detach(), 0.4, rng)
    assert gradcheck(lambda t: ops.alpha_dropout_backward(t, 0.4, rng), (g,))
    assert gradcheck(lambda t: ops.selu_alpha_dropout_backward(t, z, 0.4, rng), (g,))


# ---------------------------------------------------------------------------
# The random stream


ALL = ["alpha_dropout", "selu_alpha_dropout", "feature_alpha_dropout"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn", ALL)
def test_manual_seed_reproduces_and_draws_from_torch_generator(device, fn):
    require_device(device)
    f = getattr(selu_ext, fn)
    x = torch.zeros(64, 129, device=device)  # kept -> b, dropped -> the dropped value
    torch.manual_seed(123)
    rng = ops.dropout_rng_state(torch.device(device))
    torch.manual_seed(123)
    y1 = f(x, 0.5, training=True)
    y2 = f(x, 0.5, training=True)
    torch.manual_seed(123)
    y3 = f(x, 0.5, training=True)
    assert torch.equal(y1, y3)
    assert not torch.equal(y1, y2)
    # The state a call uses is the next one torch's generator hands out.
    numel = x.numel() if fn != "feature_alpha_dropout" else x.shape[0] * x.shape[1]
    keep = ops.dropout_keep_mask(rng, numel, 0.5).to(device)
    if fn == "feature_alpha_dropout":
        keep = keep.view(64, 129)
    assert torch.equal(~_dropped(y1, 0.5).view(keep.shape), keep.view(keep.shape))


@pytest.mark.parametrize("device", DEVICES)
def test_modules_follow_manual_seed(device):
    require_device(device)
    x = torch.randn(32, 16, 3, device=device)
    for m in (selu_ext.nn.AlphaDropout(0.2), selu_ext.nn.FeatureAlphaDropout(0.2),
              selu_ext.nn.SELUAlphaDropout(0.2)):
        torch.manual_seed(5)
        y1 = m(x)
        torch.manual_seed(5)
        assert torch.equal(m(x), y1)
        assert not torch.equal(m(x), y1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_consecutive_calls_get_independent_masks(device, p):
    # Two masks drawn one after the other agree on a unit with probability
    # p^2 + (1-p)^2 if independent; a repeated or shifted stream would not.
    require_device(device)
    n = 1 << 16
    x = torch.zeros(n, device=device)
    torch.manual_seed(0)
    d1 = _dropped(selu_ext.alpha_dropout(x, p, True), p).double()
    d2 = _dropped(selu_ext.alpha_dropout(x, p, True), p).double()
    q = p * p + (1 - p) ** 2
    agree = (d1 == d2).double().mean().item()
    assert abs(agree - q) <= 6 * math.sqrt(q * (1 - q) / n), agree
    both = (d1 * d2).mean().item()
    assert abs(both - p * p) <= 6 * math.sqrt(p * p * (1 - p * p) / n), both


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn", ALL)
def test_seed_fixes_the_mask(device, fn):
    require_device(device)
    f = getattr(selu_ext, fn)
    x = torch.randn(40, 33, device=device)
    state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state() if device == "cuda" else None
    y = f(x, 0.5, training=True, seed=42)
    assert torch.equal(torch.get_rng_state(), state)  # seed= draws nothing from torch
    if device == "cuda":
        assert torch.equal(torch.cuda.get_rng_state(), cuda_state)
    assert torch.equal(f(x, 0.5, training=True, seed=42), y)
    assert not torch.equal(f(x, 0.5, training=True, seed=43), y)
    # Seeds are taken modulo 2**64, as a uint64.
    assert torch.equal(f(x, 0.5, training=True, seed=-1), f(x, 0.5, training=True, seed=2**64 - 1))
    assert torch.equal(f(x, 0.5, training=True, seed=2**64 + 42), y)


@pytest.mark.cuda
@pytest.mark.parametrize("fn", ALL)
@pytest.mark.parametrize("shape", [(1,), (7, 1031), (2, 3, 64, 65)], ids=str)
def test_same_seed_same_mask_on_cpu_and_cuda(fn, shape):
    require_device("cuda")
    f = getattr(selu_ext, fn)
    if fn == "feature_alpha_dropout" and len(shape) < 2:
        shape = (1, 1)
    x = make_input(shape, torch.float64, "cpu")
    y_cpu = f(x, 0.35, training=True, seed=2**40 + 3)
    y_cuda = f(x.cuda(), 0.35, training=True, seed=2**40 + 3)
    assert torch.equal(_dropped(y_cpu, 0.35), _dropped(y_cuda.cpu(), 0.35))
    torch.testing.assert_close(y_cuda.cpu(), y_cpu, rtol=1e-14, atol=1e-15)
    # The keep-mask op itself, with the state on either device.
    rng = _state(2**40 + 3, 12)
    assert torch.equal(ops.dropout_keep_mask(rng, 100003, 0.35),
                       ops.dropout_keep_mask(rng.cuda(), 100003, 0.35).cpu())


# ---------------------------------------------------------------------------
# Memory kept for backward


def _saved_bytes(model, x):
    """Bytes of the distinct non-parameter storages autograd keeps for backward."""
    return saved_bytes(lambda: model(x).sum(), exclude=model.parameters())


@pytest.mark.parametrize("device", DEVICES)
def test_fused_keeps_at_most_a_third_of_torch(device):
    """Linear -> [activation + dropout] -> Linear, bytes beyond Linear -> Identity ->
    Linear: the fused op keeps its output (which the next Linear keeps anyway) and a
    16-byte rng state; torch.nn.SELU + torch.nn.AlphaDropout keep SELU's input and
    the dropout noise, two activations."""
    require_device(device)
    torch.manual_seed(0)
    lin1, lin2 = torch.nn.Linear(256, 512), torch.nn.Linear(512, 128)
    x = torch.randn(64, 256, device=device, requires_grad=True)
    activation = 64 * 512 * 4

    def model(*mid):
        return torch.nn.Sequential(lin1, *mid, lin2).to(device).train()

    base = _saved_bytes(model(torch.nn.Identity()), x)
    fused = _saved_bytes(model(selu_ext.nn.SELUAlphaDropout(0.2)), x) - base
    converted = _saved_bytes(selu_ext.nn.convert(model(torch.nn.SELU(),
                                                       torch.nn.AlphaDropout(0.2))), x) - base
    theirs = _saved_bytes(model(torch.nn.SELU(), torch.nn.AlphaDropout(0.2)), x) - base
    print(f"bytes kept beyond the baseline: fused {fused}, converted {converted}, "
          f"torch {theirs}")
    assert theirs >= activation  # the comparison means something
    assert fused <= theirs / 3
    assert converted <= theirs / 3
    assert fused <= 64  # the rng state, not an activation or a mask
    # Unfused selu_ext modules keep no mask (only the rng state), but SELU's output
    # is an activation the next Linear does not keep: half of torch.
    unfused = _saved_bytes(model(selu_ext.nn.SELU(), selu_ext.nn.AlphaDropout(0.2)), x) - base
    assert activation <= unfused <= activation + 64
