"""Drop-in behaviour (issues 10 and 21): TorchScript and ONNX, side by side with torch.nn.

TorchScript: torch.jit.script and torch.jit.trace of every selu_ext module, and of
a module calling the selu_ext functions, in train and eval mode, as torch.nn's
modules and functions script and trace. What they record is PyTorch's own ops, so
the program is its torch.nn twin's: the same values, the same masks for the same
torch.manual_seed, and an archive that torch.jit.load reads in a process without
selu_ext (a subprocess here). With selu_ext.archive_kernels(), tracing records
selu_ext's operators instead (the archive then needs selu_ext, pinned too).

ONNX (optional test extra: onnx, onnxruntime, onnxscript): both exporters give
standard ONNX ops (a `Selu` node, no selu_ext domain, dropout in eval the
identity), and onnxruntime's outputs match eager and torch.nn's export.
"""

import io
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import selu_ext
from conftest import DEVICES, F32_OTHER_IMPLEMENTATION, require_device
from dropin_common import torch_twin
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


def _x(n=6, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 4, generator=g) * 6 - 3).to(device)


def _call(m, x, seed):
    torch.manual_seed(seed)
    return m(x.clone())  # a fresh input: SELU(inplace=True) writes into it


def _check_against(recorded, reference, name, training, device):
    """Same outputs as ``reference`` (in the mode given), masks included."""
    x = _x(device=device)
    recorded.train(training)
    reference.train(training)
    for seed in (1, 2):
        torch.testing.assert_close(_call(recorded, x, seed), _call(reference, x, seed), rtol=0,
                                   atol=0)
    if training and name in RANDOM_IN_TRAINING:
        # Training mode really draws masks: another seed, another output.
        assert not torch.equal(_call(recorded, x, 1), _call(recorded, x, 2))


def _round_trip(scripted):
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    return torch.jit.load(buf)


def _ops_in(program):
    return {n.kind() for n in program.inlined_graph.nodes()}


