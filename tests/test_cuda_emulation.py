"""The CUDA kernels, run on the CPU: csrc/cuda/selu_kernels.cu, the very file nvcc
compiles, built as host C++ behind csrc/cuda/emulation.h into a plain shared library
(csrc/cuda/emulation.cpp), and every launcher of csrc/cuda/launch.h compared with the
CPU operators on the same inputs: masks and float32 values to the bit, float64 and the
float16/bfloat16 shortcut within the ULPs of EMULATION_ULPS, each for a stated reason.

No GPU and no CUDA build of torch needed: only the CUDA toolkit's headers (of the
toolkit setup.py finds; without one the tests skip, and fail under CI=true, where
.ci/run builds the CUDA kernels) and a host C++ compiler ($CXX, default g++). The
library is built once per content of its sources and flags, under build/cuda_emulation/.

.ci/cuda_emulation.sh runs this file again with SELU_EXT_EMULATION_SANITIZE=
address,undefined: the kernels' indexing under ASan and UBSan, with pointers offset by
one element, the tails and the empty grid, is the CPU's memcheck of the CUDA code."""

import ctypes
import hashlib
import math
import os
import pathlib
import platform
import subprocess

import numpy as np
import pytest
import torch

from selu_ext import ops
from test_build import _setup_module
from test_philox import reference_keep_np

ROOT = pathlib.Path(__file__).resolve().parents[1]
SANITIZE = os.environ.get("SELU_EXT_EMULATION_SANITIZE", "")

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
CODE = {torch.float16: 0, torch.bfloat16: 1, torch.float32: 2, torch.float64: 3}  # kernel_args.h
PS = [0.0, 1e-6, 0.25, 0.5, 0.99, 1.0]
SEED, OFFSET = 20261130, 8  # offset 8: a counter word of 2, so offset / 4 is exercised

# Where the emulated kernels may differ from the CPU kernels (bitwise everywhere else),
# and why; in steps of the output dtype (ULPs) unless said otherwise.
#   float64, expm1: the CUDA code calls expm1 (the C library's here, libdevice's on a
#     GPU), the CPU's vector loops a polynomial (selu_math.h): each within 1 ULP of
#     the exact value, so within 2 of each other.
#   float16/bfloat16, SeluNegative16: the CUDA kernels' own expm1 on the negative
#     branch (a polynomial, relative error up to 1e-5 near -ln2/2, and __expf, whose
#     SFU result the host cannot reproduce: emulation.h) against the CPU's float path:
#     an absolute difference of at most 2^-18 in expm1, which rounding to 16 bits turns
#     into at most one step.
_F64_EXPM1_ULPS = 2
EXPM1_ABS = {torch.float64: _F64_EXPM1_ULPS * 2.0**-53, torch.float16: 2.0**-18,
             torch.bfloat16: 2.0**-18}
EMULATION_ULPS = {torch.float64: _F64_EXPM1_ULPS, torch.float16: 1, torch.bfloat16: 1}
# Where expm1's difference is scaled and added to other terms, it is an absolute error
# of up to the factor times EXPM1_ABS, which cancellation can make many ULPs of the
# result: grad * (selu(x) + scale * alpha) from the input (factor |grad| * scale *
# alpha), and the fused forward's a * scale * alpha * expm1(x) + b (factor a * scale
# * alpha).


# ---------------------------------------------------------------------------
# Building and loading the emulation.

def _cuda_include():
    """The include folder of the CUDA toolkit that setup.py finds, or None. (The
    nvidia-* pip packages of a CUDA torch lack the crt/ headers cuda_runtime.h needs.)"""
    home, _ = _setup_module()._find_cuda_home()
    inc = pathlib.Path(home) / "include" if home else None
    headers = ("cuda_runtime.h", "crt/host_defines.h", "cuda_fp16.h", "cuda_bf16.h")
    return inc if inc and all((inc / h).exists() for h in headers) else None


