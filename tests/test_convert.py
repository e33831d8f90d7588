"""selu_ext.nn.convert(): which torch.nn modules it replaces and fuses (nested models
included), that the original's modules are left alone unless inplace=True while its
parameters are shared, that the converted
model gives torch's outputs and gradients, and that it never turns a working model
into a failing one (outputs modified in place, residual adds, a last layer whose
output leaves the model), saving SELU's output only where that is provably safe.
The memory convert() saves is in test_saved_memory.py, its warnings about
self-normalization in test_diagnose.py."""

import pytest
import torch
from torch import nn

from conftest import (DEVICES, F32_FUSED_VS_UNFUSED, F32_NETWORK, F32_NETWORK_CUDA,
                      require_device)
from dropin_common import close, make_x, selu_kept
from selu_ext import nn as snn


# ---------------------------------------------------------------------------
# What convert() replaces, fuses and keeps


def _torch_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.SELU(), nn.AlphaDropout(0.2),          # fused pair
        nn.Flatten(),
        nn.Linear(8 * 6 * 6, 32), nn.SELU(inplace=True),               # lone SELU
        nn.Linear(32, 32), nn.SELU(), nn.FeatureAlphaDropout(0.1),     # not a pair
        nn.Linear(32, 32), nn.AlphaDropout(0.3),                       # lone dropout
        nn.Linear(32, 10),
    )


def _types(model):
    return [type(m) for m in model]


def test_convert_replaces_and_fuses():
    model = _torch_model()
    out = snn.convert(model)
    # The slots keep their modules, made selu_ext's (torch's subclasses): indices,
    # names and state_dict keys are the original's.
    assert type(out) is snn.Sequential and len(out) == len(model)
    assert _types(out) == [
        nn.Conv2d, snn.SELU, snn.AlphaDropout, nn.Flatten,
        nn.Linear, snn.SELU,
        nn.Linear, snn.SELU, snn.FeatureAlphaDropout,
        nn.Linear, snn.AlphaDropout,
        nn.Linear,
    ]
    assert out[2].p == 0.2 and out[5].inplace is True and out[7].inplace is False
    assert out[8].p == 0.1 and out[10].p == 0.3
    assert out.state_dict().keys() == model.state_dict().keys()
    assert [n for n, _ in out.named_modules()] == [n for n, _ in model.named_modules()]
    # No torch SELU / AlphaDropout left anywhere.
    left = [m for m in out.modules()
            if type(m) in (nn.SELU, nn.AlphaDropout, nn.FeatureAlphaDropout)]
    assert left == []
    # In training the pair runs fused; the in-place SELU keeps its output as torch's
    # does; the last SELU feeds a Linear through the FeatureAlphaDropout.
    x = torch.randn(4, 1, 8, 8)
    assert selu_kept(out.train()(x)) == ["fused", "output", "output"]


def test_convert_without_fusion():
    out = snn.convert(_torch_model(), fuse=False)
    assert _types(out) == _types(snn.convert(_torch_model()))
    assert selu_kept(out.train()(torch.randn(4, 1, 8, 8))) == ["output"] * 3


def test_convert_shares_parameters_and_leaves_the_original_modules_alone():
    model = _torch_model()
    before = _types(model)
    out = snn.convert(model)
    assert out is not model and _types(model) == before and type(model) is nn.Sequential
    assert all(a is not b for a, b in zip(out, model))
    # Parameters and buffers are the original's own: an optimizer built on the
    # original trains the converted model (README, API).
    for (k, v), (k2, v2) in zip(model.state_dict(keep_vars=True).items(),
                                out.state_dict(keep_vars=True).items()):
        assert k == k2 and v is v2
    same = snn.convert(model, inplace=True)
    assert same is model and _types(model) == _types(out)


@pytest.mark.parametrize("device", DEVICES)
def test_convert_keeps_eval_outputs_and_gradients(device):
    require_device(device)
    model = _torch_model().to(device).eval()
    out = snn.convert(model)
    assert not any(m.training for m in out.modules())
    x = torch.randn(16, 1, 8, 8, device=device)
    y_theirs = model(x.clone())
    y_ours = out(x.clone())
    # SELU within 2 ULP of float, through three layers (on CUDA, convolutions may
    # run in TF32, which amplifies any difference).
    tol = F32_NETWORK if device == "cpu" else F32_NETWORK_CUDA
    torch.testing.assert_close(y_ours, y_theirs, **tol)
    # Gradients too (eval mode: SELU only).
    x1 = x.clone().requires_grad_()
    x2 = x.clone().requires_grad_()
    (g1,) = torch.autograd.grad(model(x1).square().sum(), x1)
    (g2,) = torch.autograd.grad(out(x2).square().sum(), x2)
    # The squared loss doubles the differences: CUDA's rtol on both devices.
    atol = (F32_NETWORK if device == "cpu" else F32_NETWORK_CUDA)["atol"]
    torch.testing.assert_close(g2, g1, rtol=F32_NETWORK_CUDA["rtol"], atol=atol)


