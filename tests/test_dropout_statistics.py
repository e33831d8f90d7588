"""Statistics of AlphaDropout's mask and output, with bounds derived from the sample
size: every check allows 6 standard deviations of its estimator (computed from n, p
and the exact moments of the output), so a correct implementation fails one with
probability below 1e-8, while a wrong coefficient or a biased mask misses by far
more. Everything is seeded, so a run is also reproducible.

- the drop rate is p (binomial standard deviation sqrt(p(1-p)/n)), in every
  residue class of the element index (SIMD lanes, Philox words) and for disjoint
  pairs of elements at several distances (independence); consecutive calls and
  neighbouring rng states give independent masks;
- on standard-normal input (and SELU of it, for the fused op) the output has mean 0
  and variance 1, AlphaDropout's defining property, for p in {0.05, 0.1, 0.2, 0.5};
- FeatureAlphaDropout: the same, per channel.
"""

import math

import pytest
import torch

import selu_ext
from conftest import (DEVICES, MOMENTS_CLOSED_FORM, MOMENTS_QUADRATURE, SIGMAS, ops,
                      require_device, selu_reference)
from dropout_common import is_dropped, is_value

P_VALUES = [0.05, 0.1, 0.2, 0.5]
N = 1 << 22


def _assert_rate(count_or_rate, n, q, what):
    rate = float(count_or_rate)
    bound = SIGMAS * math.sqrt(q * (1 - q) / n)
    assert abs(rate - q) <= bound, f"{what}: {rate:.6f} vs {q:.6f} (bound {bound:.2e}, n={n})"


def _selu_moments():
    """E[selu(z)^k], k = 1..4, for z ~ N(0, 1), by Simpson's rule on [-40, 40] in
    float64 (the integrand is smooth on each side of 0, a grid point)."""
    z = torch.linspace(-40.0, 40.0, 800_001, dtype=torch.float64)
    s = selu_reference(z)
    phi = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    w = torch.ones_like(z)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    h = (z[1] - z[0]).item()
    return [float((w * s ** k * phi).sum() * h / 3) for k in range(1, 5)]


def _output_moments(p, fused):
    """(E[y], E[y^2], E[y^4]) of y = AlphaDropout(s) for s = z or selu(z), z ~ N(0, 1)."""
    a, b, d = selu_ext.alpha_dropout_coefficients(p)
    if fused:
        m1, m2, m3, m4 = _selu_moments()
    else:
        m1, m2, m3, m4 = 0.0, 1.0, 0.0, 3.0
    q = 1 - p
    # E[(a s + b)^k] by the binomial theorem.
    k1 = a * m1 + b
    k2 = a * a * m2 + 2 * a * b * m1 + b * b
    k4 = a**4 * m4 + 4 * a**3 * b * m3 + 6 * a**2 * b**2 * m2 + 4 * a * b**3 * m1 + b**4
    return q * k1 + p * d, q * k2 + p * d * d, q * k4 + p * d**4


def test_selu_fixed_point():
    # SELU's constants make N(0, 1) -> mean 0, variance 1: the premise of the fused
    # op's statistics below (and of self-normalizing networks).
    m1, m2, _, _ = _selu_moments()
    assert abs(m1) < MOMENTS_QUADRATURE and abs(m2 - 1) < MOMENTS_QUADRATURE, (m1, m2)


@pytest.mark.parametrize("p", P_VALUES)
def test_closed_form_moments(p):
    # AlphaDropout's coefficients give mean 0 and variance 1 exactly.
    mean, second, _ = _output_moments(p, fused=False)
    assert abs(mean) < MOMENTS_CLOSED_FORM and abs(second - 1) < MOMENTS_CLOSED_FORM


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fused", [False, True], ids=["alpha_dropout", "selu_alpha_dropout"])
@pytest.mark.parametrize("p", P_VALUES)
def test_mean_zero_variance_one(device, fused, p):
    require_device(device)
    g = torch.Generator().manual_seed(int(p * 1000) + fused)
    x = torch.randn(N, generator=g).to(device)
    f = selu_ext.selu_alpha_dropout if fused else selu_ext.alpha_dropout
    y = f(x, p, training=True, seed=1000 + int(p * 1000)).to(torch.float64)
    mean, second, fourth = _output_moments(p, fused)
    # The population mean is 0 and E[y^2] = 1 (so the variance is 1), up to the
    # quadrature's error carried through a, b and p.
    assert abs(mean) < 10 * MOMENTS_QUADRATURE and abs(second - 1) < 10 * MOMENTS_QUADRATURE
    y_mean = y.mean().item()
    y_second = (y * y).mean().item()
    mean_bound = SIGMAS * math.sqrt(second / N)
    second_bound = SIGMAS * math.sqrt((fourth - second**2) / N)
    print(f"p={p}: mean {y_mean:+.5f} (bound {mean_bound:.4f}), variance "
          f"{y.var().item():.5f}, E[y^2] {y_second:.5f} (bound {second_bound:.4f})")
    assert abs(y_mean - mean) <= mean_bound
    assert abs(y_second - second) <= second_bound
    # The input met the same bounds (the sample is not what makes this pass).
    xd = (selu_reference(x) if fused else x.to(torch.float64))
    assert abs(xd.mean().item()) <= SIGMAS / math.sqrt(N)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn", ["alpha_dropout", "selu_alpha_dropout"])
