"""Drop-in behaviour, side by side with torch.nn (issue 10): each test runs the same
snippet with torch.nn / torch.nn.functional and with selu_ext and compares values,
errors and in-place semantics.

Dropout masks differ between torch and selu_ext (different generators), so dropout
is compared exactly in eval mode and by properties in training mode: p == 0 is the
identity, kept units are a * x + b, dropped ones the constant, and the gradient is
the linear map of the mask. Both libraries' results go through the same property
check, so the check itself is tested against torch.

This file: values, in-place use of outputs, the save_output option, convert(),
argument types and the smaller items. TorchScript and ONNX are in
test_dropin_export.py, forward-mode AD and DTensor in test_dropin_transforms.py.
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import selu_ext
from conftest import TOL
from selu_ext import nn as snn

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


def _x(shape=(8, 6, 5), dtype=torch.float64, seed=0, requires_grad=False):
    # [-1.5, 3]: both SELU branches, and far enough from -scale*alpha (-1.758) that a
    # kept unit a * x + b never equals the dropped constant (bfloat16 included).
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(shape, generator=g, dtype=torch.float64) * 4.5 - 1.5).to(dtype)
    return x.requires_grad_(requires_grad)


def _close(actual, expected, dtype=torch.float64):
    rtol, atol = TOL[dtype][:2]
    torch.testing.assert_close(actual, expected, rtol=max(rtol, 1e-13), atol=max(atol, 1e-13))


def _outcome(fn):
    """('ok', result) or ('raise', exception) of fn()."""
    try:
        return "ok", fn()
    except Exception as e:  # noqa: BLE001  (the test compares whatever torch raises)
        return "raise", e


def _same_outcome(theirs, ours):
    """Both ran, or both raised the same exception type. Returns the two results."""
    (tk, tv), (ok, ov) = theirs, ours
    short = lambda e: f"{type(e).__name__}: {str(e)[:160]}"  # noqa: E731
    if tk == "raise":
        assert ok == "raise", f"torch raises {short(tv)}; selu_ext returned"
        assert type(ov) is type(tv), f"torch raises {short(tv)}; selu_ext {short(ov)}"
    else:
        assert ok == "ok", f"torch runs; selu_ext raises {short(ov)}"
    return tv, ov


def _check_alpha_dropout(out, x, p, feature, grad_in=None, grad_out=None):
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


def _run_dropout(fn, x, p, training=True, inplace=False, **kw):
    """fn(x, p, training, inplace) with a backward; returns (out, x.grad or None, g)."""
    leaf = x.detach().clone().requires_grad_(x.is_floating_point())
    h = leaf * 1.0 if inplace else leaf
    out = fn(h, p, training, inplace, **kw)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(5), dtype=out.dtype)
    out.backward(g)
    return out, leaf.grad, g


# ---------------------------------------------------------------------------
# Values: SELU within the tolerance table, dropout in eval mode exactly


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", list(MODULES))
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_module_values_eval_and_selu(name, training, dtype):
    theirs_m, ours_m = MODULES[name][0]().train(training), MODULES[name][1]().train(training)
    assert repr(ours_m) == repr(theirs_m)
    x = _x(dtype=dtype)
    theirs, ours = theirs_m(x), ours_m(x)
    if name == "SELU":
        rtol, atol = TOL[dtype][:2]
        torch.testing.assert_close(ours, theirs, rtol=max(rtol, 3e-7), atol=max(atol, 1e-7))
    elif not training:
        # torch hands back the input itself in eval mode.
        assert (ours is x) == (theirs is x)
        assert torch.equal(ours, theirs)
    else:
        _check_alpha_dropout(theirs, x, 0.2, name == "FeatureAlphaDropout")
        _check_alpha_dropout(ours, x, 0.2, name == "FeatureAlphaDropout")


@pytest.mark.parametrize("name", list(DROPOUT_FUNCTIONS))
@pytest.mark.parametrize("p", [0.0, 0.2, 0.7, 1.0])
@pytest.mark.parametrize("inplace", [False, True], ids=["out", "inplace"])
def test_functional_dropout_training_properties(name, p, inplace):
    theirs_fn, ours_fn = DROPOUT_FUNCTIONS[name]
    feature = name == "feature_alpha_dropout"
    x = _x()
    for fn in (theirs_fn, ours_fn):
        out, grad, g = _run_dropout(fn, x, p, inplace=inplace)
        if p == 0:
            torch.testing.assert_close(out, x, rtol=0, atol=0)
            torch.testing.assert_close(grad, g, rtol=0, atol=0)
        elif p == 1:  # every unit dropped: zeros, and no gradient through
            torch.testing.assert_close(out, torch.zeros_like(x), rtol=0, atol=0)
            torch.testing.assert_close(grad, torch.zeros_like(x), rtol=0, atol=0)
        else:
            _check_alpha_dropout(out, x, p, feature, grad, g)


@pytest.mark.parametrize("name", list(DROPOUT_FUNCTIONS))
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("p", [0.0, 0.3])
def test_functional_dropout_identity_and_inplace_semantics(name, training, p):
    """Which calls hand back the input itself, and which write into it, as torch."""
    theirs_fn, ours_fn = DROPOUT_FUNCTIONS[name]

    def run(fn, inplace):
        x = _x()
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
        x = _x()
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
    x = _x((16, 6), dtype=torch.float32)
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


def _selu_then(selu, consumer, **options):
    """h = selu(x @ w); consumer modifies h in place; backward. Returns the output
    and the gradients of x and w."""
    x = _x((12, 7), seed=1, requires_grad=True)
    w = _x((7, 7), seed=2, requires_grad=True)
    h = selu(x @ w, **options)
    out = consumer(h, x)
    out.sum().backward()
    return out.detach(), x.grad, w.grad


@pytest.mark.parametrize("consumer", list(CONSUMERS))
@pytest.mark.parametrize("form", list(SELU_FORMS))
def test_output_modified_in_place_gives_torchs_gradients(form, consumer):
    theirs_selu, ours_selu = SELU_FORMS[form]
    theirs = _selu_then(theirs_selu, CONSUMERS[consumer])
    ours = _selu_then(ours_selu, CONSUMERS[consumer])
    for t, o in zip(theirs, ours):
        _close(o, t)


@pytest.mark.parametrize("consumer", list(CONSUMERS))
@pytest.mark.parametrize("form", list(SELU_FORMS))
def test_save_output_detects_modified_output(form, consumer):
    """save_output=True keeps only the output, so modifying it in place must raise
    autograd's error at backward, never give a silently wrong gradient."""
    ours_selu = SELU_FORMS[form][1]
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        _selu_then(ours_selu, CONSUMERS[consumer], save_output=True)


