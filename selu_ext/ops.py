"""The registered operators, as Python sees them.

Importing this module loads the C++ library (which defines the schemas in
csrc/ops.cpp and the CPU, CUDA, Autograd and ADInplaceOrView kernels) and adds what
is best written in Python: fake (meta) kernels for torch.compile / torch.export,
and vmap rules for torch.func.

The fake kernels return exactly the strides the real kernels return (host.h):
``empty_like`` of the input for the forward ops, of ``result`` / ``grad_output``
for the backward ops.
"""

from __future__ import annotations

from typing import Optional

import torch

import json as _json

from . import _C  # loads the operators


def _check_abi() -> None:
    # An extension compiled with the other std::string ABI than torch's normally
    # fails to load (libc10's symbols that take strings are named differently); one
    # that loads anyway would hand libc10 strings it misreads: refuse it at import,
    # with the fix.
    ours = _json.loads(_C.build_info()).get("cxx11_abi")
    theirs = getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", None)
    if ours is not None and theirs is not None and bool(ours) != bool(theirs):
        raise ImportError(
            f"selu_ext was compiled with _GLIBCXX_USE_CXX11_ABI={int(ours)} but torch "
            f"{torch.__version__} uses {int(theirs)}; rebuild selu_ext against this torch "
            "(pip install --no-build-isolation -e .), whose setup.py states torch's ABI")


_check_abi()

__all__ = [
    "selu",
    "selu_",
    "selu_backward",
    "dropout_rng_state",
    "dropout_rng_state_like",
    "alpha_dropout",
    "alpha_dropout_",
    "alpha_dropout_backward",
    "selu_alpha_dropout",
    "selu_alpha_dropout_backward",
    "feature_alpha_dropout",
    "feature_alpha_dropout_",
    "dropout_keep_mask",
    "FLOAT_DTYPES",
]

_ops = torch.ops.selu_ext

# OpOverloads, looked up once: calling these skips the OpOverloadPacket resolution.
selu = _ops.selu.default
selu_ = _ops.selu_.default
selu_backward = _ops.selu_backward.default
dropout_rng_state = _ops.dropout_rng_state.default
dropout_rng_state_like = _ops.dropout_rng_state.like
alpha_dropout = _ops.alpha_dropout.default
alpha_dropout_ = _ops.alpha_dropout_.default
alpha_dropout_backward = _ops.alpha_dropout_backward.default
selu_alpha_dropout = _ops.selu_alpha_dropout.default
selu_alpha_dropout_backward = _ops.selu_alpha_dropout_backward.default
# Composite (csrc/python_module.cpp): no kernel, fake kernel or vmap rule of their own.
feature_alpha_dropout = _ops.feature_alpha_dropout.default
feature_alpha_dropout_ = _ops.feature_alpha_dropout_.default
dropout_keep_mask = _ops.dropout_keep_mask.default

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# ---------------------------------------------------------------------------
# Fake kernels: same checks as host.h, same output strides.


def _dtype_message(where: str, arg: str, dtype: torch.dtype) -> str:
    """host.h's message for a tensor of a dtype without kernels (functional's too)."""
    names = [str(d).removeprefix("torch.") for d in FLOAT_DTYPES]
    return (f"{where}: '{arg}' has dtype {dtype}; expected a floating-point tensor "
            f"({', '.join(names[:-1])} or {names[-1]})")


def _check_float(t: torch.Tensor, op: str, arg: str) -> None:
    torch._check(t.dtype in FLOAT_DTYPES, lambda: _dtype_message(f"selu_ext::{op}", arg, t.dtype))


def _check_same(a: torch.Tensor, b: torch.Tensor, op: str, an: str, bn: str) -> None:
    torch._check(a.device == b.device, lambda: f"selu_ext::{op}: '{an}' is on {a.device} but "
                 f"'{bn}' is on {b.device}")
    torch._check(a.dtype == b.dtype, lambda: f"selu_ext::{op}: '{an}' has dtype {a.dtype} but "
                 f"'{bn}' has dtype {b.dtype}")
    torch._check(a.shape == b.shape, lambda: f"selu_ext::{op}: '{an}' has shape "
                 f"{tuple(a.shape)} but '{bn}' has shape {tuple(b.shape)}")


