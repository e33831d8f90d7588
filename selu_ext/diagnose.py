"""``selu_ext.diagnose(model, example_input)``: is a network actually
self-normalizing?

SELU alone does not make a network self-normalizing (Klambauer et al. 2017): the
fixed point at mean 0 / variance 1 also needs weights of variance 1 / fan_in
(LeCun-normal), standardized inputs, AlphaDropout instead of Dropout, and no
normalization layers that move the statistics. The common mistakes are silent, so
this module runs the model once in eval and once in train mode, watches every
layer, and says which condition is broken, where, with what evidence, and the fix.

What is seen: modules (forward hooks) -- Linear, ConvNd, ConvTransposeNd, every
SELU (``torch.nn.SELU``, ``selu_ext.nn.SELU``, the fused
``selu_ext.nn.SELUAlphaDropout``, subclasses included), dropout, AlphaDropout,
normalization and other activation modules; and calls made inside ``forward``
(a ``TorchFunctionMode``): ``F.selu`` / ``torch.selu`` / ``selu_ext.selu`` /
``selu_ext.selu_alpha_dropout``, ``F.linear`` / ``F.conv*``, ``F.dropout*``,
``F.alpha_dropout`` / ``selu_ext.alpha_dropout``, ``F.*_norm`` and other
activation functions and Tensor methods (``x.relu()``). Not seen: weights used by
other means (``x @ w``, ``torch.einsum``, ``nn.MultiheadAttention``'s fused
projections), ops called from C++ or custom autograd Functions' insides, and
``selu_ext.feature_alpha_dropout`` in eval mode (it runs no op there). Compiled
code runs eagerly while diagnosed (``torch.compiler.set_stance("force_eager")``).

The bands are constants below; ``benchmarks/diagnose_bands.py`` measures them
(``benchmarks/results/diagnose/bands.txt``) and docs/diagnose.md ("The bands")
explains them.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.nn.modules.conv import _ConvNd
from torch.overrides import TorchFunctionMode

from . import functional as sf
from . import nn as snn
from .init import forward_fan_in

__all__ = [
    "diagnose",
    "Report",
    "Finding",
    "LayerRow",
    "SelfNormalizationWarning",
    "WEIGHT_BAND",
    "WEIGHT_SAMPLE_SIGMAS",
    "INPUT_MEAN_MAX",
    "INPUT_VAR_BAND",
    "ACTIVATION_MEAN_MAX",
    "ACTIVATION_VAR_BAND",
]

# ---------------------------------------------------------------------------
# Bands (measured by benchmarks/diagnose_bands.py; docs/diagnose.md explains them)

# Weight variance x fan_in of a layer feeding a SELU (1.0 is LeCun). Uniformly
# scaled weights keep every SELU of a 32-layer MLP inside the activation band
# below for this range; the paper's own stability theorem assumes [0.95, 1.1].
WEIGHT_BAND = (0.85, 1.2)
# A layer with few weights draws a noisy sample variance even when initialized
# correctly (relative standard deviation sqrt(2 / n) for n normal weights), so the
# band widens to 1 +- WEIGHT_SAMPLE_SIGMAS * sqrt(2 / n) where that is wider.
WEIGHT_SAMPLE_SIGMAS = 4.0
# example_input (all elements of each floating-point input): the region where the
# first SELU of a LeCun network stays inside the activation band, corners included.
INPUT_MEAN_MAX = 0.5
INPUT_VAR_BAND = (0.5, 2.0)
# Each SELU's output over the batch (all elements). Correct networks of width >= 32
# stayed inside in every measured layer; narrower layers fluctuate more (the mean
# and variance over a layer's units vary as 1 / sqrt(width)).
ACTIVATION_MEAN_MAX = 0.35
ACTIVATION_VAR_BAND = (0.45, 2.2)


class SelfNormalizationWarning(UserWarning):
    """A model breaks a condition of self-normalization (``selu_ext.nn.convert``)."""


# ---------------------------------------------------------------------------
# What a layer is

WEIGHT, SELU, DROPOUT, ALPHA_DROPOUT, NORM, ACTIVATION = (
    "weight", "selu", "dropout", "alpha_dropout", "norm", "activation")

_NORM_MODULES = tuple(c for c in (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
    getattr(nn, "RMSNorm", None)) if c is not None)
_ACTIVATION_MODULES = (
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.ELU, nn.CELU, nn.LeakyReLU, nn.PReLU, nn.RReLU,
    nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Mish, nn.Softplus, nn.Softsign, nn.Tanh,
    nn.Sigmoid, nn.LogSigmoid, nn.Tanhshrink, nn.GLU, nn.Threshold)

# Functions and Tensor methods by name (torch functions, F.* and methods share them);
# selu_ext's operators by their schema name.
_FUNCTION_KINDS = {
    **dict.fromkeys(("selu", "selu_"), SELU),
    **dict.fromkeys(("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                     "conv_transpose2d", "conv_transpose3d"), WEIGHT),
    **dict.fromkeys(("dropout", "dropout_", "dropout1d", "dropout2d", "dropout3d",
                     "feature_dropout", "feature_dropout_"), DROPOUT),
    **dict.fromkeys(("alpha_dropout", "alpha_dropout_", "feature_alpha_dropout",
                     "feature_alpha_dropout_"), ALPHA_DROPOUT),
    **dict.fromkeys(("batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm",
                     "local_response_norm"), NORM),
    **dict.fromkeys(("relu", "relu_", "relu6", "gelu", "silu", "elu", "elu_", "celu",
                     "leaky_relu", "leaky_relu_", "prelu", "rrelu", "hardtanh", "hardtanh_",
                     "hardswish", "hardsigmoid", "mish", "softplus", "softsign", "tanh",
                     "tanh_", "sigmoid", "sigmoid_", "logsigmoid", "tanhshrink", "glu",
                     "threshold"), ACTIVATION),
}
_OP_KINDS = {  # schema name -> (kind, the public function that calls it)
    "selu_ext::selu": (SELU, "selu_ext.selu"),
    "selu_ext::selu_": (SELU, "selu_ext.selu"),
    "selu_ext::selu_alpha_dropout": (SELU, "selu_ext.selu_alpha_dropout"),
    "selu_ext::alpha_dropout": (ALPHA_DROPOUT, "selu_ext.alpha_dropout"),
    "selu_ext::alpha_dropout_": (ALPHA_DROPOUT, "selu_ext.alpha_dropout"),
    # feature_alpha_dropout draws its channel mask with this op (only in training).
    "selu_ext::dropout_keep_mask": (ALPHA_DROPOUT, "selu_ext.feature_alpha_dropout"),
}


def _module_kind(m: nn.Module) -> Optional[tuple[str, str]]:
    """(kind, type shown in the report) of a module diagnose looks at, else None."""
    name = type(m).__name__
    if isinstance(m, (nn.Linear, _ConvNd)):
        return WEIGHT, name
    if isinstance(m, snn.SELUAlphaDropout):
        return SELU, name  # selu_ext's fused SELU + AlphaDropout
    if isinstance(m, snn.SELU):
        return SELU, f"{name} (selu_ext)"
    if isinstance(m, nn.SELU):
        return SELU, f"{name} (torch)"
    if isinstance(m, (nn.AlphaDropout, nn.FeatureAlphaDropout)):
        return ALPHA_DROPOUT, name
    if isinstance(m, nn.modules.dropout._DropoutNd):
        return DROPOUT, name
    if isinstance(m, _NORM_MODULES):
        return NORM, name
    if isinstance(m, _ACTIVATION_MODULES):
        return ACTIVATION, name
    return None


def _function_kind(func) -> Optional[tuple[str, str]]:
    if isinstance(func, torch._ops.OpOverload):
        return _OP_KINDS.get(func.name())
    # selu_ext's functions hand __torch_function__ modes themselves (as F.* do).
    if getattr(func, "__module__", None) == sf.__name__:
        kind = _FUNCTION_KINDS.get(func.__name__)
        if func.__name__ == "selu_alpha_dropout":
            kind = SELU
        return (kind, f"selu_ext.{func.__name__}") if kind else None
    name = getattr(func, "__name__", None)
    kind = _FUNCTION_KINDS.get(name) if isinstance(name, str) else None
    return (kind, name) if kind else None


def _mean_var(t: Tensor) -> tuple[float, float]:
    """Mean and population variance in float64, outside the tracer's function mode
    (these are diagnose's own ops, not the model's)."""
    with torch._C.DisableTorchFunction():
        var, mean = torch.var_mean(t.detach().to(torch.float64), correction=0)
        return mean.item(), var.item()


def _weight_stats(weight: Tensor, fan_in: float):
    """(variance x fan_in, number of weights) of a weight tensor."""
    return _mean_var(weight)[1] * fan_in, weight.numel()


def _weight_band(n_weights: int) -> tuple[float, float]:
    """The band of variance x fan_in for a layer of ``n_weights`` weights: WEIGHT_BAND,
    widened to the sampling spread of a correctly drawn small layer."""
    spread = WEIGHT_SAMPLE_SIGMAS * math.sqrt(2.0 / max(n_weights, 1))
    return min(WEIGHT_BAND[0], 1.0 - spread), max(WEIGHT_BAND[1], 1.0 + spread)


# ---------------------------------------------------------------------------
# Events: one per call of a layer, in execution (or registration) order


@dataclass
class _Event:
    key: str
    type: str
    kind: str
    fan_in: Optional[float] = None
    var_fan_in: Optional[float] = None
    n_weights: int = 0
    bias_mean: Optional[float] = None
    p: Optional[float] = None
    stats: dict = field(default_factory=dict)  # pass -> (mean, variance) of the output


def _module_event(key: str, m: nn.Module, kind: str, type_name: str) -> _Event:
    ev = _Event(key, type_name, kind)
    if kind == WEIGHT and not isinstance(m.weight, nn.parameter.UninitializedParameter):
        ev.fan_in = forward_fan_in(m)
        ev.var_fan_in, ev.n_weights = _weight_stats(m.weight, ev.fan_in)
        if m.bias is not None:
            ev.bias_mean = _mean_var(m.bias)[0]
    ev.p = getattr(m, "p", None)
    return ev


def _arg(args, kwargs, i, name, default=None):
    if name in kwargs:
        return kwargs[name]
    return args[i] if len(args) > i else default


def _function_event(key: str, func_name: str, kind: str, args, kwargs) -> _Event:
    ev = _Event(key, func_name if "." in func_name else f"F.{func_name}", kind)
    if kind == WEIGHT:
        w = _arg(args, kwargs, 1, "weight")
        if isinstance(w, Tensor) and w.dim() >= 2:
            if func_name.startswith("conv_transpose"):
                stride = _arg(args, kwargs, 3, "stride", 1)
                groups = _arg(args, kwargs, 6, "groups", 1)
                k = w.shape[2:]
                stride = (stride,) * len(k) if isinstance(stride, int) else tuple(stride)
                ev.fan_in = w.shape[0] / groups * math.prod(k) / math.prod(stride)
            else:
                ev.fan_in = float(w[0].numel())
            ev.var_fan_in, ev.n_weights = _weight_stats(w, ev.fan_in)
        b = _arg(args, kwargs, 2, "bias")
        if isinstance(b, Tensor):
            ev.bias_mean = _mean_var(b)[0]
    elif kind in (DROPOUT, ALPHA_DROPOUT):
        p = _arg(args, kwargs, 1, "p")
        ev.p = p if isinstance(p, float) else None
    return ev


def _output_stats(out) -> Optional[tuple[float, float]]:
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    if not isinstance(out, Tensor) or not out.is_floating_point() or out.numel() < 2:
        return None
    return _mean_var(out)


class _Tracer(TorchFunctionMode):
    """Records the layers of one forward pass: module hooks for modules, this mode
    for functions called inside ``forward`` outside any recognized module."""

    def __init__(self, model: nn.Module, pass_name: str):
        super().__init__()
        self.pass_name = pass_name
        self.events: dict[str, _Event] = {}
        self.order: list[str] = []
        self.calls: dict[str, int] = {}
        self.stack: list[str] = []
        self.inside = 0  # depth inside recognized modules (their own calls are theirs)
        self.handles = []
        seen = set()
        for name, m in model.named_modules():
            if id(m) in seen:
                continue
            seen.add(id(m))
            kind = _module_kind(m)
            self.handles.append(m.register_forward_pre_hook(self._pre(name, kind)))
            self.handles.append(m.register_forward_hook(self._post(name, m, kind)))

    def _key(self, base: str) -> str:
        n = self.calls[base] = self.calls.get(base, 0) + 1
        return base if n == 1 else f"{base}#{n}"

    def _pre(self, name, kind):
        def hook(module, args):
            self.stack.append(name)
            if kind is not None:
                self.inside += 1
        return hook

    def _post(self, name, m, kind):
        def hook(module, args, out):
            self.stack.pop()
            if kind is None:
                return
            self.inside -= 1
            if self.inside == 0:
                self._record(_module_event(self._key(name or "(model)"), m, *kind), out)
        return hook

    def _record(self, ev: _Event, out) -> None:
        if ev.kind == SELU:
            stats = _output_stats(out)
            if stats is not None:
                ev.stats[self.pass_name] = stats
        self.events[ev.key] = ev
        self.order.append(ev.key)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.inside == 0:
            found = _function_kind(func)
            if found is not None:
                kind, fname = found
                parent = self.stack[-1] if self.stack else ""
                base = f"{parent}.{fname.split('.')[-1]}()" if parent else f"{fname.split('.')[-1]}()"
                self._record(_function_event(self._key(base), fname, kind, args, kwargs), out)
        return out

    def remove(self):
        for h in self.handles:
            h.remove()


def _force_eager():
    set_stance = getattr(torch.compiler, "set_stance", None)
    return set_stance("force_eager") if set_stance is not None else contextlib.nullcontext()


def _run(model: nn.Module, inputs: tuple, train: bool) -> _Tracer:
    model.train(train)
    tracer = _Tracer(model, "train" if train else "eval")
    try:
        # Clones: an in-place first layer would otherwise change example_input.
        args = tuple(x.clone() if isinstance(x, Tensor) else x for x in inputs)
        with torch.no_grad(), _force_eager(), tracer:
            model(*args)
    finally:
        tracer.remove()
    return tracer


def _merge_order(a: list[str], b: list[str]) -> list[str]:
    """Keys of both passes in one order (a pass may call a layer the other does not,
    e.g. a functional dropout that returns early in eval mode)."""
    out: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        out += a[i1:i2]
        if tag != "equal":
            out += b[j1:j2]
    seen: set[str] = set()
    return [k for k in out if not (k in seen or seen.add(k))]


# ---------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class LayerRow:
    """One call of a layer, in execution order. ``kind`` is ``"weight"`` (Linear,
    ConvNd, ConvTransposeNd, F.linear, F.conv*), ``"selu"``, ``"dropout"``,
    ``"alpha_dropout"``, ``"norm"`` or ``"activation"`` (any other). ``name`` is the
    module's name, or ``"<module>.<function>()"`` for a call inside a forward,
    ``#2``, ``#3`` ... for repeated calls. ``weight_var_x_fan_in`` is 1.0 for
    LeCun-normal weights; the statistics are those of a SELU's output over all
    elements of the batch, in each pass (None for other layers)."""

    name: str
    type: str
    kind: str
    fan_in: Optional[float] = None
    weight_var_x_fan_in: Optional[float] = None
    bias_mean: Optional[float] = None
    eval_mean: Optional[float] = None
    eval_var: Optional[float] = None
    train_mean: Optional[float] = None
    train_var: Optional[float] = None


@dataclass(frozen=True)
class Finding:
    """One broken condition: ``kind`` (``"input"``, ``"init"``, ``"normalization"``,
    ``"dropout"``, ``"alpha_dropout_order"``, ``"activation"``, ``"drift"`` or
    ``"no_selu"``), the ``layers`` it names, what is wrong, the evidence and the fix."""

    kind: str
    layers: tuple[str, ...]
    message: str
    evidence: tuple[str, ...]
    fix: str

    def __str__(self) -> str:
        lines = [f"[{self.kind}] {self.message}"]
        lines += [f"    evidence: {e}" for e in self.evidence]
        lines.append(f"    fix: {self.fix}")
        return "\n".join(lines)


def _names(names: Sequence[str], limit: int = 8) -> str:
    quoted = [f"'{n}'" for n in names]
    if len(quoted) > limit:
        quoted = quoted[:limit - 2] + ["...", quoted[-1]]
    text = ", ".join(quoted)
    return f"{text} ({len(names)} layers)" if len(names) > 1 else text


def _in_activation_band(mean: float, var: float) -> bool:
    return abs(mean) <= ACTIVATION_MEAN_MAX and ACTIVATION_VAR_BAND[0] <= var <= ACTIVATION_VAR_BAND[1]


def _band_miss(mean: float, var: float, mean_max: float, var_band: tuple[float, float]) -> str:
    """How (mean, var) misses a band, e.g. 'variance 0.24 < 0.45'."""
    parts = []
    if abs(mean) > mean_max:
        parts.append(f"|mean| {abs(mean):.2f} > {mean_max:g}")
    if var < var_band[0]:
        parts.append(f"variance {var:.2f} < {var_band[0]:g}")
    elif var > var_band[1]:
        parts.append(f"variance {var:.2f} > {var_band[1]:g}")
    return ", ".join(parts)


@dataclass
class Report:
    """What :func:`diagnose` found. ``rows``: one :class:`LayerRow` per layer call in
    execution order; ``inputs``: (name, mean, variance) of each floating-point input;
    ``findings``: the broken conditions (empty when the network is
    self-normalizing on this input); ``ok``: no findings. ``print(report)`` shows a
    table and the findings; ``report.plot(path)`` draws each SELU's output mean and
    variance against depth (needs matplotlib)."""

    model_name: str
    rows: list[LayerRow]
    inputs: list[tuple[str, float, float]]
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def selu_rows(self) -> list[LayerRow]:
        return [r for r in self.rows if r.kind == SELU]

    def __str__(self) -> str:
        def num(v, fmt, bad=False):
            return "" if v is None else format(v, fmt) + ("!" if bad else "")

        header = ("#", "layer", "type", "fan_in", "var x fan_in", "bias mean",
                  "eval mean", "eval var", "train mean", "train var")
        table = []
        for name, mean, var in self.inputs:
            bad_in = abs(mean) > INPUT_MEAN_MAX, not INPUT_VAR_BAND[0] <= var <= INPUT_VAR_BAND[1]
            table.append(("", name, "input", "", "", "", num(mean, "+.2f", bad_in[0]),
                          num(var, ".2f", bad_in[1]), "", ""))
        for i, r in enumerate(self.rows, 1):
            cells = [str(i), r.name, r.type, "", "", "", "", "", "", ""]
            if r.fan_in is not None:
                cells[3] = f"{r.fan_in:g}"
            if r.weight_var_x_fan_in is not None:
                cells[4] = num(r.weight_var_x_fan_in, ".2f")
            cells[5] = num(r.bias_mean, "+.3f")
            for col, (m, v) in ((6, (r.eval_mean, r.eval_var)), (8, (r.train_mean, r.train_var))):
                if m is not None:
                    cells[col] = num(m, "+.2f", abs(m) > ACTIVATION_MEAN_MAX)
                    cells[col + 1] = num(v, ".2f", not ACTIVATION_VAR_BAND[0] <= v <= ACTIVATION_VAR_BAND[1])
            table.append(tuple(cells))
        widths = [max(len(h), *(len(row[c]) for row in table)) if table else len(h)
                  for c, h in enumerate(header)]
        left = {1, 2}

        def fmt(row):
            return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                             for i, (c, w) in enumerate(zip(row, widths))).rstrip()

        n_selu = len(self.selu_rows)
        lines = [f"selu_ext.diagnose: {self.model_name}, {len(self.rows)} layer calls, "
                 f"{n_selu} SELU{'s' if n_selu != 1 else ''}", fmt(header)]
        lines += [fmt(row) for row in table]
        lines.append(f"! outside the band: input |mean| <= {INPUT_MEAN_MAX:g}, variance "
                     f"[{INPUT_VAR_BAND[0]:g}, {INPUT_VAR_BAND[1]:g}]; SELU output |mean| <= "
                     f"{ACTIVATION_MEAN_MAX:g}, variance [{ACTIVATION_VAR_BAND[0]:g}, "
                     f"{ACTIVATION_VAR_BAND[1]:g}];")
        lines.append(f"  weights feeding a SELU: variance x fan_in [{WEIGHT_BAND[0]:g}, "
                     f"{WEIGHT_BAND[1]:g}] (1.0 is LeCun)")
        if self.ok:
            lines.append("No findings: the network is self-normalizing on this input.")
        else:
            lines.append(f"{len(self.findings)} finding{'s' if len(self.findings) != 1 else ''}:")
            lines += [f"{i}. {f}" for i, f in enumerate(self.findings, 1)]
        return "\n".join(lines)

    __repr__ = __str__

    def plot(self, path) -> None:
        """Save a figure of each SELU's output mean and variance (eval and train
        passes) against depth, with the bands shaded, to ``path``."""
        try:
            import matplotlib
        except ImportError as e:
            raise ImportError("selu_ext.diagnose: Report.plot() needs matplotlib, which is not "
                              "installed (pip install matplotlib, or selu_ext[plot])") from e
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        selus = self.selu_rows
        if not selus:
            raise ValueError("selu_ext.diagnose: Report.plot(): the model has no SELU to plot")
        depth = range(1, len(selus) + 1)
        fig, (ax_m, ax_v) = plt.subplots(1, 2, figsize=(11, 4.2))
        ax_m.axhspan(-ACTIVATION_MEAN_MAX, ACTIVATION_MEAN_MAX, color="green", alpha=0.1)
        ax_v.axhspan(*ACTIVATION_VAR_BAND, color="green", alpha=0.1, label="band")
        for which, style in (("eval", "-"), ("train", "--")):
            means = [getattr(r, f"{which}_mean") for r in selus]
            variances = [getattr(r, f"{which}_var") for r in selus]
            pts = [(d, m, v) for d, m, v in zip(depth, means, variances) if m is not None]
            if pts:
                ax_m.plot([p[0] for p in pts], [p[1] for p in pts], style, marker=".", label=which)
                ax_v.plot([p[0] for p in pts], [p[2] for p in pts], style, marker=".", label=which)
        ax_m.set(xlabel="SELU (depth)", ylabel="output mean", title="mean")
        ax_v.set(xlabel="SELU (depth)", ylabel="output variance (log)", title="variance",
                 yscale="log")
        ax_v.legend(fontsize=8)
        fig.suptitle(f"selu_ext.diagnose: {self.model_name}")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


# ---------------------------------------------------------------------------
# Rules, over an ordered list of events (shared with convert's static check)


def _neighbour_activation(events: list[_Event], i: int, step: int) -> Optional[_Event]:
    j = i + step
    while 0 <= j < len(events):
        if events[j].kind in (SELU, ACTIVATION):
            return events[j]
        j += step
    return None


def _near_selu(events: list[_Event], i: int) -> bool:
    before, after = _neighbour_activation(events, i, -1), _neighbour_activation(events, i, 1)
    return (before is not None and before.kind == SELU) or (after is not None and after.kind == SELU)


def _feeds_selu(events: list[_Event], i: int) -> bool:
    """A weight layer feeds a SELU when the next weight layer or activation after it
    is a SELU (dropout and normalization layers in between do not count)."""
    for ev in events[i + 1:]:
        if ev.kind in (WEIGHT, SELU, ACTIVATION):
            return ev.kind == SELU
    return False


def _off_lecun(events: list[_Event]) -> list[int]:
    out = []
    for i, ev in enumerate(events):
        if ev.kind == WEIGHT and ev.var_fan_in is not None and _feeds_selu(events, i):
            lo, hi = _weight_band(ev.n_weights)
            if not lo <= ev.var_fan_in <= hi:
                out.append(i)
    return out


def _dropouts_near_selu(events: list[_Event]) -> list[int]:
    return [i for i, ev in enumerate(events) if ev.kind == DROPOUT and _near_selu(events, i)]


def _norms_near_selu(events: list[_Event]) -> list[int]:
    return [i for i, ev in enumerate(events) if ev.kind == NORM and _near_selu(events, i)]


def _hidden_activations(events: list[_Event]) -> list[int]:
    """Non-SELU activations followed by a weight layer (an output activation after
    the last layer, a sigmoid or tanh head, is not part of the SNN)."""
    return [i for i, ev in enumerate(events)
            if ev.kind == ACTIVATION and any(e.kind == WEIGHT for e in events[i + 1:])]


def _alpha_dropouts_before_selu(events: list[_Event]) -> list[int]:
    out = []
    for i, ev in enumerate(events):
        if ev.kind != ALPHA_DROPOUT:
            continue
        before = next((e for e in reversed(events[:i]) if e.kind in (WEIGHT, SELU, ACTIVATION)), None)
        after = _neighbour_activation(events, i, 1)
        if before is not None and before.kind == WEIGHT and after is not None and after.kind == SELU:
            out.append(i)
    return out


def _fmt_stats(stats: tuple[float, float]) -> str:
    return f"mean {stats[0]:+.2f}, variance {stats[1]:.2f}"


class _Cause:
    """A finding under construction: the event positions it names (-1: the input)
    and the passes in which its layers act (dropout does nothing in eval mode)."""

    def __init__(self, kind, positions, passes, message, evidence, fix, layers):
        self.kind, self.positions, self.passes = kind, positions, passes
        self.message, self.evidence, self.fix, self.layers = message, list(evidence), fix, layers

    def finding(self) -> Finding:
        return Finding(self.kind, tuple(self.layers), self.message, tuple(self.evidence), self.fix)


def _episodes(events: list[_Event], pass_name: str):
    """Runs of consecutive SELUs whose output leaves the activation band in one pass:
    (position of the last SELU inside the band before the run, or -1 for the input;
    positions of the SELUs in the run)."""
    out, last_in, run = [], -1, []
    for i, ev in enumerate(events):
        if ev.kind != SELU or pass_name not in ev.stats:
            continue
        if _in_activation_band(*ev.stats[pass_name]):
            if run:
                out.append((last_in, run))
                run = []
            last_in = i
        else:
            run.append(i)
    if run:
        out.append((last_in, run))
    return out


def _describe_episode(events, pass_name, run, selus) -> str:
    first = events[run[0]]
    m, v = first.stats[pass_name]
    text = (f"SELU '{first.key}' output {_fmt_stats((m, v))} "
            f"({_band_miss(m, v, ACTIVATION_MEAN_MAX, ACTIVATION_VAR_BAND)})")
    last = events[run[-1]]
    if len(run) > 1:
        text += f", out of the band through '{last.key}' ({_fmt_stats(last.stats[pass_name])})"
    later = [i for i in selus if i > run[-1] and pass_name in events[i].stats]
    text += f", back inside at '{events[later[0]].key}'" if later else ", to the last SELU"
    return text


def _analyze(events: list[_Event], inputs: list[tuple[str, float, float]]) -> list[Finding]:
    selus = [i for i, ev in enumerate(events) if ev.kind == SELU]
    if not selus:
        return [Finding(
            "no_selu", (), "No SELU found: the self-normalization checks apply only to networks "
            "with SELU activations.",
            ("looked for torch.nn.SELU, selu_ext.nn.SELU and SELUAlphaDropout modules and for "
             "F.selu / torch.selu / selu_ext.selu / selu_ext.selu_alpha_dropout calls during "
             f"forward; the model ran {len(events)} recognized layer calls",),
            "use SELU activations (selu_ext.nn.SELU, or torch.nn.SELU and selu_ext.nn.convert), "
            "or do not use diagnose on this model")]

    causes = _causes(events, inputs)
    drift = _credit_drift(events, causes)  # first: it adds to the causes' evidence
    return [c.finding() for c in causes] + drift


# Why PyTorch's default Linear / ConvNd init (kaiming_uniform_(a=sqrt(5))) is worth
# naming: it draws variance x fan_in = 1/3, the most common cause of a collapse.
_TORCH_DEFAULT_VAR_FAN_IN = 1.0 / 3.0


def _causes(events: list[_Event], inputs: list[tuple[str, float, float]]) -> list[_Cause]:
    """The broken conditions, in the order the report lists them."""
    selus = [i for i, ev in enumerate(events) if ev.kind == SELU]

    def keys(idx):
        return [events[i].key for i in idx]

    causes: list[_Cause] = []
    bad_inputs = [(n, m, v) for n, m, v in inputs
                  if abs(m) > INPUT_MEAN_MAX or not INPUT_VAR_BAND[0] <= v <= INPUT_VAR_BAND[1]]
    if bad_inputs:
        causes.append(_Cause(
            "input", [-1], ("eval", "train"),
            "Input not standardized: " + ", ".join(n for n, _, _ in bad_inputs) + ".",
            [f"{n}: mean {m:+.2f}, variance {v:.2f} ({_band_miss(m, v, INPUT_MEAN_MAX, INPUT_VAR_BAND)}; "
             f"band |mean| <= {INPUT_MEAN_MAX:g}, variance [{INPUT_VAR_BAND[0]:g}, {INPUT_VAR_BAND[1]:g}])"
             for n, m, v in bad_inputs],
            "standardize each input feature with the training set's statistics: "
            "x = (x - mean) / std", ["input"]))
    idx = _off_lecun(events)
    if idx:
        values = [events[i].var_fan_in for i in idx]
        causes.append(_Cause(
            "init", idx, ("eval", "train"),
            f"Weights not LeCun-normal on layers feeding a SELU: {_names(keys(idx))}.",
            [f"weight variance x fan_in {min(values):.2f}" + (f" to {max(values):.2f}" if len(values) > 1 else "")
             + f" (1.0 is LeCun; band [{WEIGHT_BAND[0]:g}, {WEIGHT_BAND[1]:g}]"
             + ("; PyTorch's default init gives 0.33"
                if any(abs(v - _TORCH_DEFAULT_VAR_FAN_IN) < 0.05 for v in values) else "") + ")"],
            "selu_ext.init.self_normalizing_(model) (LeCun-normal weights, zero biases), or "
            "selu_ext.init.lecun_normal_(layer.weight) for each of these layers", keys(idx)))
    idx = _norms_near_selu(events)
    if idx:
        causes.append(_Cause(
            "normalization", idx, ("eval", "train"),
            f"Normalization layers in a self-normalizing network: {_names(keys(idx))}.",
            [", ".join(sorted({events[i].type for i in idx})) + " next to SELU: the network "
             "normalizes itself, and these replace its statistics with the batch's in training "
             "and with running averages in eval"],
            "remove them; SELU with LeCun-normal weights keeps mean 0 / variance 1 without them",
            keys(idx)))
    idx = _dropouts_near_selu(events)
    if idx:
        last = events[selus[-1]]
        evidence = [", ".join(f"'{events[i].key}' {events[i].type}" + (f"(p={events[i].p:g})" if events[i].p is not None else "")
                              for i in idx[:4]) + (", ..." if len(idx) > 4 else "")
                    + ": dropout scales kept units by 1/(1-p), which raises the variance and "
                    "moves the fixed point in training"]
        if "train" in last.stats and "eval" in last.stats:
            evidence.append(f"last SELU '{last.key}': train pass {_fmt_stats(last.stats['train'])}, "
                            f"eval pass {_fmt_stats(last.stats['eval'])}")
        causes.append(_Cause(
            "dropout", idx, ("train",), f"Dropout next to SELU: {_names(keys(idx))}.", evidence,
            "use selu_ext.nn.AlphaDropout (or SELUAlphaDropout in place of SELU + dropout), "
            "which keeps mean 0 / variance 1", keys(idx)))
    idx = _alpha_dropouts_before_selu(events)
    if idx:
        causes.append(_Cause(
            "alpha_dropout_order", idx, ("train",),
            f"AlphaDropout before its SELU: {_names(keys(idx))}.",
            ["AlphaDropout sets dropped units to SELU's saturation value -1.7581 and is "
             "calibrated for SELU outputs; between a layer and its SELU it feeds the SELU "
             "that constant instead"],
            "move AlphaDropout after the SELU (or use selu_ext.nn.SELUAlphaDropout)", keys(idx)))
    idx = _hidden_activations(events)
    if idx:
        causes.append(_Cause(
            "activation", idx, ("eval", "train"),
            f"Non-SELU activations in the network: {_names(keys(idx))}.",
            [", ".join(sorted({events[i].type for i in idx})) + ": only SELU maps mean 0 / "
             "variance 1 back to itself; these layers start the next ones off the fixed point"],
            "use SELU (selu_ext.nn.SELU) for every hidden activation", keys(idx)))
    return causes


def _credit_drift(events: list[_Event], causes: list[_Cause]) -> list[Finding]:
    """Adds each run of SELUs outside the band to the evidence of the cause that
    explains it; returns a "drift" finding for the runs no cause explains."""
    selus = [i for i, ev in enumerate(events) if ev.kind == SELU]
    # Each run of SELUs outside the band: the eval pass's, then the train pass's that
    # start elsewhere (dropout acts only there). A run goes to the first cause that
    # explains it (acts in that pass and sits between the last SELU inside the band
    # and the first one outside), else to a "drift" finding.
    runs: dict[int, dict] = {}  # first SELU of a run -> its description and owner
    for pass_name in ("eval", "train"):
        for last_in, run in _episodes(events, pass_name):
            if run[0] in runs:
                runs[run[0]]["alike"] = True
                continue
            owner = next((c for c in causes if pass_name in c.passes
                          and any(last_in <= p < run[0] for p in c.positions)), None)
            runs[run[0]] = {"text": f"{pass_name} pass: "
                            + _describe_episode(events, pass_name, run, selus),
                            "owner": owner, "alike": False}
    drift_evidence, drift_layers = [], []
    for first, r in runs.items():
        text = r["text"] + (" (train pass alike)" if r["alike"] else "")
        if r["owner"] is not None:
            r["owner"].evidence.append("then, " + text)
        else:
            drift_evidence.append(text)
            drift_layers.append(events[first].key)
    if not drift_evidence:
        return []
    layers = tuple(dict.fromkeys(drift_layers))
    return [Finding(
        "drift", layers, f"Activations leave the band at {_names(layers)}, with no cause found "
        "above.", tuple(drift_evidence),
        "look at what runs before these SELUs: residual sums add variance (scale them by "
        "1/sqrt(2)), large biases shift the mean, custom ops and concatenations change both")]


def _model_events(model: nn.Module) -> list[_Event]:
    """Layers in registration order: convert()'s view, without running the model."""
    events, seen = [], set()
    for name, m in model.named_modules():
        if id(m) in seen:
            continue
        seen.add(id(m))
        found = _module_kind(m)
        if found is not None:
            events.append(_module_event(name or type(m).__name__, m, *found))
    return events