@pytest.mark.parametrize("form", list(SELU_FORMS))
def test_save_output_unmodified_gives_torchs_gradients(form):
    theirs_selu, ours_selu = SELU_FORMS[form]
    keep = lambda h, res: h * res  # noqa: E731  (an out-of-place consumer)
    for t, o in zip(_selu_then(theirs_selu, keep), _selu_then(ours_selu, keep, save_output=True)):
        _close(o, t)


@pytest.mark.parametrize("form", list(SELU_FORMS))
def test_inplace_selu_then_modified_raises_as_torch(form):
    """SELU(inplace=True) saves its result in torch too: modifying it afterwards
    raises the same error in both."""
    theirs_selu, ours_selu = SELU_FORMS[form]

    def run(selu):
        def snippet():
            x = _x((12, 7), requires_grad=True)
            h = selu(x * 1.0, inplace=True)
            h += 1.0
            h.sum().backward()
            return x.grad
        return _outcome(snippet)

    theirs, ours = _same_outcome(run(theirs_selu), run(ours_selu))
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
    x = _x((64, 32), requires_grad=True)
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
        selu_ext.selu(_x(), False, True)
    assert snn.SELU(save_output=True).state_dict() == {}


# ---------------------------------------------------------------------------
# convert(): never turns a working model into a failing one


