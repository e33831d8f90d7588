"""Shared by the drop-in tests (test_dropin*.py, issue 10): the (torch, selu_ext)
pairs of every public entry point, inputs, and the comparisons of outcomes and of
AlphaDropout results whose masks differ."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import selu_ext
from conftest import F64_MODEL_FLOOR, TOL
from selu_ext import nn as snn

@pytest.fixture(autouse=True)
def seed_torch():
    """Training-mode dropout draws from torch's default generator: the same masks on
    every run (imported by the test modules, which makes it apply to each test)."""
    torch.manual_seed(0)


# (torch's, selu_ext's) for each public entry point, built fresh per call.
MODULES = {
    "SELU": (nn.SELU, snn.SELU),
    "AlphaDropout": (lambda: nn.AlphaDropout(0.2), lambda: snn.AlphaDropout(0.2)),
    "FeatureAlphaDropout": (lambda: nn.FeatureAlphaDropout(0.2),
                            lambda: snn.FeatureAlphaDropout(0.2)),
}
DROPOUT_FUNCTIONS = {
    "alpha_dropout": (F.alpha_dropout, selu_ext.alpha_dropout),
    "feature_alpha_dropout": (F.feature_alpha_dropout, selu_ext.feature_alpha_dropout),
}
DROPOUT_MODULES = {
    "AlphaDropout": (nn.AlphaDropout, snn.AlphaDropout),
    "FeatureAlphaDropout": (nn.FeatureAlphaDropout, snn.FeatureAlphaDropout),
}
# The forms of SELU a model calls: (torch's, selu_ext's), each taking (input, **options).
SELU_FORMS = {
    "functional": (F.selu, selu_ext.selu),
    "module": (lambda t, **kw: nn.SELU(**kw)(t), lambda t, **kw: snn.SELU(**kw)(t)),
}


def make_x(shape=(8, 6, 5), dtype=torch.float64, seed=0, requires_grad=False, device="cpu"):
    # [-1.5, 3]: both SELU branches, and far enough from -scale*alpha (-1.758) that a
    # kept unit a * x + b never equals the dropped constant (bfloat16 included).
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(shape, generator=g, dtype=torch.float64) * 4.5 - 1.5)
    return x.to(device=device, dtype=dtype).requires_grad_(requires_grad)


def close(actual, expected, dtype=torch.float64):
    rtol, atol = TOL[dtype][:2]
    torch.testing.assert_close(actual, expected, rtol=max(rtol, F64_MODEL_FLOOR),
                               atol=max(atol, F64_MODEL_FLOOR))


def outcome(fn):
    """('ok', result) or ('raise', exception) of fn()."""
    try:
        return "ok", fn()
    except Exception as e:  # noqa: BLE001  (the test compares whatever torch raises)
        return "raise", e


def same_outcome(theirs, ours):
    """Both ran, or both raised the same exception type. Returns the two results."""
    (tk, tv), (ok, ov) = theirs, ours
    short = lambda e: f"{type(e).__name__}: {str(e)[:160]}"  # noqa: E731
    if tk == "raise":
        assert ok == "raise", f"torch raises {short(tv)}; selu_ext returned"
        assert type(ov) is type(tv), f"torch raises {short(tv)}; selu_ext {short(ov)}"
    else:
        assert ok == "ok", f"torch runs; selu_ext raises {short(ov)}"
    return tv, ov


def check_alpha_dropout(out, x, p, feature, grad_in=None, grad_out=None):
    """The properties every AlphaDropout result has, whatever its mask: each unit is
    a * x + b (kept) or the dropped constant, a feature mask is constant over each
    (n, c) channel, and the gradient is a * grad on kept units, 0 on dropped ones.
    Returns the keep mask."""
    a, b, dropped = selu_ext.alpha_dropout_coefficients(float(p))
    xd, od = x.detach().double(), out.detach().double()
    rtol = TOL[x.dtype][0] * 4
    kept = torch.isclose(od, a * xd + b, rtol=rtol, atol=rtol)
    drop = torch.isclose(od, torch.full_like(od, dropped), rtol=rtol, atol=rtol)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert bool((kept | drop).all()), "a unit is neither a * x + b nor the dropped value"
    # Distinct for _x's inputs (a * x + b == dropped needs x == -scale*alpha).
    assert not bool((kept & drop).any())
    if feature:
        flat = kept.flatten(2)
        assert bool((flat == flat[..., :1]).all()), "feature mask not constant per channel"
    if grad_in is not None:
        torch.testing.assert_close(grad_in.double(), grad_out.double() * a * kept, rtol=rtol,
                                   atol=rtol)
    return kept




# selu_ext's graph nodes, by what the SELU in them keeps for backward.
_SELU_NODES = {"SeluBackward0": "input", "SeluBackward1": "output",
               "SeluAlphaDropoutBackward0": "fused"}


def selu_kept(out):
    """Per SELU call that produced ``out``, in the order of the calls: what it keeps
    for backward, 'input' (torch's semantics), 'output' or 'fused' (SELU and
    AlphaDropout in one op, output kept)."""
    nodes, seen, stack = [], set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        nodes.append(node)
        stack.extend(n for n, _ in node.next_functions)
    nodes.sort(key=lambda n: n._sequence_nr())
    return [_SELU_NODES[n.name()] for n in nodes if n.name() in _SELU_NODES]


def torch_twin(m):
    """A copy of ``m`` with every selu_ext module replaced by its torch.nn
    counterpart (the fused module by SELU then AlphaDropout): the program that
    scripting, tracing and export record for ``m``."""
    def swap(mod):
        t = type(mod)
        if t is snn.SELU:
            return nn.SELU(mod.inplace)
        if t is snn.AlphaDropout:
            return nn.AlphaDropout(mod.p, mod.inplace)
        if t is snn.FeatureAlphaDropout:
            return nn.FeatureAlphaDropout(mod.p, mod.inplace)
        if t is snn.SELUAlphaDropout:
            return nn.Sequential(nn.SELU(), nn.AlphaDropout(mod.p))
        for name, child in list(mod._modules.items()):
            setattr(mod, name, swap(child))
        return mod

    twin = swap(copy.deepcopy(m))
    return twin.train(m.training)
