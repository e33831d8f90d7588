"""Shared test helpers: devices, dtypes, and (from selu_ext.testing) the one tolerance
table and the float64 references.

CUDA tests are parametrized on the "cuda" device and skip cleanly when no GPU is
visible; with a GPU they all run. SELU_EXT_REQUIRE_CUDA=1 (set by the GPU script)
turns a missing GPU into a failure, so a GPU run cannot silently skip them.
"""

from __future__ import annotations

import os

import pytest
import torch

import selu_ext
from selu_ext import ops

# The one tolerance table, the float64 references and the ULP check live in
# selu_ext.testing (shared with the benchmark); re-exported here for the tests.
from selu_ext.testing import (  # noqa: F401
    MAX_ULP32,
    TOL,
    assert_close_dtype,
    selu_grad_reference,
    selu_reference,
    ulp32,
)

HAS_CUDA = torch.cuda.is_available()
REQUIRE_CUDA = os.environ.get("SELU_EXT_REQUIRE_CUDA", "") == "1"
BUILT_WITH_CUDA = selu_ext.build_info()["cuda"]

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (skipped without one)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    if REQUIRE_CUDA:
        raise pytest.UsageError("SELU_EXT_REQUIRE_CUDA=1 but torch.cuda.is_available() is False")
    skip = pytest.mark.skip(reason="no CUDA GPU visible")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def cpu_capabilities():
    info = selu_ext.build_info()
    return [c for c in info["cpu_capabilities_supported"].split(",") if c]


@pytest.fixture(params=cpu_capabilities())
def cpu_capability(request):
    """Runs a test once per CPU kernel variant this CPU supports."""
    from selu_ext import _C

    before = _C.cpu_capability()
    _C.set_cpu_capability(request.param)
    yield request.param
    _C.set_cpu_capability(before)