def _compile_flags(cuda_include):
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS

    torch_include = pathlib.Path(torch.__file__).parent / "include"
    # torch's -D switches of the nvcc build (they take cuda_fp16.h's operators away).
    defines = [f for f in COMMON_NVCC_FLAGS if f.startswith("-D")]
    flags = ["-std=c++20", "-O2", "-fPIC", "-shared", "-Wall", "-Wno-unknown-pragmas", *defines,
             # nvcc fuses a * b + c into an FMA; so must the host compiler (emulation.h).
             "-ffp-contract=fast",
             f"-I{cuda_include}", f"-I{torch_include}"]
    if platform.machine() in ("x86_64", "AMD64"):
        flags.append("-mfma")
    if SANITIZE:
        flags += [f"-fsanitize={SANITIZE}", "-fno-sanitize-recover=all",
                  "-fno-omit-frame-pointer", "-g"]
    return flags


def _sources():
    csrc = ROOT / "csrc"
    return sorted(csrc.glob("*.h")) + sorted((csrc / "cuda").glob("*.cu")) + [
        csrc / "cuda" / "launch.h", csrc / "cuda" / "emulation.h", csrc / "cuda" / "emulation.cpp"]


def build_emulation():
    """The path of the emulation library, compiled unless a build of the same sources,
    flags and compiler is cached."""
    cuda_include = _cuda_include()
    if cuda_include is None:
        why = "no CUDA toolkit found (nvcc on PATH, CUDA_HOME): its headers are needed"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    cxx = os.environ.get("CXX", "g++")
    flags = _compile_flags(cuda_include)
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256()
    for part in [cxx, version, *flags]:
        key.update(part.encode() + b"\0")
    for path in _sources():
        key.update(path.read_bytes())
    out_dir = ROOT / "build" / "cuda_emulation" / key.hexdigest()[:16]
    lib = out_dir / "libselu_emulation.so"
    if not lib.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / f"tmp{os.getpid()}.so"
        cmd = [cxx, *flags, str(ROOT / "csrc" / "cuda" / "emulation.cpp"), "-o", str(tmp)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            pytest.fail("the CUDA emulation does not compile:\n" + " ".join(cmd) + "\n"
                        + r.stderr[-6000:])
        os.replace(tmp, lib)  # atomic: a parallel run sees the old state or the whole file
    return lib


def _load():
    if "address" in SANITIZE and "libasan" not in pathlib.Path("/proc/self/maps").read_text():
        pytest.fail("SELU_EXT_EMULATION_SANITIZE=address needs libasan preloaded "
                    "(run .ci/cuda_emulation.sh)")
    lib = ctypes.CDLL(str(build_emulation()))
    p, i64, u64, dbl, i = (ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64, ctypes.c_double,
                           ctypes.c_int)
    dropout = [dbl, dbl, dbl, u64, u64, p]
    lib.emu_selu.argtypes = [i, p, p, i64]
    lib.emu_selu_backward.argtypes = [i, p, p, p, i64, i]
    lib.emu_alpha_dropout.argtypes = [i, p, p, i64, *dropout]
    lib.emu_alpha_dropout_backward.argtypes = [i, p, p, i64, *dropout]
    lib.emu_selu_alpha_dropout.argtypes = [i, p, p, i64, *dropout]
    lib.emu_selu_alpha_dropout_backward.argtypes = [i, p, p, p, i64, *dropout]
    lib.emu_dropout_keep_mask.argtypes = [p, i64, dbl, u64, u64, p]
    lib.emu_write_rng_state.argtypes = [i, u64, u64, p, p, u64, p]
    lib.emu_invalid_launches.restype = i64
    return lib


@pytest.fixture(scope="module")
def emu_library():
    return _load()


@pytest.fixture
def emu(emu_library):
    """The library; after the test, no launch that CUDA would have refused was made."""
    before = emu_library.emu_invalid_launches()
    yield emu_library
    assert emu_library.emu_invalid_launches() == before, "a launch CUDA refuses (empty grid?)"


# ---------------------------------------------------------------------------
# Inputs.

def sizes(dtype):
    """Around the vector width, a warp, the 256-element dropout block, one block's
    elements of each kernel (selu: 256 threads x 4 vectors; dropout: 256 threads x 8
    elements, x V for the vector kernel), and a large odd size."""
    vec = 16 // torch.empty((), dtype=dtype).element_size()
    dropout_v = 4 if vec == 8 else vec  # selu_kernels.cu's dropout_vec_width
    blocks = [256 * 4 * vec, 256 * 8, 256 * 8 * dropout_v]
    around = [n + d for n in blocks for d in (-1, 0, 1)]
    return sorted({0, 1, vec - 1, vec, vec + 1, 31, 33, 255, 256, 257, 1023, 1024, 1025,
                   *around, 2**20 + 3})


# scale * alpha, and rounded to float16/bfloat16 (selu.h's kScaleAlpha16).
SCALE_ALPHA = 1.0507009873554804934193349852946 * 1.6732632423543772848170429916717
SPECIALS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-40, -1e-40, 1e-8, -1e-8,
            -SCALE_ALPHA, -1.7578125, -1.758, -1.7582, -0.34657359, -0.3466, -0.3465, -1.0,
            1.0, -17.0, -30.0, -88.0, -1e4, -1e30, 1e30, 65504.0, 70000.0]
