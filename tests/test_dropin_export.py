"""Drop-in behaviour (issue 10): TorchScript and ONNX, side by side with torch.nn.

TorchScript: torch.jit.script and torch.jit.trace of every selu_ext module, in
train and eval mode, as torch.nn's modules script and trace. Eval outputs equal
eager exactly; in train mode the same torch.manual_seed before the scripted and the
eager call gives the same masks; torch.jit.save / load round trip.

ONNX (optional test extra: onnx, onnxruntime, onnxscript): both exporters give
standard ONNX ops (a `Selu` node, no selu_ext domain, dropout in eval the
identity), and onnxruntime's outputs match eager and torch.nn's export.
"""

import io
import warnings

import pytest
import torch
from torch import nn

from conftest import DEVICES, F32_FUSED_VS_UNFUSED, F32_OTHER_IMPLEMENTATION, require_device
from selu_ext import nn as snn

pytestmark = pytest.mark.filterwarnings(
    "ignore::FutureWarning",  # torch.jit is deprecated (torch.nn's modules too)
    "ignore::torch.jit.TracerWarning",  # trace in train mode: random outputs differ
    "ignore::DeprecationWarning",
)


def _converted():
    torch.manual_seed(0)
    return snn.convert(nn.Sequential(nn.Linear(4, 8), nn.SELU(), nn.AlphaDropout(0.2),
                                     nn.Linear(8, 4), nn.SELU(), nn.FeatureAlphaDropout(0.1)))


# Every selu_ext module (with its options), each with its torch.nn counterpart where
# there is one; all take (N, 4) float32 inputs.
MODULES = {
    "SELU": lambda: snn.SELU(),
    "SELU-save_output": lambda: snn.SELU(save_output=True),
    "SELU-inplace": lambda: snn.SELU(inplace=True),
    "AlphaDropout": lambda: snn.AlphaDropout(0.3),
    "AlphaDropout-inplace": lambda: snn.AlphaDropout(0.3, inplace=True),
    "FeatureAlphaDropout": lambda: snn.FeatureAlphaDropout(0.3),
    "SELUAlphaDropout": lambda: snn.SELUAlphaDropout(0.3),
    "SelfNormalizingMLP": lambda: snn.SelfNormalizingMLP(
        4, 8, 4, depth=2, dropout=0.1, generator=torch.Generator().manual_seed(0)),
    "converted": _converted,
}
RANDOM_IN_TRAINING = {"AlphaDropout", "AlphaDropout-inplace", "FeatureAlphaDropout",
                      "SELUAlphaDropout", "SelfNormalizingMLP", "converted"}
# Sequentials whose eager forward fuses SELU + AlphaDropout in training; TorchScript
# runs each module on its own (README, "What still differs"): the same masks, values
# to the rounding of selu(x).
FUSED_IN_EAGER_ONLY = {"SelfNormalizingMLP", "converted"}


def _x(n=6, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 4, generator=g) * 6 - 3).to(device)


def _call(m, x, seed):
    torch.manual_seed(seed)
    return m(x.clone())  # a fresh input: SELU(inplace=True) writes into it


def _check_against_eager(compiled, eager, name, training, device, scripted=False):
    x = _x(device=device)
    compiled.train(training)
    eager.train(training)
    unfused = scripted and training and name in FUSED_IN_EAGER_ONLY
    tol = F32_FUSED_VS_UNFUSED if unfused else dict(rtol=0, atol=0)
    for seed in (1, 2):
        torch.testing.assert_close(_call(compiled, x, seed), _call(eager, x, seed), **tol)
    if training and name in RANDOM_IN_TRAINING:
        # Training mode really draws masks: another seed, another output.
        assert not torch.equal(_call(compiled, x, 1), _call(compiled, x, 2))


def _round_trip(scripted):
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    return torch.jit.load(buf)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", list(MODULES))
def test_jit_script(name, training, device):
    require_device(device)
    eager = MODULES[name]().to(device).train(training)
    scripted = torch.jit.script(eager)
    _check_against_eager(scripted, eager, name, training, device, scripted=True)
    _check_against_eager(_round_trip(scripted), eager, name, training, device, scripted=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", list(MODULES))
def test_jit_trace(name, training, device):
    require_device(device)
    eager = MODULES[name]().to(device).train(training)
    traced = torch.jit.trace(eager, (_x(device=device),))
    # A trace records one mode; compare in the mode it was traced in.
    _check_against_eager(traced, eager, name, training, device)
    _check_against_eager(_round_trip(traced), eager, name, training, device)


def test_jit_script_in_torch_model_matches_torch_nn():
    """A model mixing selu_ext and torch.nn modules scripts like its torch.nn twin,
    and gives its values (eval)."""
    torch.manual_seed(0)
    reference = nn.Sequential(nn.Linear(4, 8), nn.SELU(), nn.AlphaDropout(0.2), nn.Linear(8, 4))
    ours = snn.convert(reference).eval()
    x = _x()
    torch.testing.assert_close(torch.jit.script(ours)(x),
                               torch.jit.script(reference.eval())(x))


# ---------------------------------------------------------------------------
# ONNX


def _onnx():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    return onnx, ort


def _export(model, x, dynamo):
    onnx, _ = _onnx()
    if dynamo:
        pytest.importorskip("onnxscript")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.onnx.export(model, (x,), dynamo=True, verbose=False).model_proto
    buf = io.BytesIO()
    torch.onnx.export(model, (x,), buf, dynamo=False)
    return onnx.load_from_string(buf.getvalue())


def _ort_run(proto, x):
    _, ort = _onnx()
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])


