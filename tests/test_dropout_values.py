"""AlphaDropout, FeatureAlphaDropout and the fused SELU + AlphaDropout, forward
values: PyTorch's formulas applied with the operators' own keep mask (float64
reference, every dtype, device, CPU kernel variant and layout), PyTorch's own code
run with that mask, and the special cases (eval mode and p = 0 return the input, p = 1
gives x * 0, the fused op in eval mode is SELU).

Gradients are in test_dropout_gradients.py, in-place use in test_inplace.py, invalid
p in test_errors.py, the random stream in test_determinism.py, the statistics of the
mask and output in test_dropout_statistics.py, memory kept for backward in
test_saved_memory.py."""

import math

import pytest
import torch
import torch.nn.functional as F

import selu_ext
from conftest import (DEVICES, DTYPES, F64_REORDERED, F64_GRAD_REORDERED, TOL, make_input, ops,
                      require_device, selu_grad_reference, selu_reference)
from dropout_common import (FUNCTIONS, TORCH_FUNCTIONS, assert_formula, dropout_reference,
                            is_dropped, keep_mask, rng_state)

SHAPES = [(1,), (7,), (127, 129), (3, 5, 7, 9), (65537,)]
LAYOUTS = ["transposed", "sliced", "channels_last"]


def _every_device_dtype_shape_and_p(test):
    """The grid the formula tests run over (marks applied bottom-up, as decorators)."""
    for mark in (pytest.mark.parametrize("p", [0.05, 0.5, 0.9]),
                 pytest.mark.parametrize("shape", SHAPES, ids=str),
                 pytest.mark.parametrize("dtype", DTYPES),
                 pytest.mark.parametrize("device", DEVICES)):
        test = mark(test)
    return test


def _pytorch_alpha_dropout(x, keep, p):
    """torch.nn.functional.alpha_dropout's own code (aten/src/ATen/native/Dropout.cpp)
    in x's dtype, with ``keep`` as its Bernoulli noise (feature dropout: keep shaped
    (N, C, 1, ...))."""
    alpha = 1.7580993408473766
    a = 1.0 / math.sqrt((alpha * alpha * p + 1) * (1 - p))
    noise = keep.to(x.dtype)
    b = noise.add(-1).mul_(alpha * a).add_(alpha * a * p)
    return x * noise.mul_(a) + b


@_every_device_dtype_shape_and_p
def test_alpha_dropout_matches_formula(device, dtype, shape, p):
    require_device(device)
    x = make_input(shape, dtype, device)
    y = selu_ext.alpha_dropout(x, p, training=True, seed=1234)
    assert y.shape == x.shape and y.device == x.device
    keep = keep_mask(rng_state(1234), x, p)
    assert 0 < int(keep.sum()) < keep.numel() or keep.numel() < 50
    ref, mag = dropout_reference(x.to(torch.float64), keep, p)
    assert_formula(y, ref, mag, dtype, units=2)


@_every_device_dtype_shape_and_p
def test_selu_alpha_dropout_matches_formula(device, dtype, shape, p):
    require_device(device)
    x = make_input(shape, dtype, device)
    y = selu_ext.selu_alpha_dropout(x, p, training=True, seed=99)
    keep = keep_mask(rng_state(99), x, p)
    ref, mag = dropout_reference(selu_reference(x).to(device), keep, p)
    # SELU's own error (<= 2 ULP of float, tests/test_values.py) enters scaled by a.
    assert_formula(y, ref, mag, dtype, units=4)


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
    keep = keep_mask(rng_state(5), x, 0.3)
    s = x.to(torch.float64) if fn == "alpha_dropout" else selu_reference(x).to(device)
    ref, mag = dropout_reference(s, keep, 0.3)
    assert_formula(y, ref, mag, dtype, units=4)


