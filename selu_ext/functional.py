"""What users call: selu, alpha_dropout, feature_alpha_dropout, selu_alpha_dropout.

Each function is a drop-in for its ``torch.nn.functional`` namesake: same
arguments, same results within the tolerances in tests/, same exceptions for the
same bad arguments, same in-place semantics. The path of a call:

    selu_ext.selu(x) -> selu_ext._C._selu (eager)  \\
                     -> torch.ops.selu_ext.selu     / -> Autograd kernel (csrc/autograd.cpp)
                        -> CPU / CUDA kernel (csrc/cpu, csrc/cuda) -> csrc/selu.h

In eager mode a call enters the dispatcher through ``selu_ext._C`` (as cheap per
call as PyTorch's own bindings); under torch.compile, torch.jit tracing, or a
``__torch_function__`` override it goes through ``torch.ops.selu_ext`` instead, so
those systems see an ordinary operator. Autograd, forward-mode AD, torch.func and
vmap are properties of the operators, not of this module.

Where selu_ext has no kernel of its own it hands the call to PyTorch, so the
result is PyTorch's: nested tensors, ONNX export (which then writes the standard
``Selu`` node), and dropout on DTensors (README, "Drop-in"). So does a program
recorded for an archive (torch.jit.script, torch.jit.trace, torch.export), which
then loads where selu_ext is not installed, unless ``archive_kernels()`` asks for
selu_ext's operators (README, "Drop-in", Archives).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Optional

import torch
import torch.nn.functional as _torch_F
from torch import Tensor
from torch.overrides import handle_torch_function, has_torch_function_unary

from . import _C, ops

__all__ = [
    "ALPHA",
    "SCALE",
    "selu",
    "alpha_dropout",
    "feature_alpha_dropout",
    "selu_alpha_dropout",
    "alpha_dropout_coefficients",
    "archive_kernels",
    "SELUFunction",
    "AlphaDropoutFunction",
    "SELUAlphaDropoutFunction",
]

# 1.6732632423543772848170429916717 and 1.0507009873554804934193349852946, to the
# digits PyTorch uses: csrc/selu.h's kAlpha and kScale, read from the extension.
ALPHA, SCALE = _C._constants()

# Only dynamo runs this code without executing it (it would break the graph at the
# entry points of selu_ext._C); torch.export's non-strict mode and make_fx execute
# it on FakeTensors or under dispatch modes, which the entry points handle. A
# third of the cost of torch.compiler.is_compiling, which also calls
# torch.jit.is_scripting.
_is_compiling = torch.compiler.is_dynamo_compiling


def _eager(input) -> bool:
    """An eager call on a plain tensor: the one the entry points of selu_ext._C take
    (they hand tracing back with NotImplemented)."""
    return type(input) is Tensor and not has_torch_function_unary(input) and not _is_compiling()


def alpha_dropout_coefficients(p: float) -> tuple[float, float, float]:
    """``(a, b, dropped)`` of AlphaDropout with drop probability ``p``: kept units
    become ``a * x + b``, dropped ones ``dropped`` (PyTorch's formulas; p == 1 gives
    zeros, signed zeros included): ``alpha_dropout_coeffs`` in csrc/selu.h, which the
    kernels use."""
    return _C._alpha_dropout_coefficients(p)


# ---------------------------------------------------------------------------
# Argument handling, as torch.nn.functional's (the eager entry points in
# csrc/python_module.cpp make the same checks in C).


def _dropout_p(p, fn: str) -> float:
    """p of a dropout function, checked and converted by the entry points' rule, in C
    (parse_p, csrc/python_module.cpp). Dynamo cannot trace C: under torch.compile a p
    in [0, 1] is taken here, with torch's comparisons (a SymFloat p is guarded, not
    specialized); any other p goes to the C rule, where Dynamo breaks the graph and
    runs it eagerly, so the exception is the rule's own."""
    if _is_compiling() and 0.0 <= p <= 1.0:
        return float(p)
    return _C._dropout_p(p, fn)