def _check_torch_ops_only(program):
    ops = _ops_in(program)
    assert not any(op.startswith("selu_ext::") for op in ops), ops


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", list(MODULES))
def test_jit_script(name, training, device):
    require_device(device)
    eager = MODULES[name]().to(device).train(training)
    scripted = torch.jit.script(eager)
    _check_torch_ops_only(scripted)
    twin = torch_twin(eager)
    _check_against(scripted, twin, name, training, device)
    _check_against(_round_trip(scripted), twin, name, training, device)
    _check_against(scripted, torch.jit.script(twin), name, training, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", list(MODULES))
def test_jit_trace(name, training, device):
    require_device(device)
    eager = MODULES[name]().to(device).train(training)
    traced = torch.jit.trace(eager, (_x(device=device),))
    _check_torch_ops_only(traced)
    # A trace records one mode; compare in the mode it was traced in.
    twin = torch_twin(eager)
    _check_against(traced, twin, name, training, device)
    _check_against(_round_trip(traced), twin, name, training, device)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", list(MODULES))
def test_jit_trace_archive_kernels(name, training):
    """With archive_kernels(), a trace records selu_ext's operators and gives eager
    selu_ext's values and masks."""
    eager = MODULES[name]().train(training)
    with selu_ext.archive_kernels():
        traced = torch.jit.trace(eager, (_x(),))
    if training or name not in ("AlphaDropout", "AlphaDropout-inplace", "FeatureAlphaDropout"):
        assert any(op.startswith("selu_ext::") for op in _ops_in(traced))
    _check_against(traced, eager, name, training, "cpu")
    _check_against(_round_trip(traced), eager, name, training, "cpu")


class _SeluExtFunctions(nn.Module):
    """A model calling the selu_ext functions (issue 21, item 9), the keyword-only
    arguments included."""

    def forward(self, x):
        y = selu_ext.selu(x)
        y = selu_ext.alpha_dropout(y, 0.2, self.training)
        y = selu_ext.feature_alpha_dropout(y, p=0.3, training=self.training)
        z = selu_ext.selu(x.clone(), True, save_output=False)
        return selu_ext.selu_alpha_dropout(y, 0.1, self.training) + z


class _TorchFunctions(nn.Module):
    def forward(self, x):
        y = F.selu(x)
        y = F.alpha_dropout(y, 0.2, self.training)
        y = F.feature_alpha_dropout(y, p=0.3, training=self.training)
        z = F.selu(x.clone(), True)
        return F.alpha_dropout(F.selu(y), 0.1, self.training) + z


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_jit_script_functions(training):
    ours = torch.jit.script(_SeluExtFunctions().train(training))
    theirs = torch.jit.script(_TorchFunctions().train(training))
    _check_torch_ops_only(ours)
    x = torch.randn(5, 4, 3)
    for seed in (1, 2):
        torch.manual_seed(seed)
        expected = theirs(x)
        torch.manual_seed(seed)
        torch.testing.assert_close(ours(x), expected, rtol=0, atol=0)
        torch.manual_seed(seed)
        torch.testing.assert_close(_round_trip(ours)(x), expected, rtol=0, atol=0)


def test_jit_script_seed_refused():
    """seed= is selu_ext's own stream; a scripted call with one raises (README,
    "Archives") rather than silently drawing torch's."""
    class Seeded(nn.Module):
        def forward(self, x):
            return selu_ext.alpha_dropout(x, 0.2, True, seed=1)

    scripted = torch.jit.script(Seeded())
    with pytest.raises(torch.jit.Error, match="seed= is not supported under torch.jit.script"):
        scripted(torch.randn(3))


# A process that never imports selu_ext loads the archive and runs it.
_LOAD_WITHOUT_SELU_EXT = """
import sys, torch
kind, path, x_path, y_path = sys.argv[1:]
x = torch.load(x_path)
m = torch.jit.load(path) if kind == "jit" else torch.export.load(path).module()
torch.manual_seed(7)
y = m(x)
assert "selu_ext" not in sys.modules
torch.testing.assert_close(y, torch.load(y_path), rtol=0, atol=0)
print("loaded")
"""


def _load_elsewhere(kind, path, x, expected, tmp_path, import_selu_ext=False):
    torch.save(x, tmp_path / "x.pt")
    torch.save(expected, tmp_path / "y.pt")
    code = ("import selu_ext\n" if import_selu_ext else "") + _LOAD_WITHOUT_SELU_EXT
    if import_selu_ext:
        code = code.replace('assert "selu_ext" not in sys.modules', "")
    return subprocess.run([sys.executable, "-c", code, kind, str(path), str(tmp_path / "x.pt"),
                           str(tmp_path / "y.pt")], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("how", ["script", "trace", "export", "functions"])
def test_archive_loads_without_selu_ext(how, training, tmp_path):
    """Issue 21, item 12: a scripted, traced or exported converted model loads and
    runs where selu_ext is not imported, as its torch.nn original does, with the
    original's values and masks."""
    torch.manual_seed(0)
    original = nn.Sequential(nn.Linear(4, 8), nn.SELU(), nn.AlphaDropout(0.2), nn.Linear(8, 4),
                             nn.Unflatten(1, (2, 2)), nn.SELU(), nn.FeatureAlphaDropout(0.3))
    model = snn.convert(original) if how != "functions" else _SeluExtFunctions()
    reference = original if how != "functions" else _TorchFunctions()
    model.train(training)
    reference.train(training)
    x = torch.randn(6, 4) if how != "functions" else torch.randn(6, 4, 2)
    path = tmp_path / "m.pt"
    if how == "export":
        torch.export.save(torch.export.export(model, (x,)), path)
    else:
        program = torch.jit.trace(model, (x,)) if how == "trace" else torch.jit.script(model)
        torch.jit.save(program, path)
    torch.manual_seed(7)
    expected = reference(x)
    run = _load_elsewhere("export" if how == "export" else "jit", path, x, expected, tmp_path)
    assert run.returncode == 0 and "loaded" in run.stdout, run.stderr[-2000:]


@pytest.mark.parametrize("how", ["trace", "export"])
def test_archive_kernels_need_selu_ext(how, tmp_path):
    """The trade-off archive_kernels() makes: the archive holds selu_ext's operators,
    so loading it needs selu_ext (the error a process without it gets), and with
    selu_ext imported it runs selu_ext's kernels."""
    model = snn.convert(nn.Sequential(nn.Linear(4, 8), nn.SELU(), nn.Linear(8, 4))).eval()
    x = torch.randn(6, 4)
    path = tmp_path / "m.pt"
    with selu_ext.archive_kernels():
        if how == "export":
            torch.export.save(torch.export.export(model, (x,)), path)
        else:
            torch.jit.save(torch.jit.trace(model, (x,)), path)
    kind = "export" if how == "export" else "jit"
    run = _load_elsewhere(kind, path, x, model(x), tmp_path)
    assert run.returncode != 0 and "selu_ext" in run.stderr, run.stderr[-2000:]
    run = _load_elsewhere(kind, path, x, model(x), tmp_path, import_selu_ext=True)
    assert run.returncode == 0 and "loaded" in run.stdout, run.stderr[-2000:]


def test_archive_kernels_is_scoped():
    m = snn.SELU()
    x = _x()
    with selu_ext.archive_kernels():
        with selu_ext.archive_kernels(False):
            _check_torch_ops_only(torch.jit.trace(m, (x,)))
        assert "selu_ext::selu" in _ops_in(torch.jit.trace(m, (x,)))
    _check_torch_ops_only(torch.jit.trace(m, (x,)))


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