@pytest.mark.parametrize("p", [0.001, 0.05, 0.1, 0.2, 1 / 3, 0.5, 0.9])
def test_drop_rate(device, fn, p):
    require_device(device)
    x = torch.zeros(N, device=device)  # kept -> b, dropped -> the dropped value
    y = getattr(selu_ext, fn)(x, p, training=True, seed=7 + int(p * 1e4))
    _, b, d = selu_ext.alpha_dropout_coefficients(p)
    dropped, kept = is_value(y, d).cpu(), is_value(y, b).cpu()
    assert bool((dropped ^ kept).all())  # every element is one or the other
    _assert_rate(dropped.double().mean(), N, p, f"{fn} drop rate")
    # Every residue class of the index: SIMD lanes (i mod 16) must all drop at rate
    # p, and so must each of the eight 16-bit halves of a Philox output's words,
    # which the mask layout (csrc/selu.h) gives to elements with j = (i / 32) mod 8.
    by_lane = dropped.view(-1, 16).double().mean(dim=0)
    for lane, rate in enumerate(by_lane.tolist()):
        _assert_rate(rate, N // 16, p, f"{fn} drop rate of lane {lane} (mod 16)")
    by_half = dropped.view(-1, 8, 32).double().mean(dim=(0, 2))
    for j, rate in enumerate(by_half.tolist()):
        _assert_rate(rate, N // 8, p, f"{fn} drop rate of Philox half-word {j}")
    # The start and the end of the tensor (blocks / threads).
    for part, chunk in enumerate(dropped.view(8, -1)):
        _assert_rate(chunk.double().mean(), N // 8, p, f"{fn} drop rate of eighth {part}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [0.1, 0.5])
@pytest.mark.parametrize("lag", [1, 2, 3, 4, 5, 8, 64, 1024])
def test_drops_are_pairwise_independent(device, p, lag):
    # Disjoint pairs (i, i + lag): both dropped with probability p^2 when independent.
    require_device(device)
    rng = torch.tensor([99 + lag, 3], dtype=torch.int64, device=device)
    dropped = ~ops.dropout_keep_mask(rng, N, p).cpu()
    usable = N - N % (2 * lag)
    pairs = dropped[:usable].view(-1, 2, lag)
    both = (pairs[:, 0] & pairs[:, 1]).double()
    _assert_rate(both.mean(), both.numel(), p * p, f"pairs at lag {lag}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_consecutive_calls_get_independent_masks(device, p):
    # Two masks drawn one after the other agree on a unit with probability
    # p^2 + (1-p)^2 if independent; a repeated or shifted stream would not.
    require_device(device)
    n = 1 << 16
    x = torch.zeros(n, device=device)
    torch.manual_seed(0)
    d1 = is_dropped(selu_ext.alpha_dropout(x, p, True), p).double()
    d2 = is_dropped(selu_ext.alpha_dropout(x, p, True), p).double()
    _assert_rate((d1 == d2).double().mean(), n, p * p + (1 - p) ** 2, "agreement")
    _assert_rate((d1 * d2).mean(), n, p * p, "both dropped")


@pytest.mark.parametrize("device", DEVICES)
def test_keep_mask_across_states(device):
    # Many small masks from consecutive offsets and seeds: the rate holds for each
    # state's stream as a whole, and streams of neighbouring states differ.
    require_device(device)
    p, n = 0.3, 1 << 12
    masks = torch.stack([ops.dropout_keep_mask(torch.tensor([s, o], device=device), n, p).cpu()
                         for s in (0, 1, 2**63 - 1) for o in range(0, 64, 4)])
    _assert_rate((~masks).double().mean(), masks.numel(), p, "drop rate over states")
    agree = (masks[:-1] == masks[1:]).double().mean()
    q = p * p + (1 - p) ** 2
    _assert_rate(agree, masks[1:].numel(), q, "agreement of neighbouring states")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_feature_alpha_dropout_statistics(device, p):
    require_device(device)
    n, c, k = 256, 256, 64  # M = N*C channels of K elements each
    m = n * c
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, c, 8, 8, generator=g).to(device)
    y = selu_ext.feature_alpha_dropout(x, p, training=True, seed=int(p * 100))
    a, b, d = selu_ext.alpha_dropout_coefficients(p)
    q = 1 - p
    # Channel drop rate.
    channel_dropped = is_value(y.view(m, k), d).all(dim=1)
    y = y.to(torch.float64)
    _assert_rate(channel_dropped.double().mean(), m, p, "channel drop rate")
    # Mean: channel means m_c are iid with E = 0, E[m_c^2] = q (a^2/K + b^2) + p d^2.
    var_mc = q * (a * a / k + b * b) + p * d * d
    mean_bound = SIGMAS * math.sqrt(var_mc / m)
    # E[y^2]: channel means s_c of y^2 are iid with E = 1 and
    # Var = q (E[(a x + b)^2]^2 + Var((a x + b)^2) / K) + p d^4 - 1.
    k2 = a * a + b * b
    k4 = 3 * a**4 + 6 * a * a * b * b + b**4
    var_sc = q * (k2 * k2 + (k4 - k2 * k2) / k) + p * d**4 - 1.0
    second_bound = SIGMAS * math.sqrt(var_sc / m)
    y_mean, y_second = y.mean().item(), (y * y).mean().item()
    print(f"p={p}: mean {y_mean:+.5f} (bound {mean_bound:.4f}), E[y^2] {y_second:.5f} "
          f"(bound {second_bound:.4f})")
    assert abs(y_mean) <= mean_bound
    assert abs(y_second - 1) <= second_bound
