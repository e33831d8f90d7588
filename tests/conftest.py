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
