"""Property-based fuzzing (hypothesis) of every operator against float64 references.

Inputs: 0-4 dimensions with zero-sized and odd sizes, transposes, slices with
steps, storage offsets; every dtype; values that mix ordinary numbers with NaN,
+-inf, +-0, subnormals of the dtype, magnitudes near the dtype's largest value and
large negatives where expm1 saturates. Every example runs on each CPU kernel
variant this CPU supports (baseline, avx2, avx512, avx512_bf16) and, with a GPU, on CUDA.

Checked:
* selu / selu_ / autograd backward / selu_backward against SELU in float64
  (derivative: scale where x > 0 or NaN, scale*alpha*exp(x) where x <= 0, as
  PyTorch's selu backward), within the tolerance table of conftest.TOL;
* the dropout ops with an explicit rng_state against the formula applied with
  dropout_keep_mask's mask: kept a*x + b, dropped `dropped + 0*x` (so NaN and inf
  propagate as in PyTorch), backward grad * a on kept units;
* output strides as empty_like gives them; inputs never modified; in-place ops
  write exactly their view and nothing else of the storage.

Reproducible in CI: derandomize=True (examples derived from the test's name) and no
example database.
"""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import selu_ext
from conftest import DEVICES, DTYPES, MAX_ULP32, TOL, require_device, ulp32
from dropout_common import stored
from selu_ext import _C

OPS = torch.ops.selu_ext
SA = selu_ext.SCALE * selu_ext.ALPHA
EPS = {dt: torch.finfo(dt).eps for dt in DTYPES}

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                print_blob=True)


def _specials(dtype):
    fi = torch.finfo(dtype)
    return [math.nan, math.inf, -math.inf, 0.0, -0.0, fi.tiny / 4, -fi.tiny / 4, fi.tiny,
            -fi.tiny, fi.max, -fi.max, fi.max / 2, -1e4, -100.0, -20.0, 20.0, 1e-3, -1e-3]


@st.composite
def tensor_specs(draw):
    """A tensor with a random layout over a larger storage, and how to rebuild the
    same view over a copy of that storage (for the in-place checks)."""
    dtype = draw(st.sampled_from(DTYPES))
    ndim = draw(st.integers(0, 4))
    shape = draw(st.lists(st.integers(0, 7), min_size=ndim, max_size=ndim))
    steps = draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim))
    starts = draw(st.lists(st.integers(0, 2), min_size=ndim, max_size=ndim))
    perm = draw(st.permutations(range(ndim)))
    seed = draw(st.integers(0, 2**31 - 1))
    special_fraction = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    scale = draw(st.sampled_from([1e-3, 1.0, 3.0, 30.0]))
    return dict(dtype=dtype, shape=shape, steps=steps, starts=starts, perm=list(perm), seed=seed,
                special_fraction=special_fraction, scale=scale)


def _storage(spec):
    big = [st0 + max(n, 1) * step
           for n, step, st0 in zip(spec["shape"], spec["steps"], spec["starts"])]
    g = torch.Generator().manual_seed(spec["seed"])
    base = torch.randn(big, generator=g, dtype=torch.float64) * spec["scale"]
    specials = torch.tensor(_specials(spec["dtype"]), dtype=torch.float64)
    pick = torch.randint(len(specials), base.shape, generator=g)
    use = torch.rand(base.shape, generator=g) < spec["special_fraction"]
    return torch.where(use, specials[pick], base).to(spec["dtype"])


def _view(storage, spec):
    idx = tuple(slice(st0, st0 + n * step, step)
                for n, step, st0 in zip(spec["shape"], spec["steps"], spec["starts"]))
    return storage[idx].permute(*spec["perm"]) if spec["perm"] else storage[idx]


def _capabilities():
    return [c for c in selu_ext.build_info()["cpu_capabilities_supported"].split(",") if c]


def _each_backend(device):
    """Yields once per kernel variant to run: every CPU capability, or CUDA once."""
    if device == "cuda":
        yield "cuda"
        return
    before = _C.cpu_capability()
    try:
        for cap in _capabilities():
            _C.set_cpu_capability(cap)
            yield cap
    finally:
        _C.set_cpu_capability(before)


