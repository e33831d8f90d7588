"""Bad input at every public entry point: a clear Python exception that names
selu_ext, the op and the offending argument, or a correct result; never a crash and
never uninitialized memory.

Entry points: the functions (selu_ext.selu, ...), the autograd.Function forms
(SELUFunction.apply, ...), the modules (selu_ext.nn.*) and the registered operators
(torch.ops.selu_ext.*). The operators check their arguments in C++ (csrc/host.h) and
in the fake kernels (selu_ext/ops.py); the functions check Python-level arguments
(tensor-ness, p, seed) first, with the exception types torch.nn.functional uses.
"""

import math
import re
import subprocess
import sys

import pytest
import torch

import selu_ext
from conftest import DEVICES, HAS_CUDA, require_device

OPS = torch.ops.selu_ext
RNG = torch.tensor([1234, 8], dtype=torch.int64)

pytestmark = pytest.mark.filterwarnings(
    "ignore:Sparse CSR tensor support is in beta state", "ignore:.*quantize_per_tensor")


def _rng(device="cpu"):
    return RNG.to(device)


# Every entry point that takes a floating-point input, as (id, op name in the
# message, call). Dropout runs in training mode with an explicit rng so it reaches
# the kernel.
# Inputs are 2-D (N, C), which feature dropout needs.
def _entry_points():
    return [
        ("selu", "selu", lambda x: selu_ext.selu(x)),
        ("selu-inplace", "selu_", lambda x: selu_ext.selu(x, inplace=True)),
        ("alpha_dropout", "alpha_dropout", lambda x: selu_ext.alpha_dropout(x, 0.5, True)),
        ("alpha_dropout-inplace", "alpha_dropout_",
         lambda x: selu_ext.alpha_dropout(x, 0.5, True, True)),
        ("feature_alpha_dropout", "feature_alpha_dropout",
         lambda x: selu_ext.feature_alpha_dropout(x, 0.5, True)),
        ("selu_alpha_dropout", "selu_alpha_dropout",
         lambda x: selu_ext.selu_alpha_dropout(x, 0.5, True)),
        ("SELUFunction", "selu", lambda x: selu_ext.SELUFunction.apply(x)),
        ("SELUFunction-inplace", "selu_", lambda x: selu_ext.SELUFunction.apply(x, True)),
        ("AlphaDropoutFunction", "alpha_dropout",
         lambda x: selu_ext.AlphaDropoutFunction.apply(x, 0.5, _rng(x.device))),
        ("SELUAlphaDropoutFunction", "selu_alpha_dropout",
         lambda x: selu_ext.SELUAlphaDropoutFunction.apply(x, 0.5, _rng(x.device))),
        ("nn.SELU", "selu", lambda x: selu_ext.nn.SELU()(x)),
        ("nn.AlphaDropout", "alpha_dropout", lambda x: selu_ext.nn.AlphaDropout(0.5)(x)),
        ("nn.FeatureAlphaDropout", "feature_alpha_dropout",
         lambda x: selu_ext.nn.FeatureAlphaDropout(0.5)(x)),
        ("nn.SELUAlphaDropout", "selu_alpha_dropout",
         lambda x: selu_ext.nn.SELUAlphaDropout(0.5)(x)),
        ("op.selu", "selu", lambda x: OPS.selu(x)),
        ("op.selu_", "selu_", lambda x: OPS.selu_(x)),
        ("op.selu_backward", "selu_backward", lambda x: OPS.selu_backward(x, x)),
        ("op.alpha_dropout", "alpha_dropout", lambda x: OPS.alpha_dropout(x, 0.5, _rng())),
        ("op.alpha_dropout_", "alpha_dropout_", lambda x: OPS.alpha_dropout_(x, 0.5, _rng())),
        ("op.alpha_dropout_backward", "alpha_dropout_backward",
         lambda x: OPS.alpha_dropout_backward(x, 0.5, _rng())),
        ("op.selu_alpha_dropout", "selu_alpha_dropout",
         lambda x: OPS.selu_alpha_dropout(x, 0.5, _rng())),
        ("op.selu_alpha_dropout_backward", "selu_alpha_dropout_backward",
         lambda x: OPS.selu_alpha_dropout_backward(x, x, 0.5, _rng())),
    ]


