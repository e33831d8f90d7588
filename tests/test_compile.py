"""torch.compile: one model that uses every public module and function of selu_ext
(in-place forms included) compiles with fullgraph=True (no graph breaks); its
forward and backward equal eager's in eval mode, and in training mode wherever the
masks are fixed by seed=. Masks drawn from torch's generator are reproduced by
torch.manual_seed and fresh on every call; two dropout calls in one graph keep two
masks (dropout_rng_state is tagged nondeterministic_seeded, so it is never merged).
Inductor may order independent draws differently from eager (torch 2.11 does), so
generator-drawn masks are not compared with eager's. On CUDA,
mode="reduce-overhead" (CUDA graphs) replays the dropout ops with a fresh, correct
mask on every replay.

Compiles are slow on a small CPU, so there are few of them (each model compiles
once per device).
"""

import pytest
import torch
from torch._dynamo.utils import counters

import selu_ext
from conftest import (DEVICES, DROP_RATE_SLACK, F32_NETWORK_CUDA, MASK_READ_OFF_F32,
                      require_device)
from selu_ext import nn as snn

P = 0.3


class Everything(torch.nn.Module):
    """Every selu_ext module and function, in-place forms included."""

    def __init__(self):
        super().__init__()
        self.inp = torch.nn.Linear(8, 16)
        self.selu = snn.SELU()
        self.selu_inplace = snn.SELU(inplace=True)
        self.drop = snn.AlphaDropout(P)
        self.drop_inplace = snn.AlphaDropout(P, inplace=True)
        self.feature = snn.FeatureAlphaDropout(P)
        self.feature_inplace = snn.FeatureAlphaDropout(P, inplace=True)
        self.fused = snn.SELUAlphaDropout(P)
        self.mlp = snn.SelfNormalizingMLP(16, 16, 4, depth=2, dropout=0.1)

    def forward(self, x):
        h = self.inp(x)
        a = self.selu(h)
        b = self.selu_inplace(h * 1.0)
        c = self.drop(a)
        d = self.drop_inplace(b * 1.0)
        e = self.feature(c.view(-1, 4, 4)).view(-1, 16)
        f = self.feature_inplace(d.view(-1, 4, 4) * 1.0).view(-1, 16)
        g = self.fused(e + f)
        # The functions follow the module's mode, as F.dropout(x, p, self.training)
        # in a torch model: in eval mode no call draws from the generator.
        t = self.training
        g = selu_ext.selu(g) + selu_ext.selu(g * 1.0, inplace=True)
        g = (selu_ext.alpha_dropout(g, P, t, seed=5)
             + selu_ext.alpha_dropout(g * 1.0, P, t, True, seed=6)
             + selu_ext.alpha_dropout(g, P, t))
        g = selu_ext.feature_alpha_dropout(g.view(-1, 4, 4), P, t, seed=7).view(-1, 16)
        g = (selu_ext.selu_alpha_dropout(g, P, t, seed=8)
             + selu_ext.selu_alpha_dropout(g, P, t))
        g = selu_ext.SELUFunction.apply(g)
        if t:
            rng = torch.ops.selu_ext.dropout_rng_state(g.device)
            g = selu_ext.AlphaDropoutFunction.apply(g, P, rng)
            g = selu_ext.SELUAlphaDropoutFunction.apply(g, P, torch.tensor([9, 0]))
        return self.mlp(g)


def _run(model, x, seed):
    torch.manual_seed(seed)
    xi = x.clone().requires_grad_()
    y = model(xi)
    y.pow(2).sum().backward()
    return y.detach(), xi.grad, [p.grad.clone() for p in model.parameters()]


class Seeded(torch.nn.Module):
    """Every function with its mask fixed by seed=, in training mode."""

    def forward(self, x):
        g = selu_ext.selu(x) + selu_ext.selu(x * 1.0, inplace=True)
        g = (selu_ext.alpha_dropout(g, P, True, seed=5)
             + selu_ext.alpha_dropout(g * 1.0, P, True, True, seed=6))
        g = selu_ext.feature_alpha_dropout(g.view(-1, 4, 4), P, True, seed=7).view(-1, 16)
        g = selu_ext.feature_alpha_dropout(g.view(-1, 4, 4) * 1.0, P, True, True,
                                           seed=8).view(-1, 16)
        g = selu_ext.selu_alpha_dropout(g, P, True, seed=9)
        return selu_ext.SELUAlphaDropoutFunction.apply(g, P, torch.tensor([10, 0]))