def _assert_close(out, ref64, dtype, tol, what):
    """out (any dtype) against a float64 reference: NaN where NaN, equal infinities,
    else |out - ref| <= tol (elementwise tensor or number) after rounding ref to
    dtype. Elements whose reference lies within rounding of the dtype's overflow
    threshold may round either way and are not compared."""
    out64 = out.detach().to("cpu", torch.float64)
    ref64 = ref64.detach().to("cpu", torch.float64)
    assert out64.shape == ref64.shape
    fmax = torch.finfo(dtype).max
    margin = 8 * EPS[dtype]
    border = (ref64.abs() > fmax * (1 - margin)) & (ref64.abs() < fmax * (1 + margin))
    ref = ref64.to(dtype).to(torch.float64)
    nan_ok = torch.isnan(out64) == torch.isnan(ref)
    inf = torch.isinf(ref) | torch.isinf(out64)
    inf_ok = ~inf | (out64 == ref)
    finite = ~torch.isnan(ref) & ~inf
    err = (out64 - ref).abs()
    tol = torch.as_tensor(tol, dtype=torch.float64).expand_as(err) if not torch.is_tensor(tol) \
        else tol.to("cpu", torch.float64).expand_as(err)
    ok = (nan_ok & inf_ok & (~finite | (err <= tol))) | border
    if not bool(ok.all()):
        bad = (~ok).nonzero()[:5].tolist()
        details = [(i, out64[tuple(i)].item(), ref[tuple(i)].item(), ref64[tuple(i)].item(),
                    tol[tuple(i)].item()) for i in bad]
        pytest.fail(f"{what}: {int((~ok).sum())} of {ok.numel()} elements off "
                    f"(index, got, want, want64, tol): {details}")


def _selu64(x64):
    return torch.where(x64 > 0, selu_ext.SCALE * x64, SA * torch.expm1(x64))


def _dselu64(x64):
    # As PyTorch: the x <= 0 branch at 0, the scale branch for NaN.
    return torch.where(x64 <= 0, SA * torch.exp(x64), torch.full_like(x64, selu_ext.SCALE))


def _rel_tol(ref64, dtype, which):
    if dtype == torch.float32 and which == "forward":
        # The 2 ULP promise (tests/conftest.py MAX_ULP32), measured from the float32
        # rounding of the reference that _assert_close compares with: +0.5 ULP.
        return (MAX_ULP32 + 0.5) * ulp32(ref64.nan_to_num(0, 0, 0))
    rtol, atol = TOL[dtype][:2] if which == "forward" else TOL[dtype][2:]
    return atol + rtol * ref64.abs().nan_to_num(0, 0, 0)


@pytest.mark.parametrize("device", DEVICES)
@FUZZ
@given(spec=tensor_specs(), gseed=st.integers(0, 2**31 - 1))
def test_fuzz_selu(device, spec, gseed):
    require_device(device)
    dtype = spec["dtype"]
    storage = _storage(spec).to(device)
    x = _view(storage, spec)
    x64 = x.to(torch.float64)
    ref = _selu64(x64)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(gseed),
                    dtype=torch.float64).to(device, dtype)
    if g.dim() >= 2:
        g = g.transpose(0, 1).contiguous().transpose(0, 1)  # another layout than x's
    for backend in _each_backend(device):
        before = storage.clone()
        out = selu_ext.selu(x)
        torch.testing.assert_close(storage, before, rtol=0, atol=0, equal_nan=True,
                                   msg="input modified")
        assert out.dtype == dtype and out.shape == x.shape
        assert out.stride() == torch.empty_like(x).stride(), (out.stride(), x.stride())
        _assert_close(out, ref, dtype, _rel_tol(ref, dtype, "forward"), f"selu {backend}")

        # In place on the same view of a copy: the view equals selu(x), the rest of
        # the storage is untouched.
        copy = storage.clone()
        view = _view(copy, spec)
        selu_ext.selu(view, inplace=True)
        torch.testing.assert_close(view, out, rtol=0, atol=0, equal_nan=True)
        mask = torch.ones_like(copy, dtype=torch.bool)
        _view(mask, spec).fill_(False)
        torch.testing.assert_close(copy[mask], storage[mask], rtol=0, atol=0, equal_nan=True)

        # Backward: autograd (C++ kernels) and the operator with another layout of g.
        xr = x.detach().requires_grad_()
        selu_ext.selu(xr).backward(g)
        dref = g.to(torch.float64) * _dselu64(x64)
        # From the rounded output: the output's rounding error times |g| (see TOL).
        dtol = _rel_tol(dref, dtype, "backward") + g.to(torch.float64).abs() * EPS[dtype] * 2
        _assert_close(xr.grad, dref, dtype, dtol, f"selu backward {backend}")
        _assert_close(OPS.selu_backward(g, out), dref, dtype, dtol, f"selu_backward {backend}")


