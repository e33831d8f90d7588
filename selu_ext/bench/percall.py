"""Per-call cost of every public function and module against its torch equivalent (``--percall``): at the sizes
self-normalizing networks use, a step is bound by what each call costs on the host (Python, dispatcher, autograd
node), not by the kernel. torch (role eager) and selu_ext (role ext) are timed interleaved, on one CPU thread.
"""

from __future__ import annotations

import contextlib
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

import selu_ext
from selu_ext.testing import COMPOSITE_TOL, alpha_dropout_reference

from . import report
from .sweep import make_inputs
from .timing import time_interleaved

SIZES = (16, 4096, 65536)
QUICK_SIZES = (16, 4096)
MODE_TEXT = {
    "call_nograd": "f(x) under torch.no_grad()",
    "call_inference": "f(x) under torch.inference_mode()",
    "call_grad": "f(x), x requires grad",
    "call_fwdbwd": "torch.autograd.grad(f(x), x, g)",
}
MODES = tuple(MODE_TEXT)
# (rounds, seconds per block): 25 rounds of ~4 ms blocks on the CPU (hundreds of calls each); fewer on CUDA,
# where the GPU run's time is short (benchmarks/gpu_run.sh).
ROUNDS = {"cpu": (25, 4e-3), "cuda": (15, 2e-3), "quick": (7, 1e-3)}


class Case(NamedTuple):
    """A public function or module, selu_ext.<op>, and its torch equivalent; ``make_*`` take p and return the
    callable (a module in training mode)."""

    op: str
    torch_name: str
    make_torch: Callable[[float], Callable]
    make_ext: Callable[[float], Callable]
    dropout: bool = False  # random output: checked against the AlphaDropout formula
    fused: bool = False  # SELU before the dropout
    feature: bool = False  # an (N, C, *) input, whole channels dropped


def _fn(f):
    """Functional form ``f(x, p, training)`` as a callable of x, given p."""
    return lambda p: lambda x: f(x, p, True)


CASES = (  # modules are built in training mode
    Case("selu", "F.selu", lambda p: F.selu, lambda p: selu_ext.selu),
    Case("alpha_dropout", "F.alpha_dropout", _fn(F.alpha_dropout), _fn(selu_ext.alpha_dropout), dropout=True),
    Case("feature_alpha_dropout", "F.feature_alpha_dropout", _fn(F.feature_alpha_dropout),
         _fn(selu_ext.feature_alpha_dropout), dropout=True, feature=True),
    Case("selu_alpha_dropout", "F.alpha_dropout(F.selu(x))", _fn(lambda x, p, t: F.alpha_dropout(F.selu(x), p, t)),
         _fn(selu_ext.selu_alpha_dropout), dropout=True, fused=True),
    Case("nn.SELU", "nn.SELU", lambda p: nn.SELU(), lambda p: selu_ext.nn.SELU()),
    Case("nn.AlphaDropout", "nn.AlphaDropout", nn.AlphaDropout, selu_ext.nn.AlphaDropout, dropout=True),
    Case("nn.FeatureAlphaDropout", "nn.FeatureAlphaDropout", nn.FeatureAlphaDropout,
         selu_ext.nn.FeatureAlphaDropout, dropout=True, feature=True),
    Case("nn.SELUAlphaDropout", "nn.Sequential(nn.SELU, nn.AlphaDropout)",
         lambda p: nn.Sequential(nn.SELU(), nn.AlphaDropout(p)), selu_ext.nn.SELUAlphaDropout, dropout=True,
         fused=True),
)


