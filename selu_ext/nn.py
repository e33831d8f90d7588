"""Modules: drop-ins for torch.nn.SELU, AlphaDropout and FeatureAlphaDropout, the
fused SELUAlphaDropout, a self-normalizing MLP builder, and ``convert`` to move an
existing model onto selu_ext."""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Optional

import torch
from torch import Tensor, nn

from . import functional as F
from .diagnose import _convert_warnings
from .init import lecun_normal_

__all__ = [
    "SELU",
    "AlphaDropout",
    "FeatureAlphaDropout",
    "SELUAlphaDropout",
    "SelfNormalizingMLP",
    "convert",
]


class SELU(nn.Module):
    """Drop-in for :class:`torch.nn.SELU` (same constructor, repr, state_dict and
    in-place semantics), backed by the fused selu_ext kernels. Autograd keeps only
    the output."""

    __constants__ = ["inplace"]
    inplace: bool

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.selu(input, self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class _AlphaDropoutBase(nn.Module):
    __constants__ = ["p", "inplace"]
    p: float
    inplace: bool

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        # The functions' check: torch.nn's modules let NaN through to fail only in
        # training mode; refusing it here names the mistake where it is made.
        F._check_p(p)
        self.p = p
        self.inplace = inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class AlphaDropout(_AlphaDropoutBase):
    """Drop-in for :class:`torch.nn.AlphaDropout`: one kernel, and no mask or noise
    tensor kept for backward (the mask is regenerated from a 16-byte rng state)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.alpha_dropout(input, self.p, self.training, self.inplace)


class FeatureAlphaDropout(_AlphaDropoutBase):
    """Drop-in for :class:`torch.nn.FeatureAlphaDropout`: drops whole channels of
    ``(N, C, *)`` inputs."""

    def forward(self, input: Tensor) -> Tensor:
        return F.feature_alpha_dropout(input, self.p, self.training, self.inplace)


class SELUAlphaDropout(nn.Module):
    """``nn.Sequential(SELU(), AlphaDropout(p))`` in one kernel. In eval mode it is
    SELU. Autograd keeps only the output and a 16-byte rng state."""

    __constants__ = ["p"]
    p: float

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        F._check_p(p)
        self.p = p

    def forward(self, input: Tensor) -> Tensor:
        return F.selu_alpha_dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SelfNormalizingMLP(nn.Sequential):
    """A self-normalizing network (Klambauer et al. 2017) as an ``nn.Sequential``:
    ``depth`` blocks of Linear + SELU (+ AlphaDropout, fused, when ``dropout > 0``),
    then a Linear to ``out_features``. Every Linear has LeCun-normal weights and zero
    bias, so activations stay near mean 0 / variance 1 without normalization layers.

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
        F._check_p(dropout)

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
            layers.append(SELUAlphaDropout(dropout) if dropout > 0 else SELU())
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

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            # nn.Sequential would call this class's constructor, whose arguments are
            # layer sizes, not layers: a slice is a plain Sequential of those layers.
            return nn.Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)


def _replacement(m: nn.Module) -> Optional[nn.Module]:
    if type(m) is nn.SELU:
        new = SELU(inplace=m.inplace)
    elif type(m) is nn.AlphaDropout:
        new = AlphaDropout(m.p, inplace=m.inplace)
    elif type(m) is nn.FeatureAlphaDropout:
        new = FeatureAlphaDropout(m.p, inplace=m.inplace)
    else:
        return None
    new.train(m.training)
    return new


def _convert(module: nn.Module, fuse: bool) -> None:
    # _modules, not named_children(): that skips a module's second slot when one
    # instance sits in two, which would leave a torch module behind.
    for name, child in list(module._modules.items()):
        if child is None:
            continue
        new = _replacement(child)
        if new is not None:
            setattr(module, name, new)
        else:
            _convert(child, fuse)
    if fuse and isinstance(module, nn.Sequential):
        keys = list(module._modules.keys())
        for k0, k1 in zip(keys, keys[1:]):
            m0, m1 = module._modules[k0], module._modules[k1]
            if type(m0) is SELU and type(m1) is AlphaDropout:
                fused = SELUAlphaDropout(m1.p)
                fused.train(m1.training)
                # The pair's second slot becomes Identity, so indices and state_dict
                # keys of every other layer stay where they were.
                module._modules[k0] = fused
                module._modules[k1] = nn.Identity().train(m1.training)


def convert(model: nn.Module, inplace: bool = False, fuse: bool = True) -> nn.Module:
    """Return ``model`` with ``torch.nn.SELU``, ``torch.nn.AlphaDropout`` and
    ``torch.nn.FeatureAlphaDropout`` replaced by selu_ext's modules, and (``fuse``)
    each SELU directly followed by AlphaDropout inside an ``nn.Sequential`` replaced
    by one :class:`SELUAlphaDropout` (the AlphaDropout's slot becomes
    ``nn.Identity``). Parameters and buffers are untouched, so outputs are unchanged
    in eval mode. Copies the model first unless ``inplace=True``. Forward hooks
    registered on replaced modules are not carried over, and calls to
    ``torch.nn.functional.selu`` inside a model's ``forward`` are not converted.
    """
    _convert_warnings(model)
    if not inplace:
        model = copy.deepcopy(model)
    new = _replacement(model)
    if new is not None:
        return new
    _convert(model, fuse)
    return model