class _Residual(nn.Module):
    def __init__(self, width=6):
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.act = nn.SELU()

    def forward(self, x):
        h = self.act(self.fc(x))
        h += x
        return h


def _residual_model():
    return nn.Sequential(_Residual(), _Residual(), nn.Linear(6, 3))


def _linear_selu_dropout():
    return nn.Sequential(nn.Linear(6, 8), nn.SELU(), nn.Dropout(0.3, inplace=True), nn.Linear(8, 3))


def _last_alpha_dropout():
    return nn.Sequential(nn.Linear(6, 8), nn.SELU(), nn.Linear(8, 5), nn.SELU(),
                         nn.AlphaDropout(0.2))


def _caller_adds(out):
    out += 1.0  # the caller modifies the model's output in place
    return out


CONVERT_CASES = {
    "residual_iadd": (_residual_model, lambda out: out),
    "selu_dropout_inplace": (_linear_selu_dropout, lambda out: out),
    "last_alpha_dropout_caller_iadd": (_last_alpha_dropout, _caller_adds),
    "last_selu_caller_relu_": (lambda: nn.Sequential(nn.Linear(6, 4), nn.SELU()), torch.relu_),
}


def _forward_backward(model, after, training, seed=0):
    torch.manual_seed(seed)
    model.train(training)
    x = _x((10, 6), seed=3, requires_grad=True)
    out = after(model(x))
    out.square().sum().backward()
    return out.detach(), x.grad, [p.grad for p in model.parameters()]


@pytest.mark.parametrize("fuse", [True, False], ids=["fuse", "nofuse"])
@pytest.mark.parametrize("case", list(CONVERT_CASES))
def test_convert_keeps_model_working(case, fuse):
    build, after = CONVERT_CASES[case]
    torch.manual_seed(0)
    reference = build().double()
    converted = snn.convert(reference, fuse=fuse)
    assert not any(type(m) in (nn.SELU, nn.AlphaDropout) for m in converted.modules())
    # Eval mode (and training without AlphaDropout): torch's outputs and gradients.
    deterministic = [False] if case == "last_alpha_dropout_caller_iadd" else [False, True]
    for training in deterministic:
        theirs = _forward_backward(reference, after, training)
        ours = _forward_backward(converted, after, training)
        _close(ours[0], theirs[0])
        _close(ours[1], theirs[1])
        for t, o in zip(theirs[2], ours[2]):
            _close(o, t)
        reference.zero_grad()
        converted.zero_grad()
    # Training mode always runs backward.
    out, gx, grads = _forward_backward(converted, after, True)
    assert bool(gx.isfinite().all()) and all(bool(g.isfinite().all()) for g in grads)


def _selu_save_output(model):
    return [m.save_output for m in model.modules() if isinstance(m, snn.SELU)]


def test_convert_keeps_saving_only_where_provably_safe():
    safe = snn.convert(nn.Sequential(nn.Linear(6, 8), nn.SELU(), nn.Linear(8, 3)))
    assert _selu_save_output(safe) == [True]
    conv = snn.convert(nn.Sequential(nn.Conv2d(2, 4, 3), nn.SELU(), nn.Conv2d(4, 4, 3), nn.SELU()))
    assert _selu_save_output(conv) == [True, False]  # the last one's output leaves
    leaves = snn.convert(nn.Sequential(nn.Linear(6, 8), nn.SELU()))
    assert _selu_save_output(leaves) == [False]
    dropout_after = snn.convert(_linear_selu_dropout())
    assert _selu_save_output(dropout_after) == [False]
    residual = snn.convert(_residual_model())
    assert _selu_save_output(residual) == [False, False]
    bare = snn.convert(nn.SELU())
    assert isinstance(bare, snn.SELU) and bare.save_output is False


