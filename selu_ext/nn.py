"""Modules: drop-ins for torch.nn.SELU, AlphaDropout and FeatureAlphaDropout
(subclasses of them), the fused SELUAlphaDropout, a Sequential that keeps only SELU
outputs where the next layer only reads them, a self-normalizing MLP builder, and
``convert`` to move an existing model onto selu_ext."""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Optional

import torch
from torch import Tensor, nn

from . import _C
from . import functional as F
from .init import lecun_normal_

__all__ = [
    "SELU",
    "AlphaDropout",
    "FeatureAlphaDropout",
    "SELUAlphaDropout",
    "Sequential",
    "SelfNormalizingMLP",
    "convert",
]


# TorchScript compiles these (selu_ext.functional) instead of the eager functions:
# PyTorch's own ops, so that a saved archive loads without selu_ext.
_script_selu, _script_dropout = F._script_selu, F._script_dropout


class SELU(nn.SELU):
    """Drop-in for :class:`torch.nn.SELU`, and a subclass of it (code that finds
    layers by type finds it): same constructor, repr, state_dict and in-place
    semantics, backed by the fused selu_ext kernels.

    ``save_output=True`` makes autograd keep only the output instead of the input
    (see :func:`selu_ext.selu`): less memory, but the output must then not be modified
    in place before backward. :class:`Sequential` does that per call where it holds.
    """

    __constants__ = ["inplace", "save_output"]
    inplace: bool
    save_output: bool

    def __init__(self, inplace: bool = False, *, save_output: bool = False) -> None:
        super().__init__(inplace)
        self.save_output = save_output

    def forward(self, input: Tensor) -> Tensor:
        if torch.jit.is_scripting():
            return _script_selu(input, self.inplace, self.save_output)
        return F.selu(input, self.inplace, save_output=self.save_output)

    def extra_repr(self) -> str:
        parts = ["inplace=True"] if self.inplace else []
        if self.save_output:
            parts.append("save_output=True")
        return ", ".join(parts)


# The dropout modules subclass torch's, whose constructor, p check, repr and
# __constants__ they keep; as there, `inplace` is stored but not acted on.


class AlphaDropout(nn.AlphaDropout):
    """Drop-in for :class:`torch.nn.AlphaDropout` (a subclass of it): one kernel, and
    no mask or noise tensor kept for backward (the mask is regenerated from a 16-byte
    rng state)."""

    def forward(self, input: Tensor) -> Tensor:
        if torch.jit.is_scripting():
            return _script_dropout(input, self.p, self.training, False, False)
        return F.alpha_dropout(input, self.p, self.training)


class FeatureAlphaDropout(nn.FeatureAlphaDropout):
    """Drop-in for :class:`torch.nn.FeatureAlphaDropout` (a subclass of it): drops
    whole channels of ``(N, C, *)`` inputs."""

    def forward(self, input: Tensor) -> Tensor:
        if torch.jit.is_scripting():
            return _script_dropout(input, self.p, self.training, False, True)
        return F.feature_alpha_dropout(input, self.p, self.training)


class SELUAlphaDropout(nn.Module):
    """``nn.Sequential(SELU(), AlphaDropout(p))`` in one kernel. In eval mode it is
    SELU. Autograd keeps only the output and a 16-byte rng state in training mode,
    so the output must not be modified in place before backward.

    ``save_output=False`` gives the pair's torch semantics instead when the module
    is called on its own (SELU keeping its input, then AlphaDropout, two kernels,
    the same mask); :class:`Sequential` still calls the fused op where the next
    layer only reads the output. :class:`SelfNormalizingMLP` builds it so.
    """

    __constants__ = ["p", "save_output"]
    p: float
    save_output: bool

    def __init__(self, p: float = 0.5, *, save_output: bool = True) -> None:
        super().__init__()
        _C._dropout_p(p, None)  # torch.nn's constructors' test (NaN passes, as there)
        self.p = p
        self.save_output = save_output

    def forward(self, input: Tensor) -> Tensor:
        if torch.jit.is_scripting():
            if self.save_output:
                return _script_dropout(input, self.p, self.training, True, False)
            return _script_dropout(_script_selu(input, False, False), self.p, self.training,
                                   False, False)
        if self.save_output:
            return F.selu_alpha_dropout(input, self.p, self.training)
        return F.alpha_dropout(F.selu(input), self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}" + ("" if self.save_output else ", save_output=False")

    def __setstate__(self, state):
        state.setdefault("save_output", True)  # pickled before the option existed
        super().__setstate__(state)