def _check_training(training, fn: str) -> None:
    if type(training) is not bool:
        raise TypeError(f"{fn}(): argument 'training' (position 3) must be bool, not "
                        f"{type(training).__name__}")


def _check_tensor(input, fn: str) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{fn}(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")


def _dropout_args(input, p, training, fn: str) -> float:
    """The checks of a dropout function's arguments, in torch's order; p as a float."""
    _check_tensor(input, fn)
    p = _dropout_p(p, fn)
    _check_training(training, fn)
    return p


def _seed_state(seed) -> Tensor:
    """(seed, 0) as a CPU tensor: the same mask on every device."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, but got {type(seed).__name__}")
    seed &= (1 << 64) - 1
    if seed >= 1 << 63:
        seed -= 1 << 64
    return torch.tensor([seed, 0], dtype=torch.int64)


def _rng_state(input: Tensor, seed: Optional[int]) -> Tensor:
    """(seed, offset) for one dropout call on the general path: from torch's default
    generator of the input's device unless ``seed`` is given."""
    if seed is not None:
        return _seed_state(seed)
    if torch.jit.is_tracing():
        # The tracer records this overload (it takes a tensor, not a Device), so a
        # traced module draws a fresh mask on every call.
        return ops.dropout_rng_state_like(input)
    return ops.dropout_rng_state(input.device)


# Set by archive_kernels(): programs recorded for an archive keep selu_ext's operators.
_archive_kernels = False


@contextlib.contextmanager
def archive_kernels(enabled: bool = True):
    """Within this block, ``torch.export`` and ``torch.jit.trace`` record selu_ext's
    operators (its kernels, the memory saving, ``save_output`` and the fused op) instead
    of PyTorch's own; the program then needs selu_ext loaded wherever it is loaded
    (README, "Archives"). ``torch.jit.script`` always compiles PyTorch's ops."""
    global _archive_kernels
    before, _archive_kernels = _archive_kernels, bool(enabled)
    try:
        yield
    finally:
        _archive_kernels = before


def _torch_handles(input: Tensor, seed: Optional[int] = None) -> bool:
    """Calls selu_ext leaves to PyTorch (see the module docstring). A program recorded
    for an archive holds PyTorch's ops, so it loads where selu_ext is not installed;
    a seeded dropout keeps selu_ext's stream, which only selu_ext draws."""
    return (input.is_nested or torch.onnx.is_in_onnx_export()
            or (seed is None and not _archive_kernels
                and (torch.jit.is_tracing() or torch.compiler.is_exporting())))


# The dtypes torch's dropouts cast to float and fail to cast back (RuntimeError).
_CAST_ERROR_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)


def _drop_all(input: Tensor, inplace: bool) -> Tensor:
    """Dropout with p == 1, as ATen's: x * 0 (signed zeros included), for any dtype."""
    zero = torch.zeros((), dtype=input.dtype, device=input.device)
    return input.mul_(zero) if inplace else input.mul(zero)


def _script_as(script_fn):
    """TorchScript compiles ``script_fn`` in place of the decorated function (the hook
    of torch.jit.script_if_tracing), so the public functions keep their keyword-only
    arguments and their eager fast path. Dynamo follows the same hook: ``script_fn``
    takes the general path outside TorchScript."""

    def mark(fn):
        # TorchScript compiles it under fn's qualified name, which must end in its name.
        script_fn.__name__ = fn.__name__
        fn.__original_fn = script_fn
        fn.__script_if_tracing_wrapper = True
        return fn

    return mark


def _no_seed_in_script(seed: Optional[int]) -> None:
    if seed is not None:
        raise RuntimeError("selu_ext: seed= is not supported under torch.jit.script, which "
                           "compiles PyTorch's own dropout; use torch.export with "
                           "selu_ext.archive_kernels()")


def _script_selu(input: Tensor, inplace: bool = False, save_output: bool = False) -> Tensor:
    """selu as TorchScript compiles it (also nn.SELU's scripted forward): PyTorch's op,
    so a saved archive loads without selu_ext."""
    if torch.jit.is_scripting():
        return _torch_F.selu(input, inplace)
    return _selu_general(input, inplace, save_output)