def _convert_warnings(model: nn.Module) -> None:
    """One SelfNormalizationWarning naming the mistakes ``convert`` can see without
    running the model (layers taken in registration order): nn.Dropout next to SELU,
    and non-LeCun weights on layers feeding a SELU."""
    # Before reading any weight: most models convert() meets may have no SELU.
    if not any((_module_kind(m) or ("",))[0] == SELU for m in model.modules()):
        return
    events = _model_events(model)
    problems = []
    idx = _dropouts_near_selu(events)
    if idx:
        problems.append(f"dropout next to SELU in {_names([events[i].key for i in idx])} (use "
                        "AlphaDropout: plain dropout breaks the self-normalizing fixed point)")
    idx = _off_lecun(events)
    if idx:
        problems.append(f"weights not LeCun-normal on layers feeding a SELU: "
                        f"{_names([events[i].key for i in idx])} (variance x fan_in "
                        + ", ".join(f"{events[i].var_fan_in:.2f}" for i in idx[:3])
                        + (", ..." if len(idx) > 3 else "")
                        + f", band [{WEIGHT_BAND[0]:g}, {WEIGHT_BAND[1]:g}]; fix: "
                        "selu_ext.init.self_normalizing_(model))")
    if problems:
        warnings.warn("selu_ext.nn.convert: the model is not self-normalizing: "
                      + "; ".join(problems) + ". selu_ext.diagnose(model, x) checks more.",
                      SelfNormalizationWarning, stacklevel=3)