# Modules that read their input and return a new tensor, never modifying the input.
_READERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
            nn.ConvTranspose3d)
# Modules that may return their input itself (or a view of it) and never modify it:
# what they return must in turn be read only.
_PASS_THROUGH = (nn.Identity, nn.Flatten, nn.Unflatten, AlphaDropout, FeatureAlphaDropout)

_module = nn.modules.module


def _global_hooks() -> bool:
    return bool(_module._global_forward_pre_hooks or _module._global_forward_hooks
                or _module._global_backward_pre_hooks or _module._global_backward_hooks)


def _hooked(m: nn.Module) -> bool:
    # The test Module.__call__ makes before it runs hooks (a hook may read, keep or
    # modify the tensors it sees), and a forward patched onto the instance.
    return bool(m._forward_pre_hooks or m._forward_hooks or m._backward_pre_hooks
                or m._backward_hooks or "forward" in m.__dict__)


def _read_only_from(modules: list, j: int) -> bool:
    """True when a tensor fed to ``modules[j]`` in :meth:`Sequential.forward` is only
    read, never modified in place (directly, through an alias or by a hook) before
    backward."""
    for m in modules[j:]:
        if _hooked(m):
            return False
        t = type(m)
        if t in _READERS or t is SELUAlphaDropout or (t is SELU and not m.inplace):
            return True
        if t in _PASS_THROUGH or (t is nn.Dropout and not m.inplace):
            continue
        return False
    return False  # it leaves the Sequential: the caller may modify it


class Sequential(nn.Sequential):
    """:class:`torch.nn.Sequential` (a subclass, same constructor, indexing, repr
    and state_dict) whose ``forward`` keeps only a SELU's output for backward, and
    with ``fuse`` runs SELU + AlphaDropout as one :func:`selu_ext.selu_alpha_dropout`,
    where the output provably goes only into a module that reads it: the next
    modules are a Linear, ConvNd, ConvTransposeNd or non-in-place SELU, possibly
    through Identity, Flatten, Unflatten or a non-in-place dropout, none of them
    (the SELU included) with hooks. Decided per call: the modules themselves keep
    torch's semantics, so a slice whose last module is the SELU, a loop over the
    layers by hand, or a hook that modifies a tensor behaves as with torch.nn, and
    a fused AlphaDropout's ``p`` and ``training`` are still its own.
    :func:`convert` makes each plain ``nn.Sequential`` one of these.
    """

    def __init__(self, *args, fuse: bool = True) -> None:
        super().__init__(*args)
        self.fuse = fuse

    def __setstate__(self, state):
        state.setdefault("fuse", True)  # a SelfNormalizingMLP pickled before it existed
        super().__setstate__(state)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            # nn.Sequential calls type(self)(...), whose arguments a subclass such as
            # SelfNormalizingMLP may define otherwise: a slice is one of these.
            return Sequential(OrderedDict(list(self._modules.items())[idx]), fuse=self.fuse)
        return super().__getitem__(idx)

    def forward(self, input):
        if torch.jit.is_scripting():
            # TorchScript runs torch.nn's loop (and the modules' own semantics).
            for module in self:
                input = module(input)
            return input
        return self._forward_saving(input)

    @torch.jit.unused
    def _forward_saving(self, input):
        modules = list(self._modules.values())
        hooks = _global_hooks()
        i, n = 0, len(modules)
        while i < n:
            m = modules[i]
            t = type(m)
            if (t is SELU or t is SELUAlphaDropout) and not hooks and not _hooked(m):
                nxt = modules[i + 1] if i + 1 < n else None
                if t is SELUAlphaDropout:
                    if _read_only_from(modules, i + 1):
                        input = F.selu_alpha_dropout(input, m.p, m.training)
                        i += 1
                        continue
                elif not m.inplace:
                    # In eval mode the fused op keeps the input: the SELU alone
                    # (the dropout then the identity) keeps the output.
                    if (self.fuse and type(nxt) is AlphaDropout and nxt.training
                            and not _hooked(nxt) and _read_only_from(modules, i + 2)):
                        input = F.selu_alpha_dropout(input, nxt.p, nxt.training)
                        i += 2
                        continue
                    if _read_only_from(modules, i + 1):
                        input = F.selu(input, save_output=True)
                        i += 1
                        continue
            input = m(input)
            i += 1
        return input