def _script_dropout(input: Tensor, p: float, training: bool, fused: bool, feature: bool,
                    inplace: bool = False) -> Tensor:
    """The dropout functions and modules as TorchScript compiles them: PyTorch's ops."""
    if fused:
        input = _torch_F.selu(input)
    if feature:
        return _torch_F.feature_alpha_dropout(input, p, training, inplace)
    return _torch_F.alpha_dropout(input, p, training, inplace)


def _script_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,
                          inplace: bool = False, seed: Optional[int] = None) -> Tensor:
    if torch.jit.is_scripting():
        _no_seed_in_script(seed)
        return _script_dropout(input, p, training, False, False, inplace)
    return _alpha_dropout_general(input, p, training, inplace, seed)


def _script_feature_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,
                                  inplace: bool = False, seed: Optional[int] = None) -> Tensor:
    if torch.jit.is_scripting():
        _no_seed_in_script(seed)
        return _script_dropout(input, p, training, False, True, inplace)
    return _feature_alpha_dropout_general(input, p, training, inplace, seed)


def _script_selu_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,
                               seed: Optional[int] = None) -> Tensor:
    if torch.jit.is_scripting():
        _no_seed_in_script(seed)
        return _script_dropout(input, p, training, True, False)
    return _selu_alpha_dropout_general(input, p, training, seed)


_dtensor_ready = False


def _is_dtensor(input: Tensor) -> bool:
    """True for a DTensor; registers selu_ext's sharding rules on the first one."""
    global _dtensor_ready
    mod = sys.modules.get("torch.distributed.tensor")
    if mod is None or not isinstance(input, mod.DTensor):
        return False
    if not _dtensor_ready:
        from . import _dtensor

        _dtensor.register()
        _dtensor_ready = True
    return True


# ---------------------------------------------------------------------------
# Public functions


@_script_as(_script_selu)
def selu(input: Tensor, inplace: bool = False, *, save_output: bool = False) -> Tensor:
    """SELU, ``scale * x`` for x > 0 and ``scale * alpha * (exp(x) - 1)`` otherwise;
    a drop-in for :func:`torch.nn.functional.selu`.

    ``save_output=True`` makes autograd keep only the output (which the next layer
    usually keeps anyway) instead of the input, as the in-place form does: one
    activation-sized tensor less per SELU. Modifying that output in place before
    backward then fails with autograd's usual error, so use it only where nothing
    does (``selu_ext.nn.convert`` decides it per layer).
    """
    if _eager(input):
        out = _C._selu(input, inplace, save_output)
        if out is not NotImplemented:
            return out
    return _selu_general(input, inplace, save_output)


def _selu_general(input: Tensor, inplace: bool, save_output: bool) -> Tensor:
    if has_torch_function_unary(input):
        return handle_torch_function(selu, (input,), input, inplace=inplace,
                                     save_output=save_output)
    _check_tensor(input, "selu")
    # In place, a DTensor keeps its placements only through PyTorch's own selu_.
    if _torch_handles(input) or (_is_dtensor(input) and inplace):
        return _torch_F.selu(input, inplace)
    if inplace:
        ops.selu_(input)
        return input
    return ops.selu(input, bool(save_output))


@_script_as(_script_alpha_dropout)
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
    if _eager(input):
        out = _C._alpha_dropout(input, p, training, bool(inplace),
                                None if seed is None else _seed_state(seed), False)
        if out is not NotImplemented:
            return out
    return _alpha_dropout_general(input, p, training, inplace, seed)


def _alpha_dropout_general(input: Tensor, p: float, training: bool, inplace: bool,
                           seed: Optional[int]) -> Tensor:
    if has_torch_function_unary(input):
        return handle_torch_function(alpha_dropout, (input,), input, p=p, training=training,
                                     inplace=inplace, seed=seed)
    p = _dropout_args(input, p, training, "alpha_dropout")
    if not training or p == 0 or input.numel() == 0:
        return input
    if _torch_handles(input, seed) or _is_dtensor(input):
        return _torch_F.alpha_dropout(input, p, training, inplace)
    if p >= 1.0 and input.dtype not in ops.FLOAT_DTYPES:
        return _drop_all(input, inplace)
    rng = _rng_state(input, seed)
    if inplace:
        ops.alpha_dropout_(input, p, rng)
        return input
    return ops.alpha_dropout(input, p, rng)


