"""What selu_ext's results are checked against, for its tests, its benchmark
(``python -m selu_ext.bench``) and your own code (as ``torch.testing`` is for
PyTorch's): float64 references, the float32 ULP, and the one tolerance table.

References take a tensor of any float dtype and compute in float64 (torch's
float64 ``expm1``/``exp`` are within an ULP of float64, far below any float32 or
16-bit error). Dropout references take the keep mask (True = kept) instead of
drawing one: selu_ext's mask with a given seed comes from
``selu_ext.ops.dropout_keep_mask``.

Tolerances
----------
``TOL[dtype] = (forward rtol, forward atol, backward rtol, backward atol)``, the
bounds of selu_ext's own ops (SELU, AlphaDropout, the fused op), as the tests use
them with ``torch.testing.assert_close``: ``|actual - expected| <= atol + rtol *
|expected|``, ``expected`` the float64 reference rounded to ``dtype``.

- Forward: the kernels compute in float32 (float64 for float64) and round once;
  float32 forward is held to ``MAX_ULP32`` ULP instead (``assert_close_dtype``),
  since a relative bound cannot say "2 ULP" (an ULP is 2x wider relative to the
  value at the bottom of a binade than at the top).
- Backward: selu_ext differentiates from the rounded output y (dy/dx = y +
  scale*alpha where y <= 0), so a 16-bit gradient carries the output's rounding
  error times the incoming gradient, as PyTorch's own in-place SELU backward does.
  ``atol`` is absolute: the tests' incoming gradients are O(1).

``COMPOSITE_TOL[dtype] = (rtol, atol)``: derived from ``TOL`` for checks that
hold every implementation of an op to one bound, PyTorch's composites included
(``F.alpha_dropout(F.selu(x))`` and its ``torch.compile``: the benchmark's
peers). Those round each intermediate in the dtype, and the dropout's ``a*s + b``
cancels to near zero for some s, so a relative bound on the result cannot hold:
the rtol is looser and the atol carries the cancellation. Its semantics
(``within``): forward ``|y - ref| <= atol + rtol*|ref| + floor``; backward
``|gx - ref| <= atol*|g| + rtol*|ref| + floor`` (the error of a gradient scales
with the incoming gradient g); ``floor`` = ``subnormal_floor(dtype)``.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

__all__ = ["TOL", "COMPOSITE_TOL", "MAX_ULP32", "ALPHA", "SCALE", "selu_reference",
           "selu_derivative", "selu_grad_reference", "alpha_dropout_coefficients",
           "alpha_dropout_reference", "alpha_dropout_grad_reference", "ulp32", "subnormal_floor",
           "assert_close_dtype"]

# The paper's constants and PyTorch's AlphaDropout formulas, written here in Python,
# independently of the extension (selu_ext.ALPHA, selu_ext.alpha_dropout_coefficients
# come from csrc/selu.h; the tests check that the two agree to the bit).
ALPHA = 1.6732632423543772848170429916717
SCALE = 1.0507009873554804934193349852946
_SA = SCALE * ALPHA


def alpha_dropout_coefficients(p: float) -> tuple[float, float, float]:
    """``(a, b, dropped)`` of AlphaDropout with drop probability ``p`` (PyTorch's
    formulas, in float64): kept units become ``a * x + b``, dropped ones
    ``dropped``; p >= 1 gives ``x * 0`` (signed zeros included)."""
    if p >= 1.0:
        return 0.0, -0.0, -0.0
    a = 1.0 / math.sqrt((_SA * _SA * p + 1.0) * (1.0 - p))
    return a, _SA * a * p, -_SA * a * (1.0 - p)

TOL = {
    # dtype: (forward rtol, forward atol, backward rtol, backward atol)
    torch.float64: (1e-14, 1e-300, 1e-13, 1e-13),
    torch.float32: (2.5e-7, 1e-38, 1e-6, 1e-6),  # forward: MAX_ULP32 instead
    torch.float16: (1e-3, 1e-7, 2e-3, 2e-3),
    torch.bfloat16: (8e-3, 1e-38, 1.6e-2, 1.6e-2),
}

# The README's promise: float32 forward within 2 ULP of the float64 reference.
MAX_ULP32 = 2.0

COMPOSITE_TOL = {
    # dtype: (rtol, atol); rtol at least TOL's backward rtol (asserted below):
    # float32 and float64 10x it for a composite's chain of roundings, the 16-bit
    # ones about two of the dtype's eps (two roundings in a row).
    torch.float64: (1e-12, 1e-12),
    torch.float32: (1e-5, 1e-6),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (2e-2, 2e-2),
}
assert all(COMPOSITE_TOL[d][0] >= TOL[d][2] for d in TOL)


def subnormal_floor(dtype) -> float:
    """4 of the dtype's smallest subnormal: a result in the subnormal range (the
    gradient of a tiny incoming gradient, in float16) carries an absolute rounding
    error that no relative bound covers."""
    fi = torch.finfo(dtype)
    return 4 * fi.smallest_normal * fi.eps


def _f64(x: Tensor) -> Tensor:
    return x.detach().to(torch.float64)  # x itself if float64: never modify in place


def selu_reference(x: Tensor) -> Tensor:
    """SELU in float64, whatever x's dtype."""
    xd = _f64(x)
    return torch.where(xd > 0, SCALE * xd, _SA * torch.expm1(xd))