class SelfNormalizingMLP(Sequential):
    """A self-normalizing network (Klambauer et al. 2017) as a :class:`Sequential`:
    ``depth`` blocks of Linear + SELU (+ AlphaDropout, fused, when ``dropout > 0``),
    then a Linear to ``out_features``. Every Linear has LeCun-normal weights and zero
    bias, so activations stay near mean 0 / variance 1 without normalization layers.
    Each SELU keeps only its output when called through the MLP's forward (it feeds a
    Linear); slices and layers called on their own have torch's semantics.

    Args:
        in_features, hidden_features, out_features: layer widths.
        depth: number of hidden blocks (>= 1).
        dropout: AlphaDropout probability after each hidden SELU (0 disables it).
        bias: whether the Linear layers have a bias.
        generator: a :class:`torch.Generator` for the initial weights.
    """

    def __init__(self, in_features: int, hidden_features: int, out_features: int, depth: int,
                 dropout: float = 0.0, bias: bool = True, device=None, dtype=None,
                 generator: Optional[torch.Generator] = None) -> None:
        if depth < 1:
            raise ValueError(f"SelfNormalizingMLP: depth must be at least 1, got {depth}")
        # The constructors' test, NaN refused too: it would silently mean "no dropout" here.
        _C._dropout_p(dropout, None, True)

        # Where nn.Linear(device=None) would go (torch.set_default_device included).
        target = device if device is not None else torch.empty(0).device

        def linear(n_in: int, n_out: int) -> nn.Linear:
            # skip_init: no default (kaiming-uniform) draw that lecun_normal_ would
            # overwrite, so a `generator` leaves torch's default generator untouched.
            return nn.utils.skip_init(nn.Linear, n_in, n_out, bias=bias, device=target,
                                      dtype=dtype)

        layers: list[nn.Module] = []
        width = in_features
        for _ in range(depth):
            layers.append(linear(width, hidden_features))
            layers.append(SELUAlphaDropout(dropout, save_output=False) if dropout > 0
                          else SELU())
            width = hidden_features
        layers.append(linear(width, out_features))
        super().__init__(*layers)
        self.depth = depth
        self.dropout = dropout
        for m in self:
            if isinstance(m, nn.Linear):
                lecun_normal_(m.weight, generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


# torch.nn class -> selu_ext's subclass of it. convert() changes the class of the
# instance itself, as torch's lazy modules do when they materialize: attributes,
# hooks (and their handles), and every other reference to the module stay valid.
_CONVERTED = {nn.SELU: SELU, nn.AlphaDropout: AlphaDropout,
              nn.FeatureAlphaDropout: FeatureAlphaDropout, nn.Sequential: Sequential}


def convert(model: nn.Module, inplace: bool = False, fuse: bool = True) -> nn.Module:
    """Return ``model`` with ``torch.nn.SELU``, ``torch.nn.AlphaDropout``,
    ``torch.nn.FeatureAlphaDropout`` and plain ``torch.nn.Sequential`` modules made
    selu_ext's subclasses of them (each keeps its attributes, training flag and
    hooks). The model computes what it computed before, and behaves as before in
    every way PyTorch lets code observe, in-place use of the activations included.

    Only within the forward of a (converted) :class:`Sequential` does a SELU whose
    output goes only into a module that reads it (a Linear, ConvNd, ConvTransposeNd,
    SELU or SELUAlphaDropout, possibly through pass-through modules: the rule is
    :class:`Sequential`'s) keep just its output, and, with ``fuse``, run fused with
    the AlphaDropout after it (the AlphaDropout stays in its slot, and its ``p`` and
    ``training`` drive the fused op).

    Without ``inplace`` the returned model is a new module tree whose parameters and
    buffers are the original's own (shared, not copied: an optimizer built on the
    original trains it), and the original's modules are left as they were. With
    ``inplace=True`` the modules of ``model`` are changed and ``model`` is returned.
    Calls to ``torch.nn.functional.selu`` inside a model's ``forward`` are not
    converted.
    """
    # Imported here: diagnose imports this module, and is loaded only when used.
    from .diagnose import _convert_warnings

    _convert_warnings(model)
    if not inplace:
        shared = {id(t): t for t in (*model.parameters(), *model.buffers())}
        model = copy.deepcopy(model, shared)
    for m in model.modules():
        cls = _CONVERTED.get(type(m))
        if cls is not None:
            m.__class__ = cls
            if cls is SELU:
                m.save_output = False
        if isinstance(m, Sequential):
            m.fuse = fuse
    return model