@_script_as(_script_selu_alpha_dropout)
def selu_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,
                       *, seed: Optional[int] = None) -> Tensor:
    """``alpha_dropout(selu(input), p, training)`` in one kernel.

    Reads the input once and writes the output once; autograd keeps only the output
    and a 16-byte rng state (backward recovers the SELU branch from the output and
    regenerates the mask), so the output must not be modified in place before
    backward. In eval mode (or p == 0) it is :func:`selu`.
    """
    if _eager(input):
        out = _C._alpha_dropout(input, p, training, False,
                                None if seed is None else _seed_state(seed), True)
        if out is not NotImplemented:
            return out
    return _selu_alpha_dropout_general(input, p, training, seed)


def _selu_alpha_dropout_general(input: Tensor, p: float, training: bool,
                                seed: Optional[int]) -> Tensor:
    if has_torch_function_unary(input):
        return handle_torch_function(selu_alpha_dropout, (input,), input, p=p,
                                     training=training, seed=seed)
    p = _dropout_args(input, p, training, "selu_alpha_dropout")
    if not training or p == 0 or input.numel() == 0:
        return selu(input)
    if _torch_handles(input, seed) or _is_dtensor(input):
        return _torch_F.alpha_dropout(selu(input), p, training)
    return ops.selu_alpha_dropout(input, p, _rng_state(input, seed))


@_script_as(_script_feature_alpha_dropout)
def feature_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,
                          inplace: bool = False, *, seed: Optional[int] = None) -> Tensor:
    """AlphaDropout of whole channels, for ``(N, C, *)`` inputs; a drop-in for
    :func:`torch.nn.functional.feature_alpha_dropout`.

    The ``(N, C)`` keep mask comes from the same Philox stream as
    :func:`alpha_dropout` (element ``n * C + c``) and is applied as ``x * scale +
    shift`` with ``(N, C, 1, ...)`` coefficients, as PyTorch does; autograd keeps
    only the ``scale``.
    """
    if _eager(input):
        out = _C._feature_alpha_dropout(input, p, training, bool(inplace),
                                        None if seed is None else _seed_state(seed))
        if out is not NotImplemented:
            return out
    return _feature_alpha_dropout_general(input, p, training, inplace, seed)


def _feature_alpha_dropout_general(input: Tensor, p: float, training: bool, inplace: bool,
                                   seed: Optional[int]) -> Tensor:
    if has_torch_function_unary(input):
        return handle_torch_function(feature_alpha_dropout, (input,), input, p=p,
                                     training=training, inplace=inplace, seed=seed)
    p = _dropout_args(input, p, training, "feature_alpha_dropout")
    if not training or p == 0 or input.numel() == 0:
        return input
    if _torch_handles(input, seed) or _is_dtensor(input):
        return _torch_F.feature_alpha_dropout(input, p, training, inplace)
    if p >= 1.0:  # before the rank and the dtype, as ATen
        return _drop_all(input, inplace)
    if input.layout != torch.strided:
        raise NotImplementedError(f"selu_ext.feature_alpha_dropout: {input.layout} tensors are "
                                  "not supported; selu_ext works on dense (strided) tensors. "
                                  "Call .to_dense() first.")
    if input.dim() < 2:
        raise RuntimeError("selu_ext.feature_alpha_dropout: feature dropout requires at least 2 "
                           f"dimensions (N, C, *) in the input, but got {input.dim()}")
    if input.dtype not in ops.FLOAT_DTYPES:
        # torch's exception types, as host.h's check_tensor for a dropout.
        kind = RuntimeError if input.dtype in _CAST_ERROR_DTYPES else NotImplementedError
        raise kind(ops._dtype_message("selu_ext.feature_alpha_dropout", "input", input.dtype))
    rng = _rng_state(input, seed)
    if inplace:
        ops.feature_alpha_dropout_(input, p, rng)
        return input
    return ops.feature_alpha_dropout(input, p, rng)


