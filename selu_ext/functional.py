"""What users call: selu, alpha_dropout, feature_alpha_dropout, selu_alpha_dropout.

Each function is a drop-in for its ``torch.nn.functional`` namesake (same
arguments, same results within the tolerances in tests/, same errors), running the
registered operators in ``selu_ext.ops``:

    selu_ext.selu(x) -> torch.ops.selu_ext.selu -> CPU / CUDA kernel -> csrc/selu.h

Autograd is registered in C++ on the operators (csrc/autograd.cpp), so eager
backward passes run no Python. Under torch.func transforms, whose tensors C++
autograd functions cannot see, the same math runs through the
``torch.autograd.Function`` classes below (SELUFunction and friends).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from . import ops

__all__ = [
    "ALPHA",
    "SCALE",
    "selu",
    "alpha_dropout",
    "feature_alpha_dropout",
    "selu_alpha_dropout",
    "alpha_dropout_coefficients",
    "SELUFunction",
    "AlphaDropoutFunction",
    "SELUAlphaDropoutFunction",
]

ALPHA = 1.6732632423543772848170429916717
SCALE = 1.0507009873554804934193349852946
_SCALE_ALPHA = SCALE * ALPHA  # 1.7580993408473766, PyTorch's AlphaDropout constant


def alpha_dropout_coefficients(p: float) -> tuple[float, float, float]:
    """``(a, b, dropped)`` of AlphaDropout with drop probability ``p``: kept units
    become ``a * x + b``, dropped ones ``dropped`` (PyTorch's formulas; p == 1 gives
    zeros). The same computation as ``alpha_dropout_coeffs`` in csrc/selu.h."""
    if p >= 1.0:
        return 0.0, -0.0, -0.0  # every unit becomes x * 0 (signed zeros included)
    a = 1.0 / math.sqrt((_SCALE_ALPHA * _SCALE_ALPHA * p + 1.0) * (1.0 - p))
    return a, _SCALE_ALPHA * a * p, -_SCALE_ALPHA * a * (1.0 - p)


def _check_tensor(input, fn: str) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"selu_ext.{fn}(): argument 'input' must be Tensor, "
                        f"not {type(input).__name__}")


def _check_p(p) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"dropout probability must be a number, but got {type(p).__name__}")
    if not 0.0 <= p <= 1.0:  # written so that NaN fails too
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _check_leaf_inplace(input: Tensor) -> None:
    # The operators' autograd raises too; this gives PyTorch's exact message.
    if input.requires_grad and input.is_leaf and torch.is_grad_enabled():
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation.")


def _functorch_active() -> bool:
    # C++ autograd functions refuse functorch's wrapped tensors; route those calls
    # through the Python autograd.Functions. torch.compile traces the operators.
    return (not torch.compiler.is_compiling()) and torch._C._are_functorch_transforms_active()


def _rng_state(input: Tensor, seed: Optional[int]) -> Tensor:
    """(seed, offset) for one dropout call. From torch's default generator of the
    input's device unless ``seed`` is given: then a CPU tensor (seed, 0), which gives
    the same mask on every device."""
    if seed is None:
        if input.device.type == "meta":
            # No generator to draw from; the ops' fake kernels only need the shape.
            return torch.empty(2, dtype=torch.int64, device="meta")
        return ops.dropout_rng_state(input.device)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, but got {type(seed).__name__}")
    seed &= (1 << 64) - 1
    if seed >= 1 << 63:
        seed -= 1 << 64
    return torch.tensor([seed, 0], dtype=torch.int64)


# ---------------------------------------------------------------------------
# Public functions


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """SELU, ``scale * x`` for x > 0 and ``scale * alpha * (exp(x) - 1)`` otherwise.

    A drop-in for :func:`torch.nn.functional.selu`. Backward is computed from the
    output, so autograd keeps only the output (which the next layer usually keeps
    anyway) instead of the input.
    """
    _check_tensor(input, "selu")
    if _functorch_active():
        if inplace:
            # vmap cannot batch an in-place autograd.Function (nor the in-place op):
            # the same result through the out-of-place one and a copy.
            return input.copy_(SELUFunction.apply(input))
        return SELUFunction.apply(input)
    if inplace:
        _check_leaf_inplace(input)
        ops.selu_(input)
        return input
    return ops.selu(input)


def alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False,
                  *, seed: Optional[int] = None) -> Tensor:
    """AlphaDropout in one kernel; a drop-in for
    :func:`torch.nn.functional.alpha_dropout`.

    The mask is never stored: it is a Philox stream keyed by ``(seed, offset)`` and
    the element's index, and backward regenerates it. By default the stream comes
    from torch's default generator of the input's device, so ``torch.manual_seed``
    reproduces a run; ``seed=`` fixes it instead, giving the same mask on CPU and
    CUDA. As in PyTorch, ``training=False`` or ``p == 0`` returns ``input`` itself.
    """
    _check_tensor(input, "alpha_dropout")
    _check_p(p)
    if not training or p == 0 or input.numel() == 0:
        return input
    rng = _rng_state(input, seed)
    if _functorch_active():
        if inplace:  # as in selu()
            return input.copy_(AlphaDropoutFunction.apply(input, float(p), rng))
        return AlphaDropoutFunction.apply(input, float(p), rng)
    if inplace:
        _check_leaf_inplace(input)
        ops.alpha_dropout_(input, float(p), rng)
        return input
    return ops.alpha_dropout(input, float(p), rng)


def feature_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,
                          inplace: bool = False, *, seed: Optional[int] = None) -> Tensor:
    """AlphaDropout of whole channels, for ``(N, C, *)`` inputs; a drop-in for
    :func:`torch.nn.functional.feature_alpha_dropout`.

    The ``(N, C)`` keep mask comes from the same Philox stream as
    :func:`alpha_dropout` (element ``n * C + c``) and is applied as ``x * scale +
    shift`` with ``(N, C, 1, ...)`` coefficients; autograd keeps only the ``scale``.
    """
    _check_tensor(input, "feature_alpha_dropout")
    _check_p(p)
    if not training or p == 0 or input.numel() == 0:
        return input
    if input.layout != torch.strided:
        raise NotImplementedError(f"selu_ext.feature_alpha_dropout: {input.layout} tensors are "
                                  "not supported; selu_ext works on dense (strided) tensors. "
                                  "Call .to_dense() first.")
    if input.dim() < 2:
        raise RuntimeError("selu_ext.feature_alpha_dropout: feature dropout requires at least 2 "
                           f"dimensions (N, C, *) in the input, but got {input.dim()}")
    if input.dtype not in ops.FLOAT_DTYPES:
        raise RuntimeError(f"selu_ext.feature_alpha_dropout: 'input' has dtype {input.dtype}; "
                           "expected a floating-point tensor (float16, bfloat16, float32 or "
                           "float64)")
    n, c = input.shape[0], input.shape[1]
    noise_shape = (n, c) + (1,) * (input.dim() - 2)
    rng = _rng_state(input, seed)
    a, b, dropped = alpha_dropout_coefficients(float(p))
    if _functorch_active():
        # dropout_keep_mask has no batched input, so vmap would neither see a random op
        # (randomness="error") nor give each sample its own mask ("different"). The
        # mask of alpha_dropout over zeros of shape (N, C) is the same mask, and its
        # vmap rule applies vmap's randomness setting.
        zeros = torch.zeros_like(input[(slice(None), slice(None)) + (0,) * (input.dim() - 2)])
        keep = AlphaDropoutFunction.apply(zeros, float(p), rng) > dropped / 2
    else:
        keep = ops.dropout_keep_mask(rng, n * c, float(p)).to(input.device)
    keep = keep.view(noise_shape)
    zero = torch.zeros((), dtype=input.dtype, device=input.device)
    scale = torch.where(keep, torch.full((), a, dtype=input.dtype, device=input.device), zero)
    shift = torch.where(keep, torch.full((), b, dtype=input.dtype, device=input.device),
                        torch.full((), dropped, dtype=input.dtype, device=input.device))
    # x * scale, then + shift, as PyTorch does (two roundings): the in-place and
    # out-of-place forms, and PyTorch's, give the same bits for the same mask.
    if inplace:
        return input.mul_(scale).add_(shift)
    return input.mul(scale).add_(shift)


def selu_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,
                       *, seed: Optional[int] = None) -> Tensor:
    """``alpha_dropout(selu(input), p, training)`` in one kernel.

    Reads the input once and writes the output once; autograd keeps only the output
    and a 16-byte rng state (backward recovers the SELU branch from the output and
    regenerates the mask). In eval mode (or p == 0) it is :func:`selu`.
    """
    _check_tensor(input, "selu_alpha_dropout")
    _check_p(p)
    if not training or p == 0:
        return selu(input)
    rng = _rng_state(input, seed)
    if _functorch_active():
        return SELUAlphaDropoutFunction.apply(input, float(p), rng)
    return ops.selu_alpha_dropout(input, float(p), rng)


# ---------------------------------------------------------------------------
# The same operators bound through torch.autograd.Function. These carry the same
# formulas as csrc/autograd.cpp (tests/test_gradients.py checks both), for
# torch.func transforms and for code that wants an autograd.Function to compose.


class _BelowAutograd:
    """Runs an operator's kernel directly, skipping its C++ autograd kernel: inside
    an autograd.Function, the Function is the graph node."""

    def __enter__(self):
        # Dynamo cannot trace this guard (a graph break in every Function under
        # torch.compile); there the forward is traced with grad disabled, so the
        # operators' autograd kernels record nothing anyway.
        self._guard = None
        if not torch.compiler.is_compiling():
            self._guard = torch._C._AutoDispatchBelowAutograd()
            self._guard.__enter__()

    def __exit__(self, *exc):
        return None if self._guard is None else self._guard.__exit__(*exc)


class SELUFunction(torch.autograd.Function):
    """``selu`` as a :class:`torch.autograd.Function` over the registered operators:
    ``SELUFunction.apply(input, inplace=False)``. Saves only the output; backward is
    ``torch.ops.selu_ext.selu_backward`` (itself differentiable). Works under
    torch.func (vmap via the operators' vmap rules)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(input, inplace=False):
        _check_tensor(input, "SELUFunction.apply")
        with _BelowAutograd():
            if inplace:
                ops.selu_(input)
                return input
            return ops.selu(input)

    @staticmethod
    def setup_context(ctx, inputs, output):
        # Dynamo passes only the given arguments (eager binds the defaults too).
        input, inplace = inputs[0], len(inputs) > 1 and inputs[1]
        if inplace:
            ctx.mark_dirty(input)
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad):
        (result,) = ctx.saved_tensors
        return _SELUBackwardFunction.apply(grad, result), None