@pytest.mark.parametrize("device", DEVICES)
def test_fused_and_unfused_conversions_agree_in_training(device):
    # Fusing draws the same one rng state per pair as the unfused AlphaDropout, so
    # under one torch.manual_seed both give the same masks; the values agree to
    # float rounding (the fused op does not round selu(x) before scaling).
    require_device(device)
    model = _torch_model().to(device).train()
    fused, split = snn.convert(model), snn.convert(model, fuse=False)
    x = torch.randn(16, 1, 8, 8, device=device)
    torch.manual_seed(11)
    y1 = fused(x.clone())
    torch.manual_seed(11)
    y2 = split(x.clone())
    torch.testing.assert_close(y1, y2, **F32_FUSED_VS_UNFUSED)
    torch.manual_seed(12)
    assert not torch.allclose(fused(x.clone()), y1)


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 6), nn.SELU(), nn.AlphaDropout(0.1))
        self.act = nn.SELU()
        self.drop = nn.AlphaDropout(0.1)  # attributes of a plain Module: never fused

    def forward(self, x):
        return self.drop(self.act(self.body(x)))


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([_Block(), _Block()])
        self.heads = nn.ModuleDict({"a": nn.Sequential(nn.SELU(), nn.Linear(6, 2))})
        self.deep = nn.Sequential(nn.Sequential(nn.Sequential(nn.SELU(), nn.AlphaDropout(0.5))))

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.heads["a"](self.deep(x))


def test_convert_nested_models():
    net = _Net().eval()
    out = snn.convert(net)
    # A SELU whose output leaves its Sequential, or sits in a plain Module, keeps
    # torch.nn's semantics (saves its input, not fused): the caller may modify the
    # output in place. One feeding a Linear keeps only its output.
    for b in out.blocks:
        assert _types(b.body) == [nn.Linear, snn.SELU, snn.AlphaDropout]
        assert type(b.act) is snn.SELU and type(b.drop) is snn.AlphaDropout
    assert type(out.heads["a"][0]) is snn.SELU
    assert _types(out.deep[0][0]) == [snn.SELU, snn.AlphaDropout]
    x = torch.randn(5, 6)
    y = out(x)
    # blocks[0].body, blocks[0].act, blocks[1] the same, deep, heads["a"].
    assert selu_kept(y) == ["input"] * 5 + ["output"]
    torch.testing.assert_close(y, net(x), **F32_NETWORK)
    assert type(net.blocks[0].act) is nn.SELU  # original untouched


def test_convert_modes_and_edge_cases():
    # Training flags carry over module by module.
    seq = nn.Sequential(nn.SELU(), nn.AlphaDropout(0.2), nn.AlphaDropout(0.3), nn.Linear(3, 3))
    seq[2].eval()
    out = snn.convert(seq)
    assert _types(out) == [snn.SELU, snn.AlphaDropout, snn.AlphaDropout, nn.Linear]
    assert out[1].training and not out[2].training
    x = torch.randn(4, 3, requires_grad=True)
    assert selu_kept(out(x)) == ["fused"]
    # Without the Linear the pair's output leaves the Sequential: not fused.
    assert selu_kept(out[:3](x)) == ["input"]
    # A bare module converts to its selu_ext class.
    assert type(snn.convert(nn.SELU(inplace=True))) is snn.SELU
    assert snn.convert(nn.SELU(inplace=True)).inplace
    bare = snn.convert(nn.AlphaDropout(0.4).eval())
    assert type(bare) is snn.AlphaDropout and bare.p == 0.4 and not bare.training
    # Consecutive pairs, and a module shared between two slots (converted once,
    # still shared).
    act = nn.SELU()
    seq = nn.Sequential(act, nn.AlphaDropout(0.1), act, nn.AlphaDropout(0.2), nn.Linear(3, 3), act)
    out = snn.convert(seq)
    assert _types(out) == [snn.SELU, snn.AlphaDropout, snn.SELU, snn.AlphaDropout,
                           nn.Linear, snn.SELU]
    assert out[0] is out[2] is out[5]
    assert selu_kept(out(x)) == ["fused", "fused", "input"]
    # Subclasses may override forward: left alone.

    class MySELU(nn.SELU):
        def forward(self, x):
            return super().forward(x) * 2

    seq = nn.Sequential(MySELU(), nn.AlphaDropout(0.1))
    assert _types(snn.convert(seq)) == [MySELU, snn.AlphaDropout]
    # So may subclasses of nn.Sequential: they keep their class and torch's semantics
    # (README, "What still differs").

    class MySequential(nn.Sequential):
        pass

    out = snn.convert(MySequential(nn.Linear(3, 3), nn.SELU(), nn.Linear(3, 3)))
    assert type(out) is MySequential and type(out[1]) is snn.SELU
    assert selu_kept(out(x)) == ["input"]
    # Already converted: a no-op.
    once = snn.convert(_torch_model())
    assert _types(snn.convert(once)) == _types(once)