# Inputs whose selu saturates in float16/bfloat16 (the fused backward's divergence).
SATURATED16 = [-math.inf, -1e30, -1e4, -88.0, -30.0, -17.0]


def values(n, dtype, seed, specials=SPECIALS):
    """n values: normal with sd 3, and `specials` at the start and at the end (tails)."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, generator=g, dtype=torch.float64) * 3
    s = torch.tensor(specials, dtype=torch.float64)
    k = min(n, len(specials))
    v[:k] = s[:k]
    if n >= 2 * len(specials):
        v[n - k:] = s
    return v.to(dtype)


def buffer(n, dtype, offset):
    """An uninitialized tensor of n elements starting `offset` elements into a 64-byte
    aligned allocation: offset 1 refuses the kernels' vector paths."""
    return torch.empty(n + offset, dtype=dtype)[offset:]


def placed(t, offset):
    out = buffer(t.numel(), t.dtype, offset)
    out.copy_(t)
    return out


def ptr(t):
    return ctypes.c_void_p(t.data_ptr())


def rng_state(seed=SEED, offset=OFFSET):
    return torch.tensor([seed, offset], dtype=torch.int64)


def dropout_args(p, dtype, seed=SEED, offset=OFFSET, rng_ptr=None):
    """The launcher's dropout arguments as host.h's dropout_launch makes them."""
    return (p, *kept_bounds(p, dtype), seed, offset, rng_ptr)


def kept_scale(p):
    """selu.h's alpha_dropout_coeffs(p).a, the multiplier of kept units (p < 1)."""
    return 1.0 / math.sqrt((SCALE_ALPHA * SCALE_ALPHA * p + 1.0) * (1.0 - p))


def kept_bounds(p, dtype):
    """host.h's kept_bound_for(p, dtype) and kept_bound_for(p, dtype, above=True): the
    kept-unit offset b of selu.h's alpha_dropout_coeffs rounded to dtype, and the next
    value above it (test_kept_bounds_match_cpu checks these against the CPU)."""
    if p >= 1.0:
        return -0.0, -0.0
    b = torch.tensor(SCALE_ALPHA * kept_scale(p) * p, dtype=torch.float64)
    rounded = b.to(torch.float32).to(dtype) if dtype != torch.float64 else b
    bits = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32,
            torch.float64: torch.int64}[dtype]
    above = (rounded.view(bits) + 1).view(dtype)
    return rounded.item(), above.item()