def _saved_bytes(model, x):
    """Bytes autograd keeps for one forward: each storage counted once (a tensor a
    Linear saves as its input and the SELU before it as its output is one)."""
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(storages.values())


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
    x = _x((batch, 16), seed=4)
    for m in (mlp, reference, converted):
        m.train()
    torch_bytes = _saved_bytes(reference, x)
    activation = batch * hidden * 8
    assert _saved_bytes(mlp, x) <= torch_bytes - depth * activation
    assert _saved_bytes(converted, x) <= torch_bytes - depth * activation
    # ... and gives torch's outputs in eval mode.
    for m in (mlp, reference, converted):
        m.eval()
    with torch.no_grad():
        _close(mlp(x), reference(x))
        _close(converted(x), reference(x))


# ---------------------------------------------------------------------------
# Argument types (item 7): p and training accepted and rejected as torch does

P_VALUES = {
    "np.float32": np.float32(0.25),
    "np.float64": np.float64(0.25),
    "np.int64-0": np.int64(0),
    "np.int64-1": np.int64(1),
    "tensor-0dim": torch.tensor(0.25),
    "tensor-0dim-f64": torch.tensor(0.25, dtype=torch.float64),
    "int-0": 0,
    "int-1": 1,
    "bool": True,
    "np.float32-1.5": np.float32(1.5),
    "tensor-1.5": torch.tensor(1.5),
    "nan": float("nan"),
    "tensor-1dim": torch.tensor([0.25]),
    "str": "0.25",
    "None": None,
}


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("p", list(P_VALUES))
@pytest.mark.parametrize("name", list(DROPOUT_FUNCTIONS))
def test_p_types_functional(name, p, training):
    theirs_fn, ours_fn = DROPOUT_FUNCTIONS[name]
    p = P_VALUES[p]
    x = _x()
    theirs, ours = _same_outcome(_outcome(lambda: theirs_fn(x, p, training)),
                                 _outcome(lambda: ours_fn(x, p, training)))
    if isinstance(theirs, Exception):
        return
    pf = float(p)
    if not training or pf == 0:
        assert (ours is x) == (theirs is x)
        assert torch.equal(ours, theirs)
    elif pf == 1:
        assert torch.equal(ours, theirs)  # every unit dropped: zeros
    else:
        _check_alpha_dropout(ours, x, pf, name == "feature_alpha_dropout")


@pytest.mark.parametrize("p", ["np.float32", "np.float64", "np.int64-1", "tensor-0dim", "int-1",
                               "np.float32-1.5", "str"])
@pytest.mark.parametrize("name", list(DROPOUT_MODULES))
def test_p_types_modules(name, p):
    theirs_cls, ours_cls = DROPOUT_MODULES[name]
    p = P_VALUES[p]
    theirs, ours = _same_outcome(_outcome(lambda: theirs_cls(p)), _outcome(lambda: ours_cls(p)))
    if isinstance(theirs, Exception):
        return
    assert repr(ours) == repr(theirs)
    x = _x()
    theirs_out, ours_out = _same_outcome(_outcome(lambda: theirs(x)), _outcome(lambda: ours(x)))
    if float(p) == 1:
        assert torch.equal(ours_out, theirs_out)
    else:
        _check_alpha_dropout(ours_out, x, float(p), name == "FeatureAlphaDropout")


def test_p_types_convert_and_mlp():
    p = np.float32(0.1)
    for reference in (nn.AlphaDropout(p), nn.Sequential(nn.Linear(6, 5), nn.SELU(),
                                                        nn.AlphaDropout(p), nn.Linear(5, 6))):
        converted = snn.convert(reference)
        x = _x((10, 6), dtype=torch.float32, requires_grad=True)
        converted.train()
        converted(x).sum().backward()
        assert bool(x.grad.isfinite().all())
        converted.eval()
        reference.eval()
        with torch.no_grad():
            torch.testing.assert_close(converted(x), reference(x))
    mlp = snn.SelfNormalizingMLP(6, 8, 3, depth=2, dropout=np.float32(0.05))
    x = _x((10, 6), dtype=torch.float32, requires_grad=True)
    mlp.train()(x).sum().backward()
    assert bool(x.grad.isfinite().all())