@st.composite
def dropout_args(draw):
    p = draw(st.one_of(st.sampled_from([0.0, 1.0, 0.5, 1e-9, 1 - 1e-9]),
                       st.floats(0.0, 1.0, allow_nan=False)))
    seed = draw(st.integers(-(2**63), 2**63 - 1))
    offset = draw(st.integers(-(2**63), 2**63 - 1))
    return p, torch.tensor([seed, offset], dtype=torch.int64)


@pytest.mark.parametrize("device", DEVICES)
@FUZZ
@given(spec=tensor_specs(), args=dropout_args(), gseed=st.integers(0, 2**31 - 1))
def test_fuzz_dropout(device, spec, args, gseed):
    require_device(device)
    p, rng = args
    dtype = spec["dtype"]
    storage = _storage(spec).to(device)
    x = _view(storage, spec)
    x64 = x.to(torch.float64)
    n = x.numel()
    a, b, dropped = selu_ext.alpha_dropout_coefficients(p)
    keep = OPS.dropout_keep_mask(rng, n, p).view(x.shape).to(device)
    # The drawn (seed, offset, p) honour p: a longer mask of the same stream keeps
    # 1 - p of 2^14 elements (5 sigma), and the tensor's mask is its prefix (the
    # mask depends on the element's index only).
    big = OPS.dropout_keep_mask(rng, 2**14, p)
    assert torch.equal(keep.flatten().cpu(), big[:n].cpu())
    if 0 < p < 1:
        frac = big.double().mean().item()
        assert abs(frac - (1 - p)) <= 5 * math.sqrt(p * (1 - p) / 2**14) + 2**-14, (frac, p)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(gseed),
                    dtype=torch.float64).to(device, dtype)
    g64 = g.to(torch.float64)
    eps = EPS[dtype]

    def formula(y64):
        return torch.where(keep, a * y64 + b, dropped + 0 * y64)

    def tol(y64, factor=4):
        return factor * eps * (a * y64.abs() + abs(b) + abs(dropped)).nan_to_num(0, 0, 0) + 1e-300

    # The fused kernel applies dropout to selu(x) held in opmath (float32 for the
    # 16-bit types): where that overflows, the result is a * inf + b or 0 * inf, as
    # alpha_dropout(selu(x)) would give.
    opmath = torch.float64 if dtype == torch.float64 else torch.float32
    y64 = _selu64(x64).to(opmath).to(torch.float64)
    for backend in _each_backend(device):
        for r in (rng, rng.to(device)):
            out = OPS.alpha_dropout(x, p, r)
            assert out.dtype == dtype and out.stride() == torch.empty_like(x).stride()
            _assert_close(out, formula(x64), dtype, tol(x64), f"alpha_dropout {backend}")

            copy = storage.clone()
            view = _view(copy, spec)
            OPS.alpha_dropout_(view, p, r)
            torch.testing.assert_close(view, out, rtol=0, atol=0, equal_nan=True)

            gx = OPS.alpha_dropout_backward(g, p, r)
            _assert_close(gx, torch.where(keep, a * g64, 0 * g64), dtype, tol(g64, 2),
                          f"alpha_dropout_backward {backend}")

            z = OPS.selu_alpha_dropout(x, p, r)
            # a * selu(x) + b: selu's own rounding (in opmath) adds to the error.
            _assert_close(z, formula(y64), dtype, tol(y64, 6), f"selu_alpha_dropout {backend}")
            gz = OPS.selu_alpha_dropout_backward(g, z, p, r)
            d = a * _dselu64(x64)
            # Saturated kept units (z the dropped value as stored, or expm1(x) = -1 in
            # every compute type) get grad * 0 exactly, as dropped ones.
            saturated = (z == stored(dropped, dtype).to(device)) | (x64 <= -60)
            exact = ~keep | saturated
            dref = torch.where(exact, 0 * g64, g64 * d)
            # Elsewhere from the rounded output z (see selu.h): its rounding error times |g|.
            z64 = z.to(torch.float64).abs().nan_to_num(0, 0, 0)
            dtol = 6 * eps * g64.abs() * (d.abs() + z64 + abs(b) + a * SA).nan_to_num(0, 0, 0)
            _assert_close(gz, dref, dtype,
                          torch.where(exact, 0.0, dtol + TOL[dtype][3] * g64.abs()),
                          f"selu_alpha_dropout_backward {backend}")
            if device == "cpu":
                break  # a CPU input needs a CPU rng_state: one pass