# ---------------------------------------------------------------------------
# Comparison.

_BITS = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32,
         torch.float64: torch.int64}


def assert_same(got, want, what, ulps=0, abs_tol=None):
    """got == want to the bit, NaN where NaN (a NaN's payload is the hardware's); with
    ulps, within that many steps of the dtype, or, with abs_tol (a tensor), where
    |got - want| <= abs_tol."""
    assert got.shape == want.shape and got.dtype == want.dtype, what
    gnan, wnan = torch.isnan(got), torch.isnan(want)
    bad = gnan != wnan
    both = ~gnan & ~wnan
    gi, wi = got.view(_BITS[got.dtype]).long(), want.view(_BITS[want.dtype]).long()
    if ulps == 0 and abs_tol is None:
        bad |= both & (gi != wi)
    else:
        sign = torch.tensor(1, dtype=torch.long) << (got.element_size() * 8 - 1)
        g_neg, w_neg = (gi & sign) != 0, (wi & sign) != 0
        g_mag, w_mag = gi & ~sign, wi & ~sign
        # Steps between the two, through zero when the signs differ.
        steps = torch.where(g_neg == w_neg, (g_mag - w_mag).abs(), g_mag + w_mag)
        off = both & (steps > ulps)
        if abs_tol is not None:
            off &= ~((got.double() - want.double()).abs() <= abs_tol)
        bad |= off
    if bad.any():
        i = bad.nonzero()[0].item()
        pytest.fail(f"{what}: {int(bad.sum())} of {got.numel()} elements differ from the CPU's, "
                    f"first at {i}: CUDA (emulated) {got[i].item()!r}, CPU {want[i].item()!r}")


# ---------------------------------------------------------------------------
# The launchers against the CPU operators.

@pytest.mark.parametrize("dtype", DTYPES)
def test_selu(emu, dtype):
    for n in sizes(dtype):
        x = values(n, dtype, n)
        for offset in (0, 1):
            xb, yb = placed(x, offset), buffer(n, dtype, offset)
            emu.emu_selu(CODE[dtype], ptr(xb), ptr(yb), n)
            assert_same(yb, ops.selu(x), f"selu {dtype} n={n} offset={offset}",
                        EMULATION_ULPS.get(dtype, 0))