class _SELUBackwardFunction(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(grad, result):
        with _BelowAutograd():
            return ops.selu_backward(grad, result)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, gg):
        grad, result = ctx.saved_tensors
        d_grad = d_result = None
        if ctx.needs_input_grad[0]:
            d_grad = _SELUBackwardFunction.apply(gg, result)
        if ctx.needs_input_grad[1]:
            # result < 0, not <= 0: second derivative 0 at x == 0, as PyTorch's.
            d_result = gg * grad * (result < 0).to(result.dtype)
        return d_grad, d_result


class AlphaDropoutFunction(torch.autograd.Function):
    """``alpha_dropout`` as a :class:`torch.autograd.Function`:
    ``AlphaDropoutFunction.apply(input, p, rng_state, inplace=False)`` with
    ``rng_state`` from ``torch.ops.selu_ext.dropout_rng_state``. Saves only
    ``rng_state``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(input, p, rng_state, inplace=False):
        _check_tensor(input, "AlphaDropoutFunction.apply")
        with _BelowAutograd():
            if inplace:
                ops.alpha_dropout_(input, p, rng_state)
                return input
            return ops.alpha_dropout(input, p, rng_state)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, p, rng_state = inputs[:3]
        if len(inputs) > 3 and inputs[3]:  # inplace; as in SELUFunction
            ctx.mark_dirty(input)
        ctx.p = p
        ctx.save_for_backward(rng_state)

    @staticmethod
    def backward(ctx, grad):
        (rng_state,) = ctx.saved_tensors
        return _AlphaDropoutBackwardFunction.apply(grad, ctx.p, rng_state), None, None, None


class _AlphaDropoutBackwardFunction(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(grad, p, rng_state):
        with _BelowAutograd():
            return ops.alpha_dropout_backward(grad, p, rng_state)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.p = inputs[1]
        ctx.save_for_backward(inputs[2])

    @staticmethod
    def backward(ctx, gg):
        (rng_state,) = ctx.saved_tensors
        return _AlphaDropoutBackwardFunction.apply(gg, ctx.p, rng_state), None, None


class SELUAlphaDropoutFunction(torch.autograd.Function):
    """``selu_alpha_dropout`` as a :class:`torch.autograd.Function`:
    ``SELUAlphaDropoutFunction.apply(input, p, rng_state)``. Saves the output and
    ``rng_state``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(input, p, rng_state):
        _check_tensor(input, "SELUAlphaDropoutFunction.apply")
        with _BelowAutograd():
            return ops.selu_alpha_dropout(input, p, rng_state)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.p = inputs[1]
        ctx.save_for_backward(output, inputs[2])

    @staticmethod
    def backward(ctx, grad):
        result, rng_state = ctx.saved_tensors
        return (_SELUAlphaDropoutBackwardFunction.apply(grad, result, ctx.p, rng_state),
                None, None)