def _ops(proto):
    return [(n.domain or "ai.onnx", n.op_type) for n in proto.graph.node]


def _check_standard(proto, selus):
    ops = _ops(proto)
    assert all(domain == "ai.onnx" for domain, _ in ops), ops  # no selu_ext domain
    assert sum(op == "Selu" for _, op in ops) == selus, ops
    # Eval mode: no dropout or random op left.
    assert not any("Dropout" in op or "Random" in op or "Bernoulli" in op for _, op in ops), ops


def _converted_pair():
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(4, 8), nn.SELU(), nn.AlphaDropout(0.2), nn.Linear(8, 4),
                        nn.SELU())
    return seq, snn.convert(seq)


# name: () -> (torch.nn model, selu_ext model), and the number of Selu nodes
ONNX_PAIRS = {
    "SELU": (lambda: (nn.SELU(), snn.SELU()), 1),
    "SELU-save_output": (lambda: (nn.SELU(), snn.SELU(save_output=True)), 1),
    "SELUAlphaDropout": (lambda: (nn.Sequential(nn.SELU(), nn.AlphaDropout(0.3)),
                                  snn.SELUAlphaDropout(0.3)), 1),
    "AlphaDropout": (lambda: (nn.AlphaDropout(0.3), snn.AlphaDropout(0.3)), 0),
    "FeatureAlphaDropout": (lambda: (nn.FeatureAlphaDropout(0.3), snn.FeatureAlphaDropout(0.3)),
                            0),
    "converted": (_converted_pair, 2),
}


@pytest.mark.parametrize("name", list(ONNX_PAIRS))
def test_onnx_export_torchscript_exporter(name):
    build, selus = ONNX_PAIRS[name]
    reference, ours = build()
    reference.eval()
    ours.eval()
    x = _x(5)
    proto = _export(ours, x, dynamo=False)
    _check_standard(proto, selus)
    expected = reference(x)
    torch.testing.assert_close(_ort_run(proto, x), expected, **F32_OTHER_IMPLEMENTATION)
    torch.testing.assert_close(_ort_run(proto, x), _ort_run(_export(reference, x, False), x),
                               **F32_OTHER_IMPLEMENTATION)
    # Another batch size through the same graph.
    x7 = _x(7, seed=1)
    proto = _export(ours, x7, dynamo=False)
    torch.testing.assert_close(_ort_run(proto, x7), reference(x7), **F32_OTHER_IMPLEMENTATION)


@pytest.mark.slow
def test_onnx_export_dynamo_exporter():
    """The dynamo exporter is slow (seconds per export): one model holding every
    selu_ext module, against torch.nn's twin in eager mode."""
    _onnx()
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(4, 8), nn.SELU(), nn.AlphaDropout(0.2), nn.Linear(8, 4))
    reference = nn.Sequential(nn.SELU(), nn.SELU(), nn.SELU(), nn.AlphaDropout(0.3),
                              nn.AlphaDropout(0.3), nn.Unflatten(1, (4, 1)),
                              nn.FeatureAlphaDropout(0.3), nn.Flatten(), seq).eval()
    ours = nn.Sequential(snn.SELU(), snn.SELU(save_output=True), snn.SELUAlphaDropout(0.3),
                         nn.Identity(), snn.AlphaDropout(0.3), nn.Unflatten(1, (4, 1)),
                         snn.FeatureAlphaDropout(0.3), nn.Flatten(), snn.convert(seq)).eval()
    x = _x(5)
    proto = _export(ours, x, dynamo=True)
    _check_standard(proto, 4)
    torch.testing.assert_close(_ort_run(proto, x), reference(x), **F32_OTHER_IMPLEMENTATION)
    torch.testing.assert_close(_ort_run(proto, x), ours(x), **F32_OTHER_IMPLEMENTATION)