# ---------------------------------------------------------------------------
# The operators bound through torch.autograd.Function, for code that composes
# Functions. They add no formula of their own: backward calls the operators, which
# are themselves differentiable (csrc/autograd.cpp). They define no jvp (Dynamo
# cannot trace a Function that does): forward-mode AD is the functions' (selu,
# alpha_dropout, ...), which run the operators directly.


class _BelowAutograd:
    """Runs an operator's kernel directly, skipping its Autograd kernel: inside an
    autograd.Function, the Function is the graph node."""

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
    """``selu`` as a :class:`torch.autograd.Function`:
    ``SELUFunction.apply(input, inplace=False)``. Saves only the output."""

    generate_vmap_rule = True

    @staticmethod
    def forward(input, inplace=False):
        _check_tensor(input, "SELUFunction.apply")
        with _BelowAutograd():
            if inplace:
                ops.selu_(input)
                return input
            return ops.selu(input, True)

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
        return ops.selu_backward(grad, result, True), None



def _keep_rng_state(ctx, rng_state):
    """What to save of a Function's rng_state. It is no activation: where its values
    are plain host data, the ctx keeps them as Python ints, so that saved-tensor hooks
    (activation compression, offloading) cannot change the mask backward regenerates,
    as selu_ext's own graph nodes keep (seed, offset) (csrc/autograd.cpp). A state on
    a device (CUDA graphs), under a transform or being traced stays a saved tensor."""
    if (type(rng_state) is torch.Tensor and rng_state.device.type == "cpu"
            and not torch.compiler.is_compiling()
            and not torch._C._functorch.is_functorch_wrapped_tensor(rng_state)):
        ctx.rng_values = (rng_state.tolist(), rng_state.dtype)
        return ()
    ctx.rng_values = None
    return (rng_state,)


def _kept_rng_state(ctx, saved):
    """The rng_state _keep_rng_state kept: rebuilt from its ints, or the saved tensor."""
    if ctx.rng_values is None:
        return saved[0]
    values, dtype = ctx.rng_values
    return torch.tensor(values, dtype=dtype)


class AlphaDropoutFunction(torch.autograd.Function):
    """``alpha_dropout`` as a :class:`torch.autograd.Function`:
    ``AlphaDropoutFunction.apply(input, p, rng_state, inplace=False)`` with
    ``rng_state`` from ``torch.ops.selu_ext.dropout_rng_state``. Keeps only
    ``rng_state`` (as ints where it is on the host: ``_keep_rng_state``)."""

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
        ctx.save_for_backward(*_keep_rng_state(ctx, rng_state))

    @staticmethod
    def backward(ctx, grad):
        rng_state = _kept_rng_state(ctx, ctx.saved_tensors)
        return ops.alpha_dropout_backward(grad, ctx.p, rng_state), None, None, None



class SELUAlphaDropoutFunction(torch.autograd.Function):
    """``selu_alpha_dropout`` as a :class:`torch.autograd.Function`:
    ``SELUAlphaDropoutFunction.apply(input, p, rng_state)``. Saves the output and
    keeps ``rng_state`` (as ints where it is on the host: ``_keep_rng_state``)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(input, p, rng_state):
        _check_tensor(input, "SELUAlphaDropoutFunction.apply")
        with _BelowAutograd():
            return ops.selu_alpha_dropout(input, p, rng_state)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.p = inputs[1]
        ctx.save_for_backward(output, *_keep_rng_state(ctx, inputs[2]))

    @staticmethod
    def backward(ctx, grad):
        result = ctx.saved_tensors[0]
        rng_state = _kept_rng_state(ctx, ctx.saved_tensors[1:])
        return ops.selu_alpha_dropout_backward(grad, result, ctx.p, rng_state), None, None

