"""selu_ext.init.lecun_normal_: standard deviation 1/sqrt(fan_in) for Linear and
ConvNd weights (statistical bounds from the sample size: 6 standard deviations of
each estimator), Keras' truncated variant, generator reproducibility, errors;
zero-element and parametrized weights as torch.nn.init treats them."""

import math

import pytest
import torch
from torch import nn

from conftest import F64_FEW_ULP, SIGMAS
from selu_ext.init import KERAS_TRUNCATION_STD, lecun_normal_, self_normalizing_


def _phi(x):
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _truncated_moments(c):
    """(E[Z^2], E[Z^4]) of a standard normal truncated to [-c, c], in closed form
    (integration by parts: int z^k phi = -z^(k-1) phi + (k-1) int z^(k-2) phi)."""
    m0 = math.erf(c / math.sqrt(2))
    m2 = m0 - 2 * c * _phi(c)
    m4 = 3 * m2 - 2 * c**3 * _phi(c)
    return m2 / m0, m4 / m0


def _check_moments(w, std, fourth_over_var2):
    """Sample mean and variance of w within 6 sigma of 0 and std^2, for iid draws with
    E[w^4] = fourth_over_var2 * std^4."""
    n = w.numel()
    x = w.detach().to(torch.float64).flatten()
    var = std * std
    mean, second = x.mean().item(), (x * x).mean().item()
    assert abs(mean) <= SIGMAS * std / math.sqrt(n), (mean, std, n)
    bound = SIGMAS * var * math.sqrt((fourth_over_var2 - 1) / n)
    assert abs(second - var) <= bound, f"E[w^2] {second:.6g} vs {var:.6g} (bound {bound:.2g})"
    return mean, second


# (module, fan_in): fan_in = in_features, or in_channels / groups * prod(kernel_size)
LAYERS = [
    (lambda: nn.Linear(300, 512), 300),
    (lambda: nn.Linear(4096, 64), 4096),
    (lambda: nn.Conv2d(32, 128, 5), 32 * 25),
    (lambda: nn.Conv2d(16, 96, 3, groups=4), 4 * 9),
    (lambda: nn.Conv1d(8, 1024, 7), 56),
    (lambda: nn.Conv3d(4, 64, (2, 3, 3)), 72),
    (lambda: nn.ConvTranspose2d(64, 32, 3), 32 * 9),  # weight is (in, out, kh, kw)
]
IDS = ["linear300", "linear4096", "conv2d", "conv2d-groups", "conv1d", "conv3d",
       "convtranspose2d"]


@pytest.mark.parametrize("make,fan_in", LAYERS, ids=IDS)
def test_std_is_one_over_sqrt_fan_in(make, fan_in):
    layer = make()
    g = torch.Generator().manual_seed(0)
    out = lecun_normal_(layer.weight, generator=g)
    assert out is layer.weight
    assert layer.weight.requires_grad and layer.weight.is_leaf
    std = 1 / math.sqrt(fan_in)
    _check_moments(layer.weight, std, 3.0)
    # Normal, not some other law with the same variance: P(|w| < std) = 0.6827.
    inside = (layer.weight.abs() < std).double().mean().item()
    q = math.erf(1 / math.sqrt(2))
    assert abs(inside - q) <= SIGMAS * math.sqrt(q * (1 - q) / layer.weight.numel())
    # torch's default init (kaiming_uniform, a=sqrt(5)) has variance 1/(3 fan_in):
    # the check above would reject it.
    default = make().weight.detach().double()
    assert (default * default).mean().item() < 0.5 * std * std


def test_keras_truncation_constant():
    # Keras divides by the standard deviation of N(0, 1) truncated to [-2, 2].
    m2, _ = _truncated_moments(2.0)
    assert KERAS_TRUNCATION_STD == pytest.approx(math.sqrt(m2), rel=F64_FEW_ULP)


