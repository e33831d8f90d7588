"""Correctness before timing: compare a candidate's forward output and input
gradient with the float64 reference (selu_ext.testing: references and
COMPOSITE_TOL, the bound every implementation, PyTorch's composites included, meets).

For dropout the reference needs the keep mask. selu_ext runs with a fixed seed, so
the mask is known. PyTorch's dropout draws it from torch's generator: there the mask
is read back from the output (every dropped unit holds the same value), the kept
units are compared element by element, and the drop rate, mean and variance are
checked as statistics (on standard-normal input both SELU and AlphaDropout keep mean
0 and variance 1). Units whose kept value rounds onto the dropped value (bfloat16
makes a few) are ambiguous: either value passes there.

One Reference serves every implementation and mode at a sweep point: the float64
tensors are computed once (at 16M elements each pass over them costs more than the
kernels being checked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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
    """The float64 reference at one sweep point: input ``x`` (any float dtype),
    incoming gradient ``g``, dropout ``p`` and selu_ext's known keep mask."""

    def __init__(self, op: Op, x: Tensor, g: Optional[Tensor], p: float,
                 known_keep: Optional[Tensor]):
        self.op, self.dtype, self.p, self.n = op, x.dtype, p, x.numel()
        self.shape = tuple(x.shape)
        self.rtol, self.atol = COMPOSITE_TOL[x.dtype]
        self.floor = subnormal_floor(x.dtype)
        self.x64 = x.detach().reshape(-1).to(torch.float64)  # x itself if float64: never in place
        self._g = g
        self._known = None if known_keep is None else known_keep.reshape(-1)
        self._cache: dict = {}
        if op.has_dropout:
            self.dropped = selu_ext.alpha_dropout_coefficients(p)[2]
            # The bound around the dropped value: a scalar, since the value is one.
            self.drop_bound = self.atol + self.rtol * abs(self.dropped) + self.floor

    def _get(self, name, make):
        if name not in self._cache:
            self._cache[name] = make()
        return self._cache[name]

    # forward: what AlphaDropout keeps (a*s + b) or, without dropout, selu(x)
    def kept_y(self) -> Tensor:
        def make():
            if not self.op.has_dropout:
                return selu_reference(self.x64)
            return alpha_dropout_reference(self.x64, None, self.p, selu=self.op.has_selu)
        return self._get("kept_y", make)

    def g64(self) -> Tensor:
        return self._get("g64", lambda: self._g.detach().reshape(-1).to(torch.float64))

    def kept_g(self) -> Tensor:
        def make():
            if not self.op.has_dropout:
                return selu_grad_reference(self.x64, self.g64())
            return alpha_dropout_grad_reference(self.x64, self.g64(), None, self.p,
                                                selu=self.op.has_selu)
        return self._get("kept_g", make)

    def ambiguous(self) -> Tensor:
        """Units whose kept value is within the tolerance of the dropped value."""
        return self._get("ambiguous",
                         lambda: (self.kept_y() - self.dropped).abs_() <= 2 * self.drop_bound)

    def y_ref(self, keep: Optional[Tensor]) -> Tensor:
        if keep is None:
            return self.kept_y()
        return torch.where(keep, self.kept_y(), torch.full((), self.dropped, dtype=torch.float64,
                                                           device=keep.device))

    def g_ref(self, keep: Optional[Tensor]) -> Tensor:
        if keep is None:
            return self.kept_g()
        return torch.where(keep, self.kept_g(), torch.zeros((), dtype=torch.float64,
                                                            device=keep.device))

    def y_bound(self, ref: Tensor, cache_key=None) -> Tensor:
        make = lambda: ref.abs().mul_(self.rtol).add_(self.atol + self.floor)  # noqa: E731
        return self._get(cache_key, make) if cache_key else make()

    def g_bound(self, ref: Tensor, cache_key=None) -> Tensor:
        make = lambda: (ref.abs().mul_(self.rtol).add_(self.floor)  # noqa: E731
                        .add_(self.g64().abs(), alpha=self.atol))
        return self._get(cache_key, make) if cache_key else make()


def _ratio(actual: Tensor, ref: Tensor, bound: Tensor) -> Tensor:
    """|actual - ref| / bound, NaN as inf."""
    # torch.sub, not sub_: for float64 .to() returns the tensor itself
    r = torch.sub(actual.detach().reshape(-1).to(torch.float64), ref).abs_().div_(bound)
    return r.nan_to_num_(nan=math.inf)


def _verdict(name, ratio: Tensor, actual, ref, x64, problems) -> float:
    worst_i = int(torch.argmax(ratio))
    worst = float(ratio[worst_i])
    if worst > 1:
        n_bad = int((ratio > 1).sum())
        problems.append(
            f"{name}: {n_bad}/{ratio.numel()} elements out of tolerance; worst at {worst_i}: "
            f"x={float(x64[worst_i]):.6g} got {float(actual.detach().reshape(-1)[worst_i]):.8g} "
            f"expected {float(ref[worst_i]):.8g} ({worst:.3g}x the tolerance)")
    return worst


def _stats(y: Tensor, keep: Tensor, p: float, dtype) -> Optional[str]:
    """None if the drop rate, mean and variance are what AlphaDropout gives on
    standard-normal input, else what is off. Bounds: 6 standard errors plus a
    margin for rounding and for ambiguous units."""
    n = keep.numel()
    if n < 1024:
        return None
    rate = 1.0 - float(keep.sum()) / n
    y64 = y.detach().to(torch.float64)
    var, mean = torch.var_mean(y64)
    mean, var = float(mean), float(var)
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
    """Check a forward output ``y`` (if given) and an input gradient ``gx`` (if
    given) against the reference. ``random``: the dropout mask is unknown (read it
    back from ``y``)."""
    op = ref.op
    for name, t in (("output", y), ("gradient", gx)):
        if t is not None and (tuple(t.shape) != ref.shape or t.dtype != ref.dtype):
            return Check(False, "exact", f"{name} has shape {tuple(t.shape)} dtype {t.dtype}; "
                         f"expected {ref.shape} {ref.dtype}")
    keep = None
    kind = "exact"
    problems: list[str] = []
    if op.has_dropout:
        if random:
            if y is None:
                return Check(False, "inferred-mask+stats", "no output to read the mask from")
            y64 = y.detach().reshape(-1).to(torch.float64)
            keep = (y64 - ref.dropped).abs_() > ref.drop_bound
            del y64
            kind = "inferred-mask+stats"
        else:
            keep = ref._known
            kind = "exact-mask+stats"
        if y is not None:
            s = _stats(y, keep, ref.p, ref.dtype)
            if s:
                problems.append("statistics: " + s)
    worst = 0.0
    for name, tag, t, ref_of, bound in (("forward", "y", y, ref.y_ref, ref.y_bound),
                                        ("input gradient", "g", gx, ref.g_ref, ref.g_bound)):
        if t is None:
            continue
        r = ref_of(keep) if random else ref._get(tag + "_known", lambda: ref_of(keep))
        ratio = _ratio(t, r, bound(r, None if random else tag + "_bound"))
        if random:  # an ambiguous unit passes with either value
            alt = ref_of(~keep)
            ratio = torch.where(ref.ambiguous(), torch.minimum(ratio, _ratio(t, alt, bound(alt))), ratio)
        worst = max(worst, _verdict(name, ratio, t, r, ref.x64, problems))
        del ratio, r
    return Check(not problems, kind, "; ".join(problems), worst)
