"""LeCun-normal initialization, the weight init that self-normalizing networks
assume (Klambauer et al. 2017): weights with variance 1 / fan_in.

PyTorch has no LeCun initializer, and ``torch.nn.init.calculate_gain('selu')``
returns 3/4 (chosen for kaiming_* to "keep gradients stable"), not the gain of 1
that makes SELU's fixed point at mean 0 / variance 1 hold.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Optional

import torch
from torch import Tensor, nn
from torch.nn.modules.conv import _ConvNd
from torch.nn.utils import parametrize
from torch.nn.utils.weight_norm import WeightNorm

__all__ = ["lecun_normal_", "self_normalizing_", "forward_fan_in", "KERAS_TRUNCATION_STD"]

# Standard deviation of a unit normal truncated to [-2, 2]: Keras' LecunNormal
# divides by it so the truncated weights still have variance 1 / fan_in.
KERAS_TRUNCATION_STD = 0.87962566103423978


def _fan_in(tensor: Tensor) -> int:
    if tensor.dim() < 2:
        raise ValueError(
            "lecun_normal_: fan_in cannot be computed for a tensor with fewer than 2 "
            f"dimensions (got shape {tuple(tensor.shape)}); expected a Linear weight "
            "(out_features, in_features) or a ConvNd weight (out_channels, in_channels / "
            "groups, *kernel_size)")
    return tensor.shape[1] * math.prod(tensor.shape[2:])


def lecun_normal_(tensor: Tensor, truncated: bool = False,
                  generator: Optional[torch.Generator] = None) -> Tensor:
    """Fill ``tensor`` in place with LeCun-normal values: mean 0, standard deviation
    ``1 / sqrt(fan_in)``, where ``fan_in = tensor.shape[1] * prod(tensor.shape[2:])``
    (input features of a Linear weight; input channels / groups times kernel size of
    a ConvNd weight). Returns ``tensor``.

    Args:
        tensor: a weight with at least 2 dimensions.
        truncated: ``False`` (default) draws from the plain normal N(0, 1/fan_in), the
            distribution of the paper, whose fixed-point analysis assumes exactly
            that variance. ``True`` reproduces Keras' ``LecunNormal``: a normal cut
            at two standard deviations, with the standard deviation divided by
            0.87962566103423978 so the variance is still 1/fan_in.
        generator: a :class:`torch.Generator` for reproducible draws.
    """
    return _fill_lecun(tensor, lambda: _fan_in(tensor), truncated, generator)


def _fill_lecun(tensor: Tensor, fan_in: Callable[[], float], truncated: bool,
                generator: Optional[torch.Generator]) -> Tensor:
    # As torch.nn.init's initializers: a zero-element tensor (nn.Linear(0, 4)'s
    # weight, whose fan_in is 0) is returned with a warning, before its fan-in is
    # looked at.
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return tensor
    std = 1.0 / math.sqrt(fan_in())
    with torch.no_grad():
        if not truncated:
            return tensor.normal_(0.0, std, generator=generator)
        std /= KERAS_TRUNCATION_STD
        return torch.nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std,
                                           generator=generator)


def forward_fan_in(module: nn.Module) -> float:
    """The number of inputs summed into each output of a Linear, ConvNd or
    ConvTransposeNd: the n of the fixed-point analysis, whose weights need variance
    1 / n. ``in_features`` for Linear; ``in_channels / groups * prod(kernel_size)``
    for ConvNd. For ConvTransposeNd, ``in_channels / groups * prod(kernel_size) /
    prod(stride)``: each input is scattered over ``prod(kernel_size)`` outputs
    ``stride`` apart, so an output receives that many terms on average (exactly, in
    the interior, when the kernel size is a multiple of the stride). That is not
    ``torch.nn.init``'s fan_in of a transposed weight (``weight.shape[1] *
    prod(kernel_size)``, its forward fan-out), which ``lecun_normal_(weight)`` uses.
    """
    if isinstance(module, nn.Linear):
        return float(module.in_features)
    if isinstance(module, _ConvNd):
        n = module.in_channels // module.groups * math.prod(module.kernel_size)
        if module.transposed:
            return n / math.prod(module.stride)
        return float(n)
    raise TypeError(f"selu_ext.init.forward_fan_in: expected a Linear, ConvNd or "
                    f"ConvTransposeNd module, got {type(module).__name__}")


def self_normalizing_(model: nn.Module, truncated: bool = False,
                      generator: Optional[torch.Generator] = None) -> nn.Module:
    """Initialize ``model`` for self-normalization, in place: LeCun-normal weights
    (variance ``1 / forward_fan_in(layer)``) and zero biases for every Linear, ConvNd
    and ConvTransposeNd in it (output layers included), the fix
    :func:`selu_ext.diagnose` suggests for weights off the LeCun band. Other layers
    are left alone. Returns ``model``.

    ConvTransposeNd layers are included, with the fan-in their forward pass really
    sums (see :func:`forward_fan_in`), because a SELU after a transposed convolution
    needs the same variance-1 input as after any other layer. A parametrized weight
    (``torch.nn.utils.parametrizations.weight_norm``, ...) is assigned the LeCun
    draw, which its parametrizations' ``right_inverse`` turns into their parameters;
    the deprecated ``torch.nn.utils.weight_norm`` gets ``weight_v`` = the draw and
    ``weight_g`` = its norm.

    Args:
        model: any module (or a single layer).
        truncated, generator: as for :func:`lecun_normal_`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError("selu_ext.init.self_normalizing_: argument 'model' must be a "
                        f"torch.nn.Module, not {type(model).__name__}")
    for name, m in model.named_modules():
        if not isinstance(m, (nn.Linear, _ConvNd)):
            continue
        if isinstance(m.weight, nn.parameter.UninitializedParameter):
            raise ValueError(f"selu_ext.init.self_normalizing_: layer '{name or type(m).__name__}' "
                             "is a lazy module whose weight is not materialized yet; run one "
                             "forward pass first")
        old_norm = next((h for h in m._forward_pre_hooks.values()
                         if isinstance(h, WeightNorm) and h.name == "weight"), None)
        if parametrize.is_parametrized(m, "weight") or old_norm is not None:
            # m.weight is computed from other parameters: filling it in place would
            # change nothing.
            weight = torch.empty_like(m.weight)
            _fill_lecun(weight, lambda: forward_fan_in(m), truncated, generator)
            with torch.no_grad():
                if old_norm is None:
                    m.weight = weight
                else:
                    m.weight_v.copy_(weight)
                    m.weight_g.copy_(torch.norm_except_dim(weight, 2, old_norm.dim))
                    m.weight = old_norm.compute_weight(m)
        else:
            _fill_lecun(m.weight, lambda: forward_fan_in(m), truncated, generator)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    return model
