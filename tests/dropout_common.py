"""Shared by the dropout tests (test_dropout_*.py, test_determinism.py,
test_dropout_statistics.py): rng states, the operators' own keep mask, telling
dropped units by their value, and PyTorch's AlphaDropout formulas in float64."""

import pytest
import torch
import torch.nn.functional as F

import selu_ext
from conftest import F64_FEW_ULP, TOL, U_COMPUTE, ops

SA = selu_ext.SCALE * selu_ext.ALPHA  # PyTorch's alpha' = -1.7580993408473766 is -SA

# The dropout functions torch.nn.functional also has, by name, with torch's.
TORCH_FUNCTIONS = {"alpha_dropout": F.alpha_dropout,
                   "feature_alpha_dropout": F.feature_alpha_dropout}
FUNCTIONS = list(TORCH_FUNCTIONS)


def rng_state(seed, offset=0, device="cpu"):
    return torch.tensor([seed, offset], dtype=torch.int64, device=device)


def keep_mask(rng, x, p):
    """The keep mask the dropout ops use for ``x`` with this state, shaped like x:
    element i of the flat mask belongs to x's i-th element in row-major order.
    (tests/test_philox.py checks the mask against an independent Philox.)"""
    return ops.dropout_keep_mask(rng, x.numel(), p).to(x.device).view(x.shape)


def stored(v, dtype):
    """The float64 number v as the kernels store a constant of theirs in dtype: rounded
    to the compute type (float32 for float16 / bfloat16), then to dtype."""
    opmath = torch.float64 if dtype == torch.float64 else torch.float32
    return torch.tensor(v, dtype=torch.float64).to(opmath).to(dtype)


def is_value(y, v):
    """Elements of y equal to the constant v up to a few roundings in y's dtype (a
    kernel may form the constant in float or double)."""
    eps = torch.finfo(y.dtype).eps
    return (y.to(torch.float64) - v).abs() <= 2 * eps * abs(v)


def is_dropped(y, p):
    """Where y holds the dropped units' value. Unambiguous: kept units are
    a*x + b with b > 0 > dropped, so a kept unit matches only if x sits within
    a few ULP of (dropped - b) / a = -SELU's scale*alpha."""
    return is_value(y, selu_ext.alpha_dropout_coefficients(p)[2])


def dropout_reference(s64, keep, p):
    """PyTorch's AlphaDropout formulas in float64 on ``s64``: kept a*s + b, dropped
    a*alpha' + b. Returns (reference, magnitude of the terms summed)."""
    a, b, dropped_value = selu_ext.alpha_dropout_coefficients(p)
    assert dropped_value == pytest.approx(a * -SA + b, rel=F64_FEW_ULP)
    ref = torch.where(keep, a * s64 + b, torch.full_like(s64, dropped_value))
    mag = torch.where(keep, (a * s64).abs() + abs(b), torch.full_like(s64, abs(dropped_value)))
    return ref, mag


def assert_formula(y, ref64, mag64, dtype, units, u=None):
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