ENTRY = _entry_points()
ENTRY_IDS = [e[0] for e in ENTRY]

# How each dtype may be spelled in a message: c10's name (C++) or torch's (Python).
BAD_DTYPES = {
    torch.int32: ("Int", "int32"),
    torch.int64: ("Long", "int64"),
    torch.uint8: ("Byte", "uint8"),
    torch.bool: ("Bool", "bool"),
    torch.complex64: ("ComplexFloat", "complex64"),
}


@pytest.mark.parametrize("dtype", list(BAD_DTYPES), ids=str)
@pytest.mark.parametrize("entry", ENTRY, ids=ENTRY_IDS)
def test_wrong_dtype(entry, dtype):
    _, op, call = entry
    x = torch.ones(4, 3, dtype=dtype)
    with pytest.raises(RuntimeError) as info:
        call(x)
    msg = str(info.value)
    assert "selu_ext" in msg and op in msg, msg
    assert any(name in msg for name in BAD_DTYPES[dtype]), msg
    assert "floating-point" in msg, msg


@pytest.mark.parametrize("fn", [selu_ext.alpha_dropout, selu_ext.feature_alpha_dropout])
def test_eval_mode_dropout_is_identity_for_any_dtype(fn):
    # As torch.nn.functional.alpha_dropout: training=False returns the input itself,
    # whatever its dtype, without looking at it.
    x = torch.arange(6).view(2, 3)
    assert fn(x, 0.5, False) is x
    assert torch.nn.functional.alpha_dropout(x, 0.5, False) is x


# ---------------------------------------------------------------------------
# Dropout probability


BAD_P = [-0.1, -1e-12, 1 + 1e-12, 1.0000001, 2.0, -math.inf, math.inf, math.nan]
FUNCTIONS = [
    ("alpha_dropout", lambda x, p, t: selu_ext.alpha_dropout(x, p, t)),
    ("alpha_dropout-inplace", lambda x, p, t: selu_ext.alpha_dropout(x.clone(), p, t, True)),
    ("feature_alpha_dropout", lambda x, p, t: selu_ext.feature_alpha_dropout(x, p, t)),
    ("selu_alpha_dropout", lambda x, p, t: selu_ext.selu_alpha_dropout(x, p, t)),
]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("p", BAD_P, ids=str)
@pytest.mark.parametrize("fn", [f for _, f in FUNCTIONS], ids=[n for n, _ in FUNCTIONS])
def test_p_out_of_range_functions(fn, p, training):
    # PyTorch's functions: ValueError from the range test, RuntimeError for NaN
    # (which passes it), whether training or not.
    error = RuntimeError if math.isnan(p) else ValueError
    with pytest.raises(error, match="dropout probability has to be between 0 and 1"):
        fn(torch.randn(4, 3), p, training)


MODULES = [selu_ext.nn.AlphaDropout, selu_ext.nn.FeatureAlphaDropout, selu_ext.nn.SELUAlphaDropout,
           lambda p: selu_ext.nn.SelfNormalizingMLP(3, 4, 2, depth=1, dropout=p)]
MODULE_IDS = ["AlphaDropout", "FeatureAlphaDropout", "SELUAlphaDropout", "SelfNormalizingMLP"]


# NaN passes torch.nn's constructors (and fails in training mode, as above).
@pytest.mark.parametrize("p", [p for p in BAD_P if not math.isnan(p)], ids=str)
@pytest.mark.parametrize("make", MODULES, ids=MODULE_IDS)
def test_p_out_of_range_modules(make, p):
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        make(p)


