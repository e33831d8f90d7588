"""What is benchmarked: three operations, the implementations of each (PyTorch's
peers and selu_ext); the float64 references every result is checked against are
in selu_ext.testing (shared with the tests).

    op        what                          peers                                  selu_ext
    selu      SELU                          F.selu, nn.SELU, compile(F.selu)       selu_ext.selu
    fused     SELU then AlphaDropout        F.selu+F.alpha_dropout, its compile    selu_ext.selu_alpha_dropout
    dropout   AlphaDropout                  F.alpha_dropout, its compile           selu_ext.alpha_dropout

Every implementation is a differentiable function ``x -> y``; the runner builds the
forward, backward and forward+backward calls from it. selu_ext's dropout runs with a
fixed seed, so its mask is known (``torch.ops.selu_ext.dropout_keep_mask``) and its
output is checked element by element; PyTorch's dropout draws its mask from torch's
generator, so the mask is read back from the output (dropped units all take one
value) and the drop rate, mean and variance are checked as statistics.
"""

from __future__ import annotations

import contextlib
import importlib.util
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

import selu_ext
from selu_ext import ops

# The timed modes, then the measurements that are not sweeps (see runner.py).
SWEEP_MODES = ("forward", "backward", "fwdbwd")
MODES = SWEEP_MODES + ("percall", "accuracy", "memory")
OPS = ("selu", "fused", "dropout")

# Roles: how a row relates to the others. speedup_vs_<role> columns compare a row
# with the row of that role in the same (op, mode, dtype, size, device, threads).
PEER_ROLES = ("eager", "module", "eager_avx2", "compile")
ROLES = PEER_ROLES + ("ext", "ext_variant", "custom")

SEED = 1234  # selu_ext's dropout seed: the mask is dropout_keep_mask([SEED, 0], n, p)

DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float64": torch.float64,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}

@dataclass(frozen=True)
class Op:
    name: str
    title: str
    has_selu: bool
    has_dropout: bool
    # Nominal tensor passes per element: each input read once, each output written
    # once (forward: x in, y out; backward: grad and y (or x) in, grad_x out; the
    # dropout mask is regenerated, so dropout's backward reads only grad).
    passes: dict = field(default_factory=dict)


OP_DEFS = {
    "selu": Op("selu", "SELU", True, False, {"forward": 2, "backward": 3, "fwdbwd": 5}),
    "fused": Op("fused", "SELU + AlphaDropout", True, True,
                {"forward": 2, "backward": 3, "fwdbwd": 5}),
    "dropout": Op("dropout", "AlphaDropout", False, True,
                  {"forward": 2, "backward": 2, "fwdbwd": 4}),
}


# ---------------------------------------------------------------------------
# Implementations


@dataclass
class Impl:
    """One implementation of an op.

    ``fn`` maps an input tensor to the output and is differentiable. ``random``:
    its dropout mask comes from torch's generator (unknown to the checker).
    ``modes``: the modes it runs in. ``context``: entered around its check and its
    timing (a CPU kernel variant, say). ``unavailable``: why it cannot run (shown
    as the row's status instead of timing it).
    """

    name: str
    role: str
    fn: Callable[[Tensor], Tensor]
    random: bool = False
    modes: tuple = SWEEP_MODES
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    unavailable: Optional[str] = None
    compiled: bool = False
    # Compile failures by (dtype, with grad): a compile that failed once fails again
    # at every size, so the runner does not pay for it again.
    failures: dict = field(default_factory=dict)


def compile_unavailable_reason(device: str) -> Optional[str]:
    """Why torch.compile cannot be tried on this device, or None to try it (a
    failure at the first call is caught and reported then)."""
    try:
        import torch._dynamo  # noqa: F401
    except Exception as e:  # pragma: no cover - depends on the install
        return f"torch._dynamo failed to import ({type(e).__name__}: {e})"
    if hasattr(torch._dynamo, "is_dynamo_supported") and not torch._dynamo.is_dynamo_supported():
        return "torch._dynamo does not support this Python"
    if device == "cuda" and importlib.util.find_spec("triton") is None:
        return "triton is not installed (inductor needs it for CUDA)"
    return None


def _compile(fn, dynamic: bool):
    return torch.compile(fn, dynamic=dynamic)


@contextlib.contextmanager
def cpu_variant(capability: str):
    """selu_ext's CPU kernels of one instruction set, for the duration."""
    before = selu_ext._C.cpu_capability()
    selu_ext._C.set_cpu_capability(capability)
    try:
        yield
    finally:
        selu_ext._C.set_cpu_capability(before)


def build_impls(op: str, device: str, p: float, *, compile_mode: Optional[str],
                dynamic: bool = True, cpu_variants: bool = False) -> list[Impl]:
    """The implementations of ``op`` in timing order: peers first, selu_ext last
    (so a printed selu_ext row can already show its speedups). ``compile_mode``:
    None to try torch.compile, else the reason it is skipped."""
    impls: list[Impl] = []
    if op == "selu":
        eager = F.selu
        impls.append(Impl("F.selu", "eager", eager, modes=SWEEP_MODES + ("percall",)))
        impls.append(Impl("nn.SELU", "module", torch.nn.SELU(), modes=("forward", "percall")))
        ext = selu_ext.selu
        ext_name = "selu_ext"
    elif op == "fused":
        def eager(x, p=p):
            return F.alpha_dropout(F.selu(x), p, training=True)

        impls.append(Impl("F.selu+F.alpha_dropout", "eager", eager, random=True))

        def ext(x, p=p):
            return selu_ext.selu_alpha_dropout(x, p, training=True, seed=SEED)

        ext_name = "selu_ext.selu_alpha_dropout"
    elif op == "dropout":
        def eager(x, p=p):
            return F.alpha_dropout(x, p, training=True)

        impls.append(Impl("F.alpha_dropout", "eager", eager, random=True))

        def ext(x, p=p):
            return selu_ext.alpha_dropout(x, p, training=True, seed=SEED)

        ext_name = "selu_ext.alpha_dropout"
    else:
        raise ValueError(f"unknown op {op!r}; expected one of {', '.join(OPS)}")

    cname = f"compile({impls[0].name})"
    if compile_mode is None:
        impls.append(Impl(cname, "compile", _compile(eager, dynamic),
                          random=op != "selu", compiled=True))
    else:
        impls.append(Impl(cname, "compile", eager, random=op != "selu", compiled=True,
                          unavailable=compile_mode))

    impls.append(Impl(ext_name, "ext", ext, modes=SWEEP_MODES + (("percall",) if op == "selu" else ())))
    if op == "selu":
        impls.append(Impl("selu_ext.nn.SELU", "ext_variant", selu_ext.nn.SELU(), modes=("percall",)))
    if cpu_variants and device == "cpu":
        current = selu_ext._C.cpu_capability()
        supported = [c for c in selu_ext.build_info()["cpu_capabilities_supported"].split(",") if c]
        for cap in supported:
            if cap != current:
                impls.append(Impl(f"{ext_name}[{cap}]", "ext_variant", ext,
                                  context=lambda cap=cap: cpu_variant(cap)))
    return impls


def keep_mask(n: int, p: float, device) -> Tensor:
    """selu_ext's keep mask for SEED (flat, row-major), computed on ``device`` (an
    explicit rng_state gives the same mask on every device)."""
    rng = torch.tensor([SEED, 0], dtype=torch.int64, device=device)
    return ops.dropout_keep_mask(rng, n, float(p))