@pytest.mark.parametrize("is_result", [True, False], ids=["from_output", "from_input"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_selu_backward(emu, dtype, is_result):
    for n in sizes(dtype):
        x = values(n, dtype, n)
        v = ops.selu(x) if is_result else x
        grad = values(n, dtype, n + 1, specials=[1.0, -2.0, 0.5, math.inf, math.nan])
        want = ops.selu_backward(grad, v, is_result)
        ulps, abs_tol = 0, None
        if not is_result and dtype in EXPM1_ABS:
            ulps = EMULATION_ULPS[dtype]
            abs_tol = grad.double().abs() * (SCALE_ALPHA * EXPM1_ABS[dtype])
        for offset in (0, 1):
            gb, vb, ob = placed(grad, offset), placed(v, offset), buffer(n, dtype, offset)
            emu.emu_selu_backward(CODE[dtype], ptr(gb), ptr(vb), ptr(ob), n, is_result)
            assert_same(ob, want, f"selu_backward(is_result={is_result}) {dtype} n={n} "
                        f"offset={offset}", ulps, abs_tol)


def dropout_cases(dtype):
    """(n, p, offset): every size at every p, aligned and offset by one element; the
    largest size at two values of p only (it alone costs more than the rest)."""
    big = 2**20 + 3
    for n in sizes(dtype):
        for p in PS if n != big else (0.25, 0.99):
            for offset in (0, 1):
                yield n, p, offset


@pytest.mark.parametrize("op", ["alpha_dropout", "alpha_dropout_backward", "selu_alpha_dropout"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_input_dropout(emu, dtype, op):
    launcher, cpu = getattr(emu, "emu_" + op), getattr(ops, op)
    fused = op == "selu_alpha_dropout"  # the only one of the three with expm1
    for n, p, offset in dropout_cases(dtype):
        x = values(n, dtype, n)
        xb, zb = placed(x, offset), buffer(n, dtype, offset)
        launcher(CODE[dtype], ptr(xb), ptr(zb), n, *dropout_args(p, dtype))
        ulps, abs_tol = 0, None
        if fused and dtype in EXPM1_ABS and p < 1:
            ulps = EMULATION_ULPS[dtype]
            abs_tol = kept_scale(p) * SCALE_ALPHA * EXPM1_ABS[dtype]
        assert_same(zb, cpu(x, p, rng_state()), f"{op} {dtype} n={n} p={p} offset={offset}",
                    ulps, abs_tol)


def fused_backward(emu, x, p, offset, dtype):
    """(emulated, CPU) gradients of the fused op at x, from the CPU's forward output."""
    n = x.numel()
    z = ops.selu_alpha_dropout(x, p, rng_state())
    grad = values(n, dtype, n + 1, specials=[1.0, -2.0, 0.5])
    gb, zb, ob = placed(grad, offset), placed(z, offset), buffer(n, dtype, offset)
    emu.emu_selu_alpha_dropout_backward(CODE[dtype], ptr(gb), ptr(zb), ptr(ob), n,
                                        *dropout_args(p, dtype))
    return ob, ops.selu_alpha_dropout_backward(grad, z, p, rng_state())


@pytest.mark.parametrize("dtype", DTYPES)
def test_selu_alpha_dropout_backward(emu, dtype):
    for n, p, offset in dropout_cases(dtype):
        x = values(n, dtype, n)
        got, want = fused_backward(emu, x, p, offset, dtype)
        assert_same(got, want, f"selu_alpha_dropout_backward {dtype} n={n} p={p} offset={offset}")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("x0", SATURATED16)
def test_fused_backward_saturated16(emu, dtype, x0):
    """Units whose selu saturates in float16/bfloat16 store z equal to the dropped value
    whether kept or dropped, and get exactly 0 gradient, as on the CPU: the kernel reads
    the branch from z (SeluAlphaDropoutBackwardKernel). The CUDA kernel that drew the
    mask gave kept ones a * (z - b) + a * scale * alpha, a few 1e-4 (issue 22)."""
    x = torch.full((2048 + 5,), x0, dtype=torch.float64).to(dtype)
    for offset in (0, 1):
        got, want = fused_backward(emu, x, 0.5, offset, dtype)
        assert_same(got, want, f"selu_alpha_dropout_backward {dtype} x={x0} offset={offset}")
        assert not got.any()


def test_dropout_keep_mask(emu):
    for n in sizes(torch.float16):
        for p in PS:
            for via_pointer in (False, True):
                rng = rng_state()
                out = torch.empty(n, dtype=torch.bool)
                emu.emu_dropout_keep_mask(ptr(out), n, p, SEED, OFFSET,
                                          ptr(rng) if via_pointer else None)
                assert torch.equal(out, ops.dropout_keep_mask(rng, n, p)), (
                    f"dropout_keep_mask n={n} p={p} via_pointer={via_pointer}")


def test_mask_ties(emu):
    """Elements whose 16 bits equal the threshold's high half, decided by the tie call
    both ways (reference_keep_np checks that these inputs have such ties), in the mask
    and in a dropout kernel of each path."""
    seed, p, n = 20261130, 0.3, 2**20 + 77
    keep, u, threshold = reference_keep_np(seed, 0, p, n)
    ties = u == threshold >> 16
    assert keep[ties].any() and not keep[ties].all()
    out = torch.empty(n, dtype=torch.bool)
    emu.emu_dropout_keep_mask(ptr(out), n, p, seed, 0, None)
    assert np.array_equal(out.numpy(), keep)
    grad = torch.ones(n, dtype=torch.float32)
    for offset in (0, 1):
        gb, ob = placed(grad, offset), buffer(n, torch.float32, offset)
        emu.emu_alpha_dropout_backward(CODE[torch.float32], ptr(gb), ptr(ob), n,
                                       *dropout_args(p, torch.float32, seed, 0))
        assert np.array_equal((ob != 0).numpy(), keep), f"offset={offset}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_rng_state_through_pointer(emu, dtype):
    """A dropout kernel that reads (seed, offset) from memory (an rng_state on the
    device) computes what it computes from the values."""
    n = 2048 * 2 + 7
    x = values(n, dtype, 3)
    rng = rng_state()
    for offset in (0, 1):
        xb, by_value, by_pointer = placed(x, offset), buffer(n, dtype, offset), buffer(n, dtype, offset)
        emu.emu_selu_alpha_dropout(CODE[dtype], ptr(xb), ptr(by_value), n,
                                   *dropout_args(0.5, dtype))
        emu.emu_selu_alpha_dropout(CODE[dtype], ptr(xb), ptr(by_pointer), n,
                                   *dropout_args(0.5, dtype, 0, 0, ptr(rng)))
        assert_same(by_pointer, by_value, f"{dtype} offset={offset}")


def test_write_rng_state(emu):
    out = torch.empty(2, dtype=torch.int64)
    emu.emu_write_rng_state(0, 2**63 + 5, 12, None, None, 0, ptr(out))
    assert out.tolist() == [-(2**63) + 5, 12]
    # Under graph capture: the values behind the pointers, plus the intra-graph offset.
    seed, offset = torch.tensor([77], dtype=torch.int64), torch.tensor([40], dtype=torch.int64)
    emu.emu_write_rng_state(1, 0, 0, ptr(seed), ptr(offset), 8, ptr(out))
    assert out.tolist() == [77, 48]


@pytest.mark.parametrize("dtype", DTYPES)
def test_kept_bounds_match_cpu(dtype):
    """kept_bounds above is host.h's rule: the CPU's kept units of x = 0 are b."""
    x = torch.zeros(4096, dtype=dtype)
    for p in PS[1:-1]:
        bound, above = kept_bounds(p, dtype)
        z = ops.alpha_dropout(x, p, rng_state())
        assert z.max().item() == bound, p
        assert above > bound and torch.tensor(above, dtype=dtype).item() == above


def test_in_place(emu):
    """Each launcher with its output on its (first) input, as selu_, alpha_dropout_ and
    a backward writing into the incoming gradient use them: the same values as out of
    place."""
    dtype, n = torch.float32, 2048 * 4 + 3
    x = values(n, dtype, 1)
    z = ops.selu_alpha_dropout(x, 0.5, rng_state())
    d = dropout_args(0.5, dtype)
    for offset in (0, 1):
        calls = {
            "selu": lambda a, o: emu.emu_selu(2, a, o, n),
            "selu_backward": lambda a, o: emu.emu_selu_backward(2, a, ptr(zb), o, n, 1),
            "alpha_dropout": lambda a, o: emu.emu_alpha_dropout(2, a, o, n, *d),
            "alpha_dropout_backward": lambda a, o: emu.emu_alpha_dropout_backward(2, a, o, n, *d),
            "selu_alpha_dropout": lambda a, o: emu.emu_selu_alpha_dropout(2, a, o, n, *d),
            "selu_alpha_dropout_backward":
                lambda a, o: emu.emu_selu_alpha_dropout_backward(2, a, ptr(zb), o, n, *d),
        }
        zb = placed(z, offset)
        for name, call in calls.items():
            a, out = placed(x, offset), buffer(n, dtype, offset)
            call(ptr(a), ptr(out))
            call(ptr(a), ptr(a))
            assert_same(a, out, f"{name} in place, offset={offset}")
