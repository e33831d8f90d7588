"""Tensors of more than 2**31 elements on CUDA (bfloat16, 4.3 GB each): selu
forward and backward and the dropout ops index them with 64 bits. Checked on
slices at the start, around element 2**31 (where a 32-bit index would wrap) and at
the end, against the float64 reference and the pure-Python Philox mask of
tests/test_philox.py (independent of every kernel).

Needs a GPU with about 24 GB free; skipped otherwise.
"""

import pytest
import torch

import selu_ext
from conftest import (BF16_CANCELLATION_ATOL, TOL, assert_close_dtype, require_device,
                      selu_reference)
from dropout_common import stored
from test_philox import reference_keep

OPS = torch.ops.selu_ext
N = 2**31 + 4099  # odd, past the 32-bit boundary
DTYPE = torch.bfloat16
NEED_BYTES = 24 * 2**30
WINDOWS = [(0, 1024), (2**31 - 640, 2**31 + 640), (N - 1024, N)]


def _free_bytes():
    free, _ = torch.cuda.mem_get_info()
    return free


@pytest.fixture(scope="module")
def big():
    require_device("cuda")
    if _free_bytes() < NEED_BYTES:
        pytest.skip(f"needs {NEED_BYTES / 2**30:.0f} GiB of free GPU memory, "
                    f"{_free_bytes() / 2**30:.1f} GiB free")
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(N, generator=g, device="cuda", dtype=torch.float32).mul_(3).to(DTYPE)
    yield x
    del x
    torch.cuda.empty_cache()


def _keep_at(seed, offset, p, lo, hi):
    """The pure-Python keep mask of elements lo..hi-1."""
    return torch.tensor(reference_keep(seed, offset, p, hi, start=lo))


@pytest.mark.cuda
@pytest.mark.slow
def test_selu_forward_backward(big):
    x = big
    y = OPS.selu(x)
    for lo, hi in WINDOWS:
        assert_close_dtype(y[lo:hi], selu_reference(x[lo:hi].cpu()), DTYPE)
    # Backward with a stride-0 gradient (as autograd hands out for .sum()).
    g = torch.full((), 0.5, device="cuda", dtype=DTYPE).expand(N)
    gx = OPS.selu_backward(g, y)
    for lo, hi in WINDOWS:
        yw = y[lo:hi].cpu().double()
        want = 0.5 * torch.where(yw > 0, selu_ext.SCALE, yw + selu_ext.SCALE * selu_ext.ALPHA)
        assert_close_dtype(gx[lo:hi], want, DTYPE, "backward")
    del y, gx
    # In place, on the same storage.
    xc = x.clone()
    OPS.selu_(xc)
    for lo, hi in WINDOWS:
        assert_close_dtype(xc[lo:hi], selu_reference(x[lo:hi].cpu()), DTYPE)


@pytest.mark.cuda
@pytest.mark.slow
@pytest.mark.parametrize("rng_on", ["cpu", "cuda"])
def test_dropout(big, rng_on):
    x = big
    seed, offset, p = 20240601, 12, 0.25
    rng = torch.tensor([seed, offset], dtype=torch.int64, device=rng_on)
    a, b, dropped = selu_ext.alpha_dropout_coefficients(p)
    z = OPS.selu_alpha_dropout(x, p, rng)
    out = OPS.alpha_dropout(x, p, rng)
    for lo, hi in WINDOWS:
        keep = _keep_at(seed, offset, p, lo, hi)
        assert 0 < keep.sum() < keep.numel()
        xw = x[lo:hi].cpu().double()
        assert_close_dtype(out[lo:hi], torch.where(keep, a * xw + b, torch.full_like(xw, dropped)),
                           DTYPE)
        sw = selu_reference(x[lo:hi].cpu()).to(torch.float32).double()
        want = torch.where(keep, a * sw + b, torch.full_like(sw, dropped))
        torch.testing.assert_close(z[lo:hi].cpu().double(), want.to(DTYPE).double(),
                                   rtol=2 * TOL[DTYPE][0], atol=BF16_CANCELLATION_ATOL)
    del out
    g = torch.ones((), device="cuda", dtype=DTYPE).expand(N)
    gz = OPS.selu_alpha_dropout_backward(g, z, p, rng)
    for lo, hi in WINDOWS:
        keep = _keep_at(seed, offset, p, lo, hi)
        xw = x[lo:hi].cpu().double()
        d = torch.where(xw <= 0, selu_ext.SCALE * selu_ext.ALPHA * xw.exp(),
                        torch.full_like(xw, selu_ext.SCALE))
        # Dropped and saturated kept units (z the dropped value as stored) exactly 0,
        # not the ~0.003 of z's rounding that the bfloat16 tolerance would let by.
        saturated = keep & (z[lo:hi].cpu() == stored(dropped, DTYPE))
        assert saturated.any()
        exact = ~keep | saturated
        assert (gz[lo:hi].cpu()[exact] == 0).all()
        assert_close_dtype(gz[lo:hi], torch.where(exact, torch.zeros_like(d), a * d), DTYPE,
                           "backward")
