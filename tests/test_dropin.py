"""Drop-in behaviour, side by side with torch.nn (issue 10): each test runs the same
snippet with torch.nn / torch.nn.functional and with selu_ext and compares values,
errors and in-place semantics.

Dropout masks differ between torch and selu_ext (different generators), so dropout
is compared exactly in eval mode and by properties in training mode: p == 0 is the
identity, kept units are a * x + b, dropped ones the constant, and the gradient is
the linear map of the mask. Both libraries' results go through the same property
check, so the check itself is tested against torch.

This file: values, in-place use of outputs and the save_output option; convert()
is in test_convert.py.
Argument types and the smaller items are in test_dropin_args.py, TorchScript and
ONNX in test_dropin_export.py, forward-mode AD and DTensor in
test_dropin_transforms.py; the shared pairs and checks in dropin_common.py.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import selu_ext
from conftest import DEVICES, SELU_VS_TORCH, TOL, require_device
from dropin_common import (DROPOUT_FUNCTIONS, DROPOUT_MODULES, MODULES, SELU_FORMS,
                            check_alpha_dropout, close, make_x, outcome, same_outcome)
from dropin_common import seed_torch  # noqa: F401  (autouse fixture)
from selu_ext import nn as snn


def _run_dropout(fn, x, p, training=True, inplace=False):
    """fn(x, p, training, inplace) with a backward; returns (out, x.grad, g)."""
    leaf = x.detach().clone().requires_grad_()
    h = leaf * 1.0 if inplace else leaf
    out = fn(h, p, training, inplace)
    g = make_x(out.shape, out.dtype, seed=5, device=out.device)
    out.backward(g)
    return out, leaf.grad, g


# ---------------------------------------------------------------------------
# Values: SELU within the tolerance table, dropout in eval mode exactly


def _module_call(make):
    return lambda x, training: make().train(training)(x)


# Every public entry point as (torch's, selu_ext's) callables of (input, training).
ENTRY_POINTS = {
    **{f"nn.{name}": (_module_call(t), _module_call(o)) for name, (t, o) in MODULES.items()},
    "selu": (lambda x, training: F.selu(x), lambda x, training: selu_ext.selu(x)),
    **{name: (lambda x, training, f=t: f(x, 0.2, training),
              lambda x, training, f=o: f(x, 0.2, training))
       for name, (t, o) in DROPOUT_FUNCTIONS.items()},
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", list(ENTRY_POINTS))
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_values_and_gradients(name, training, dtype, device):
    """SELU: torch's values and gradients within the tolerance table. Dropout: in eval
    mode torch's exact result (the input itself); in training mode the AlphaDropout
    properties, for torch's result and selu_ext's alike."""
    theirs_fn, ours_fn = ENTRY_POINTS[name]
    if name.startswith("nn."):
        assert repr(MODULES[name[3:]][1]()) == repr(MODULES[name[3:]][0]())
    require_device(device)
    x = make_x(dtype=dtype, device=device)
    g = make_x(dtype=dtype, seed=9, device=device)

    def run(fn):
        leaf = x.clone().requires_grad_()
        out = fn(leaf, training)
        out.backward(g)
        return leaf, out, leaf.grad

    (t_in, theirs, t_grad), (o_in, ours, o_grad) = run(theirs_fn), run(ours_fn)
    if "selu" in name.lower():
        rtol, atol = TOL[dtype][:2]
        torch.testing.assert_close(ours, theirs, rtol=max(rtol, SELU_VS_TORCH["rtol"]),
                                   atol=max(atol, SELU_VS_TORCH["atol"]))
        rtol, atol = TOL[dtype][2:]
        torch.testing.assert_close(o_grad, t_grad, rtol=rtol, atol=atol)
    elif not training:
        assert (ours is o_in) == (theirs is t_in)  # torch hands back the input itself
        assert torch.equal(ours, theirs) and torch.equal(o_grad, t_grad)
    else:
        feature = "Feature" in name or "feature" in name
        check_alpha_dropout(theirs, x, 0.2, feature, t_grad, g)
        check_alpha_dropout(ours, x, 0.2, feature, o_grad, g)


@pytest.mark.parametrize("name", list(DROPOUT_FUNCTIONS))
@pytest.mark.parametrize("p", [0.0, 0.2, 0.7, 1.0])
@pytest.mark.parametrize("inplace", [False, True], ids=["out", "inplace"])
@pytest.mark.parametrize("device", DEVICES)
def test_functional_dropout_training_properties(name, p, inplace, device):
    require_device(device)
    theirs_fn, ours_fn = DROPOUT_FUNCTIONS[name]
    feature = name == "feature_alpha_dropout"
    x = make_x(device=device)
    for fn in (theirs_fn, ours_fn):
        out, grad, g = _run_dropout(fn, x, p, inplace=inplace)
        if p == 0:
            torch.testing.assert_close(out, x, rtol=0, atol=0)
            torch.testing.assert_close(grad, g, rtol=0, atol=0)
        elif p == 1:  # every unit dropped: zeros, and no gradient through
            torch.testing.assert_close(out, torch.zeros_like(x), rtol=0, atol=0)
            torch.testing.assert_close(grad, torch.zeros_like(x), rtol=0, atol=0)
        else:
            check_alpha_dropout(out, x, p, feature, grad, g)


@pytest.mark.parametrize("name", list(DROPOUT_FUNCTIONS))
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("p", [0.0, 0.3])
def test_functional_dropout_identity_and_inplace_semantics(name, training, p):
    """Which calls hand back the input itself, and which write into it, as torch."""
    theirs_fn, ours_fn = DROPOUT_FUNCTIONS[name]

    def run(fn, inplace):
        x = make_x()
        before = x.clone()
        v0 = x._version
        out = fn(x, p, training, inplace)
        return out is x, not torch.equal(x, before), x._version > v0

    for inplace in (False, True):
        assert run(ours_fn, inplace) == run(theirs_fn, inplace), f"inplace={inplace}"


@pytest.mark.parametrize("name", list(DROPOUT_MODULES))
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_dropout_module_inplace_flag_is_not_acted_on(name, training):
    """torch's AlphaDropout/FeatureAlphaDropout(inplace=True) accept the flag and call
    F.alpha_dropout(input, p, training) without it: the input is never written."""
    def run(cls):
        m = cls(0.4, inplace=True).train(training)
        x = make_x()
        before = x.clone()
        out = m(x)
        return repr(m), out is x, torch.equal(x, before), x._version

    theirs, ours = run(DROPOUT_MODULES[name][0]), run(DROPOUT_MODULES[name][1])
    assert ours == theirs


def _tanh_dropout_model(lib, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), lib.AlphaDropout(0.2, inplace=True),
                         nn.Linear(8, 3), nn.Tanh(), lib.FeatureAlphaDropout(0.2, inplace=True))


@pytest.mark.parametrize("how", ["selu_ext", "convert", "compile"])
def test_inplace_dropout_module_after_tanh_trains(how):
    """Sequential(Linear, Tanh, AlphaDropout(0.2, inplace=True)) trains with torch.nn;
    with selu_ext's modules, after convert(), and under torch.compile, too."""
    reference = _tanh_dropout_model(nn)
    if how == "convert":
        model = snn.convert(reference)
        assert any(isinstance(m, snn.AlphaDropout) for m in model.modules())
    else:
        model = _tanh_dropout_model(snn)
    if how == "compile":
        torch._dynamo.reset()
        model = torch.compile(model, backend="aot_eager")
    x = make_x((16, 6), dtype=torch.float32)
    for m in (reference, model):
        m.train()
        out = m(x)
        loss = out.square().sum()
        loss.backward()
        grads = [p.grad for p in m.parameters()]
        assert all(g is not None and bool(g.isfinite().all()) for g in grads)
        assert any(bool((g != 0).any()) for g in grads)
    # In eval mode the dropouts are the identity: the same outputs as torch.nn.
    model.eval()
    reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


