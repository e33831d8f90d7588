"""SELU forward values: against a float64 reference and against
torch.nn.functional.selu, every dtype, device, CPU kernel variant and memory layout;
the constants. (The README example's printed values: test_readme.py.)"""

import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

import selu_ext
from selu_ext import _C
from conftest import (DEVICES, DTYPES, F64_FEW_ULP, MAX_ULP32, TOL, assert_close_dtype,
                      cpu_capabilities, make_input, ops, require_device, selu_reference, ulp32)

SHAPES = [(), (0,), (1,), (7,), (33,), (4096,), (127, 129), (3, 5, 7, 9), (65537,)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_matches_reference_and_torch(device, dtype, shape):
    require_device(device)
    x = make_input(shape, dtype, device)
    y = selu_ext.selu(x)
    assert y.dtype == dtype and y.shape == x.shape and y.device == x.device
    assert_close_dtype(y, selu_reference(x), dtype)
    rtol, atol = TOL[dtype][:2]
    torch.testing.assert_close(y, F.selu(x), rtol=2 * rtol, atol=2 * atol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100003])
def test_every_cpu_variant_and_tail(cpu_capability, dtype, n):
    # Every length around the vector widths, through every compiled ISA variant.
    x = make_input((n,), dtype, "cpu", seed=n)
    assert_close_dtype(ops.selu(x), selu_reference(x), dtype,
                       msg=f"variant {cpu_capability}, n={n}")


def test_position_independent(cpu_capability):
    # A value's result must not depend on where it sits (vector body vs. tail,
    # task boundaries): the same value everywhere gives the same bits everywhere.
    x = torch.full((100003,), -0.6931471805599453, dtype=torch.float32)
    y = ops.selu(x)
    assert torch.equal(y, y[:1].expand_as(y))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["transposed", "channels_last", "sliced"])
def test_layouts(device, dtype, layout):
    require_device(device)
    shape = (3, 8, 5, 7) if layout != "transposed" else (37, 53)
    x = make_input(shape, dtype, device, layout=layout)
    y = selu_ext.selu(x)
    assert_close_dtype(y, selu_reference(x), dtype)
    # The output keeps a dense input's layout, as PyTorch's does (empty_like).
    assert y.stride() == torch.empty_like(x).stride()
    if layout in ("transposed", "channels_last"):
        assert y.stride() == x.stride()


def _sweep_variants():
    # The CUDA kernel, and every CPU kernel variant this CPU can run.
    return [pytest.param("cpu", c, id=f"cpu-{c}") for c in cpu_capabilities()] + [
        pytest.param("cuda", None, id="cuda", marks=pytest.mark.cuda)]


@pytest.mark.parametrize("device,variant", _sweep_variants())
def test_float32_sweep_within_2_ulp(device, variant):
    """float32 within 2 ULP of the float64 value over -100..100 plus the edges:
    ±1e-30, subnormals, ±0, ±inf, NaN; on every backend, each CPU variant alone."""
    require_device(device)
    if variant is not None:
        before = _C.cpu_capability()
        _C.set_cpu_capability(variant)
        try:
            _float32_sweep(device)
        finally:
            _C.set_cpu_capability(before)
    else:
        _float32_sweep(device)


def _float32_sweep(device):
    dense = torch.linspace(-100, 100, 2_000_001, dtype=torch.float64)
    fine = torch.linspace(-1, 1, 2_000_001, dtype=torch.float64)
    mags = torch.logspace(-45, 2, 20_001, dtype=torch.float64)
    edges = torch.tensor([1e-30, -1e-30, 1e-38, -1e-38, 1.4e-45, -1.4e-45, 3e-44, -3e-44,
                          0.0, -0.0, -1e-8, 1e-8, -17.328679, -87.0, -88.8, -103.0, 88.0],
                         dtype=torch.float64)
    x = torch.cat([dense, fine, mags, -mags, edges]).to(torch.float32).to(device)
    y = selu_ext.selu(x)
    ref = selu_reference(x).cpu()
    err = (y.cpu().to(torch.float64) - ref).abs() / ulp32(ref)
    worst = int(err.argmax())
    assert err.max().item() <= MAX_ULP32, (
        f"{err.max().item():.3f} ULP at x={x[worst].item()!r}: got {y[worst].item()!r}, "
        f"want {ref[worst].item()!r}")
    # Signed zeros, infinities and NaN exactly as PyTorch.
    special = torch.tensor([0.0, -0.0, math.inf, -math.inf, math.nan], device=device)
    got, want = selu_ext.selu(special), F.selu(special)
    assert torch.equal(torch.signbit(got[:2]), torch.signbit(want[:2]))
    assert got[2].item() == math.inf
    assert_close_dtype(got[3], selu_reference(special[3]), torch.float32)  # -scale*alpha
    assert math.isnan(got[4].item())


@pytest.mark.parametrize("device", DEVICES)
def test_tiny_negative_is_not_zero(device):
    # expm1, not exp - 1: selu(-1e-8) = -scale*alpha*1e-8, not 0.
    require_device(device)
    for dtype in (torch.float32, torch.float64):
        x = torch.tensor([-1e-8], dtype=dtype, device=device)
        y = selu_ext.selu(x)
        assert y.item() < 0
        assert_close_dtype(y, selu_reference(x), dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_float64_precision(device):
    require_device(device)
    x = torch.linspace(-40, 40, 1_000_001, dtype=torch.float64, device=device)
    y = selu_ext.selu(x)
    ref = selu_reference(x)
    rel = ((y - ref).abs() / ref.abs().clamp_min(1e-300)).max().item()
    assert rel < F64_FEW_ULP


def test_constants_match_pytorch():
    # The Python constants are the paper's; the C++ kernels' constants are read back
    # through the kernels in float64, where SELU is exact enough to show them: the
    # slope for x > 0 is scale, the limit for x -> -inf is -scale*alpha.
    assert selu_ext.ALPHA == 1.6732632423543772848170429916717
    assert selu_ext.SCALE == 1.0507009873554804934193349852946
    # -scale*alpha is the exact product of the paper's constants, correctly rounded
    # (PyTorch's float64 SELU rounds the double product instead: 1 ULP lower).
    exact = Fraction("1.0507009873554804934193349852946") * \
        Fraction("1.6732632423543772848170429916717")
    x = torch.tensor([1.0, -1000.0, -1.0], dtype=torch.float64)
    y = selu_ext.selu(x)
    assert y[0].item() == selu_ext.SCALE
    assert y[1].item() == -float(exact)
    assert abs(y[1].item() - F.selu(x[1:2]).item()) <= math.ulp(float(exact))
    assert y[2].item() == pytest.approx(F.selu(x[2:3]).item(), rel=F64_FEW_ULP)
    # And in float32, through the kernels' split-constant product.
    y32 = selu_ext.selu(torch.tensor([1.0, -1000.0]))
    assert y32.tolist() == [torch.tensor(selu_ext.SCALE, dtype=torch.float32).item(),
                            -torch.tensor(float(exact), dtype=torch.float32).item()]
