"""selu_ext.diagnose, selu_ext.init.self_normalizing_ and convert()'s warnings.

A 32-layer LeCun MLP on standardized input is clean and inside the band at every
depth; PyTorch's default init, nn.Dropout(0.1), inputs of mean 5 and BatchNorm each
give exactly their finding, naming the right layers; every SELU form is seen (torch
and selu_ext modules, the fused module, functional calls); the tutorial's ConvNet,
torch.compile'd modules, models without SELU; the model comes back untouched;
docs/diagnose.md is the example script's output. Fixed seeds throughout."""

import contextlib
import importlib.util
import io
import math
import re
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import selu_ext
from selu_ext.diagnose import (ACTIVATION_MEAN_MAX, ACTIVATION_VAR_BAND, INPUT_MEAN_MAX,
                               INPUT_VAR_BAND, WEIGHT_BAND, Finding, SelfNormalizationWarning)
from selu_ext.init import forward_fan_in, self_normalizing_

from conftest import (CONV_WEIGHT_VAR_SAMPLE, DEVICES, F32_NETWORK, SELF_NORMALIZING_OUTPUT_VAR,
                      STATS_RECOMPUTED, require_device)

ROOT = Path(__file__).resolve().parents[1]
DEPTH, WIDTH, BATCH = 32, 128, 512


def _input(shift=0.0, device="cpu"):
    # Skewed features, standardized per feature (then shifted).
    g = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH, WIDTH, generator=g) ** 2
    return ((x - x.mean(0)) / x.std(0) + shift).to(device)


def _mlp(lecun=True, selu=nn.SELU, dropout=None, batchnorm=False, device="cpu"):
    """DEPTH x (Linear [+ BatchNorm] + SELU [+ Dropout]) + Linear head."""
    torch.manual_seed(0)  # PyTorch's default init draws from the default generator
    layers = []
    for _ in range(DEPTH):
        layers.append(nn.Linear(WIDTH, WIDTH))
        if batchnorm:
            layers.append(nn.BatchNorm1d(WIDTH))
        layers.append(selu())
        if dropout is not None:
            layers.append(nn.Dropout(dropout))
    model = nn.Sequential(*layers, nn.Linear(WIDTH, 10))
    if lecun:
        self_normalizing_(model, generator=torch.Generator().manual_seed(1))
    return model.to(device)


def _names(model, cls):
    return tuple(name for name, m in model.named_modules() if type(m) is cls)


def _kinds(report):
    return [f.kind for f in report.findings]


def _inside(mean, var):
    return abs(mean) <= ACTIVATION_MEAN_MAX and ACTIVATION_VAR_BAND[0] <= var <= ACTIVATION_VAR_BAND[1]


@torch.no_grad()
def _selu_stats(model, x):
    """Each SELU's output (mean, population variance) in float64, computed by hand."""
    out = []
    for m in model:
        x = m(x)
        if isinstance(m, (nn.SELU, selu_ext.nn.SELU, selu_ext.nn.SELUAlphaDropout)):
            xd = x.double()
            out.append((xd.mean().item(), xd.var(unbiased=False).item()))
    return out


# ---------------------------------------------------------------------------
# The network the paper describes, and each common mistake


@pytest.mark.parametrize("device", DEVICES)
def test_lecun_mlp_is_clean_and_inside_the_band_at_every_depth(device):
    require_device(device)
    model, x = _mlp(device=device).eval(), _input(device=device)
    report = selu_ext.diagnose(model, x)
    assert report.ok and report.findings == [], str(report)
    assert "No findings" in str(report)
    selus = report.selu_rows
    assert len(selus) == DEPTH
    expected = _selu_stats(model, x)
    for row, (mean, var) in zip(selus, expected):
        assert _inside(row.eval_mean, row.eval_var) and _inside(row.train_mean, row.train_var), row
        # The report's numbers are the network's (no dropout: both passes agree).
        assert row.eval_mean == pytest.approx(mean, abs=STATS_RECOMPUTED)
        assert row.eval_var == pytest.approx(var, rel=STATS_RECOMPUTED)
        assert row.train_var == pytest.approx(var, rel=STATS_RECOMPUTED)
    linears = [r for r in report.rows if r.type == "Linear"]
    assert len(linears) == DEPTH + 1
    assert all(WEIGHT_BAND[0] <= r.weight_var_x_fan_in <= WEIGHT_BAND[1] for r in linears)
    assert all(r.fan_in == WIDTH and r.bias_mean == 0.0 for r in linears)
    assert [r.name for r in report.rows] == [str(i) for i in range(2 * DEPTH + 1)]