def _check_dropout(p: float, rng_state: torch.Tensor, op: str,
                   like: Optional[torch.Tensor] = None) -> None:
    torch._check(0.0 <= p <= 1.0, lambda: f"selu_ext::{op}: {_C._DROPOUT_P_RANGE_MESSAGE}{p}")
    torch._check(rng_state is not None, lambda: f"selu_ext::{op}: 'rng_state' is None; pass "
                 "the int64 tensor of 2 elements (seed, offset) that "
                 "torch.ops.selu_ext.dropout_rng_state returns")
    torch._check(rng_state.dtype == torch.int64 and rng_state.numel() == 2,
                 lambda: f"selu_ext::{op}: 'rng_state' must be a contiguous int64 tensor of 2 "
                 "elements (seed, offset), as returned by torch.ops.selu_ext.dropout_rng_state")
    # A meta rng_state routes a call with real tensors here (Meta outranks CPU and
    # CUDA in dispatch): without this check it would return uninitialized memory.
    if like is not None:
        torch._check(rng_state.device.type == "cpu" or rng_state.device == like.device,
                     lambda: f"selu_ext::{op}: 'rng_state' must be on the CPU or on the input's "
                     f"device ({like.device}), but it is on {rng_state.device}")


@torch.library.register_fake("selu_ext::selu")
def _selu_fake(self, save_output=False):
    _check_float(self, "selu", "self")
    return torch.empty_like(self)


@torch.library.register_fake("selu_ext::selu_")
def _selu_inplace_fake(self):
    _check_float(self, "selu_", "self")


@torch.library.register_fake("selu_ext::selu_backward")
def _selu_backward_fake(grad_output, self_or_result, is_result=True):
    arg = "result" if is_result else "self"
    _check_float(grad_output, "selu_backward", "grad_output")
    _check_float(self_or_result, "selu_backward", arg)
    _check_same(grad_output, self_or_result, "selu_backward", "grad_output", arg)
    return torch.empty_like(self_or_result)


@torch.library.register_fake("selu_ext::dropout_rng_state")
def _dropout_rng_state_fake(device):
    return torch.empty(2, dtype=torch.int64, device=device)


@torch.library.register_fake("selu_ext::dropout_rng_state.like")
def _dropout_rng_state_like_fake(self):
    return torch.empty(2, dtype=torch.int64, device=self.device)


@torch.library.register_fake("selu_ext::alpha_dropout")
def _alpha_dropout_fake(self, p, rng_state):
    _check_float(self, "alpha_dropout", "self")
    _check_dropout(p, rng_state, "alpha_dropout", self)
    return torch.empty_like(self)


@torch.library.register_fake("selu_ext::alpha_dropout_")
def _alpha_dropout_inplace_fake(self, p, rng_state):
    _check_float(self, "alpha_dropout_", "self")
    _check_dropout(p, rng_state, "alpha_dropout_", self)


@torch.library.register_fake("selu_ext::alpha_dropout_backward")
def _alpha_dropout_backward_fake(grad_output, p, rng_state):
    _check_float(grad_output, "alpha_dropout_backward", "grad_output")
    _check_dropout(p, rng_state, "alpha_dropout_backward", grad_output)
    return torch.empty_like(grad_output)


@torch.library.register_fake("selu_ext::selu_alpha_dropout")
def _selu_alpha_dropout_fake(self, p, rng_state):
    _check_float(self, "selu_alpha_dropout", "self")
    _check_dropout(p, rng_state, "selu_alpha_dropout", self)
    return torch.empty_like(self)


@torch.library.register_fake("selu_ext::selu_alpha_dropout_backward")
def _selu_alpha_dropout_backward_fake(grad_output, result, p, rng_state):
    op = "selu_alpha_dropout_backward"
    _check_float(grad_output, op, "grad_output")
    _check_float(result, op, "result")
    _check_same(grad_output, result, op, "grad_output", "result")
    _check_dropout(p, rng_state, op, result)
    return torch.empty_like(result)


# The backward ops' .grad_input forms (csrc/ops.cpp): the functional form's checks,
# and grad_input shaped as grad_output; they return nothing.
@torch.library.register_fake("selu_ext::selu_backward.grad_input")
def _selu_backward_grad_input_fake(grad_output, self_or_result, is_result=True, *, grad_input):
    _selu_backward_fake(grad_output, self_or_result, is_result)
    _check_same(grad_output, grad_input, "selu_backward", "grad_output", "grad_input")


@torch.library.register_fake("selu_ext::alpha_dropout_backward.grad_input")
def _alpha_dropout_backward_grad_input_fake(grad_output, p, rng_state, *, grad_input):
    _alpha_dropout_backward_fake(grad_output, p, rng_state)
    _check_same(grad_output, grad_input, "alpha_dropout_backward", "grad_output", "grad_input")


@torch.library.register_fake("selu_ext::selu_alpha_dropout_backward.grad_input")
def _selu_alpha_dropout_backward_grad_input_fake(grad_output, result, p, rng_state, *,
                                                 grad_input):
    _selu_alpha_dropout_backward_fake(grad_output, result, p, rng_state)
    _check_same(grad_output, grad_input, "selu_alpha_dropout_backward", "grad_output",
                "grad_input")