def selu_derivative(x: Tensor) -> Tensor:
    """dSELU/dx at x, in float64."""
    xd = _f64(x)
    return torch.where(xd > 0, torch.full_like(xd, SCALE), _SA * torch.exp(xd))


def selu_grad_reference(x: Tensor, grad: Tensor) -> Tensor:
    """The input gradient of SELU for the incoming gradient ``grad``, in float64."""
    return _f64(grad) * selu_derivative(x)


def alpha_dropout_reference(x: Tensor, keep: Optional[Tensor], p: float, *,
                            selu: bool = False) -> Tensor:
    """AlphaDropout (``selu``: of SELU(x), the fused op) in float64 for the keep
    mask ``keep``; ``keep=None`` gives the kept value ``a*s + b`` of every unit."""
    a, b, dropped = alpha_dropout_coefficients(p)
    kept = torch.mul(selu_reference(x) if selu else _f64(x), a).add_(b)
    if keep is None:
        return kept
    return torch.where(keep, kept, torch.full((), dropped, dtype=torch.float64, device=kept.device))


def alpha_dropout_grad_reference(x: Tensor, grad: Tensor, keep: Optional[Tensor], p: float, *,
                                 selu: bool = False) -> Tensor:
    """The input gradient of ``alpha_dropout_reference``: ``a * grad`` (times
    SELU's derivative if ``selu``) where kept, 0 where dropped; ``keep=None``:
    every unit's kept value."""
    a = alpha_dropout_coefficients(p)[0]
    g = selu_grad_reference(x, grad) if selu else _f64(grad).clone()
    g.mul_(a)
    if keep is None:
        return g
    return torch.where(keep, g, torch.zeros((), dtype=torch.float64, device=g.device))


def ulp32(x: Tensor) -> Tensor:
    """Unit in the last place of float32 values (as float64): the spacing of
    float32 at x rounded to float32; the smallest subnormal step for zeros and
    subnormals."""
    a = x.detach().to(torch.float32).abs()
    return (torch.nextafter(a, torch.full_like(a, math.inf)) - a).to(torch.float64)


def assert_close_dtype(actual: Tensor, expected64: Tensor, dtype, which: str = "forward",
                       msg: str = "") -> None:
    """``actual`` against the float64 reference ``expected64`` with ``TOL[dtype]``
    (``which``: "forward" or "backward"); float32 forward within ``MAX_ULP32`` ULP,
    with NaN and infinities in the same places."""
    if dtype == torch.float32 and which == "forward":
        a = actual.detach().to(torch.float64).cpu()
        e = expected64.detach().to(torch.float64).cpu()
        assert a.shape == e.shape, (a.shape, e.shape, msg)
        same_special = torch.equal(a.isnan(), e.isnan()) and torch.equal(
            torch.where(e.isinf(), a, 0.0), torch.where(e.isinf(), e, 0.0))
        assert same_special, f"NaN/inf positions or values differ. {msg}"
        finite = e.isfinite()
        err = ((a - e).abs() / ulp32(e))[finite]
        worst = err.max().item() if err.numel() else 0.0
        if worst > MAX_ULP32:
            i = int(err.argmax())
            raise AssertionError(
                f"float32 forward off by {worst:.2f} ULP (> {MAX_ULP32}) at reference "
                f"{e[finite][i].item()!r}: got {a[finite][i].item()!r}. {msg}")
        return
    rtol, atol = TOL[dtype][:2] if which == "forward" else TOL[dtype][2:]
    torch.testing.assert_close(actual.to(torch.float64).cpu(),
                               expected64.to(dtype).to(torch.float64).cpu(),
                               rtol=rtol, atol=atol, equal_nan=True, msg=msg or None)