@pytest.mark.parametrize("make,fan_in", LAYERS[:3], ids=IDS[:3])
def test_truncated_matches_keras(make, fan_in):
    w = make().weight
    lecun_normal_(w, truncated=True, generator=torch.Generator().manual_seed(1))
    std = 1 / math.sqrt(fan_in)
    std_trunc = std / KERAS_TRUNCATION_STD  # the normal's scale before the cut
    limit = 2 * std_trunc
    assert w.abs().max().item() <= limit
    # The cut is really at 2 * std_trunc: values come close to it.
    assert w.abs().max().item() > 0.95 * limit
    # Variance 1/fan_in, with the kurtosis of the truncated normal.
    m2, m4 = _truncated_moments(2.0)
    _check_moments(w, std, m4 / (m2 * m2))
    # Fraction beyond the untruncated 2*std of N(0, 1/fan_in), i.e. |Z| > 2*0.8796 in
    # units of std_trunc: P(1.7593 < |Z| < 2) / P(|Z| < 2).
    c = 2 * KERAS_TRUNCATION_STD
    q = (math.erf(2 / math.sqrt(2)) - math.erf(c / math.sqrt(2))) / math.erf(2 / math.sqrt(2))
    frac = (w.abs() > 2 * std).double().mean().item()
    assert abs(frac - q) <= SIGMAS * math.sqrt(q * (1 - q) / w.numel())


@pytest.mark.parametrize("truncated", [False, True])
def test_generator_reproducibility(truncated):
    w1, w2, w3 = (torch.empty(256, 128) for _ in range(3))
    state = torch.get_rng_state()
    lecun_normal_(w1, truncated, generator=torch.Generator().manual_seed(5))
    lecun_normal_(w2, truncated, generator=torch.Generator().manual_seed(5))
    lecun_normal_(w3, truncated, generator=torch.Generator().manual_seed(6))
    assert torch.equal(w1, w2)
    assert not torch.equal(w1, w3)
    # A generator leaves torch's default one alone.
    assert torch.equal(torch.get_rng_state(), state)
    # Without one, torch.manual_seed reproduces the draw.
    torch.manual_seed(3)
    lecun_normal_(w1, truncated)
    torch.manual_seed(3)
    lecun_normal_(w2, truncated)
    assert torch.equal(w1, w2)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_dtypes(dtype):
    w = torch.empty(512, 256, dtype=dtype)
    lecun_normal_(w, generator=torch.Generator().manual_seed(2))
    assert w.dtype == dtype
    _check_moments(w.to(torch.float64), 1 / 16, 3.0)


@pytest.mark.parametrize("shape", [(5,), ()], ids=["1d", "0d"])
def test_error_for_tensors_without_fan_in(shape):
    t = torch.empty(shape)
    with pytest.raises(ValueError, match="lecun_normal_: fan_in cannot be computed") as e:
        lecun_normal_(t)
    assert str(tuple(shape)) in str(e.value)


@pytest.mark.parametrize("shape", [(5, 0), (0, 3), (0,), (4, 0, 3)])
def test_zero_element_tensors_as_torch_init(shape):
    """As torch.nn.init.kaiming_normal_: a warning and the tensor back, before any
    fan-in is computed (issue 21, item 14)."""
    for init in (nn.init.kaiming_normal_, lecun_normal_):
        t = torch.empty(shape)
        with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
            assert init(t) is t


def test_self_normalizing_zero_width_layer():
    # nn.Linear(0, 4) itself initializes (with the same warning): so does this.
    with pytest.warns(UserWarning, match="zero-element"):
        layer = nn.Linear(0, 4)
    with pytest.warns(UserWarning, match="zero-element"):
        assert self_normalizing_(layer) is layer
    assert torch.equal(layer.bias, torch.zeros(4))


@pytest.mark.parametrize("form", ["parametrizations", "deprecated"])
@pytest.mark.filterwarnings("ignore:.*torch.nn.utils.weight_norm.*:FutureWarning")
def test_self_normalizing_weight_normed(form):
    """A weight-normed Linear gets the weights a plain one gets from the same draw,
    also after a forward (filling the computed weight in place would change nothing)."""
    weight_norm = (nn.utils.parametrizations.weight_norm if form == "parametrizations"
                   else nn.utils.weight_norm)
    torch.manual_seed(0)
    plain, normed = nn.Linear(50, 40), weight_norm(nn.Linear(50, 40))
    before = normed.weight.detach().clone()
    for m in (plain, normed):
        self_normalizing_(m, generator=torch.Generator().manual_seed(3))
    x = torch.randn(8, 50)
    torch.testing.assert_close(normed(x), plain(x))
    assert not torch.allclose(normed.weight, before)
    torch.testing.assert_close(normed.weight, plain.weight)
    assert torch.equal(normed.bias, torch.zeros(40))
