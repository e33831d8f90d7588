"""torch.export: a model built from selu_ext's modules exports (strict and
non-strict) and runs. By default the program holds PyTorch's own ops (so the
archive loads without selu_ext, test_dropin_export.py) and is its torch.nn twin's:
the same values and, in training mode, the same masks for the same
torch.manual_seed. Under selu_ext.archive_kernels() it holds the selu_ext operators
and matches eager selu_ext: exactly in eval mode (also with a dynamic batch size,
and after run_decompositions), and in training mode, where the exported program
draws from torch's generator as eager does.
"""

import contextlib

import pytest
import torch
from torch.export import Dim, export

import selu_ext
from conftest import DEVICES, require_device
from dropin_common import torch_twin
from selu_ext import nn as snn


def _model(device):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 16),
        snn.SELU(),
        snn.AlphaDropout(0.2),
        snn.SELUAlphaDropout(0.1),
        torch.nn.Unflatten(1, (4, 4)),
        snn.FeatureAlphaDropout(0.1),
        torch.nn.Flatten(),
        snn.SelfNormalizingMLP(16, 16, 4, depth=2, dropout=0.1),
    ).to(device, torch.float64)


def _ops_in(ep):
    return {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}


def _export(m, x, kernels, **kw):
    """(program, what it must match): eager selu_ext with archive_kernels(), the
    torch.nn twin without."""
    with selu_ext.archive_kernels() if kernels else contextlib.nullcontext():
        ep = export(m, (x,), **kw)
    ours = any(t.startswith("selu_ext.") for t in _ops_in(ep))
    assert ours == kernels, _ops_in(ep)
    return ep, (m if kernels else torch_twin(m))


KERNELS = pytest.mark.parametrize("kernels", [False, True], ids=["torch_ops", "archive_kernels"])


@KERNELS
@pytest.mark.parametrize("strict", [False, True], ids=["nonstrict", "strict"])
@pytest.mark.parametrize("device", DEVICES)
def test_export_eval(device, strict, kernels):
    require_device(device)
    m = _model(device).eval()
    x = torch.randn(5, 8, device=device, dtype=torch.float64)
    batch = Dim("batch", min=1, max=1024)
    ep, ref = _export(m, x, kernels, dynamic_shapes=({0: batch},), strict=strict)
    selu = "selu_ext.selu.default" if kernels else "aten.selu.default"
    assert selu in _ops_in(ep)
    # Eval mode: no dropout left in the program.
    assert not any("dropout" in t for t in _ops_in(ep))
    for n in (5, 1, 33):  # another batch size: the dynamic dimension
        xi = torch.randn(n, 8, device=device, dtype=torch.float64)
        torch.testing.assert_close(ep.module()(xi), ref(xi), rtol=0, atol=0)
    # Decomposing to the core ATen opset keeps the custom operators as they are.
    dec = ep.run_decompositions()
    if kernels:
        assert "selu_ext.selu.default" in _ops_in(dec)
    torch.testing.assert_close(dec.module()(x), ref(x))


@KERNELS
@pytest.mark.parametrize("device", DEVICES)
def test_export_train(device, kernels):
    require_device(device)
    m = _model(device).train()
    x = torch.randn(6, 8, device=device, dtype=torch.float64)
    ep, ref = _export(m, x, kernels, dynamic_shapes=({0: Dim("batch", min=2, max=1024)},))
    ops = _ops_in(ep)
    expected = (("selu_ext.dropout_rng_state.default", "selu_ext.alpha_dropout.default",
                 "selu_ext.selu_alpha_dropout.default") if kernels else
                ("aten.alpha_dropout.default", "aten.feature_alpha_dropout.default"))
    for op in expected:
        assert op in ops, (op, ops)
    run = ep.module()
    torch.manual_seed(3)
    y = run(x)
    torch.manual_seed(3)
    torch.testing.assert_close(y, ref(x))
    # Without re-seeding, the next call has fresh masks.
    assert not torch.equal(run(x), y)
    # Another batch size (the feature-dropout mask's size is symbolic).
    x7 = torch.randn(7, 8, device=device, dtype=torch.float64)
    torch.manual_seed(5)
    y7 = run(x7)
    torch.manual_seed(5)
    torch.testing.assert_close(y7, ref(x7))
    # Backward through the exported program's module.
    xg = x.clone().requires_grad_()
    torch.manual_seed(4)
    run(xg).sum().backward()
    xe = x.clone().requires_grad_()
    torch.manual_seed(4)
    ref(xe).sum().backward()
    torch.testing.assert_close(xg.grad, xe.grad)


@KERNELS
def test_export_functions_with_seed(kernels):
    # The functional API with seed=: the (seed, 0) rng_state becomes a constant of
    # the program, which is then deterministic; a seeded dropout is selu_ext's own
    # stream, so it stays selu_ext's operator even without archive_kernels().
    class F(torch.nn.Module):
        def forward(self, x):
            y = selu_ext.alpha_dropout(x, 0.3, True, seed=1)
            y = selu_ext.feature_alpha_dropout(y, 0.3, True, seed=2)
            return selu_ext.selu_alpha_dropout(y, 0.3, True, seed=3) + selu_ext.selu(y)

    x = torch.randn(4, 6, 3, dtype=torch.float64)
    with selu_ext.archive_kernels() if kernels else contextlib.nullcontext():
        ep = export(F(), (x,))
    assert "selu_ext.selu_alpha_dropout.default" in _ops_in(ep)
    assert ("selu_ext.selu.default" in _ops_in(ep)) == kernels
    # Without kernels the last selu is PyTorch's: the same within an ULP.
    torch.testing.assert_close(ep.module()(x), F()(x), **({"rtol": 0, "atol": 0} if kernels
                                                            else {}))
    torch.testing.assert_close(ep.module()(x), ep.module()(x), rtol=0, atol=0)