@pytest.mark.parametrize("p", BAD_P, ids=str)
def test_p_out_of_range_as_torch(p):
    # The two tests above expect what torch does: its functions raise ValueError
    # whether training or not, RuntimeError (ATen's check) for NaN; its module
    # constructors let NaN through, and the module then fails in training mode.
    x = torch.randn(4, 3)
    if math.isnan(p):
        with pytest.raises(RuntimeError, match="between 0 and 1"):
            torch.nn.functional.alpha_dropout(x, p, training=True)
        for make in MODULES[:3]:
            module = make(p)
            with pytest.raises(RuntimeError, match="between 0 and 1"):
                module(x)
        return
    for fn in (torch.nn.functional.alpha_dropout, torch.nn.functional.feature_alpha_dropout):
        for training in (True, False):
            with pytest.raises(ValueError):
                fn(x, p, training=training)
    with pytest.raises(ValueError):
        torch.nn.AlphaDropout(p)


@pytest.mark.parametrize("p", [-0.1, 1.5, math.nan, math.inf])
def test_p_out_of_range_ops(p):
    x = torch.randn(5)
    calls = {
        "alpha_dropout": lambda: OPS.alpha_dropout(x, p, _rng()),
        "alpha_dropout_": lambda: OPS.alpha_dropout_(x.clone(), p, _rng()),
        "alpha_dropout_backward": lambda: OPS.alpha_dropout_backward(x, p, _rng()),
        "selu_alpha_dropout": lambda: OPS.selu_alpha_dropout(x, p, _rng()),
        "selu_alpha_dropout_backward": lambda: OPS.selu_alpha_dropout_backward(x, x, p, _rng()),
        "dropout_keep_mask": lambda: OPS.dropout_keep_mask(_rng(), 5, p),
        "AlphaDropoutFunction": lambda: selu_ext.AlphaDropoutFunction.apply(x, p, _rng()),
    }
    # The message states the value given, formatted as Python prints a float.
    expected = f"dropout probability has to be between 0 and 1, but got {p}"
    for name, call in calls.items():
        with pytest.raises(RuntimeError, match=re.escape(expected)):
            call()


# What PyTorch refuses with TypeError (it accepts 0-dim tensors, bools and numpy
# scalars; tests/test_dropin_args.py compares every case with torch itself).
@pytest.mark.parametrize("p", ["0.5", None, torch.tensor([0.5])], ids=["str", "None", "1-dim"])
def test_p_wrong_type(p):
    for _, fn in FUNCTIONS:
        with pytest.raises(TypeError):
            fn(torch.randn(4, 3), p, True)


@pytest.mark.parametrize("seed", ["1", 1.0, True, torch.tensor(1)])
def test_seed_wrong_type(seed):
    x = torch.randn(4, 3)
    for fn in (selu_ext.alpha_dropout, selu_ext.feature_alpha_dropout):
        with pytest.raises(TypeError, match="seed must be an int"):
            fn(x, 0.5, True, seed=seed)
    with pytest.raises(TypeError, match="seed must be an int"):
        selu_ext.selu_alpha_dropout(x, 0.5, True, seed=seed)


# ---------------------------------------------------------------------------
# Non-tensors


NON_TENSORS = [[1.0, 2.0], 3.0, None, "x", (1.0,)]
PY_ENTRY = [e for e in ENTRY if not e[0].startswith("op.")]


