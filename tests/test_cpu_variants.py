"""The CPU kernel variants with FMA compute the same expressions and differ only in
instructions (vector width; the float16 and bfloat16 conversions), so they must give
the same bits: every float16 and bfloat16 value (all 2^16 bit patterns, NaN payloads
and subnormals included) and a spread of float32 ones, through every kernel, on
avx512 and avx512_bf16 against avx2, whose bfloat16 rounding is c10's bit algorithm.
The gradients multiply the values by a shuffled copy, so the roundings also see
float32 subnormals and NaNs made by the arithmetic. (The baseline x86-64 variant
has no FMA and rounds twice where these round once: tests/test_values.py checks
it against the float64 reference.)

Within each variant, baseline included, the 16-bit SELU forward is the float32 one
rounded, bit for bit, though bfloat16 takes a shorter formula (selu_math.h,
SeluNegativeBFloat16)."""

import pytest
import torch

from selu_ext import _C
from conftest import cpu_capabilities, ops
from dropout_common import rng_state

REFERENCE = "avx2"
P = 0.3


def _every_value(dtype):
    if dtype == torch.float32:
        bits = torch.arange(-2**31, 2**31, 65537, dtype=torch.int64).to(torch.int32)
    else:
        bits = torch.arange(-2**15, 2**15, dtype=torch.int32).to(torch.int16)
    x = bits.view(dtype)
    return torch.cat([x, x[:37]])  # and a partial vector and block at the end


def _outputs(x, g):
    rng = rng_state(5)
    y = ops.selu(x)
    z = ops.selu_alpha_dropout(x, P, rng)
    return {
        "selu": y,
        "selu_backward(result)": ops.selu_backward(g, y, True),
        "selu_backward(input)": ops.selu_backward(g, x, False),
        "alpha_dropout": ops.alpha_dropout(x, P, rng),
        "alpha_dropout_backward": ops.alpha_dropout_backward(g, P, rng),
        "selu_alpha_dropout": z,
        "selu_alpha_dropout_backward": ops.selu_alpha_dropout_backward(g, z, P, rng),
    }


def _run(variant, x, g):
    before = _C.cpu_capability()
    _C.set_cpu_capability(variant)
    try:
        return _outputs(x, g)
    finally:
        _C.set_cpu_capability(before)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
@pytest.mark.parametrize("variant", [c for c in cpu_capabilities() if c.startswith("avx512")])
def test_same_bits_as_avx2(variant, dtype):
    if REFERENCE not in cpu_capabilities():
        pytest.skip("this CPU cannot run the avx2 reference")
    x = _every_value(dtype)
    g = x[torch.randperm(x.numel(), generator=torch.Generator().manual_seed(0))]
    want, got = _run(REFERENCE, x, g), _run(variant, x, g)
    int_view = torch.int32 if dtype == torch.float32 else torch.int16
    for name in want:
        w, o = want[name].view(int_view), got[name].view(int_view)
        bad = (w != o).nonzero().flatten()
        assert bad.numel() == 0, (
            f"{name}: {bad.numel()} elements differ from {REFERENCE}, first at inputs "
            f"{[(hex(int(x.view(int_view)[i])), hex(int(g.view(int_view)[i]))) for i in bad[:4]]}: "
            f"{[hex(int(w[i])) for i in bad[:4]]} != {[hex(int(o[i])) for i in bad[:4]]}")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("variant", cpu_capabilities())
def test_16bit_forward_is_float32_rounded(variant, dtype):
    x = _every_value(dtype)
    before = _C.cpu_capability()
    _C.set_cpu_capability(variant)
    try:
        got, want = ops.selu(x), ops.selu(x.float()).to(dtype)
    finally:
        _C.set_cpu_capability(before)
    nan = got.isnan()
    assert torch.equal(nan, want.isnan())
    # NaN bits are test_same_bits_as_avx2's: torch's float16 rounding drops payloads.
    got, want = got.view(torch.int16)[~nan], want.view(torch.int16)[~nan]
    bad = (got != want).nonzero().flatten()

    def first(t):
        return [hex(int(v) & 0xFFFF) for v in t[bad[:4]]]

    assert bad.numel() == 0, (f"{bad.numel()} differ, first at inputs "
                              f"{first(x.view(torch.int16)[~nan])}: {first(got)} != {first(want)}")
