"""Autocast: selu_ext behaves as torch.nn.functional does inside torch.autocast.

SELU and AlphaDropout are on none of autocast's cast lists, so F.selu runs in its
input's dtype: float32 stays float32, and the low-precision output of an autocast
Linear stays low precision. selu_ext registers no Autocast kernel and so falls
through the same way; these tests pin that (output dtype equal to F.selu's in the
same autocast context, values close, gradients in the parameters' dtype).
"""

import pytest
import torch
import torch.nn.functional as F

import selu_ext
from conftest import TOL, require_device, selu_reference

CASES = [
    pytest.param("cpu", torch.bfloat16, id="cpu-bfloat16"),
    pytest.param("cuda", torch.float16, id="cuda-float16", marks=pytest.mark.cuda),
    pytest.param("cuda", torch.bfloat16, id="cuda-bfloat16", marks=pytest.mark.cuda),
]


def _inputs(device):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(16, 32, generator=g) * 2).to(device)
    lin = torch.nn.Linear(32, 32).to(device)
    return x, lin


@pytest.mark.parametrize("device,amp_dtype", CASES)
def test_selu_under_autocast(device, amp_dtype):
    require_device(device)
    x, lin = _inputs(device)
    with torch.autocast(device, dtype=amp_dtype):
        h = lin(x)  # autocast's output: amp_dtype
        assert h.dtype == amp_dtype
        for t in (x, h, x.double(), x.half(), x.bfloat16()):
            ref = F.selu(t)
            for out in (selu_ext.selu(t), selu_ext.nn.SELU()(t),
                        selu_ext.selu(t.clone(), inplace=True),
                        selu_ext.selu_alpha_dropout(t, 0.3, training=False)):
                assert out.dtype == ref.dtype, (t.dtype, out.dtype, ref.dtype)
                rtol, atol = TOL[out.dtype][:2]
                torch.testing.assert_close(out.double(), selu_reference(t).to(out.dtype).double(),
                                           rtol=rtol, atol=atol)


@pytest.mark.parametrize("device,amp_dtype", CASES)
def test_dropout_under_autocast(device, amp_dtype):
    require_device(device)
    x, lin = _inputs(device)
    with torch.autocast(device, dtype=amp_dtype):
        h = lin(x)
        for t in (x, h):
            ref_dtype = F.alpha_dropout(t, 0.3, True).dtype
            outs = {
                "alpha_dropout": selu_ext.alpha_dropout(t, 0.3, True, seed=1),
                "feature_alpha_dropout": selu_ext.feature_alpha_dropout(t, 0.3, True, seed=1),
                "selu_alpha_dropout": selu_ext.selu_alpha_dropout(t, 0.3, True, seed=1),
            }
            assert F.feature_alpha_dropout(t, 0.3, True).dtype == ref_dtype
            for name, out in outs.items():
                assert out.dtype == ref_dtype, (name, t.dtype, out.dtype)
            # The same values as outside autocast for the same input tensor and seed.
            with torch.autocast(device, enabled=False):
                torch.testing.assert_close(outs["alpha_dropout"],
                                           selu_ext.alpha_dropout(t, 0.3, True, seed=1))
                torch.testing.assert_close(outs["selu_alpha_dropout"],
                                           selu_ext.selu_alpha_dropout(t, 0.3, True, seed=1))


@pytest.mark.parametrize("device,amp_dtype", CASES)
def test_training_step_under_autocast(device, amp_dtype):
    # A mixed-precision step through every module: forward in amp_dtype after each
    # Linear, gradients in the parameters' float32, close to the same model built
    # from torch.nn's modules (same weights, dropout off so both are deterministic).
    require_device(device)
    torch.manual_seed(0)
    ours = torch.nn.Sequential(
        torch.nn.Linear(32, 64), selu_ext.nn.SELU(), selu_ext.nn.AlphaDropout(0.0),
        torch.nn.Linear(64, 64), selu_ext.nn.SELUAlphaDropout(0.0),
        torch.nn.Linear(64, 8)).to(device)
    ref = torch.nn.Sequential(
        torch.nn.Linear(32, 64), torch.nn.SELU(), torch.nn.AlphaDropout(0.0),
        torch.nn.Linear(64, 64), torch.nn.SELU(), torch.nn.Linear(64, 8)).to(device)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(16, 32, device=device)
    grads = []
    for model in (ours, ref):
        with torch.autocast(device, dtype=amp_dtype):
            y = model(x)
            assert y.dtype == amp_dtype
            loss = y.float().pow(2).mean()
        loss.backward()
        grads.append([p.grad for p in model.parameters()])
    for g_ours, g_ref in zip(*grads):
        assert g_ours.dtype == torch.float32
        # Both backward passes round through amp_dtype; compare at its precision.
        torch.testing.assert_close(g_ours, g_ref, rtol=TOL[amp_dtype][2] * 4,
                                   atol=TOL[amp_dtype][3] * 4)
    # Training mode with real dropout runs and gives float32 gradients too.
    mlp = selu_ext.nn.SelfNormalizingMLP(32, 64, 8, depth=2, dropout=0.1).to(device).train()
    with torch.autocast(device, dtype=amp_dtype):
        out = mlp(x)
    assert out.dtype == amp_dtype
    out.float().sum().backward()
    assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
               for p in mlp.parameters())