# ---------------------------------------------------------------------------
# In-place use of the SELU output (item 1) and the save_output option


def _consume_iadd(h, res):
    h += res
    return h


def _consume_dropout_inplace(h, res):
    torch.manual_seed(11)  # the same nn.Dropout mask for torch and selu_ext
    return nn.Dropout(0.3, inplace=True)(h)


def _consume_relu_(h, res):
    return torch.relu_(h)


def _consume_mul_(h, res):
    return h.mul_(res)


CONSUMERS = {
    "iadd": _consume_iadd,
    "dropout_inplace": _consume_dropout_inplace,
    "relu_": _consume_relu_,
    "mul_": _consume_mul_,
}


def _selu_then(selu, consumer, device="cpu", **options):
    """h = selu(x @ w); consumer modifies h in place; backward. Returns the output
    and the gradients of x and w."""
    x = make_x((12, 7), seed=1, requires_grad=True, device=device)
    w = make_x((7, 7), seed=2, requires_grad=True, device=device)
    h = selu(x @ w, **options)
    out = consumer(h, x)
    out.sum().backward()
    return out.detach(), x.grad, w.grad


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("consumer", list(CONSUMERS))
@pytest.mark.parametrize("form", list(SELU_FORMS))
def test_output_modified_in_place_gives_torchs_gradients(form, consumer, device):
    require_device(device)
    theirs_selu, ours_selu = SELU_FORMS[form]
    theirs = _selu_then(theirs_selu, CONSUMERS[consumer], device)
    ours = _selu_then(ours_selu, CONSUMERS[consumer], device)
    for t, o in zip(theirs, ours):
        close(o, t)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("consumer", list(CONSUMERS))