def make_input(shape, dtype, device, layout="contiguous", seed=0, scale=3.0):
    """A random tensor in [-scale, scale] (both SELU branches) with the requested
    memory layout: contiguous, transposed, channels_last, sliced (non-dense, odd
    storage offset) or expanded."""
    g = torch.Generator().manual_seed(seed)
    if layout == "channels_last":
        t = (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * scale
        return t.to(device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    if layout == "transposed":
        t = (torch.rand(tuple(reversed(shape)), generator=g, dtype=torch.float64) * 2 - 1) * scale
        return t.to(device=device, dtype=dtype).t() if len(shape) == 2 else \
            t.to(device=device, dtype=dtype).permute(*reversed(range(len(shape))))
    if layout == "sliced":
        big = [s * 2 + 1 for s in shape]
        t = (torch.rand(big, generator=g, dtype=torch.float64) * 2 - 1) * scale
        t = t.to(device=device, dtype=dtype)
        return t[tuple(slice(1, None, 2) for _ in shape)]
    t = (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * scale
    return t.to(device=device, dtype=dtype)


def require_device(device):
    if device == "cuda" and not HAS_CUDA:
        pytest.skip("no CUDA GPU visible")


__all__ = [
    "HAS_CUDA", "BUILT_WITH_CUDA", "DTYPES", "DEVICES", "TOL", "selu_reference",
    "selu_grad_reference", "ulp32", "MAX_ULP32", "assert_close_dtype", "make_input", "ops",
    "require_device",
]


# --- tolerances specific to single tests (tests15) ---
# Bounds that TOL above does not give, each named once with why it has its size.
# Exact checks (torch.equal, rtol=0 and atol=0) are not tolerances and stay inline.

# Unit roundoff of the precision the kernels compute in (float for half/bf16);
# dropout_common.assert_formula allows a few of them on a*s + b's terms.
U_COMPUTE = {torch.float64: 2.0 ** -53, torch.float32: 2.0 ** -24,
             torch.float16: 2.0 ** -24, torch.bfloat16: 2.0 ** -24}
# float64, one formula evaluated in two orders (fused vs composed, CPU vs CUDA, torch's
# code vs ours): a few roundings of each term; atol for results that cancel to ~0.
F64_REORDERED = dict(rtol=1e-14, atol=1e-15)
# float64 gradients by two paths: the chain rule's products rounded in other orders.
F64_GRAD_REORDERED = dict(rtol=1e-13, atol=1e-14)
# float64 second derivative: a gradient read from y = selu(x) has an absolute error of
# about an ULP of scale*alpha (docs/math.md, "Backward").
F64_SECOND_DERIVATIVE = dict(rtol=1e-14, atol=4e-16)
# The fused backward from its output z = a*selu(x) + b, rounded to dtype: z's rounding,
# magnified where z - b cancels, enters the gradient (rtol and atol alike).
FUSED_BACKWARD_FROM_Z = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 2.5e-3,
                         torch.float64: 1e-12}
# Statistical checks allow this many standard deviations of their estimator: a correct
# implementation fails one with probability below 1e-8.
SIGMAS = 6.0
# Moments computed in closed form from AlphaDropout's coefficients (float64 arithmetic).
MOMENTS_CLOSED_FORM = 1e-12
# SELU's moments under N(0, 1) by Simpson's rule on 800,001 points of [-40, 40].
MOMENTS_QUADRATURE = 1e-6
# float64 closed forms, and SELU against the float64 reference: a few ULP (2.2e-16).
F64_FEW_ULP = 1e-15
# float64 parameters after training steps whose sums run in another order (DDP's
# all-reduce against one process).
F64_SUMMATION_ORDER = dict(rtol=1e-12, atol=1e-14)
# float64 through torch.func / DTensor against eager: the same kernels, decomposed or
# batched differently.
F64_TRANSFORMED = dict(rtol=1e-12, atol=1e-12)
# float32 from another implementation of the same math (onnxruntime, CUDA vs CPU
# kernels): a few float roundings each; atol where a*s + b cancels to ~0.
F32_OTHER_IMPLEMENTATION = dict(rtol=1e-6, atol=1e-6)
# float32 small networks, selu_ext against torch.nn (or converted): SELU's 2-ULP
# differences carried through a few layers ...
F32_NETWORK = dict(rtol=1e-5, atol=1e-6)
# ... and on CUDA, where matmuls and convolutions may run in TF32 and compiled
# graphs reorder sums.
F32_NETWORK_CUDA = dict(rtol=1e-4, atol=1e-5)
# float32 fused SELU + AlphaDropout against SELU then AlphaDropout: the fused op does
# not round selu(x) to float before scaling (one rounding, times a, through layers).
F32_FUSED_VS_UNFUSED = dict(rtol=1e-5, atol=1e-5)
# A saturated unit's gradient, lambda*alpha*exp(x) ~ 0 (test_dropin_args): zero or a
# few 1e-9 in float16 / bfloat16, never the ~3e-4 error of -lambda*alpha.
SATURATED_GRAD_ATOL = 1e-8
# Half a bfloat16 ULP at 1: the fused a*s + b, rounded once to bfloat16 after
# cancelling near 0, against a reference that rounded s to float first (test_large).
BF16_CANCELLATION_ATOL = 4e-3
# float64 whole models and gradients compared by dropin_common.close(): TOL's float64
# forward bounds are for one SELU call (atol 1e-300); these sum many terms.
F64_MODEL_FLOOR = 1e-13
# SELU against torch's own: two approximations, each within 2 ULP of float32 (so twice
# TOL's float32 rtol), atol for values near 0.
SELU_VS_TORCH = dict(rtol=5e-7, atol=1e-7)
# diagnose()'s statistics against the same statistics recomputed from the network's
# activations (float64 sums in another order).
STATS_RECOMPUTED = 1e-9
# var(w) * fan_in of one Conv2d's 72 LeCun-normal weights: the sample's own spread
# (test_diagnose's tutorial ConvNet).
CONV_WEIGHT_VAR_SAMPLE = 0.3
# Output variance of one layer initialised by self_normalizing_, on one small batch of
# unit-variance input: the sample's own spread.
SELF_NORMALIZING_OUTPUT_VAR = 0.1
# Reading a float32 mask off a dropout output (test_compile): a*x + b from a compiled
# kernel against the same formula in eager float32, a few roundings; far below the
# gap to the dropped value (the inputs keep 1e-3 away from where they meet).
MASK_READ_OFF_F32 = 2e-6
# Keep rate of one mask of 4096 units (or channels) at p = 0.3 (test_compile): 0.05 is
# 7 standard deviations.
DROP_RATE_SLACK = 0.05