TRAINING_VALUES = {
    "None": None, "empty-str": "", "str-no": "no", "int-1": 1, "int-0": 0,
    "np.bool_-True": np.bool_(True), "np.bool_-False": np.bool_(False), "float": 1.0,
    "tensor": torch.tensor(True),
}


@pytest.mark.parametrize("training", list(TRAINING_VALUES))
@pytest.mark.parametrize("name", list(DROPOUT_FUNCTIONS))
def test_training_types(name, training):
    theirs_fn, ours_fn = DROPOUT_FUNCTIONS[name]
    training = TRAINING_VALUES[training]
    x = _x()
    theirs, ours = _same_outcome(_outcome(lambda: theirs_fn(x, 0.5, training)),
                                 _outcome(lambda: ours_fn(x, 0.5, training)))
    if isinstance(theirs, TypeError):
        # torch names the argument and the type it got; so must selu_ext.
        assert "train" in str(ours) and type(training).__name__ in str(ours), str(ours)


# ---------------------------------------------------------------------------
# The smaller items (8)


def _jagged(requires_grad=False):
    g = torch.Generator().manual_seed(6)
    parts = [torch.randn(n, 5, generator=g, dtype=torch.float64) * 2 for n in (3, 1, 4)]
    return torch.nested.nested_tensor(parts, layout=torch.jagged, requires_grad=requires_grad)


@pytest.mark.parametrize("form", list(SELU_FORMS))
@pytest.mark.parametrize("inplace", [False, True], ids=["out", "inplace"])
def test_jagged_nested_selu(form, inplace):
    theirs_selu, ours_selu = SELU_FORMS[form]
    theirs, ours = theirs_selu(_jagged(), inplace=inplace), ours_selu(_jagged(), inplace=inplace)
    assert ours.is_nested and ours.layout == theirs.layout == torch.jagged
    _close(ours.values(), theirs.values())
    assert torch.equal(ours.offsets(), theirs.offsets())


def test_jagged_nested_selu_backward():
    def grad(selu):
        nt = _jagged(requires_grad=True)
        selu(nt).values().square().sum().backward()
        return nt.grad.values()

    _close(grad(selu_ext.selu), grad(F.selu))


@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("form", list(SELU_FORMS))
def test_strided_nested_selu(form, requires_grad):
    theirs_selu, ours_selu = SELU_FORMS[form]

    def nt():
        return torch.nested.nested_tensor([torch.randn(2, 3), torch.randn(4, 3)],
                                          requires_grad=requires_grad)

    theirs, ours = _same_outcome(_outcome(lambda: theirs_selu(nt())),
                                 _outcome(lambda: ours_selu(nt())))
    if isinstance(ours, Exception):
        assert "Internal error" not in str(ours) and "file an issue" not in str(ours), str(ours)
    else:
        for t, o in zip(theirs.unbind(), ours.unbind()):
            _close(o, t, torch.float32)


P_ABOVE_ONE = 1 + 2 ** -52


@pytest.mark.parametrize("name", list(DROPOUT_FUNCTIONS))
def test_p_just_above_one_message_functional(name):
    theirs_fn, ours_fn = DROPOUT_FUNCTIONS[name]
    x = _x()
    theirs, ours = _same_outcome(_outcome(lambda: theirs_fn(x, P_ABOVE_ONE, True)),
                                 _outcome(lambda: ours_fn(x, P_ABOVE_ONE, True)))
    assert repr(P_ABOVE_ONE) in str(theirs)
    assert repr(P_ABOVE_ONE) in str(ours), str(ours)


