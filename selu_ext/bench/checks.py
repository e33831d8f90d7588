"""Correctness before timing: output and input gradient against the float64 reference within
selu_ext.testing.COMPOSITE_TOL. PyTorch's dropout mask is unknown: it is read back from the output (dropped
units hold one value), and drop rate, mean and variance are checked as statistics; a unit whose kept value
rounds onto the dropped one passes with either."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Optional

import torch
from torch import Tensor

import selu_ext

from ..testing import (COMPOSITE_TOL, alpha_dropout_grad_reference, alpha_dropout_reference,
                       selu_grad_reference, selu_reference, subnormal_floor)
from .candidates import Op


@dataclass
class Check:
    ok: bool
    kind: str  # "exact" | "exact-mask+stats" | "inferred-mask+stats"
    detail: str = ""
    max_err: Optional[float] = None  # max |actual - ref| / tolerance; <= 1 passes


class Reference:
    """The float64 reference at one sweep point, shared by its implementations and modes: at 16M elements a
    float64 pass costs more than the kernels checked, so each tensor is computed once, when first needed."""

    def __init__(self, op: Op, x: Tensor, g: Tensor, p: float, known_keep: Optional[Tensor]):
        self.op, self.dtype, self.p, self.shape = op, x.dtype, p, tuple(x.shape)
        self.rtol, self.atol = COMPOSITE_TOL[x.dtype]
        self.floor = subnormal_floor(x.dtype)
        self.x64 = x.detach().reshape(-1).to(torch.float64)  # x itself if float64: never in place
        self._g = g
        self.known = None if known_keep is None else known_keep.reshape(-1)
        if op.has_dropout:
            self.dropped = selu_ext.alpha_dropout_coefficients(p)[2]
            self.drop_bound = self.atol + self.rtol * abs(self.dropped) + self.floor
        self.cache: dict = {}

    @cached_property
    def g64(self) -> Tensor:
        return self._g.detach().reshape(-1).to(torch.float64)

    @cached_property
    def kept_y(self) -> Tensor:
        """What AlphaDropout keeps (a * s + b) or, without dropout, selu(x)."""
        if not self.op.has_dropout:
            return selu_reference(self.x64)
        return alpha_dropout_reference(self.x64, None, self.p, selu=self.op.has_selu)

    @cached_property
    def kept_g(self) -> Tensor:
        if not self.op.has_dropout:
            return selu_grad_reference(self.x64, self.g64)
        return alpha_dropout_grad_reference(self.x64, self.g64, None, self.p, selu=self.op.has_selu)

    @cached_property
    def ambiguous(self) -> Tensor:
        """Units whose kept value is within the tolerance of the dropped value."""
        return (self.kept_y - self.dropped).abs_() <= 2 * self.drop_bound

    def expected(self, tag: str, keep: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """(reference, tolerance) of the output (``tag`` "y") or the input gradient ("g") for the mask ``keep``."""
        if tag == "y":
            r = self.kept_y if keep is None else torch.where(keep, self.kept_y, self.dropped)
            return r, r.abs().mul_(self.rtol).add_(self.atol + self.floor)
        r = self.kept_g if keep is None else torch.where(keep, self.kept_g, 0.0)
        return r, r.abs().mul_(self.rtol).add_(self.floor).add_(self.g64.abs(), alpha=self.atol)


def _ratio(actual: Tensor, ref: Tensor, bound: Tensor) -> Tensor:
    """|actual - ref| / bound, NaN as inf."""
    # torch.sub, not sub_: for float64 .to() returns the tensor itself
    r = torch.sub(actual.detach().reshape(-1).to(torch.float64), ref).abs_().div_(bound)
    return r.nan_to_num_(nan=math.inf)


def _stats(y: Tensor, keep: Tensor, p: float, dtype) -> Optional[str]:
    """None if drop rate, mean and variance are AlphaDropout's on standard-normal input, else what is off.
    Bounds: 6 standard errors plus a margin for rounding and ambiguous units."""
    n = keep.numel()
    if n < 1024:
        return None
    rate = 1.0 - float(keep.sum()) / n
    var, mean = map(float, torch.var_mean(y.detach().to(torch.float64)))
    margin = 0.01 if dtype == torch.bfloat16 else 0.002
    problems = []
    if abs(rate - p) > 6 * math.sqrt(max(p * (1 - p), 1e-12) / n) + margin:
        problems.append(f"drop rate {rate:.4f} (p={p})")
    if abs(mean) > 6 / math.sqrt(n) + 2 * margin:
        problems.append(f"mean {mean:.4f} (expected 0)")
    if abs(var - 1) > 6 * math.sqrt(4 / n) + 3 * margin:
        problems.append(f"variance {var:.4f} (expected 1)")
    return "; ".join(problems) or None


def check(ref: Reference, y: Optional[Tensor], gx: Optional[Tensor], random: bool) -> Check:
    """Check a forward output ``y`` and an input gradient ``gx`` (each if given). ``random``: the dropout mask
    is unknown, read it back from ``y``."""
    for name, t in (("output", y), ("gradient", gx)):
        if t is not None and (tuple(t.shape) != ref.shape or t.dtype != ref.dtype):
            return Check(False, "exact", f"{name} has shape {tuple(t.shape)} dtype {t.dtype}; "
                         f"expected {ref.shape} {ref.dtype}")
    keep, kind, problems = None, "exact", []
    if ref.op.has_dropout:
        if random:
            if y is None:
                return Check(False, "inferred-mask+stats", "no output to read the mask from")
            keep = (y.detach().reshape(-1).to(torch.float64) - ref.dropped).abs_() > ref.drop_bound
            kind = "inferred-mask+stats"
        else:
            keep, kind = ref.known, "exact-mask+stats"
        s = _stats(y, keep, ref.p, ref.dtype) if y is not None else None
        if s:
            problems.append("statistics: " + s)
    worst = 0.0
    for name, tag, t in (("forward", "y", y), ("input gradient", "g", gx)):
        if t is None:
            continue
        if not random and tag not in ref.cache:  # the known mask: the same for every candidate
            ref.cache[tag] = ref.expected(tag, keep)
        r, b = ref.expected(tag, keep) if random else ref.cache[tag]
        ratio = _ratio(t, r, b)
        if random:  # an ambiguous unit passes with either value
            ratio = torch.where(ref.ambiguous, torch.minimum(ratio, _ratio(t, *ref.expected(tag, ~keep))), ratio)
        i = int(torch.argmax(ratio))
        err = float(ratio[i])
        if err > 1:
            problems.append(
                f"{name}: {int((ratio > 1).sum())}/{ratio.numel()} elements out of tolerance; worst "
                f"at {i}: x={float(ref.x64[i]):.6g} got {float(t.detach().reshape(-1)[i]):.8g} "
                f"expected {float(r[i]):.8g} ({err:.3g}x the tolerance)")
        worst = max(worst, err)
        del ratio, r, b
    return Check(not problems, kind, "; ".join(problems), worst)
