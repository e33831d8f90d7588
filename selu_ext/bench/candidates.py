"""What is benchmarked: the ops (selu, fused = SELU then AlphaDropout, dropout = AlphaDropout) and their
implementations, PyTorch's peers and selu_ext. selu_ext's dropout runs with a fixed seed, so its mask is known
and checked element by element; PyTorch's comes from torch's generator (checks.py reads it back).
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

import selu_ext
from selu_ext import ops

SWEEP_MODES = ("forward", "backward", "fwdbwd")
MODES = SWEEP_MODES + ("percall", "accuracy", "memory")
OPS = ("selu", "fused", "dropout")
SEED = 1234  # selu_ext's dropout seed: the mask is dropout_keep_mask([SEED, 0], n, p)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


class Op(NamedTuple):
    title: str
    has_selu: bool
    has_dropout: bool
    # Nominal tensor passes per element: each input read once, each output written once; the dropout mask is
    # regenerated, so dropout's backward reads only grad.
    passes: dict


OP_DEFS = {
    "selu": Op("SELU", True, False, {"forward": 2, "backward": 3, "fwdbwd": 5}),
    "fused": Op("SELU + AlphaDropout", True, True, {"forward": 2, "backward": 3, "fwdbwd": 5}),
    "dropout": Op("AlphaDropout", False, True, {"forward": 2, "backward": 2, "fwdbwd": 4}),
}


@dataclass
class Impl:
    """One implementation of an op: ``fn`` maps an input to the output, differentiably. ``random``: its dropout
    mask comes from torch's generator. ``context``: entered around its check and timing (a CPU kernel variant).
    ``unavailable``: why it cannot run (the row's status)."""

    name: str
    role: str
    fn: Callable[[Tensor], Tensor]
    random: bool = False
    modes: tuple = SWEEP_MODES
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    unavailable: Optional[str] = None
    # A compile that failed once, by (dtype, with grad), fails at every size: not retried.
    failures: dict = field(default_factory=dict)


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
                cpu_variants: bool = False) -> list[Impl]:
    """The implementations of ``op``, peers first and selu_ext last (so a printed selu_ext row shows its
    speedups). ``compile_mode``: None to try torch.compile, else why it is skipped."""
    if op == "selu":
        eager, ext, ext_name = F.selu, selu_ext.selu, "selu_ext"
        impls = [Impl("F.selu", "eager", eager, modes=SWEEP_MODES + ("percall",)),
                 Impl("nn.SELU", "module", torch.nn.SELU(), modes=("forward", "percall"))]
    else:  # fused, dropout
        fused = op == "fused"

        def eager(x):
            return F.alpha_dropout(F.selu(x) if fused else x, p, training=True)

        ext = functools.partial(selu_ext.selu_alpha_dropout if fused else selu_ext.alpha_dropout, p=p,
                                training=True, seed=SEED)
        ext_name = "selu_ext.selu_alpha_dropout" if fused else "selu_ext.alpha_dropout"
        impls = [Impl("F.selu+F.alpha_dropout" if fused else "F.alpha_dropout", "eager", eager, random=True)]
    impls.append(Impl(f"compile({impls[0].name})", "compile",
                      torch.compile(eager, dynamic=True) if compile_mode is None else eager,
                      random=op != "selu", unavailable=compile_mode))
    impls.append(Impl(ext_name, "ext", ext, modes=SWEEP_MODES + (("percall",) if op == "selu" else ())))
    if op == "selu":
        impls.append(Impl("selu_ext.nn.SELU", "ext_variant", selu_ext.nn.SELU(), modes=("percall",)))
    if cpu_variants and device == "cpu":
        current = selu_ext._C.cpu_capability()
        for cap in selu_ext.build_info()["cpu_capabilities_supported"].split(","):
            if cap and cap != current:
                impls.append(Impl(f"{ext_name}[{cap}]", "ext_variant", ext, context=lambda cap=cap: cpu_variant(cap)))
    return impls


def keep_mask(n: int, p: float, device) -> Tensor:
    """selu_ext's keep mask for SEED, flat (an explicit rng_state gives the same mask on every device)."""
    return ops.dropout_keep_mask(torch.tensor([SEED, 0], dtype=torch.int64, device=device), n, float(p))