# ---------------------------------------------------------------------------
# convert(): never turns a working model into a failing one


class _Residual(nn.Module):
    def __init__(self, width=6):
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.act = nn.SELU()

    def forward(self, x):
        h = self.act(self.fc(x))
        h += x
        return h


def _residual_model():
    return nn.Sequential(_Residual(), _Residual(), nn.Linear(6, 3))


def _linear_selu_dropout():
    return nn.Sequential(nn.Linear(6, 8), nn.SELU(), nn.Dropout(0.3, inplace=True), nn.Linear(8, 3))


def _last_alpha_dropout():
    return nn.Sequential(nn.Linear(6, 8), nn.SELU(), nn.Linear(8, 5), nn.SELU(),
                         nn.AlphaDropout(0.2))


def _caller_adds(out):
    out += 1.0  # the caller modifies the model's output in place
    return out


CONVERT_CASES = {
    "residual_iadd": (_residual_model, lambda out: out),
    "selu_dropout_inplace": (_linear_selu_dropout, lambda out: out),
    "last_alpha_dropout_caller_iadd": (_last_alpha_dropout, _caller_adds),
    "last_selu_caller_relu_": (lambda: nn.Sequential(nn.Linear(6, 4), nn.SELU()), torch.relu_),
}


def _forward_backward(model, after, training, device, seed=0):
    torch.manual_seed(seed)
    model.train(training)
    x = make_x((10, 6), seed=3, requires_grad=True, device=device)
    out = after(model(x))
    out.square().sum().backward()
    return out.detach(), x.grad, [p.grad for p in model.parameters()]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fuse", [True, False], ids=["fuse", "nofuse"])
@pytest.mark.parametrize("case", list(CONVERT_CASES))
def test_convert_keeps_model_working(case, fuse, device):
    require_device(device)
    build, after = CONVERT_CASES[case]
    torch.manual_seed(0)
    reference = build().to(device, torch.float64)
    converted = snn.convert(reference, fuse=fuse)
    assert not any(type(m) in (nn.SELU, nn.AlphaDropout) for m in converted.modules())
    # Eval mode (and training without AlphaDropout): torch's outputs and gradients.
    deterministic = [False] if case == "last_alpha_dropout_caller_iadd" else [False, True]
    for training in deterministic:
        theirs = _forward_backward(reference, after, training, device)
        ours = _forward_backward(converted, after, training, device)
        close(ours[0], theirs[0])
        close(ours[1], theirs[1])
        for t, o in zip(theirs[2], ours[2]):
            close(o, t)
        reference.zero_grad()
        converted.zero_grad()
    # Training mode always runs backward.
    out, gx, grads = _forward_backward(converted, after, True, device)
    assert bool(gx.isfinite().all()) and all(bool(g.isfinite().all()) for g in grads)


def _kept(model, shape=(3, 6)):
    return selu_kept(model.train()(torch.randn(shape)))


def test_convert_keeps_saving_only_where_provably_safe():
    safe = snn.convert(nn.Sequential(nn.Linear(6, 8), nn.SELU(), nn.Linear(8, 3)))
    assert _kept(safe) == ["output"]
    conv = snn.convert(nn.Sequential(nn.Conv2d(2, 4, 3), nn.SELU(), nn.Conv2d(4, 4, 3), nn.SELU()))
    assert _kept(conv, (1, 2, 7, 7)) == ["output", "input"]  # the last one's output leaves
    assert _kept(snn.convert(nn.Sequential(nn.Linear(6, 8), nn.SELU()))) == ["input"]
    assert _kept(snn.convert(_linear_selu_dropout())) == ["input"]
    assert _kept(snn.convert(_residual_model())) == ["input", "input"]
    bare = snn.convert(nn.SELU())
    assert isinstance(bare, snn.SELU) and bare.save_output is False