@pytest.mark.parametrize("value", NON_TENSORS, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("entry", PY_ENTRY, ids=[e[0] for e in PY_ENTRY])
def test_non_tensor_python_api(entry, value):
    name, _, call = entry
    # The Function calls in ENTRY read their input's device; pass the rng directly.
    direct = {
        "AlphaDropoutFunction": lambda v: selu_ext.AlphaDropoutFunction.apply(v, 0.5, RNG),
        "SELUAlphaDropoutFunction":
            lambda v: selu_ext.SELUAlphaDropoutFunction.apply(v, 0.5, RNG),
    }.get(name, call)
    with pytest.raises(TypeError, match=r"must be Tensor, not"):
        direct(value)


@pytest.mark.parametrize("value", NON_TENSORS, ids=lambda v: type(v).__name__)
def test_non_tensor_ops(value):
    # The registered operators: the dispatcher rejects the argument against the
    # schema. Its exception type is torch's (RuntimeError, or NotImplementedError
    # for None with no tensor to dispatch on); what matters is a Python exception.
    for call in (lambda: OPS.selu(value), lambda: OPS.selu_backward(value, value),
                 lambda: OPS.alpha_dropout(value, 0.5, RNG),
                 lambda: OPS.alpha_dropout(torch.randn(3), 0.5, value),
                 lambda: OPS.dropout_keep_mask(value, 3, 0.5)):
        with pytest.raises((RuntimeError, TypeError, NotImplementedError)):
            call()


# ---------------------------------------------------------------------------
# Meta tensors: the fake kernels give the result's shape, dtype and strides.


META_CALLS = [
    ("selu", lambda x: selu_ext.selu(x)),
    ("selu-inplace", lambda x: selu_ext.selu(x, inplace=True)),
    ("alpha_dropout", lambda x: selu_ext.alpha_dropout(x, 0.3, True)),
    ("alpha_dropout-seed", lambda x: selu_ext.alpha_dropout(x, 0.3, True, seed=3)),
    ("alpha_dropout-inplace", lambda x: selu_ext.alpha_dropout(x, 0.3, True, True)),
    ("feature_alpha_dropout", lambda x: selu_ext.feature_alpha_dropout(x, 0.3, True)),
    ("selu_alpha_dropout", lambda x: selu_ext.selu_alpha_dropout(x, 0.3, True)),
    ("nn.SELU", lambda x: selu_ext.nn.SELU()(x)),
    ("nn.AlphaDropout", lambda x: selu_ext.nn.AlphaDropout(0.3)(x)),
    ("nn.FeatureAlphaDropout", lambda x: selu_ext.nn.FeatureAlphaDropout(0.3)(x)),
    ("nn.SELUAlphaDropout", lambda x: selu_ext.nn.SELUAlphaDropout(0.3)(x)),
    ("op.selu_backward", lambda x: OPS.selu_backward(x, x)),
    ("op.alpha_dropout-meta-rng",
     lambda x: OPS.alpha_dropout(x, 0.3, torch.empty(2, dtype=torch.int64, device=x.device)
                                 if x.is_meta else RNG)),
    ("op.alpha_dropout_backward", lambda x: OPS.alpha_dropout_backward(x, 0.3, RNG)),
    ("op.selu_alpha_dropout_backward",
     lambda x: OPS.selu_alpha_dropout_backward(x, x, 0.3, RNG)),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name,call", META_CALLS, ids=[n for n, _ in META_CALLS])
def test_meta(name, call, dtype):
    x = torch.empty(6, 5, dtype=dtype, device="meta").t()  # transposed: strides (1, 5)
    out = call(x)
    assert out.device.type == "meta" and out.dtype == dtype and out.shape == (5, 6)
    # The same call on a real CPU tensor of the same layout: same strides.
    real = call(torch.randn(6, 5).to(dtype).t())
    assert out.stride() == real.stride()
    if "inplace" in name:
        assert out is x


def test_meta_module_and_backward():
    m = selu_ext.nn.SelfNormalizingMLP(4, 8, 2, depth=2, dropout=0.1, device="meta").train()
    x = torch.empty(5, 4, device="meta", requires_grad=True)
    y = m(x)
    assert y.shape == (5, 2) and y.device.type == "meta"
    y.sum().backward()
    assert x.grad.shape == x.shape and x.grad.device.type == "meta"
    meta_rng = torch.empty(2, dtype=torch.int64, device="meta")
    assert OPS.dropout_keep_mask(meta_rng, 7, 0.5).shape == (7,)


def test_dropout_rng_state_devices():
    # meta: shape and dtype only; a device selu_ext has no kernels for: a clear error.
    meta = OPS.dropout_rng_state(torch.device("meta"))
    assert meta.device.type == "meta" and meta.shape == (2,) and meta.dtype == torch.int64
    with pytest.raises(RuntimeError, match="selu_ext::dropout_rng_state: unsupported device"):
        OPS.dropout_rng_state(torch.device("xpu"))


# ---------------------------------------------------------------------------
# Sparse and quantized tensors


def _unsupported(kind):
    x = torch.randn(4, 6)
    return {
        "coo": lambda: x.to_sparse(),
        "csr": lambda: x.to_sparse_csr(),
        "csc": lambda: x.to_sparse_csc(),
        "quantized": lambda: torch.quantize_per_tensor(x, 0.05, 0, torch.quint8),
    }[kind]()


@pytest.mark.parametrize("kind", ["coo", "csr", "csc", "quantized"])
@pytest.mark.parametrize("entry", ENTRY, ids=ENTRY_IDS)
def test_sparse_and_quantized(entry, kind):
    _, op, call = entry
    x = _unsupported(kind)
    with pytest.raises((NotImplementedError, RuntimeError)) as info:
        call(x)
    msg = str(info.value)
    assert "selu_ext" in msg and op in msg, msg
    if kind == "quantized":
        assert "dequantize" in msg or "quint8" in msg, msg
    else:
        assert "to_dense" in msg, msg


@pytest.mark.parametrize("kind", ["coo", "csr", "quantized"])
def test_sparse_and_quantized_second_argument(kind):
    dense = torch.randn(4, 6)
    bad = _unsupported(kind)
    for call in (lambda: OPS.selu_backward(dense, bad),
                 lambda: OPS.selu_alpha_dropout_backward(dense, bad, 0.5, RNG)):
        with pytest.raises((NotImplementedError, RuntimeError), match="selu_ext"):
            call()


# ---------------------------------------------------------------------------
# Backward ops: mismatched arguments


@pytest.mark.parametrize("device", DEVICES)
def test_backward_mismatch(device):
    require_device(device)
    y = torch.randn(4, 5, device=device)
    # Each message names both values (shapes as torch prints them).
    bad = {
        "shape": (torch.randn(4, 6, device=device), ("[4, 6]", "[4, 5]")),
        "broadcastable shape": (torch.randn(1, 5, device=device), ("[1, 5]", "[4, 5]")),
        "dtype": (y.double(), ("dtype Double", "dtype Float")),
        "device": (torch.empty(4, 5, device="meta"), ("is on meta", f"is on {y.device}")),
    }
    if device == "cuda":
        bad["cpu vs cuda"] = (y.cpu(), ("is on cpu", f"is on {y.device}"))
    for what, (other, words) in bad.items():
        for call, op in ((lambda: OPS.selu_backward(other, y), "selu_backward"),
                         (lambda: OPS.selu_backward(y, other), "selu_backward"),
                         (lambda: OPS.selu_alpha_dropout_backward(other, y, 0.5, RNG),
                          "selu_alpha_dropout_backward"),
                         (lambda: OPS.selu_alpha_dropout_backward(y, other, 0.5, RNG),
                          "selu_alpha_dropout_backward")):
            with pytest.raises(RuntimeError) as info:
                call()
            msg = str(info.value)
            assert f"selu_ext::{op}" in msg and all(w in msg for w in words), (what, msg)


@pytest.mark.parametrize("device", DEVICES)
def test_backward_accepts_any_gradient_layout(device):
    # Autograd hands out expanded (stride-0) and transposed gradients.
    require_device(device)
    y = selu_ext.selu(torch.randn(4, 5, device=device))
    for g in (torch.ones((), device=device).expand(4, 5), torch.randn(5, 4, device=device).t()):
        torch.testing.assert_close(OPS.selu_backward(g, y), OPS.selu_backward(g.contiguous(), y))
        torch.testing.assert_close(OPS.alpha_dropout_backward(g, 0.5, RNG),
                                   OPS.alpha_dropout_backward(g.contiguous(), 0.5, RNG))


# ---------------------------------------------------------------------------
# rng_state


BAD_RNG = {
    "int32": torch.tensor([1, 2], dtype=torch.int32),
    "float": torch.tensor([1.0, 2.0]),
    "three elements": torch.tensor([1, 2, 3]),
    "one element": torch.tensor([1]),
    "empty": torch.tensor([], dtype=torch.int64),
    "0-d": torch.tensor(5),
    "non-contiguous": torch.tensor([1, 0, 2, 0])[::2],
    "requires grad": torch.tensor([1.0, 2.0], requires_grad=True),
    "meta with real input": torch.empty(2, dtype=torch.int64, device="meta"),
    "sparse": torch.tensor([1, 2]).to_sparse(),
}


def _dropout_calls(x, rng):
    return {
        "alpha_dropout": lambda: OPS.alpha_dropout(x, 0.5, rng),
        "alpha_dropout_": lambda: OPS.alpha_dropout_(x.clone(), 0.5, rng),
        "alpha_dropout_backward": lambda: OPS.alpha_dropout_backward(x, 0.5, rng),
        "selu_alpha_dropout": lambda: OPS.selu_alpha_dropout(x, 0.5, rng),
        "selu_alpha_dropout_backward": lambda: OPS.selu_alpha_dropout_backward(x, x, 0.5, rng),
        "dropout_keep_mask": lambda: OPS.dropout_keep_mask(rng, x.numel(), 0.5),
        "AlphaDropoutFunction": lambda: selu_ext.AlphaDropoutFunction.apply(x, 0.5, rng),
        "SELUAlphaDropoutFunction": lambda: selu_ext.SELUAlphaDropoutFunction.apply(x, 0.5, rng),
    }


@pytest.mark.parametrize("what", list(BAD_RNG))
def test_bad_rng_state(what):
    rng = BAD_RNG[what]
    x = torch.randn(4, 5)
    for name, call in _dropout_calls(x, rng).items():
        if what == "meta with real input" and name == "dropout_keep_mask":
            continue  # its only tensor is rng_state: a meta mask, as for any meta input
        with pytest.raises((RuntimeError, NotImplementedError)) as info:
            call()
        msg = str(info.value)
        assert "selu_ext" in msg and "rng_state" in msg or "Sparse" in msg, (name, msg)


@pytest.mark.parametrize("what,rng", [
    ("2x1 contiguous", torch.tensor([[77], [3]])),
    ("negative seed and offset", torch.tensor([-1, -(2**62)])),
    ("largest int64", torch.tensor([2**63 - 1, 2**63 - 1])),
    ("view with storage offset", torch.tensor([9, 77, 3])[1:]),
])
def test_unusual_rng_state_gives_correct_result(what, rng):
    # Any contiguous 2-element int64 tensor is a valid (seed, offset): the result is
    # the one of the same values as a fresh 1-D tensor, and follows the formula.
    x = torch.randn(300, dtype=torch.float64)
    flat = rng.flatten().clone()
    out = OPS.alpha_dropout(x, 0.4, rng)
    torch.testing.assert_close(out, OPS.alpha_dropout(x, 0.4, flat), rtol=0, atol=0)
    keep = OPS.dropout_keep_mask(rng, x.numel(), 0.4)
    a, b, dropped = selu_ext.alpha_dropout_coefficients(0.4)
    torch.testing.assert_close(out, torch.where(keep, a * x + b, torch.full_like(x, dropped)))
    assert 0 < keep.sum() < x.numel()


def test_keep_mask_numel():
    with pytest.raises(RuntimeError,
                       match="selu_ext::dropout_keep_mask: numel must be non-negative, got -1(?!\\d)"):
        OPS.dropout_keep_mask(RNG, -1, 0.5)
    assert OPS.dropout_keep_mask(RNG, 0, 0.5).shape == (0,)


def test_keep_mask_too_large_to_allocate():
    # The allocator's error, not a crash, wherever torch's own allocator raises for
    # the same request (torch 2.11's crashed on torch.empty(2**62, dtype=bool) on the
    # GPU machine; checked in a subprocess so that a crash cannot take pytest down).
    def run(code):
        return subprocess.run([sys.executable, "-c", "import torch, selu_ext\n" + code],
                              capture_output=True, text=True, timeout=120)

    probe = run("try:\n    torch.empty(2**62, dtype=torch.bool)\nexcept RuntimeError:\n"
                "    print('raises')")
    if "raises" not in probe.stdout:
        pytest.skip("this torch's allocator does not raise for 2**62 bytes either")
    ours = run("try:\n    torch.ops.selu_ext.dropout_keep_mask(torch.tensor([1, 0]), 2**62, .5)"
               "\nexcept RuntimeError:\n    print('raises')")
    assert ours.returncode == 0 and "raises" in ours.stdout, ours.stderr[-2000:]


# ---------------------------------------------------------------------------
# In-place and shape errors


def test_inplace_on_overlapping_memory():
    x = torch.randn(1, 4).expand(3, 4)
    for call, op in ((lambda: selu_ext.selu(x, inplace=True), "selu_"),
                     (lambda: selu_ext.alpha_dropout(x, 0.5, True, True), "alpha_dropout_")):
        with pytest.raises(RuntimeError, match=f"selu_ext::{op}: unsupported operation: more than "
                           "one element"):
            call()


def test_feature_alpha_dropout_needs_two_dims():
    with pytest.raises(RuntimeError, match="selu_ext.feature_alpha_dropout: feature dropout "
                       "requires at least 2 dimensions"):
        selu_ext.feature_alpha_dropout(torch.randn(5), 0.5, True)


def test_lecun_normal_needs_a_weight():
    with pytest.raises(ValueError, match="lecun_normal_: fan_in cannot be computed"):
        selu_ext.init.lecun_normal_(torch.empty(5))
    # A (5, 0) tensor has no fan-in either, but is returned as torch.nn.init does
    # (test_init.py, test_zero_element_tensors_as_torch_init).


def test_mlp_depth():
    with pytest.raises(ValueError, match="depth must be at least 1"):
        selu_ext.nn.SelfNormalizingMLP(3, 4, 2, depth=0)


# ---------------------------------------------------------------------------
# CUDA-specific device errors


@pytest.mark.cuda
def test_cuda_device_mixing():
    require_device("cuda")
    xc = torch.randn(100, device="cuda")
    # A CPU rng_state is a user-chosen seed and is fine with a CUDA input (same mask).
    out = OPS.alpha_dropout(xc, 0.5, RNG)
    torch.testing.assert_close(out.cpu(), OPS.alpha_dropout(xc.cpu(), 0.5, RNG))
    # A CUDA rng_state with a CPU input is not.
    with pytest.raises(RuntimeError):
        OPS.alpha_dropout(xc.cpu(), 0.5, RNG.cuda())
    if torch.cuda.device_count() > 1:
        with pytest.raises(RuntimeError, match="rng_state"):
            OPS.alpha_dropout(xc, 0.5, RNG.to("cuda:1"))
    with pytest.raises(RuntimeError, match="is on"):
        OPS.selu_backward(xc, xc.cpu())


def test_no_crash_without_gpu_for_cuda_requests():
    if HAS_CUDA:
        pytest.skip("a GPU is visible: covered by test_cuda_device_mixing")
    # Without a usable GPU, asking for CUDA is torch's error, raised, not a crash.
    with pytest.raises((RuntimeError, AssertionError)):
        OPS.dropout_rng_state(torch.device("cuda"))
