"""Sharding rules for DTensor (torch.distributed.tensor), registered on the first
DTensor that reaches selu_ext (functional._is_dtensor), so importing selu_ext never
imports torch.distributed.

SELU and its backward are element-wise: any Shard(d) or Replicate() layout is kept
as it is. They are not linear, so a Partial() input is first redistributed (to one
of the accepted layouts), as DTensor does for PyTorch's own non-linear pointwise
ops. Dropout on DTensors is PyTorch's (see functional.alpha_dropout): its masks
come from DTensor's own random-number tracker.
"""

from __future__ import annotations

import torch


def _elementwise(n_tensors: int):
    """Accepted (output, input) placements of an element-wise op whose first
    ``n_tensors`` arguments are tensors of one shape."""

    def rule(*args, **kwargs):
        from torch.distributed.tensor import Replicate, Shard

        ndim = args[0].ndim
        rest = [None] * (len(args) - n_tensors)
        accepted = [([Replicate()], [Replicate()] * n_tensors + rest)]
        for d in range(ndim):
            accepted.append(([Shard(d)], [Shard(d)] * n_tensors + rest))
        return accepted

    return rule


def register() -> None:
    from torch.distributed.tensor.experimental import register_sharding

    ops = torch.ops.selu_ext
    register_sharding(ops.selu.default)(_elementwise(1))
    register_sharding(ops.selu_backward.default)(_elementwise(2))