@pytest.mark.parametrize("device", DEVICES)
def test_default_init_is_named_layer_by_layer(device):
    require_device(device)
    model = _mlp(lecun=False, device=device)
    report = selu_ext.diagnose(model, _input(device=device))
    assert _kinds(report) == ["init"], str(report)
    (finding,) = report.findings
    # The DEPTH Linears feeding a SELU, not the head (which feeds nothing).
    assert finding.layers == _names(model, nn.Linear)[:DEPTH]
    assert "0.33" in finding.evidence[0]
    # The collapse it causes is the evidence, not a second finding.
    assert any("variance" in e and "< 0.45" in e for e in finding.evidence[1:])
    assert "self_normalizing_" in finding.fix
    last = report.selu_rows[-1]
    assert last.eval_var < 0.1


def test_self_normalizing_fixes_default_init():
    model = _mlp(lecun=False)
    assert not selu_ext.diagnose(model, _input()).ok
    assert selu_ext.init.self_normalizing_(model) is model
    assert all(torch.count_nonzero(m.bias) == 0 for m in model if isinstance(m, nn.Linear))
    report = selu_ext.diagnose(model, _input())
    assert report.ok, str(report)


@pytest.mark.parametrize("device", DEVICES)
def test_dropout_is_named(device):
    require_device(device)
    model = _mlp(dropout=0.1, device=device)
    report = selu_ext.diagnose(model, _input(device=device))
    assert _kinds(report) == ["dropout"], str(report)
    assert report.findings[0].layers == _names(model, nn.Dropout)
    assert "AlphaDropout" in report.findings[0].fix
    # Evidence from the train pass: dropout raises the variance there, not in eval.
    last = report.selu_rows[-1]
    assert last.train_var > last.eval_var * 1.1
    assert "train pass" in report.findings[0].evidence[1]


def test_input_mean_5_is_named():
    report = selu_ext.diagnose(_mlp(), _input(shift=5.0))
    assert _kinds(report) == ["input"], str(report)
    finding = report.findings[0]
    assert finding.layers == ("input",)
    assert "mean +5.00" in finding.evidence[0]
    # The first SELUs leave the band and the network pulls them back.
    first = report.selu_rows[0]
    assert not _inside(first.eval_mean, first.eval_var)
    assert _inside(report.selu_rows[-1].eval_mean, report.selu_rows[-1].eval_var)
    assert "back inside" in finding.evidence[1]


def test_batchnorm_is_named():
    model = _mlp(batchnorm=True)
    report = selu_ext.diagnose(model, _input())
    assert _kinds(report) == ["normalization"], str(report)
    assert report.findings[0].layers == _names(model, nn.BatchNorm1d)


def test_other_findings():
    torch.manual_seed(0)
    x = _input()

    def build(*mid):
        model = nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.SELU(), *mid, nn.Linear(WIDTH, WIDTH),
                              nn.SELU(), nn.Linear(WIDTH, 1), nn.Sigmoid())
        return self_normalizing_(model, generator=torch.Generator().manual_seed(2))

    # A hidden ReLU is named; the sigmoid head is not.
    model = build(nn.Linear(WIDTH, WIDTH), nn.ReLU())
    report = selu_ext.diagnose(model, x)
    assert _kinds(report) == ["activation"] and report.findings[0].layers == ("3",), str(report)
    # AlphaDropout between a layer and its SELU.
    model = build(nn.Linear(WIDTH, WIDTH), nn.AlphaDropout(0.1), nn.SELU())
    report = selu_ext.diagnose(model, x)
    assert _kinds(report) == ["alpha_dropout_order"], str(report)
    assert report.findings[0].layers == ("3",)
    # After the SELU it is right.
    assert selu_ext.diagnose(build(nn.AlphaDropout(0.1)), x).ok


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(WIDTH, WIDTH)

    def forward(self, x):
        return x + F.selu(self.linear(x))  # unscaled: the variance grows block by block


