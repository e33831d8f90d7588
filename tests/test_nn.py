"""selu_ext.nn: the modules are drop-ins for torch's (repr, state_dict, pickle,
deepcopy), SelfNormalizingMLP's structure and initialization. convert() is in
test_convert.py."""

import copy
import io
import math
import pickle

import pytest
import torch
from torch import nn

import selu_ext
from selu_ext import nn as snn
from conftest import DEVICES, SIGMAS, require_device


PAIRS = [  # (ours, torch's), constructed alike
    (lambda: snn.SELU(), lambda: nn.SELU()),
    (lambda: snn.SELU(inplace=True), lambda: nn.SELU(inplace=True)),
    (lambda: snn.AlphaDropout(), lambda: nn.AlphaDropout()),
    (lambda: snn.AlphaDropout(0.1, inplace=True), lambda: nn.AlphaDropout(0.1, inplace=True)),
    (lambda: snn.AlphaDropout(p=0), lambda: nn.AlphaDropout(p=0)),
    (lambda: snn.FeatureAlphaDropout(), lambda: nn.FeatureAlphaDropout()),
    (lambda: snn.FeatureAlphaDropout(0.25, True), lambda: nn.FeatureAlphaDropout(0.25, True)),
]
PAIR_IDS = ["selu", "selu-inplace", "alpha", "alpha-0.1-inplace", "alpha-p0", "feature",
            "feature-0.25-inplace"]


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=PAIR_IDS)
def test_repr_and_state_dict_equal_torch(ours, theirs):
    a, b = ours(), theirs()
    assert repr(a) == repr(b)
    assert a.state_dict() == {} == b.state_dict()
    assert list(a.parameters()) == [] and list(a.buffers()) == []
    assert a.training and (a.eval().training is False)
    for attr in ("p", "inplace"):
        assert getattr(a, attr, None) == getattr(b, attr, None)


def test_fused_module_repr():
    assert repr(snn.SELUAlphaDropout()) == "SELUAlphaDropout(p=0.5)"
    assert repr(snn.SELUAlphaDropout(0.05)) == "SELUAlphaDropout(p=0.05)"
    assert snn.SELUAlphaDropout().state_dict() == {}


def test_state_dicts_load_into_torch_models_and_back():
    ours = nn.Sequential(nn.Linear(4, 8), snn.SELU(), snn.AlphaDropout(0.1), nn.Linear(8, 2))
    theirs = nn.Sequential(nn.Linear(4, 8), nn.SELU(), nn.AlphaDropout(0.1), nn.Linear(8, 2))
    theirs.load_state_dict(ours.state_dict())
    ours.load_state_dict(theirs.state_dict())
    assert ours.state_dict().keys() == theirs.state_dict().keys()


MODULES = [lambda: snn.SELU(inplace=True), lambda: snn.AlphaDropout(0.3, inplace=True),
           lambda: snn.FeatureAlphaDropout(0.2), lambda: snn.SELUAlphaDropout(0.1),
           lambda: snn.SelfNormalizingMLP(5, 7, 3, depth=2, dropout=0.1)]


@pytest.mark.parametrize("make", MODULES, ids=["selu", "alpha", "feature", "fused", "mlp"])
@pytest.mark.parametrize("how", ["pickle", "deepcopy", "torch.save"])
def test_round_trips(make, how):
    m = make().eval()
    if how == "pickle":
        m2 = pickle.loads(pickle.dumps(m))
    elif how == "deepcopy":
        m2 = copy.deepcopy(m)
    else:
        buf = io.BytesIO()
        torch.save(m, buf)
        buf.seek(0)
        m2 = torch.load(buf, weights_only=False)
    assert type(m2) is type(m) and repr(m2) == repr(m) and m2.training is False
    for k, v in m.state_dict().items():
        assert torch.equal(m2.state_dict()[k], v)
    x = torch.randn(4, 5)
    torch.testing.assert_close(m2(x.clone()), m(x.clone()), rtol=0, atol=0)
    # Training behaviour survives too (same seed, same mask).
    m.train(), m2.train()
    torch.manual_seed(0)
    y = m(x.clone())
    torch.manual_seed(0)
    torch.testing.assert_close(m2(x.clone()), y, rtol=0, atol=0)


def test_modules_compute_what_functional_does():
    x = torch.randn(6, 4, 3)
    torch.testing.assert_close(snn.SELU()(x), selu_ext.selu(x), rtol=0, atol=0)
    for module, fn in ((snn.AlphaDropout, selu_ext.alpha_dropout),
                       (snn.FeatureAlphaDropout, selu_ext.feature_alpha_dropout),
                       (snn.SELUAlphaDropout, selu_ext.selu_alpha_dropout)):
        torch.manual_seed(4)
        y = module(0.3)(x)
        torch.manual_seed(4)
        torch.testing.assert_close(y, fn(x, 0.3, training=True), rtol=0, atol=0)