def test_p_just_above_one_message_modules_and_fused():
    for name, (theirs_cls, ours_cls) in DROPOUT_MODULES.items():
        theirs, ours = _same_outcome(_outcome(lambda: theirs_cls(P_ABOVE_ONE)),
                                     _outcome(lambda: ours_cls(P_ABOVE_ONE)))
        assert repr(P_ABOVE_ONE) in str(ours), (name, str(ours))
    for call in (lambda: snn.SELUAlphaDropout(P_ABOVE_ONE),
                 lambda: selu_ext.selu_alpha_dropout(_x(), P_ABOVE_ONE, True),
                 lambda: torch.ops.selu_ext.alpha_dropout(_x(), P_ABOVE_ONE,
                                                          torch.tensor([1, 0]))):
        with pytest.raises((ValueError, RuntimeError)) as e:
            call()
        assert repr(P_ABOVE_ONE) in str(e.value), str(e.value)


def _inplace_on_no_grad_view(fn):
    leaf = _x((6, 5), requires_grad=True)
    with torch.no_grad():
        view = leaf[1:]
    with pytest.raises(RuntimeError) as e:
        fn(view)
    return str(e.value)


@pytest.mark.parametrize("name", ["selu", "alpha_dropout", "feature_alpha_dropout"])
def test_inplace_on_view_made_under_no_grad_message(name):
    calls = {
        "selu": (lambda v: F.selu(v, inplace=True), lambda v: selu_ext.selu(v, inplace=True)),
        "alpha_dropout": (lambda v: F.alpha_dropout(v, 0.3, True, True),
                          lambda v: selu_ext.alpha_dropout(v, 0.3, True, True)),
        "feature_alpha_dropout": (lambda v: F.feature_alpha_dropout(v, 0.3, True, True),
                                  lambda v: selu_ext.feature_alpha_dropout(v, 0.3, True, True)),
    }[name]
    theirs, ours = (_inplace_on_no_grad_view(fn) for fn in calls)
    assert "A view was created in no_grad mode" in theirs
    assert ours == theirs


RNG_OPS = {
    "alpha_dropout": lambda x: torch.ops.selu_ext.alpha_dropout(x, 0.5, None),
    "alpha_dropout_": lambda x: torch.ops.selu_ext.alpha_dropout_(x, 0.5, None),
    "alpha_dropout_backward": lambda x: torch.ops.selu_ext.alpha_dropout_backward(x, 0.5, None),
    "selu_alpha_dropout": lambda x: torch.ops.selu_ext.selu_alpha_dropout(x, 0.5, None),
    "selu_alpha_dropout_backward":
        lambda x: torch.ops.selu_ext.selu_alpha_dropout_backward(x, x, 0.5, None),
}


@pytest.mark.parametrize("op", list(RNG_OPS))
def test_rng_state_none_is_named(op):
    with pytest.raises((TypeError, RuntimeError)) as e:
        RNG_OPS[op](_x())
    assert "rng_state" in str(e.value), str(e.value)
    assert "does not have a device" not in str(e.value)


@pytest.mark.parametrize("save_output", [False, True])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_saturated_units_get_torchs_gradient(dtype, save_output):
    """x = -20 rounds SELU to -lambda*alpha in every dtype. torch's gradient there is
    lambda*alpha*exp(x): exactly 0 in float16 (it underflows), ~3.6e-9 in bfloat16 and
    float32. A gradient taken from the rounded output must not turn the rounding
    error of -lambda*alpha (~3e-4 in float16) into a gradient."""
    def grad(selu, **kw):
        x = torch.tensor([-20.0, -30.0, -100.0, -1.0, 2.0], dtype=dtype, requires_grad=True)
        selu(x, **kw).backward(torch.ones(5, dtype=dtype))
        return x.grad

    theirs = grad(F.selu)
    ours = grad(selu_ext.selu, **({"save_output": True} if save_output else {}))
    if dtype == torch.float16:
        assert torch.equal(theirs[:3], torch.zeros(3, dtype=dtype))
    torch.testing.assert_close(ours[:3], theirs[:3], rtol=0, atol=1e-8)
    rtol, atol = TOL[dtype][2:]
    torch.testing.assert_close(ours, theirs, rtol=rtol, atol=atol)