@torch.library.register_fake("selu_ext::dropout_keep_mask")
def _dropout_keep_mask_fake(rng_state, numel, p):
    _check_dropout(p, rng_state, "dropout_keep_mask")
    torch._check(numel >= 0, lambda: f"selu_ext::dropout_keep_mask: numel must be "
                 f"non-negative, got {numel}")
    return torch.empty(numel, dtype=torch.bool, device=rng_state.device)


# ---------------------------------------------------------------------------
# vmap rules (torch.func.vmap). The element-wise ops run once on the whole batched
# tensor. The dropout masks depend on each element's position, so one call over the
# batch gives every sample its own mask: vmap's randomness="different". With
# randomness="same" every sample gets the mask of the first; with "error" (vmap's
# default) a dropout op raises, as torch's own random ops do.


def _batch_first(info, in_dims, *tensors):
    out = []
    for t, d in zip(tensors, in_dims):
        if d is None:
            t = t.unsqueeze(0).expand((info.batch_size,) + tuple(t.shape))
        elif d != 0:
            t = t.movedim(d, 0)
        out.append(t)
    return out


def _check_rng_unbatched(in_dims, rng_index, op):
    if in_dims[rng_index] is not None:
        raise RuntimeError(f"selu_ext.{op}: vmap over rng_state is not supported; pass one "
                           "rng_state for the whole batch")


def _random_op(info, op):
    if info.randomness == "error":
        raise RuntimeError(
            f"vmap: called random operation selu_ext.{op} while in randomness error mode. "
            "Please either use the 'same' or 'different' randomness flags on vmap or perform "
            "the randomness operation out of vmap")


@torch.library.register_vmap("selu_ext::selu")
def _selu_vmap(info, in_dims, self, save_output=False):
    return selu(self, save_output), in_dims[0]


@torch.library.register_vmap("selu_ext::selu_backward")
def _selu_backward_vmap(info, in_dims, grad_output, self_or_result, is_result=True):
    g, v = _batch_first(info, in_dims[:2], grad_output, self_or_result)
    return selu_backward(g, v, is_result), 0


def _dropout_vmap(op_name, fn, n_tensors, backward=False):
    # A backward op applies the mask its forward drew. Under randomness="different"
    # that forward ran on the whole batch (the mask of its batch-wide positions);
    # otherwise it ran unbatched (vmap would have refused it with "error"), as in
    # jacrev / jacfwd / hessian of a dropout, and every sample takes its mask.
    def rule(info, in_dims, *args):
        if not backward:
            _random_op(info, op_name)
        tensors, p, rng = args[:n_tensors], args[n_tensors], args[n_tensors + 1]
        _check_rng_unbatched(in_dims, n_tensors + 1, op_name)
        tensors = _batch_first(info, in_dims[:n_tensors], *tensors)
        if info.randomness != "different":
            return torch.stack([fn(*(t[i] for t in tensors), p, rng)
                                for i in range(info.batch_size)]), 0
        return fn(*tensors, p, rng), 0

    return rule


torch.library.register_vmap("selu_ext::alpha_dropout",
                            _dropout_vmap("alpha_dropout", alpha_dropout, 1))
torch.library.register_vmap("selu_ext::alpha_dropout_backward",
                            _dropout_vmap("alpha_dropout_backward", alpha_dropout_backward, 1,
                                          backward=True))
torch.library.register_vmap("selu_ext::selu_alpha_dropout",
                            _dropout_vmap("selu_alpha_dropout", selu_alpha_dropout, 1))
torch.library.register_vmap("selu_ext::selu_alpha_dropout_backward",
                            _dropout_vmap("selu_alpha_dropout_backward",
                                          selu_alpha_dropout_backward, 2, backward=True))


# In-place ops mutate the batched tensor's physical storage directly.
@torch.library.register_vmap("selu_ext::selu_")
def _selu_inplace_vmap(info, in_dims, self):
    selu_(self)
    return None, None


@torch.library.register_vmap("selu_ext::alpha_dropout_")
def _alpha_dropout_inplace_vmap(info, in_dims, self, p, rng_state):
    _random_op(info, "alpha_dropout_")
    _check_rng_unbatched(in_dims, 2, "alpha_dropout_")
    d = in_dims[0]
    if info.randomness == "same" and d is not None:
        for i in range(info.batch_size):
            alpha_dropout_(self.select(d, i), p, rng_state)
    else:
        alpha_dropout_(self, p, rng_state)
    return None, None