# ---------------------------------------------------------------------------
# SelfNormalizingMLP


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_mlp_structure(dropout):
    m = snn.SelfNormalizingMLP(20, 64, 5, depth=3, dropout=dropout)
    assert isinstance(m, nn.Sequential) and len(m) == 2 * 3 + 1
    assert m.depth == 3 and m.dropout == dropout
    shapes = [(l.in_features, l.out_features) for l in m if isinstance(l, nn.Linear)]
    assert shapes == [(20, 64), (64, 64), (64, 64), (64, 5)]
    for i in range(3):
        assert isinstance(m[2 * i], nn.Linear)
        act = m[2 * i + 1]
        if dropout:
            assert type(act) is snn.SELUAlphaDropout and act.p == dropout
        else:
            assert type(act) is snn.SELU
    assert isinstance(m[-1], nn.Linear)
    y = m(torch.randn(9, 20))
    assert y.shape == (9, 5)
    # eval mode is deterministic (dropout off); training mode is not.
    x = torch.randn(9, 20)
    m.eval()
    assert torch.equal(m(x), m(x))
    if dropout:
        m.train()
        assert not torch.equal(m(x), m(x))


def test_mlp_slicing_and_indexing():
    m = snn.SelfNormalizingMLP(6, 8, 2, depth=3)
    head = m[:4]
    assert type(head) is snn.Sequential and len(head) == 4
    assert head[0] is m[0] and head[3] is m[3]
    assert m[-1] is list(m)[-1]
    x = torch.randn(5, 6)
    torch.testing.assert_close(m[4:](head(x)), m(x), rtol=0, atol=0)


def test_mlp_init_is_lecun_normal_with_zero_bias():
    m = snn.SelfNormalizingMLP(300, 400, 200, depth=3, generator=torch.Generator().manual_seed(0))
    for layer in m:
        if not isinstance(layer, nn.Linear):
            continue
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))
        w = layer.weight.detach().double()
        var, n = 1 / layer.in_features, w.numel()
        assert abs(w.mean().item()) <= SIGMAS * math.sqrt(var / n)
        # E[w^2] of N(0, var): standard deviation var * sqrt(2 / n).
        assert abs((w * w).mean().item() - var) <= SIGMAS * var * math.sqrt(2 / n)
        assert layer.weight.requires_grad


def test_mlp_options():
    m = snn.SelfNormalizingMLP(4, 8, 2, depth=1, bias=False, dtype=torch.float64)
    assert all(l.bias is None for l in m if isinstance(l, nn.Linear))
    assert all(p.dtype == torch.float64 for p in m.parameters())
    assert m(torch.randn(3, 4, dtype=torch.float64)).dtype == torch.float64
    # device=None follows torch's default device, as nn.Linear does.
    with torch.device("meta"):
        m = snn.SelfNormalizingMLP(4, 8, 2, depth=1)
    assert all(p.device.type == "meta" for p in m.parameters())


@pytest.mark.parametrize("device", DEVICES)
def test_mlp_device(device):
    require_device(device)
    m = snn.SelfNormalizingMLP(4, 8, 2, depth=2, dropout=0.2, device=device)
    assert all(p.device.type == device for p in m.parameters())
    y = m(torch.randn(3, 4, device=device))
    y.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_mlp_generator_reproducible_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = snn.SelfNormalizingMLP(16, 32, 4, depth=2, generator=torch.Generator().manual_seed(7))
    b = snn.SelfNormalizingMLP(16, 32, 4, depth=2, generator=torch.Generator().manual_seed(7))
    c = snn.SelfNormalizingMLP(16, 32, 4, depth=2, generator=torch.Generator().manual_seed(8))
    assert torch.equal(torch.get_rng_state(), state)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb)
        assert pc.dim() == 1 or not torch.equal(pa, pc)  # biases are all zero
    torch.manual_seed(1)
    d = snn.SelfNormalizingMLP(16, 32, 4, depth=2)
    torch.manual_seed(1)
    e = snn.SelfNormalizingMLP(16, 32, 4, depth=2)
    assert all(torch.equal(p, q) for p, q in zip(d.parameters(), e.parameters()))


@pytest.mark.parametrize("kwargs,match", [
    (dict(depth=0), "depth must be at least 1"),
    (dict(depth=2, dropout=-0.1), "between 0 and 1"),
    (dict(depth=2, dropout=1.5), "between 0 and 1"),
    (dict(depth=2, dropout=float("nan")), "between 0 and 1"),
])
def test_mlp_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        snn.SelfNormalizingMLP(4, 8, 2, **kwargs)


def test_mlp_pickled_before_fuse_and_save_output_existed():
    """Whole-module pickles of a SelfNormalizingMLP from before issue 21 lack
    Sequential.fuse and SELUAlphaDropout.save_output; they load with the old
    behaviour (fused, output kept)."""
    m = snn.SelfNormalizingMLP(4, 8, 2, depth=2, dropout=0.1)
    del m.__dict__["fuse"], m[1].__dict__["save_output"]
    old = pickle.loads(pickle.dumps(m))
    assert old.fuse is True and old[1].save_output is True
    old.train()
    assert old(torch.randn(3, 4)).shape == (3, 2)