# ---------------------------------------------------------------------------
# Entry point


def _unwrap(model):
    # A torch.compile'd module: diagnose its original (run eagerly, same names).
    orig = getattr(model, "_orig_mod", None)
    return orig if isinstance(orig, nn.Module) else model


def _floating_inputs(inputs: tuple) -> list[tuple[str, float, float]]:
    out = []
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.is_floating_point() and x.numel() >= 2:
            name = "input" if len(inputs) == 1 else f"input[{i}]"
            out.append((name, *_mean_var(x)))
    return out


def diagnose(model: nn.Module, example_input: Any) -> Report:
    """Check whether ``model`` is self-normalizing on ``example_input``.

    Runs ``model(example_input)`` (``model(*example_input)`` for a tuple or list) once
    in eval and once in train mode, without gradients, and returns a :class:`Report`:
    per layer call, its type, fan-in, weight variance x fan-in (1.0 is LeCun-normal)
    and bias mean, and for every SELU the mean and variance of its output over the
    batch in each pass; then the findings (input not standardized, weights off
    LeCun, normalization layers, dropout next to SELU, AlphaDropout before its SELU,
    non-SELU hidden activations, activations leaving the band), each with evidence
    and the fix. Use a batch of a few hundred real, preprocessed samples: the
    statistics are over the batch.

    The model is left as it was: each module's training flag, buffers (BatchNorm's
    running statistics), parameters and gradients; torch's random number generators
    (CPU, and CUDA devices in use) are restored after the passes. A model with lazy
    modules not yet materialized is diagnosed on a copy (the passes would
    materialize them). A ``torch.compile``'d module is diagnosed through its
    original module.
    """
    model = _unwrap(model)
    if not isinstance(model, nn.Module):
        raise TypeError(f"selu_ext.diagnose: argument 'model' must be a torch.nn.Module, not "
                        f"{type(model).__name__}")
    if isinstance(example_input, (tuple, list)):
        inputs = tuple(example_input)
    elif isinstance(example_input, Tensor):
        inputs = (example_input,)
    else:
        raise TypeError("selu_ext.diagnose: argument 'example_input' must be a Tensor or a "
                        f"tuple of the model's arguments, not {type(example_input).__name__}")

    if any(isinstance(m, nn.modules.lazy.LazyModuleMixin) and m.has_uninitialized_params()
           for m in model.modules()):
        model = copy.deepcopy(model)
    modules = list(model.modules())
    training = [m.training for m in modules]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    devices = sorted({t.device.index or 0 for t in (*model.parameters(), *model.buffers(),
                                                    *(x for x in inputs if isinstance(x, Tensor)))
                      if t.device.type == "cuda"})
    try:
        # Both passes: a lazy module draws its weights in the first.
        with torch.random.fork_rng(devices=devices):
            eval_pass = _run(model, inputs, train=False)
            train_pass = _run(model, inputs, train=True)
    finally:
        for m, flag in zip(modules, training):
            m.training = flag
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)

    events = []
    for key in _merge_order(eval_pass.order, train_pass.order):
        ev = eval_pass.events.get(key) or train_pass.events[key]
        for tracer in (eval_pass, train_pass):
            other = tracer.events.get(key)
            if other is not None and tracer.pass_name in other.stats:
                ev.stats[tracer.pass_name] = other.stats[tracer.pass_name]
        events.append(ev)
    inputs_stats = _floating_inputs(inputs)
    rows = []
    for ev in events:
        ev_stats = {p: ev.stats.get(p, (None, None)) for p in ("eval", "train")}
        rows.append(LayerRow(ev.key, ev.type, ev.kind, ev.fan_in, ev.var_fan_in, ev.bias_mean,
                             *ev_stats["eval"], *ev_stats["train"]))
    return Report(type(model).__name__, rows, inputs_stats, _analyze(events, inputs_stats))
