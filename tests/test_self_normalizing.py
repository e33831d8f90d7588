"""Self-normalization (Klambauer et al. 2017), end to end through selu_ext: 64 layers
of Linear(512, 512) + selu_ext SELU with LeCun-normal weights keep the activations
at mean 0 / variance 1 (every layer within mean +-0.1, variance [0.8, 1.25]); the
same stack with PyTorch's default Linear init (variance 1 / (3 fan_in)) drifts
away. Fixed seeds, batch 2048."""

import pytest
import torch
from torch import nn

import selu_ext
from selu_ext.init import lecun_normal_

DEPTH, WIDTH, BATCH = 64, 512, 2048
MEAN_BOUND, VAR_LOW, VAR_HIGH = 0.1, 0.8, 1.25


def _standardized_input(shift=0.0, scale=1.0):
    # Skewed, non-Gaussian features, standardized per feature: the fixed point is
    # reached from data, not only from a normal sample.
    g = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH, WIDTH, generator=g) ** 2
    x = (x - x.mean(dim=0)) / x.std(dim=0)
    return x * scale + shift


def _stack(lecun):
    torch.manual_seed(0)  # torch's default init draws from the default generator
    g = torch.Generator().manual_seed(1)
    layers = []
    for _ in range(DEPTH):
        linear = nn.Linear(WIDTH, WIDTH)
        if lecun:
            lecun_normal_(linear.weight, generator=g)
            nn.init.zeros_(linear.bias)
        layers += [linear, selu_ext.nn.SELU()]
    return nn.Sequential(*layers)


@torch.no_grad()
def _layer_stats(model, x):
    """(mean, variance) of the activations after every activation layer."""
    stats = []
    for m in model:
        x = m(x)
        if not isinstance(m, nn.Linear):
            stats.append((x.mean().item(), x.var().item()))
    return stats


def _inside(mean, var):
    return abs(mean) <= MEAN_BOUND and VAR_LOW <= var <= VAR_HIGH


def test_lecun_init_keeps_mean_0_variance_1_and_default_init_drifts():
    x = _standardized_input()
    lecun = _layer_stats(_stack(lecun=True), x)
    default = _layer_stats(_stack(lecun=False), x)
    assert len(lecun) == len(default) == DEPTH
    print(f"\nlast of {DEPTH} layers: LeCun init mean {lecun[-1][0]:+.4f} variance "
          f"{lecun[-1][1]:.4f}; default init mean {default[-1][0]:+.4f} variance "
          f"{default[-1][1]:.4f}")
    for i, (mean, var) in enumerate(lecun):
        assert _inside(mean, var), f"LeCun init, layer {i + 1}: mean {mean:+.4f}, var {var:.4f}"
    # PyTorch's default init shrinks the variance by about 3 per layer until the
    # bias dominates: the last layer is far outside the bounds.
    mean, var = default[-1]
    assert not _inside(mean, var)
    assert var < 0.1 * VAR_LOW


@pytest.mark.parametrize("shift,scale", [(0.5, 1.0), (0.0, 1.5), (0.0, 0.6)])
def test_perturbed_input_is_pulled_back(shift, scale):
    # The fixed point attracts: inputs off mean 0 / variance 1 end up inside the
    # bounds after the stack (the first layers may be outside).
    x = _standardized_input(shift, scale)
    stats = _layer_stats(_stack(lecun=True), x)
    mean, var = stats[-1]
    assert _inside(mean, var), (shift, scale, mean, var)


@pytest.mark.parametrize("p", [0.05, 0.2])
def test_self_normalizing_mlp_with_alpha_dropout_in_training(p):
    # SelfNormalizingMLP with the fused SELU + AlphaDropout, in training mode (the
    # dropout active): AlphaDropout keeps mean and variance, so the stack still does.
    x = _standardized_input()
    model = selu_ext.nn.SelfNormalizingMLP(WIDTH, WIDTH, 10, depth=DEPTH, dropout=p,
                                           generator=torch.Generator().manual_seed(2)).train()
    torch.manual_seed(3)
    stats = _layer_stats(model[:-1], x)
    assert len(stats) == DEPTH
    for i, (mean, var) in enumerate(stats):
        assert _inside(mean, var), f"p={p}, layer {i + 1}: mean {mean:+.4f}, var {var:.4f}"