@pytest.mark.parametrize("device", DEVICES)
def test_compile_everything_matches_eager(device):
    require_device(device)
    torch._dynamo.reset()
    torch.manual_seed(0)
    # float64, so that any difference beyond rounding stands out.
    model = Everything().to(device, torch.float64)
    x = torch.randn(12, 8, device=device, dtype=torch.float64)
    compiled = torch.compile(model, fullgraph=True)

    # Eval mode: no randomness left, so compiled == eager, forward and backward.
    model.eval()
    eager = _run(model, x, seed=1)
    model.zero_grad()
    comp = _run(compiled, x, seed=1)
    for c, e in zip(comp[:2], eager[:2]):
        torch.testing.assert_close(c, e)
    for gc, ge in zip(comp[2], eager[2]):
        torch.testing.assert_close(gc, ge)

    # Training mode: the same seed replays the same masks, another seed gives fresh
    # ones (the generator moves on between calls), without recompiling.
    model.train()
    model.zero_grad()
    first = _run(compiled, x, seed=1)
    model.zero_grad()
    again = _run(compiled, x, seed=2)
    assert not torch.equal(again[0], first[0])
    model.zero_grad()
    replay = _run(compiled, x, seed=1)
    torch.testing.assert_close(replay[0], first[0], rtol=0, atol=0)
    torch.testing.assert_close(replay[1], first[1], rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_compile_seeded_dropout_matches_eager(device):
    require_device(device)
    torch._dynamo.reset()
    model = Seeded()
    x = torch.randn(12, 16, device=device, dtype=torch.float64)
    eager = _run(model, x, seed=1)
    comp = _run(torch.compile(model, fullgraph=True), x, seed=1)
    torch.testing.assert_close(comp[0], eager[0])
    torch.testing.assert_close(comp[1], eager[1])


def _input(shape, device, seed=0):
    """Random values, none within 1e-3 of -scale*alpha: there a kept unit a*x + b
    would equal the dropped value and the mask could not be read off the output."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    x = torch.where((x + selu_ext.SCALE * selu_ext.ALPHA).abs() < 1e-3, x + 0.01, x)
    return x.to(device)


def _masks(out, x, p=P):
    a, b, dropped = selu_ext.alpha_dropout_coefficients(p)
    kept = (out - (a * x + b)).abs() <= MASK_READ_OFF_F32 * (1 + x.abs())
    is_dropped = (out - dropped).abs() <= MASK_READ_OFF_F32
    assert bool((kept ^ is_dropped).all()), "an output is neither a kept nor a dropped unit"
    return kept


@pytest.mark.parametrize("device", DEVICES)
def test_compile_two_dropouts_get_two_masks(device):
    require_device(device)
    torch._dynamo.reset()
    layer1, layer2 = snn.AlphaDropout(P).train(), snn.AlphaDropout(P).train()

    @torch.compile(fullgraph=True)
    def f(x):
        # Same input, same p, same module type: a CSE that merged the rng draws
        # would give one mask.
        return (layer1(x), layer2(x), layer1(x), selu_ext.alpha_dropout(x, P, True),
                selu_ext.selu_alpha_dropout(x, P, True), selu_ext.selu_alpha_dropout(x, P, True))

    x = _input((64, 64), device)
    outs = f(x)
    masks = [_masks(o, x) for o in outs[:4]]
    sx = torch.nn.functional.selu(x)
    masks += [_masks(o, sx) for o in outs[4:]]
    for i in range(len(masks)):
        frac = masks[i].float().mean().item()
        assert abs(frac - (1 - P)) < DROP_RATE_SLACK, frac
        for j in range(i):
            assert not torch.equal(masks[i], masks[j]), (i, j)
    # A second call: fresh masks again.
    masks2 = [_masks(o, x) for o in f(x)[:4]]
    for m1, m2 in zip(masks[:4], masks2):
        assert not torch.equal(m1, m2)


@pytest.mark.cuda
def test_compile_cuda_graphs_fresh_masks():
    """mode="reduce-overhead": the graph is captured once and replayed; each replay
    reads the generator's advanced offset, so the dropout masks change from call to
    call, and forward and backward of each call agree on its mask."""
    require_device("cuda")
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    drop = snn.AlphaDropout(P).train()
    fused = snn.SELUAlphaDropout(P).train()
    feature = snn.FeatureAlphaDropout(P).train()

    def f(x):
        return drop(x), fused(x), feature(x.view(-1, 16, 4)).view_as(x)

    cf = torch.compile(f, mode="reduce-overhead", fullgraph=True)
    x = _input((256, 64), "cuda")
    sx = torch.nn.functional.selu(x)
    a_coef = selu_ext.alpha_dropout_coefficients(P)[0]
    dselu = torch.where(x > 0, selu_ext.SCALE, selu_ext.SCALE * selu_ext.ALPHA * x.exp())
    seen = []
    for step in range(6):
        xi = x.clone().requires_grad_()
        outs = cf(xi)
        m_drop, m_fused = _masks(outs[0], x), _masks(outs[1], sx)
        m_feat = _masks(outs[2], x)
        assert bool((m_feat.view(-1, 16, 4) == m_feat.view(-1, 16, 4)[..., :1]).all())
        for m in (m_drop, m_fused, m_feat):
            assert abs(m.float().mean().item() - (1 - P)) < DROP_RATE_SLACK
        w0, w1 = torch.randn_like(x), torch.randn_like(x)
        ((outs[0] * w0).sum() + (outs[1] * w1).sum()).backward()
        torch.testing.assert_close(xi.grad, a_coef * (w0 * m_drop + w1 * dselu * m_fused),
                                   **F32_NETWORK_CUDA)
        seen.append((m_drop.clone(), m_fused.clone(), m_feat.clone()))
    # The graph really ran as a CUDA graph (cudagraph trees count what they skip) ...
    assert counters["inductor"]["cudagraph_skips"] == 0, dict(counters["inductor"])
    # ... and every call (warm-up, recording and replays alike) had its own masks.
    for i in range(len(seen)):
        for j in range(i):
            for k in range(3):
                assert not torch.equal(seen[i][k], seen[j][k]), (i, j, k)


class DynamicP(torch.nn.Module):
    """p as a float attribute of each module, and of functional calls: a SymFloat
    under dynamic=True. `lib` is selu_ext or torch (its nn and functional), so the
    same snippet runs beside torch.nn."""

    def __init__(self, lib):
        super().__init__()
        nn_, self.F = (selu_ext.nn, selu_ext) if lib == "selu_ext" else \
            (torch.nn, torch.nn.functional)
        fused = selu_ext.nn.SELUAlphaDropout(0.1) if lib == "selu_ext" else \
            torch.nn.Sequential(torch.nn.SELU(), torch.nn.AlphaDropout(0.1))
        self.mods = torch.nn.Sequential(fused, nn_.AlphaDropout(0.2), nn_.FeatureAlphaDropout(0.3))
        self.fused = selu_ext.selu_alpha_dropout if lib == "selu_ext" else \
            (lambda x, p, training: self.F.alpha_dropout(self.F.selu(x), p, training))
        self.p = 0.25

    def forward(self, x):
        x = self.mods(x)
        x = self.F.alpha_dropout(x, self.p, self.training)
        return self.fused(x, self.p, self.training)


@pytest.mark.parametrize("lib", ["torch", "selu_ext"])
def test_compile_dynamic_float_p_has_no_graph_break(lib):
    """torch.compile(dynamic=True) makes float attributes SymFloats; the p checks
    must not break the graph on them (selu_ext's did: math.isnan of p), as torch's
    own AlphaDropout does not (lib="torch" shows it)."""
    torch._dynamo.reset()
    model = DynamicP(lib).train()
    x = torch.randn(4, 6, 5, requires_grad=True)
    out = torch.compile(model, dynamic=True, fullgraph=True)(x)
    out.sum().backward()
    assert out.shape == x.shape and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("p", [1.5, -0.5, float("nan"), "0.5"], ids=["above_1", "below_0", "nan", "str"])
def test_compile_bad_p_raises_as_eager(p):
    """Dynamo cannot trace the C rule for p (csrc/python_module.cpp): under
    torch.compile functional._dropout_p takes a p in [0, 1] itself and sends any other
    to the C rule through a graph break, so the exception and its message are eager's,
    in eval mode too. (torch's own F.alpha_dropout is not traced through: the
    compiled call fails in ATen's check, a TorchRuntimeError.)"""
    def call(fn):
        with pytest.raises(Exception) as info:
            fn(torch.randn(4, 3))
        return type(info.value), str(info.value)

    torch._dynamo.reset()
    for training in (True, False):
        eager = lambda x: selu_ext.alpha_dropout(x, p, training)  # noqa: E731
        assert call(torch.compile(eager, backend="eager")) == call(eager)