def check(case: Case, y_ext: torch.Tensor, y_torch: torch.Tensor, x: torch.Tensor, p: float) -> tuple[str, str]:
    """(check kind, what is wrong or ''): selu_ext's output against torch's (SELU), or against the AlphaDropout
    formula for the mask it drew."""
    if y_ext.shape != y_torch.shape or y_ext.dtype != y_torch.dtype:
        return "shape+dtype", f"{tuple(y_ext.shape)} {y_ext.dtype} vs torch's {tuple(y_torch.shape)} {y_torch.dtype}"
    if y_ext.requires_grad != y_torch.requires_grad:
        return "requires_grad", f"requires_grad {y_ext.requires_grad}, torch's {y_torch.requires_grad}"
    x, y_ext, y_torch = x.detach(), y_ext.detach(), y_torch.detach()
    if not case.dropout:
        ok = torch.allclose(y_ext, y_torch, *COMPOSITE_TOL[torch.float32])
        return "vs-torch", "" if ok else "values differ from torch's"
    kept = y_ext != selu_ext.alpha_dropout_coefficients(p)[2]
    expected = alpha_dropout_reference(x, kept, p, selu=case.fused)
    ok = torch.allclose(y_ext.to(torch.float64), expected, *COMPOSITE_TOL[torch.float32])
    return "dropout-formula", "" if ok else "kept values are not a * x + b"


def measure_pair(runner, case: Case, mode: str, size: int, threads: int) -> list[dict]:
    """The torch row and the selu_ext row of one (case, mode, size)."""
    cfg = runner.cfg
    # Feature dropout draws the masks of 16 channels at every size.
    shape = (2, 8, size // 16) if case.feature else (size,)
    (x,), (g,) = make_inputs(runner, torch.float32, shape, 1)
    if mode in ("call_grad", "call_fwdbwd"):
        x.requires_grad_()
    rows = [report.new_row(case.op, mode, "float32", size, cfg.device, threads, name, role, n_buffers=1)
            for name, role in ((case.torch_name, "eager"), ("selu_ext." + case.op, "ext"))]
    try:
        fns = (case.make_torch(cfg.p), case.make_ext(cfg.p))
        context = {"call_nograd": torch.no_grad, "call_inference": torch.inference_mode}
        with context.get(mode, contextlib.nullcontext)():
            kind, wrong = check(case, fns[1](x), fns[0](x), x, cfg.p)
            rows[1]["check"] = kind
            if wrong:
                rows[1]["status"], rows[1]["note"] = "WRONG", wrong
                rows[0]["status"] = "not timed: selu_ext's result is WRONG"
                return rows
            calls = {r["impl"]: (lambda fn=fn: torch.autograd.grad(fn(x), x, g)) if mode == "call_fwdbwd"
                     else (lambda fn=fn: fn(x)) for r, fn in zip(rows, fns)}
            rounds, block_s = ROUNDS["quick" if cfg.quick else cfg.device]
            tms = time_interleaved(calls, cfg.device, threads=threads, rounds=rounds, block_s=block_s)
    except Exception as e:
        for r in rows:
            r["status"] = "ERROR: " + report.first_line(e)
        return rows
    for r in rows:
        r.update(tms[r["impl"]].fields(),
                 note=f"{MODE_TEXT[mode]}, shape {tuple(shape)}; wall clock per call, interleaved with its peer")
    return rows


def run(runner) -> None:
    """Every case, mode and size, torch row then selu_ext row."""
    cfg = runner.cfg
    threads = 1 if cfg.device == "cpu" else cfg.threads[0]
    runner.note_load("per-call start")
    runner.say(f"\nPer call: every public function and module against its torch equivalent, "
               f"float32, {threads} thread(s); wall clock per call, torch and selu_ext interleaved")
    print(report.PAIR_HEADER, file=runner.out)
    for case in CASES:
        for size in QUICK_SIZES if cfg.quick else SIZES:
            for mode in MODES:
                if runner.over_budget():
                    return
                rows = measure_pair(runner, case, mode, size, threads)
                for row in rows:
                    runner.emit(row, show=False)
                print(report.format_pair(rows), file=runner.out)
        runner.checkpoint()
    runner.note_load("per-call end")