def test_drift_without_a_cause_is_its_own_finding():
    model = self_normalizing_(nn.Sequential(*[_Residual() for _ in range(6)]),
                              generator=torch.Generator().manual_seed(3))
    report = selu_ext.diagnose(model, _input())
    assert _kinds(report) == ["drift"], str(report)
    finding = report.findings[0]
    first_out = next(r for r in report.selu_rows if not _inside(r.eval_mean, r.eval_var))
    assert finding.layers == (first_out.name,)
    assert first_out.name.endswith(".selu()")
    assert "eval pass" in finding.evidence[0] and "residual" in finding.fix


# ---------------------------------------------------------------------------
# Every form of SELU


class _FunctionalBlock(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.linear, self.fn = nn.Linear(WIDTH, WIDTH), fn

    def forward(self, x):
        return self.fn(self.linear(x))


SELU_FORMS = {
    "torch.nn.SELU": lambda: nn.SELU(),
    "selu_ext.nn.SELU": lambda: selu_ext.nn.SELU(),
    "selu_ext.nn.SELU(inplace)": lambda: selu_ext.nn.SELU(inplace=True),
    "SELUAlphaDropout": lambda: selu_ext.nn.SELUAlphaDropout(0.05),
}
FUNCTIONAL_FORMS = {
    "F.selu": F.selu,
    "torch.selu": torch.selu,
    "selu_ext.selu": selu_ext.selu,
    "selu_ext.selu_alpha_dropout": lambda x: selu_ext.selu_alpha_dropout(x, 0.05, training=True),
}


@pytest.mark.parametrize("form", list(SELU_FORMS))
def test_every_selu_module_is_seen(form):
    model = _mlp(selu=SELU_FORMS[form])
    report = selu_ext.diagnose(model, _input())
    assert report.ok, str(report)
    assert len(report.selu_rows) == DEPTH
    reference = selu_ext.diagnose(_mlp(), _input())
    for ours, theirs in zip(report.selu_rows, reference.selu_rows):
        assert ours.eval_mean == pytest.approx(theirs.eval_mean, abs=F32_NETWORK["rtol"])
        assert ours.eval_var == pytest.approx(theirs.eval_var, rel=F32_NETWORK["rtol"])


@pytest.mark.parametrize("form", list(FUNCTIONAL_FORMS))
def test_functional_selu_calls_are_seen(form):
    fn = FUNCTIONAL_FORMS[form]
    model = self_normalizing_(nn.Sequential(*[_FunctionalBlock(fn) for _ in range(4)]),
                              generator=torch.Generator().manual_seed(4))
    report = selu_ext.diagnose(model, _input())
    assert report.ok, str(report)
    names = [r.name for r in report.selu_rows]
    assert names == [f"{i}.{n}()" for i in range(4) for n in [names[0].split(".")[-1][:-2]]]
    assert [r.name for r in report.rows if r.kind == "weight"] == [f"{i}.linear" for i in range(4)]


def test_functional_dropout_and_linear_are_seen():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.empty(WIDTH, WIDTH))
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # PyTorch's Linear default

        def forward(self, x):
            return F.dropout(F.selu(F.linear(x, self.weight)), 0.1, self.training)

    torch.manual_seed(0)
    model = nn.Sequential(Block(), Block())
    report = selu_ext.diagnose(model, _input())
    assert _kinds(report) == ["init", "dropout"], str(report)
    assert report.findings[0].layers == ("0.linear()", "1.linear()")
    assert report.findings[1].layers == ("0.dropout()", "1.dropout()")


