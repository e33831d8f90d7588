"""What autograd keeps for backward inside Linear -> activation -> Linear, beyond the
same model with an identity activation: selu_ext's SELU with save_output and the
fused SELU + AlphaDropout keep no activation of their own where torch.nn keeps one
(SELU's input) or two (and AlphaDropout's noise); SelfNormalizingMLP and convert()
keep one activation fewer per hidden layer than torch.nn."""

import copy

import pytest
import torch
from torch import nn

import selu_ext
from conftest import DEVICES, require_device
from dropin_common import close, make_x
from selu_ext import nn as snn
from selu_ext.bench.memory import saved_bytes

ACTIVATION = 64 * 512 * 4  # bytes of one float32 activation between the two Linears


def _bytes_beyond_identity(device):
    """kept(*modules, convert=False): bytes of the distinct non-parameter storages
    autograd keeps for Linear(256, 512) -> modules -> Linear(512, 128) on a (64, 256)
    input, less what it keeps with an Identity in their place."""
    torch.manual_seed(0)
    lin1, lin2 = torch.nn.Linear(256, 512), torch.nn.Linear(512, 128)
    x = torch.randn(64, 256, device=device, requires_grad=True)

    def saved(*mid, convert=False):
        model = torch.nn.Sequential(lin1, *mid, lin2).to(device).train()
        if convert:
            model = selu_ext.nn.convert(model)
        return saved_bytes(lambda: model(x).sum(), exclude=model.parameters())

    base = saved(torch.nn.Identity())
    return lambda *mid, convert=False: saved(*mid, convert=convert) - base


@pytest.mark.parametrize("device", DEVICES)
def test_selu_keeps_no_extra_activation(device):
    """selu_ext with save_output=True (what convert() and SelfNormalizingMLP choose
    here): zero (it saves its output, which the second Linear saves anyway).
    torch.nn.SELU, and selu_ext's default: one activation (the input)."""
    require_device(device)
    kept = _bytes_beyond_identity(device)
    assert kept(selu_ext.nn.SELU(save_output=True)) == 0
    assert kept(torch.nn.SELU(), convert=True) == 0
    assert kept(torch.nn.SELU()) == ACTIVATION
    assert kept(selu_ext.nn.SELU()) == ACTIVATION


@pytest.mark.parametrize("device", DEVICES)
def test_fused_keeps_at_most_a_third_of_torch(device):
    """The fused op keeps its output (which the next Linear keeps anyway) and a
    16-byte rng state; torch.nn.SELU + torch.nn.AlphaDropout keep SELU's input and
    the dropout noise, two activations."""
    require_device(device)
    kept = _bytes_beyond_identity(device)
    fused = kept(selu_ext.nn.SELUAlphaDropout(0.2))
    converted = kept(torch.nn.SELU(), torch.nn.AlphaDropout(0.2), convert=True)
    theirs = kept(torch.nn.SELU(), torch.nn.AlphaDropout(0.2))
    print(f"bytes kept beyond the baseline: fused {fused}, converted {converted}, "
          f"torch {theirs}")
    assert theirs >= ACTIVATION  # the comparison means something
    assert fused <= theirs / 3
    assert converted <= theirs / 3
    assert fused <= 64  # the rng state, not an activation or a mask
    # Unfused selu_ext modules keep no mask (only the rng state), but SELU's output
    # is an activation the next Linear does not keep: half of torch.
    unfused = kept(selu_ext.nn.SELU(), selu_ext.nn.AlphaDropout(0.2))
    assert ACTIVATION <= unfused <= ACTIVATION + 64


def _mlp_pair(depth, dropout):
    ours = snn.SelfNormalizingMLP(16, 64, 4, depth=depth, dropout=dropout, dtype=torch.float64,
                                  generator=torch.Generator().manual_seed(0))
    layers = []
    for m in ours:
        if isinstance(m, nn.Linear):
            layers.append(copy.deepcopy(m))
        else:
            layers.append(nn.SELU())
            if dropout > 0:
                layers.append(nn.AlphaDropout(dropout))
    return ours, nn.Sequential(*layers)


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_self_normalizing_mlp_and_convert_keep_the_saving(dropout):
    """One activation fewer per hidden layer than torch.nn: SelfNormalizingMLP and
    convert() of the same Sequential keep only the SELU's output (which the next
    Linear keeps anyway)."""
    depth, batch, hidden = 3, 32, 64
    mlp, reference = _mlp_pair(depth, dropout)
    converted = snn.convert(reference)
    x = make_x((batch, 16), seed=4)
    for m in (mlp, reference, converted):
        m.train()
    torch_bytes = saved_bytes(lambda: reference(x))
    activation = batch * hidden * 8
    assert saved_bytes(lambda: mlp(x)) <= torch_bytes - depth * activation
    assert saved_bytes(lambda: converted(x)) <= torch_bytes - depth * activation
    # ... and gives torch's outputs in eval mode.
    for m in (mlp, reference, converted):
        m.eval()
    with torch.no_grad():
        close(mlp(x), reference(x))
        close(converted(x), reference(x))