@pytest.mark.parametrize("fn", ["alpha_dropout", "selu_alpha_dropout"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_cpu_kernel_variant(cpu_capability, fn, dtype):
    # Every compiled ISA variant, at lengths around the vector widths: the same mask
    # and the same formula.
    for n in (1, 15, 16, 17, 33, 64, 65, 1000):
        x = make_input((n,), dtype, "cpu", seed=n)
        y = getattr(selu_ext, fn)(x, 0.3, training=True, seed=n)
        s = x.to(torch.float64) if fn == "alpha_dropout" else selu_reference(x)
        ref, mag = dropout_reference(s, keep_mask(rng_state(n), x, 0.3), 0.3)
        assert_formula(y, ref, mag, dtype, units=4)


@pytest.mark.parametrize("device", DEVICES)
def test_mask_does_not_depend_on_dtype(device):
    require_device(device)
    x = torch.zeros(4099, device=device)
    masks = [is_dropped(selu_ext.alpha_dropout(x.to(dt), 0.4, training=True, seed=12), 0.4)
             for dt in DTYPES]
    for m in masks[1:]:
        assert torch.equal(m, masks[0])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_alpha_dropout_matches_pytorch_code(device, dtype):
    """torch.nn.functional.alpha_dropout's own code run in ``dtype`` with our mask as
    its Bernoulli noise."""
    require_device(device)
    p = 0.2
    x = make_input((61, 67), dtype, device)
    keep = keep_mask(rng_state(77), x, p)
    theirs = _pytorch_alpha_dropout(x, keep, p)
    ours = selu_ext.alpha_dropout(x, p, training=True, seed=77)
    ref, mag = dropout_reference(x.to(torch.float64), keep, p)
    # PyTorch rounds a, a*x, b and the sum to dtype itself: four roundoffs of dtype.
    # This pins down that the transcription above is PyTorch's formula.
    u_dtype = torch.finfo(dtype).eps / 2
    assert_formula(theirs, ref, mag, dtype, units=4, u=u_dtype)
    # Ours is within a few float roundoffs of the exact value (computed in float),
    # so within theirs' bound of it too.
    assert_formula(ours, ref, mag, dtype, units=2)
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
    keep_nc = ops.dropout_keep_mask(rng_state(2024), n * c, p).to(device).view(n, c)
    assert 0 < int(keep_nc.sum()) < n * c
    keep = keep_nc.view((n, c) + (1,) * (len(shape) - 2)).expand(shape)
    ref, mag = dropout_reference(x.to(torch.float64), keep, p)
    # Coefficients rounded to dtype, a multiply and an add in dtype, as PyTorch's own
    # feature_alpha_dropout computes: up to four roundings of dtype on the terms.
    assert_formula(y, ref, mag, dtype, units=4, u=torch.finfo(dtype).eps / 2)
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
    keep = ops.dropout_keep_mask(rng_state(3), 40, p).to(device).view(5, 8, 1, 1)
    theirs = _pytorch_alpha_dropout(x, keep, p)
    ours = selu_ext.feature_alpha_dropout(x, p, training=True, seed=3)
    torch.testing.assert_close(ours, theirs, **F64_REORDERED)


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
    torch.testing.assert_close(fused, split, **F64_REORDERED)
    (gf,) = torch.autograd.grad(fused, x, g)
    (gs,) = torch.autograd.grad(split, x, g)
    torch.testing.assert_close(gf, gs, **F64_GRAD_REORDERED)
    keep = keep_mask(rng_state(8), x, p)
    a = selu_ext.alpha_dropout_coefficients(p)[0]
    want = torch.where(keep, a * selu_grad_reference(x, g), torch.zeros_like(g))
    torch.testing.assert_close(gf, want, **F64_GRAD_REORDERED)


# ---------------------------------------------------------------------------
# Eval mode, p = 0 and p = 1


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
        torch.testing.assert_close(y, F.selu(x), rtol=TOL[torch.float32][0],
                                   atol=TOL[torch.float32][1])
    assert torch.equal(x, make_input((33, 7), torch.float32, "cpu"))  # input untouched


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [0.1, 0.9, 0.99])
def test_fused_extremes_match_torch_with_the_same_mask(device, p):
    """alpha_dropout(selu(x)) as torch computes it, with selu_ext's mask, on the values
    where the fused op's folded formula could part from it: selu(x) = inf by overflow
    of scale * x, a * selu(x) overflowing (a = 5 at p = 0.99), +-inf, NaN, +-0."""
    require_device(device)
    values = [3.3e38, 3.0e38, 1e38, 1e35, 1e30, float("inf"), float("-inf"), float("nan"),
              0.0, -0.0, 1e-40, -1e-40, -1e30, -100.0, -17.0, 1.0, -1.0]
    x = torch.tensor(values * 64, dtype=torch.float32, device=device)
    ours = selu_ext.selu_alpha_dropout(x, p, training=True, seed=5)
    keep = keep_mask(rng_state(5), x, p).to(device)
    assert 0 < int(keep.sum()) < keep.numel()
    y = F.selu(x)
    theirs = _pytorch_alpha_dropout(y, keep, p)
    assert torch.equal(ours.isnan(), theirs.isnan())
    assert torch.equal(ours.isinf(), theirs.isinf())
    assert torch.equal(ours[ours.isinf()], theirs[theirs.isinf()])
    a, b, dropped = selu_ext.alpha_dropout_coefficients(p)
    finite = theirs.isfinite()
    bound = 4 * TOL[torch.float32][0] * (a * y.double().abs() + abs(b) + abs(dropped))
    assert bool(((ours.double() - theirs.double()).abs() <= bound)[finite].all())


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


def test_coefficients_are_pytorchs_formulas_to_the_bit():
    # selu_ext.alpha_dropout_coefficients (and ALPHA, SCALE) come from csrc/selu.h,
    # which the kernels use; selu_ext.testing writes PyTorch's formulas again in
    # Python, so the tests above that take the coefficients from selu_ext are
    # anchored to an independent computation here.
    from selu_ext import testing

    assert (selu_ext.ALPHA, selu_ext.SCALE) == (testing.ALPHA, testing.SCALE)
    grid = [i / 4096 for i in range(4097)] + [1e-300, 5e-324, 1e-9, 0.5 - 1e-16, 1 - 1e-16,
                                              1 - 2 ** -53, 1.5, math.inf]
    for p in grid:
        got, want = selu_ext.alpha_dropout_coefficients(p), testing.alpha_dropout_coefficients(p)
        assert [v.hex() for v in got] == [v.hex() for v in want], p