def test_calls_made_only_in_training_are_placed_in_order():
    # selu_ext's functional dropouts run no op in eval mode: the train pass alone
    # sees them, and the report puts them where they ran.
    class Block(nn.Module):
        def __init__(self, dropout):
            super().__init__()
            self.linear, self.dropout = nn.Linear(WIDTH, WIDTH), dropout

        def forward(self, x):
            return self.dropout(F.selu(self.linear(x)), 0.1, self.training)

    model = self_normalizing_(nn.Sequential(Block(selu_ext.alpha_dropout),
                                            Block(selu_ext.feature_alpha_dropout)),
                              generator=torch.Generator().manual_seed(8))
    report = selu_ext.diagnose(model, _input())
    assert report.ok, str(report)
    assert [(r.name, r.kind) for r in report.rows] == [
        ("0.linear", "weight"), ("0.selu()", "selu"), ("0.alpha_dropout()", "alpha_dropout"),
        ("1.linear", "weight"), ("1.selu()", "selu"), ("1.feature_alpha_dropout()", "alpha_dropout")]
    assert [r.type for r in report.rows if r.kind != "weight"] == [
        "F.selu", "selu_ext.alpha_dropout", "F.selu", "selu_ext.feature_alpha_dropout"]


# ---------------------------------------------------------------------------
# ConvNets, compiled modules, no SELU, CUDA


