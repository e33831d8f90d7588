"""LeCun-normal initialization, the weight init that self-normalizing networks
assume (Klambauer et al. 2017): weights with variance 1 / fan_in.

PyTorch has no LeCun initializer, and ``torch.nn.init.calculate_gain('selu')``
returns 3/4 (chosen for kaiming_* to "keep gradients stable"), not the gain of 1
that makes SELU's fixed point at mean 0 / variance 1 hold.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

__all__ = ["lecun_normal_", "KERAS_TRUNCATION_STD"]

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
    fan_in = tensor.shape[1] * math.prod(tensor.shape[2:])
    if fan_in == 0:
        raise ValueError(f"lecun_normal_: fan_in is 0 for a tensor of shape {tuple(tensor.shape)}")
    return fan_in


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
    fan_in = _fan_in(tensor)
    std = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        if not truncated:
            return tensor.normal_(0.0, std, generator=generator)
        std /= KERAS_TRUNCATION_STD
        return torch.nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std,
                                           generator=generator)