def _kept_bound(p: float, dtype: torch.dtype) -> float:
    # The kept-unit offset b rounded to `dtype`, as kept_bound_for in csrc/host.h.
    return torch.tensor(alpha_dropout_coefficients(p)[1], dtype=torch.float64).to(dtype).item()


class _SELUAlphaDropoutBackwardFunction(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(grad, result, p, rng_state):
        with _BelowAutograd():
            return ops.selu_alpha_dropout_backward(grad, result, p, rng_state)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.p = inputs[2]
        ctx.save_for_backward(inputs[0], inputs[1], inputs[3])

    @staticmethod
    def backward(ctx, gg):
        grad, result, rng_state = ctx.saved_tensors
        d_grad = d_result = None
        if ctx.needs_input_grad[0]:
            d_grad = _SELUAlphaDropoutBackwardFunction.apply(gg, result, ctx.p, rng_state)
        if ctx.needs_input_grad[1]:
            keep = ops.dropout_keep_mask(rng_state, result.numel(), ctx.p)
            keep = keep.to(result.device).view(result.shape)
            # < bound: as fused_negative_mask in csrc/autograd.cpp (x == 0 -> 0).
            negative = keep & (result < _kept_bound(ctx.p, result.dtype))
            d_result = gg * grad * negative.to(result.dtype)
        return d_grad, d_result, None, None