def _snn_example():
    spec = importlib.util.spec_from_file_location("snn_example", ROOT / "benchmarks" / "snn_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("variant", ["selu_ext", "torch"])
def test_tutorial_convnet(variant):
    model = _snn_example().VARIANTS[variant](torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(5)
    images = torch.rand(256, 1, 8, 8, generator=g)  # pixels in [0, 1], as the tutorial's
    report = selu_ext.diagnose(model, (images - images.mean()) / images.std())
    assert report.ok, str(report)
    assert len(report.selu_rows) == 2
    assert [r.type for r in report.rows if r.kind == "weight"] == ["Conv2d", "Linear", "Linear"]
    assert report.rows[0].fan_in == 9
    assert report.rows[0].weight_var_x_fan_in == pytest.approx(1, abs=CONV_WEIGHT_VAR_SAMPLE)
    # Unscaled pixels: the input finding, nothing else.
    assert _kinds(selu_ext.diagnose(model, images)) == ["input"]


def test_compiled_module_and_its_original():
    model = _mlp(lecun=False)
    expected = str(selu_ext.diagnose(model, _input()))
    compiled = torch.compile(model)
    assert str(selu_ext.diagnose(compiled, _input())) == expected
    assert str(selu_ext.diagnose(compiled._orig_mod, _input())) == expected
    # A compiled block inside a model runs eagerly while diagnosed, so it is seen.
    outer = nn.Sequential(torch.compile(_mlp()), nn.SELU())
    report = selu_ext.diagnose(outer, _input())
    assert len(report.selu_rows) == DEPTH + 1


def test_model_without_selu_gets_a_clear_message():
    model = nn.Sequential(nn.Linear(WIDTH, 16), nn.ReLU(), nn.Linear(16, 2))
    report = selu_ext.diagnose(model, _input())
    assert not report.ok and _kinds(report) == ["no_selu"]
    assert "No SELU found" in str(report)
    assert [r.type for r in report.rows] == ["Linear", "ReLU", "Linear"]


# ---------------------------------------------------------------------------
# The model comes back as it was


def test_model_state_is_restored():
    model = nn.Sequential(nn.SELU(inplace=True), nn.Linear(WIDTH, WIDTH), nn.BatchNorm1d(WIDTH),
                          nn.SELU(), nn.Dropout(0.2), nn.Linear(WIDTH, 4))
    model.train()
    model[4].eval()  # mixed flags must come back per module
    model[1].weight.grad = torch.ones_like(model[1].weight)
    with torch.no_grad():
        model[2].running_mean.fill_(0.5)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    x = _input()
    x_before = x.clone()
    rng = torch.get_rng_state()
    report = selu_ext.diagnose(model, x)
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(x, x_before)  # the in-place SELU ran on a copy
    assert [m.training for m in model.modules()] == flags
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert torch.equal(model[1].weight.grad, torch.ones_like(model[1].weight))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    # Repeatable: the same report again.
    assert str(selu_ext.diagnose(model, x)) == str(report)



def test_lazy_modules_stay_lazy():
    """Issue 21, item 13: the passes would materialize a LazyLinear (drawing its
    weights from the global generator); diagnose runs them on a copy."""
    model = nn.Sequential(nn.LazyLinear(WIDTH), nn.SELU(), nn.Linear(WIDTH, 4))
    rng = torch.get_rng_state()
    report = selu_ext.diagnose(model, _input())
    assert torch.equal(torch.get_rng_state(), rng)
    assert type(model[0]) is nn.LazyLinear and model[0].has_uninitialized_params()
    assert [r.name for r in report.rows][:2] == ["0", "1"]  # the copy's layers, same names

def test_bad_arguments():
    with pytest.raises(TypeError, match="selu_ext.diagnose: argument 'model' must be a torch.nn.Module"):
        selu_ext.diagnose(lambda x: x, _input())
    with pytest.raises(TypeError, match="selu_ext.diagnose: argument 'example_input' must be a Tensor"):
        selu_ext.diagnose(_mlp(), {"x": _input()})
    with pytest.raises(TypeError, match="self_normalizing_: argument 'model'"):
        self_normalizing_(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="lazy module"):
        self_normalizing_(nn.Sequential(nn.LazyLinear(4)))


def test_plot(tmp_path, monkeypatch):
    report = selu_ext.diagnose(_mlp(dropout=0.1), _input())
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="Report.plot\\(\\) needs matplotlib"):
            report.plot(tmp_path / "x.png")
    else:
        report.plot(tmp_path / "x.png")
        assert (tmp_path / "x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
        with pytest.raises(ImportError, match="Report.plot\\(\\) needs matplotlib"):
            report.plot(tmp_path / "y.png")


# ---------------------------------------------------------------------------
# self_normalizing_ and convert()


@pytest.mark.parametrize("layer,fan_in", [
    (lambda: nn.Conv2d(8, 32, 3, groups=2), 4 * 9),
    (lambda: nn.ConvTranspose2d(32, 32, 4, stride=2, padding=1), 32 * 16 / 4),
    (lambda: nn.ConvTranspose1d(16, 8, 3), 16 * 3),
])
def test_self_normalizing_uses_the_forward_fan_in(layer, fan_in):
    m = layer()
    assert forward_fan_in(m) == fan_in
    self_normalizing_(m, generator=torch.Generator().manual_seed(6))
    # Unit-variance input, variance-1 output: the fan-in the forward pass sums.
    x = torch.randn(64, m.in_channels, *([12] * (m.weight.dim() - 2)),
                    generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        y = m(x)
    border = 2  # padding and the transposed edges sum fewer terms
    inner = y[(..., *[slice(border, -border)] * (m.weight.dim() - 2))]
    assert inner.var().item() == pytest.approx(1.0, abs=SELF_NORMALIZING_OUTPUT_VAR)
    assert torch.count_nonzero(m.bias) == 0


def _convert_warnings(model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        selu_ext.nn.convert(model)
    return [w for w in caught if issubclass(w.category, SelfNormalizationWarning)]


def test_convert_warns_once_naming_the_modules():
    model = _mlp(lecun=False, dropout=0.1)
    (w,) = _convert_warnings(model)
    text = str(w.message)
    assert "selu_ext.nn.convert" in text
    assert "dropout next to SELU in '2', '5'" in text and "'95'" in text
    assert "weights not LeCun-normal on layers feeding a SELU: '0', '3'" in text and "'93'" in text
    assert "'96'" not in text  # the head feeds no SELU
    assert w.filename == __file__  # points at the caller's line
    assert _convert_warnings(_mlp()) == []
    assert _convert_warnings(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))) == []


# ---------------------------------------------------------------------------
# docs/diagnose.md: the page is the example script's output


def _example_module():
    spec = importlib.util.spec_from_file_location("diagnose_example",
                                                  ROOT / "benchmarks" / "diagnose_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_diagnose_page_is_the_example_output(tmp_path):
    example = _example_module()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        printed = example.main(["--out", str(tmp_path)])
    stored = ROOT / "benchmarks" / "results" / "diagnose"
    correct, broken = (tmp_path / "correct.txt").read_text(), (tmp_path / "broken.txt").read_text()
    assert printed == (correct, broken) and out.getvalue() == correct + broken
    assert correct == (stored / "correct.txt").read_text()
    assert broken == (stored / "broken.txt").read_text()
    assert "No findings" in correct
    assert re.findall(r"^\d\. \[(\w+)\]", broken, re.M) == ["input", "init", "dropout"]

    section = (ROOT / "docs" / "diagnose.md").read_text()
    code, shown_good, shown_bad = re.findall(r"```(?:python)?\n(.*?)```", section, re.S)[:3]
    assert shown_good == correct and shown_bad == broken
    script = (ROOT / "benchmarks" / "diagnose_example.py").read_text()
    marked = re.search(r"# --- docs/diagnose.md example start ---\n(.*?)"
                       r"    # --- docs/diagnose.md example end ---", script, re.S).group(1)
    assert code == textwrap.dedent(marked)
    # The bands the page states are the code's.
    assert "|mean| ≤ 0.35, variance in [0.45, 2.2]" in section
    assert f"[{WEIGHT_BAND[0]:g}, {WEIGHT_BAND[1]:g}]" in section


def test_finding_str():
    f = Finding("init", ("a",), "Weights off.", ("e1", "e2"), "fix it")
    assert str(f) == "[init] Weights off.\n    evidence: e1\n    evidence: e2\n    fix: fix it"


def test_bands_match_their_stored_measurement():
    """The constants are the ones benchmarks/diagnose_bands.py measured (its stored
    output names them), the measurement supports them, and docs/diagnose.md quotes it."""
    text = (ROOT / "benchmarks" / "results" / "diagnose" / "bands.txt").read_text()
    assert text.splitlines()[0] == (
        f"selu_ext.diagnose bands: activation |mean| <= {ACTIVATION_MEAN_MAX:g}, variance "
        f"[{ACTIVATION_VAR_BAND[0]:g}, {ACTIVATION_VAR_BAND[1]:g}]; weights variance x fan_in "
        f"[{WEIGHT_BAND[0]:g}, {WEIGHT_BAND[1]:g}]; input |mean| <= {INPUT_MEAN_MAX:g}, "
        f"variance [{INPUT_VAR_BAND[0]:g}, {INPUT_VAR_BAND[1]:g}]")
    # Correct MLPs of width >= 32 and every ConvNet: all layers inside.
    rows = re.findall(r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)/(\d+)$", text, re.M)
    widths = {int(r[0]): r for r in rows[:6]}
    for width, r in widths.items():
        assert (r[4] == r[5]) == (width >= 32), r
    assert all(r[4] == r[5] for r in rows[6:])
    # Weights: inside for c in the band, not just outside it.
    scaled = dict(re.findall(r"^\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+(yes|no) ", text, re.M))
    inside = sorted(float(c) for c, ok in scaled.items() if ok == "yes")
    assert (inside[0], inside[-1]) == WEIGHT_BAND
    assert scaled["0.80"] == scaled["1.25"] == "no"
    # docs/diagnose.md quotes the width-32 row and the width-16 misses.
    r32, r16 = widths[32], widths[16]
    section = " ".join((ROOT / "docs" / "diagnose.md").read_text().split())
    assert (f"(|mean| ≤ {float(r32[1]):.2f}, variance {float(r32[2]):.2f} to "
            f"{float(r32[3]):.2f})") in section
    assert f"at width 16, {int(r16[5]) - int(r16[4])} of {r16[5]} layers fell outside" in section
    # Inputs: every measured point of the input band keeps the first SELU inside.
    table = text.split("v \\ m", 1)[1].splitlines()
    means = [float(m) for m in table[0].split()]
    cells = []
    for line in table[1:]:
        v, *row = line.split()
        for m, cell in zip(means, row):
            if abs(m) <= INPUT_MEAN_MAX and INPUT_VAR_BAND[0] <= float(v) <= INPUT_VAR_BAND[1]:
                cells.append(cell)
    assert len(cells) == 15 and not any(c.endswith("*") for c in cells)
    values = sorted(float(c) for c in cells)
    assert f"(output variance {values[0]:.2f} to {values[-1]:.2f})" in section
