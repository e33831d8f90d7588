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


# TorchScript compiles these (selu_ext.functional) instead of the eager functions:
# PyTorch's own ops, so that a saved archive loads without selu_ext.
_script_selu, _script_dropout = F._script_selu, F._script_dropout


class SELU(nn.Module):
    """Drop-in for :class:`torch.nn.SELU` (same constructor, repr, state_dict and
    in-place semantics), backed by the fused selu_ext kernels.

    ``save_output=True`` makes autograd keep only the output instead of the input
    (see :func:`selu_ext.selu`): less memory, but the output must then not be modified
    in place before backward. :func:`convert` and :class:`SelfNormalizingMLP` set it
    where that holds.
    """

    __constants__ = ["inplace", "save_output"]
    inplace: bool
    save_output: bool

    def __init__(self, inplace: bool = False, *, save_output: bool = False) -> None:
        super().__init__()
        self.inplace = inplace
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


class _AlphaDropoutBase(nn.Module):
    # As torch.nn's _DropoutNd: p is checked as there (NaN passes, and fails in
    # training mode, as PyTorch's), and `inplace` is stored but, as in
    # torch.nn.AlphaDropout and FeatureAlphaDropout, not acted on.
    __constants__ = ["p", "inplace"]
    p: float
    inplace: bool

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class AlphaDropout(_AlphaDropoutBase):
    """Drop-in for :class:`torch.nn.AlphaDropout`: one kernel, and no mask or noise
    tensor kept for backward (the mask is regenerated from a 16-byte rng state)."""

    def forward(self, input: Tensor) -> Tensor:
        if torch.jit.is_scripting():
            return _script_dropout(input, self.p, self.training, False, False)
        return F.alpha_dropout(input, self.p, self.training)


class FeatureAlphaDropout(_AlphaDropoutBase):
    """Drop-in for :class:`torch.nn.FeatureAlphaDropout`: drops whole channels of
    ``(N, C, *)`` inputs."""

    def forward(self, input: Tensor) -> Tensor:
        if torch.jit.is_scripting():
            return _script_dropout(input, self.p, self.training, False, True)
        return F.feature_alpha_dropout(input, self.p, self.training)


class SELUAlphaDropout(nn.Module):
    """``nn.Sequential(SELU(), AlphaDropout(p))`` in one kernel. In eval mode it is
    SELU. Autograd keeps only the output and a 16-byte rng state in training mode,
    so the output must not be modified in place before backward (:func:`convert`
    fuses only where nothing does)."""

    __constants__ = ["p"]
    p: float

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p

    def forward(self, input: Tensor) -> Tensor:
        if torch.jit.is_scripting():
            return _script_dropout(input, self.p, self.training, True, False)
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
        if not 0 <= dropout <= 1:  # NaN too: it would silently mean "no dropout" here
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {dropout}")

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
            # Each SELU feeds a Linear, which does not modify its input: keep outputs only.
            layers.append(SELUAlphaDropout(dropout) if dropout > 0 else SELU(save_output=True))
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


# Modules that read their input and return a new tensor, never modifying the input.
_READERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
            nn.ConvTranspose3d)
# Modules that may return their input itself (or a view of it) and never modify it:
# what they return must in turn be read only.
_PASS_THROUGH = (nn.Identity, nn.Flatten, nn.Unflatten, AlphaDropout, FeatureAlphaDropout)


def _read_only_from(modules: list, j: int) -> bool:
    """True when a tensor fed to ``modules[j]`` of a plain ``nn.Sequential`` is only
    read, never modified in place (directly or through an alias) before backward."""
    for m in modules[j:]:
        t = type(m)
        if t in _READERS or t is SELUAlphaDropout or (t is SELU and not m.inplace):
            return True
        if t in _PASS_THROUGH or (t is nn.Dropout and not m.inplace):
            continue
        return False
    return False  # it leaves the Sequential: the caller may modify it


def _convert(module: nn.Module, fuse: bool, uses: dict) -> None:
    # _modules, not named_children(): that skips a module's second slot when one
    # instance sits in two, which would leave a torch module behind.
    for name, child in list(module._modules.items()):
        if child is None:
            continue
        new = _replacement(child)
        if new is not None:
            setattr(module, name, new)
        else:
            _convert(child, fuse, uses)
    # Where the SELU's output provably goes only into a module that reads it, keep
    # only the output for backward (and fuse SELU + AlphaDropout): nothing can modify
    # it in place. Anywhere else the torch.nn semantics stay.
    if type(module).forward is not nn.Sequential.forward:
        return
    keys = list(module._modules.keys())
    mods = [module._modules[k] for k in keys]
    for i, m in enumerate(mods):
        if type(m) is not SELU or m.inplace or uses.get(id(m), 0) > 1:
            continue
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        if (fuse and type(nxt) is AlphaDropout and uses.get(id(nxt), 0) <= 1
                and _read_only_from(mods, i + 2)):
            fused = SELUAlphaDropout(nxt.p)
            fused.train(nxt.training)
            # The pair's second slot becomes Identity, so indices and state_dict
            # keys of every other layer stay where they were.
            module._modules[keys[i]] = fused
            module._modules[keys[i + 1]] = nn.Identity().train(nxt.training)
            mods[i + 1] = module._modules[keys[i + 1]]
        elif _read_only_from(mods, i + 1):
            m.save_output = True


def convert(model: nn.Module, inplace: bool = False, fuse: bool = True) -> nn.Module:
    """Return ``model`` with ``torch.nn.SELU``, ``torch.nn.AlphaDropout`` and
    ``torch.nn.FeatureAlphaDropout`` replaced by selu_ext's modules. Parameters and
    buffers are untouched, so outputs are unchanged in eval mode, and the model
    behaves as before in every way PyTorch lets code observe, in-place use of the
    activations included.

    Where a SELU's output provably goes only into a module that reads it (the next
    module of a plain ``nn.Sequential`` is a Linear or ConvNd, possibly through
    Identity, Flatten or a non-in-place dropout), autograd keeps only its output
    (``save_output=True``), and with ``fuse`` a SELU followed by AlphaDropout there
    becomes one :class:`SELUAlphaDropout` (the AlphaDropout's slot becomes
    ``nn.Identity``). Copies the model first unless ``inplace=True``. Forward hooks
    registered on replaced modules are not carried over, and calls to
    ``torch.nn.functional.selu`` inside a model's ``forward`` are not converted.
    """
    _convert_warnings(model)
    if not inplace:
        model = copy.deepcopy(model)
    new = _replacement(model)
    if new is not None:
        return new
    uses: dict = {}
    for m in model.modules(remove_duplicate=False):
        uses[id(m)] = uses.get(id(m), 0) + 1
    _convert(model, fuse, uses)
    return model
