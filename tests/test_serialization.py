"""Serialization: selu_ext modules survive state_dict round trips, pickle,
torch.save / torch.load and copy.deepcopy, and give the same outputs afterwards.

torch.load defaults to weights_only=True (torch >= 2.6). A state_dict loads that
way; a whole pickled module needs its classes allow-listed
(torch.serialization.safe_globals) or weights_only=False for a trusted file, as
for any torch.nn module. test_whole_module_torch_load pins both.
"""

import copy
import io
import pickle

import pytest
import torch

import selu_ext
from selu_ext import nn as snn


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        snn.SelfNormalizingMLP(6, 8, 8, depth=2, dropout=0.1),
        snn.SELU(inplace=True),
        snn.AlphaDropout(0.2, inplace=True),
        torch.nn.Unflatten(1, (4, 2)),
        snn.FeatureAlphaDropout(0.3),
        torch.nn.Flatten(),
        snn.SELUAlphaDropout(0.05),
        torch.nn.Linear(8, 3),
    )


def _same_outputs(a, b):
    x = torch.randn(5, 6)
    a.eval(), b.eval()
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    a.train(), b.train()
    torch.manual_seed(1)
    ya = a(x)
    torch.manual_seed(1)
    yb = b(x)
    torch.testing.assert_close(ya, yb, rtol=0, atol=0)


def _same_config(a, b):
    assert repr(a) == repr(b)
    for ma, mb in zip(a.modules(), b.modules()):
        assert type(ma) is type(mb)
        for attr in ("p", "inplace", "depth", "dropout", "training"):
            assert getattr(ma, attr, None) == getattr(mb, attr, None)


def test_state_dict_round_trip():
    a = _model()
    sd = a.state_dict()
    # Only the Linear parameters: the activation and dropout modules hold no state.
    assert all(k.endswith(("weight", "bias")) for k in sd)
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    loaded = torch.load(buf)  # weights_only=True: plain tensors
    torch.manual_seed(123)
    b = _model()
    b.load_state_dict(loaded, strict=True)
    _same_outputs(a, b)


def test_state_dict_interchangeable_with_torch_nn():
    # convert() keeps every key, so torch.nn checkpoints load into converted models
    # and back.
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.SELU(), torch.nn.AlphaDropout(0.1),
                              torch.nn.Linear(8, 2))
    ours = snn.convert(ref)
    assert ours.state_dict().keys() == ref.state_dict().keys()
    ours.load_state_dict(ref.state_dict())
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 4)
    torch.testing.assert_close(ours.eval()(x), ref.eval()(x))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_pickle(protocol):
    a = _model()
    b = pickle.loads(pickle.dumps(a, protocol=protocol))
    _same_config(a, b)
    _same_outputs(a, b)


def test_deepcopy():
    a = _model().eval()
    b = copy.deepcopy(a)
    _same_config(a, b)
    _same_outputs(a, b)
    # Independent parameters.
    with torch.no_grad():
        b[-1].weight.add_(1)
    assert not torch.equal(a[-1].weight, b[-1].weight)


def test_whole_module_torch_load():
    a = _model().train()
    buf = io.BytesIO()
    torch.save(a, buf)
    # The default weights_only=True refuses arbitrary classes ...
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        torch.load(buf)
    # ... loads with them allow-listed ...
    classes = {type(m) for m in a.modules()}
    assert {snn.SELU, snn.AlphaDropout, snn.FeatureAlphaDropout, snn.SELUAlphaDropout,
            snn.SelfNormalizingMLP} <= classes
    buf.seek(0)
    with torch.serialization.safe_globals(list(classes)):
        b = torch.load(buf)
    _same_config(a, b)
    _same_outputs(a, b)
    # ... or with weights_only=False (trusted files only).
    buf.seek(0)
    c = torch.load(buf, weights_only=False)
    _same_config(a, c)
    _same_outputs(a, c)


@pytest.mark.parametrize("kernels", [False, True], ids=["torch_ops", "archive_kernels"])
def test_exported_program_save_load(tmp_path, kernels):
    # torch.export's .pt2 archive: the saved program reloads and runs; it holds
    # PyTorch's ops, or with archive_kernels() the selu_ext operators (found by name
    # once selu_ext is imported; test_dropin_export.py loads both in a process
    # without selu_ext).
    m = torch.nn.Sequential(torch.nn.Linear(4, 4), snn.SELU(), snn.SELUAlphaDropout(0.1)).eval()
    x = torch.randn(2, 4)
    with selu_ext.archive_kernels(kernels):
        ep = torch.export.export(m, (x,))
    path = tmp_path / "m.pt2"
    torch.export.save(ep, path)
    loaded = torch.export.load(path)
    torch.testing.assert_close(loaded.module()(x), m(x))
    assert ("selu_ext.selu" in str(loaded.graph)) == kernels