@pytest.mark.parametrize("form", list(SELU_FORMS))
def test_save_output_detects_modified_output(form, consumer, device):
    """save_output=True keeps only the output, so modifying it in place must raise
    autograd's error at backward, never give a silently wrong gradient."""
    require_device(device)
    ours_selu = SELU_FORMS[form][1]
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        _selu_then(ours_selu, CONSUMERS[consumer], device, save_output=True)


@pytest.mark.parametrize("form", list(SELU_FORMS))
def test_save_output_unmodified_gives_torchs_gradients(form):
    theirs_selu, ours_selu = SELU_FORMS[form]
    keep = lambda h, res: h * res  # noqa: E731  (an out-of-place consumer)
    for t, o in zip(_selu_then(theirs_selu, keep), _selu_then(ours_selu, keep, save_output=True)):
        close(o, t)


@pytest.mark.parametrize("form", list(SELU_FORMS))
def test_inplace_selu_then_modified_raises_as_torch(form):
    """SELU(inplace=True) saves its result in torch too: modifying it afterwards
    raises the same error in both."""
    theirs_selu, ours_selu = SELU_FORMS[form]

    def run(selu):
        def snippet():
            x = make_x((12, 7), requires_grad=True)
            h = selu(x * 1.0, inplace=True)
            h += 1.0
            h.sum().backward()
            return x.grad
        return outcome(snippet)

    theirs, ours = same_outcome(run(theirs_selu), run(ours_selu))
    assert "modified by an inplace operation" in str(theirs)
    assert "modified by an inplace operation" in str(ours)


def _saved_kinds(fn, x):
    """What autograd saves during fn(x): 'input', 'output' or 'other' per tensor."""
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn(x)

    def kind(t):
        if t.data_ptr() == y.data_ptr() and t.shape == y.shape:
            return "output"
        if t.data_ptr() == x.data_ptr() and t.shape == x.shape:
            return "input"
        return "other"
    return sorted(kind(t) for t in saved)


@pytest.mark.parametrize("form", list(SELU_FORMS))
def test_saved_tensors(form):
    theirs_selu, ours_selu = SELU_FORMS[form]
    x = make_x((64, 32), requires_grad=True)
    theirs = _saved_kinds(theirs_selu, x)
    assert _saved_kinds(ours_selu, x) == theirs  # default: what torch keeps
    assert _saved_kinds(lambda t: ours_selu(t, save_output=True), x) == ["output"]


def test_selu_repr_and_options():
    assert repr(snn.SELU()) == repr(nn.SELU()) == "SELU()"
    assert repr(snn.SELU(inplace=True)) == repr(nn.SELU(inplace=True))
    assert "save_output=True" in repr(snn.SELU(save_output=True))
    assert "save_output" not in repr(snn.SELU(save_output=False))
    assert snn.SELU().save_output is False and snn.SELU(save_output=True).save_output is True
    # Keyword-only, as the design states (a second positional is a mistake).
    with pytest.raises(TypeError):
        snn.SELU(False, True)
    with pytest.raises(TypeError):
        selu_ext.selu(make_x(), False, True)
    assert snn.SELU(save_output=True).state_dict() == {}
