"""Drop-in behaviour (issue 10), side by side with torch.nn: the argument types
(p as numpy scalars, 0-dim tensors, ints; non-bool training) accepted and rejected
as torch does, through the functions, the module constructors, convert() and
SelfNormalizingMLP; and the smaller items: nested tensors, the message for p just
above 1, in-place on a view made under no_grad, rng_state=None, and the gradient of
saturated units in float16 / bfloat16. See test_dropin.py for the method.
"""

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import selu_ext
from conftest import DEVICES, SATURATED_GRAD_ATOL, TOL, require_device
from dropin_common import (DROPOUT_FUNCTIONS, DROPOUT_MODULES, SELU_FORMS, check_alpha_dropout,
                            close, make_x, outcome, same_outcome)
from dropin_common import seed_torch  # noqa: F401  (autouse fixture)
from selu_ext import nn as snn


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
    # Issue 21, item 16: what torch's argument parser refuses (TypeError) or takes.
    "Fraction": Fraction(1, 4),
    "Fraction-1.5": Fraction(3, 2),  # the range test comes first: ValueError
    "Decimal": Decimal("0.25"),
    "np.array-0dim": np.array(0.25),
    "np.array-0dim-int": np.array(1),
    "tensor-requires_grad": torch.tensor(0.25, requires_grad=True),
    "tensor-0dim-int": torch.tensor(1),
    "tensor-0dim-bool": torch.tensor(False),
    "tensor-0dim-complex": torch.tensor(0.25 + 0j),
    "np.bool_": np.bool_(True),
    "np.complex128": np.complex128(0.25),
    "complex": 0.25 + 0j,
    "float-subclass": type("MyFloat", (float,), {})(0.25),
}


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("p", list(P_VALUES))
@pytest.mark.parametrize("name", list(DROPOUT_FUNCTIONS))
def test_p_types_functional(name, p, training):
    theirs_fn, ours_fn = DROPOUT_FUNCTIONS[name]
    p = P_VALUES[p]
    x = make_x()
    theirs, ours = same_outcome(outcome(lambda: theirs_fn(x, p, training)),
                                outcome(lambda: ours_fn(x, p, training)))
    if isinstance(theirs, Exception):
        return
    pf = float(p)
    if not training or pf == 0:
        assert (ours is x) == (theirs is x)
        assert torch.equal(ours, theirs)
    elif pf == 1:
        assert torch.equal(ours, theirs)  # every unit dropped: zeros
    else:
        check_alpha_dropout(ours, x, pf, name == "feature_alpha_dropout")


@pytest.mark.parametrize("p", ["Fraction", "Decimal", "np.array-0dim", "tensor-requires_grad"])
@pytest.mark.parametrize("name", list(DROPOUT_FUNCTIONS))
def test_p_refused_names_selu_ext(name, p):
    # Both paths (the eager entry point and the general one, here a tensor
    # subclass) refuse with the same TypeError, which names selu_ext and the type.
    _, ours_fn = DROPOUT_FUNCTIONS[name]
    p = P_VALUES[p]
    for x in (make_x(), make_x().as_subclass(_Subclass)):
        with pytest.raises(TypeError, match=rf"selu_ext\.{name}\(\): argument 'p' \(position 2\) "
                           rf"must be float, not \S*{type(p).__name__}"):
            ours_fn(x, p, True)


class _Subclass(torch.Tensor):
    pass


@pytest.mark.parametrize("p", ["np.float32", "np.float64", "np.int64-1", "tensor-0dim", "int-1",
                               "np.float32-1.5", "str", "Fraction", "Decimal", "np.array-0dim",
                               "tensor-requires_grad", "np.bool_"])
@pytest.mark.parametrize("name", list(DROPOUT_MODULES))
def test_p_types_modules(name, p):
    theirs_cls, ours_cls = DROPOUT_MODULES[name]
    p = P_VALUES[p]
    theirs, ours = same_outcome(outcome(lambda: theirs_cls(p)), outcome(lambda: ours_cls(p)))
    if isinstance(theirs, Exception):
        return
    assert repr(ours) == repr(theirs)
    x = make_x()
    theirs_out, ours_out = same_outcome(outcome(lambda: theirs(x)), outcome(lambda: ours(x)))
    if isinstance(theirs_out, Exception):  # p refused when used, as torch.nn's
        return
    if float(p) == 1:
        assert torch.equal(ours_out, theirs_out)
    else:
        check_alpha_dropout(ours_out, x, float(p), name == "FeatureAlphaDropout")


def test_p_types_convert_and_mlp():
    p = np.float32(0.1)
    for reference in (nn.AlphaDropout(p), nn.Sequential(nn.Linear(6, 5), nn.SELU(),
                                                        nn.AlphaDropout(p), nn.Linear(5, 6))):
        converted = snn.convert(reference)
        x = make_x((10, 6), dtype=torch.float32, requires_grad=True)
        converted.train()
        converted(x).sum().backward()
        assert bool(x.grad.isfinite().all())
        converted.eval()
        reference.eval()
        with torch.no_grad():
            torch.testing.assert_close(converted(x), reference(x))
    mlp = snn.SelfNormalizingMLP(6, 8, 3, depth=2, dropout=np.float32(0.05))
    x = make_x((10, 6), dtype=torch.float32, requires_grad=True)
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
    x = make_x()
    theirs, ours = same_outcome(outcome(lambda: theirs_fn(x, 0.5, training)),
                                outcome(lambda: ours_fn(x, 0.5, training)))
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
    # torch 2.11 has no in-place elu for jagged tensors (NotImplementedError for
    # aten.elu_): selu_ext must then raise as the installed torch does.
    theirs_selu, ours_selu = SELU_FORMS[form]
    x_theirs, x_ours = _jagged(), _jagged()
    theirs, ours = same_outcome(outcome(lambda: theirs_selu(x_theirs, inplace=inplace)),
                                outcome(lambda: ours_selu(x_ours, inplace=inplace)))
    if isinstance(theirs, Exception):
        return
    assert (ours is x_ours) == (theirs is x_theirs)
    assert ours.is_nested and ours.layout == theirs.layout == torch.jagged
    close(ours.values(), theirs.values())
    assert torch.equal(ours.offsets(), theirs.offsets())


def test_jagged_nested_selu_backward():
    def grad(selu):
        nt = _jagged(requires_grad=True)
        selu(nt).values().square().sum().backward()
        return nt.grad.values()

    close(grad(selu_ext.selu), grad(F.selu))


@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("form", list(SELU_FORMS))
def test_strided_nested_selu(form, requires_grad):
    theirs_selu, ours_selu = SELU_FORMS[form]

    def nt():
        return torch.nested.nested_tensor([torch.randn(2, 3), torch.randn(4, 3)],
                                          requires_grad=requires_grad)

    theirs, ours = same_outcome(outcome(lambda: theirs_selu(nt())),
                                outcome(lambda: ours_selu(nt())))
    if isinstance(ours, Exception):
        assert "Internal error" not in str(ours) and "file an issue" not in str(ours), str(ours)
    else:
        for t, o in zip(theirs.unbind(), ours.unbind()):
            close(o, t, torch.float32)


P_ABOVE_ONE = 1 + 2 ** -52


@pytest.mark.parametrize("name", list(DROPOUT_FUNCTIONS))
def test_p_just_above_one_message_functional(name):
    theirs_fn, ours_fn = DROPOUT_FUNCTIONS[name]
    x = make_x()
    theirs, ours = same_outcome(outcome(lambda: theirs_fn(x, P_ABOVE_ONE, True)),
                                outcome(lambda: ours_fn(x, P_ABOVE_ONE, True)))
    assert repr(P_ABOVE_ONE) in str(theirs)
    assert repr(P_ABOVE_ONE) in str(ours), str(ours)


def test_p_just_above_one_message_modules_and_fused():
    for name, (theirs_cls, ours_cls) in DROPOUT_MODULES.items():
        theirs, ours = same_outcome(outcome(lambda: theirs_cls(P_ABOVE_ONE)),
                                    outcome(lambda: ours_cls(P_ABOVE_ONE)))
        assert repr(P_ABOVE_ONE) in str(ours), (name, str(ours))
    for call in (lambda: snn.SELUAlphaDropout(P_ABOVE_ONE),
                 lambda: selu_ext.selu_alpha_dropout(make_x(), P_ABOVE_ONE, True),
                 lambda: torch.ops.selu_ext.alpha_dropout(make_x(), P_ABOVE_ONE,
                                                          torch.tensor([1, 0]))):
        with pytest.raises((ValueError, RuntimeError)) as e:
            call()
        assert repr(P_ABOVE_ONE) in str(e.value), str(e.value)


def _inplace_on_no_grad_view(fn):
    leaf = make_x((6, 5), requires_grad=True)
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
        RNG_OPS[op](make_x())
    assert "rng_state" in str(e.value), str(e.value)
    assert "does not have a device" not in str(e.value)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("save_output", [False, True])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_saturated_units_get_torchs_gradient(dtype, save_output, device):
    """x = -20 rounds SELU to -lambda*alpha in every dtype. torch's gradient there is
    lambda*alpha*exp(x): exactly 0 in float16 (it underflows), ~3.6e-9 in bfloat16 and
    float32. A gradient taken from the rounded output must not turn the rounding
    error of -lambda*alpha (~3e-4 in float16) into a gradient."""
    require_device(device)

    def grad(selu, **kw):
        x = torch.tensor([-20.0, -30.0, -100.0, -1.0, 2.0], dtype=dtype, device=device,
                         requires_grad=True)
        selu(x, **kw).backward(torch.ones_like(x))
        return x.grad

    theirs = grad(F.selu)
    ours = grad(selu_ext.selu, **({"save_output": True} if save_output else {}))
    if dtype == torch.float16:
        assert torch.equal(theirs[:3], torch.zeros_like(theirs[:3]))
    torch.testing.assert_close(ours[:3], theirs[:3], rtol=0, atol=SATURATED_GRAD_ATOL)
    rtol, atol = TOL[dtype][2:]
    torch.testing.assert_close(ours, theirs, rtol=rtol, atol=atol)


class _BadBool:
    def __bool__(self):
        raise ValueError("no truth value")


# torch.nn.functional.selu tests `inplace` by its truth value (`if inplace:`).
INPLACE_VALUES = {"int-0": 0, "int-1": 1, "np.bool_": np.bool_(True), "str-empty": "",
                  "str": "yes", "None": None, "bad-bool": _BadBool()}


@pytest.mark.parametrize("value", list(INPLACE_VALUES.values()), ids=list(INPLACE_VALUES))
def test_selu_inplace_truth_value(value):
    x = make_x((3, 4), torch.float32)
    xt, xo = x.clone(), x.clone()
    theirs = outcome(lambda: F.selu(xt, inplace=value))
    ours = outcome(lambda: selu_ext.selu(xo, inplace=value))
    tv, ov = same_outcome(theirs, ours)
    if theirs[0] == "ok":
        assert (ov is xo) == (tv is xt)  # in place exactly where torch is
        close(ov, tv, torch.float32)
        close(xo, xt, torch.float32)
    # save_output is taken by its truth value too.
    same_outcome(outcome(lambda: bool(value)),
                 outcome(lambda: selu_ext.selu(x.clone(), save_output=value)))


# ---------------------------------------------------------------------------
# Issue 21: dtypes without a kernel (item 17), p == 1 before the rank (item 10)

# Each (torch's, selu_ext's) call a model makes, on a fresh input.
DTYPE_CALLS = {
    "selu": (lambda t: F.selu(t), lambda t: selu_ext.selu(t)),
    "selu-inplace": (lambda t: F.selu(t, True), lambda t: selu_ext.selu(t, True)),
    "nn.SELU": (lambda t: nn.SELU()(t), lambda t: snn.SELU()(t)),
    "alpha_dropout": (lambda t: F.alpha_dropout(t, 0.2, True),
                      lambda t: selu_ext.alpha_dropout(t, 0.2, True)),
    "alpha_dropout-inplace": (lambda t: F.alpha_dropout(t, 0.2, True, True),
                              lambda t: selu_ext.alpha_dropout(t, 0.2, True, True)),
    "alpha_dropout-p1": (lambda t: F.alpha_dropout(t, 1.0, True),
                         lambda t: selu_ext.alpha_dropout(t, 1.0, True)),
    "alpha_dropout-p1-inplace": (lambda t: F.alpha_dropout(t, 1.0, True, True),
                                 lambda t: selu_ext.alpha_dropout(t, 1.0, True, True)),
    "nn.AlphaDropout": (lambda t: nn.AlphaDropout(0.2)(t), lambda t: snn.AlphaDropout(0.2)(t)),
    "feature_alpha_dropout": (lambda t: F.feature_alpha_dropout(t, 0.2, True),
                              lambda t: selu_ext.feature_alpha_dropout(t, 0.2, True)),
    "feature_alpha_dropout-p1": (lambda t: F.feature_alpha_dropout(t, 1.0, True),
                                 lambda t: selu_ext.feature_alpha_dropout(t, 1.0, True)),
    "selu_alpha_dropout": (lambda t: F.alpha_dropout(F.selu(t), 0.2, True),
                           lambda t: selu_ext.selu_alpha_dropout(t, 0.2, True)),
    "SELUAlphaDropout": (lambda t: nn.AlphaDropout(0.2)(nn.SELU()(t)),
                         lambda t: snn.SELUAlphaDropout(0.2)(t)),
}
NO_KERNEL_DTYPES = [torch.int64, torch.int32, torch.int8, torch.uint8, torch.bool,
                    torch.uint16, torch.complex64, torch.float8_e4m3fn]


@pytest.mark.parametrize("dtype", NO_KERNEL_DTYPES, ids=str)
@pytest.mark.parametrize("call", list(DTYPE_CALLS))
def test_dtype_without_kernel(call, dtype):
    """torch's exception type (NotImplementedError, or RuntimeError where its dropout
    fails to cast an integer result back), or torch's result (p == 1: x * 0)."""
    theirs_fn, ours_fn = DTYPE_CALLS[call]
    x = torch.ones(4, 3, 2).to(dtype)
    theirs, ours = same_outcome(outcome(lambda: theirs_fn(x.clone())),
                                outcome(lambda: ours_fn(x.clone())))
    if isinstance(ours, Exception):  # selu_ext's check, or torch's own x * 0 raising
        assert "selu_ext" in str(ours) or str(ours) == str(theirs), str(ours)
    else:
        assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)


@pytest.mark.parametrize("inplace", [False, True], ids=["out", "inplace"])
@pytest.mark.parametrize("p", [1.0, 0.5])
@pytest.mark.parametrize("shape", [(), (5,), (0,)], ids=["0d", "1d", "1d-empty"])
def test_feature_alpha_dropout_low_rank(shape, p, inplace):
    """ATen tests p == 1 (x * 0) before the rank; any other p raises on < 2 dims."""
    x = make_x(shape) if shape != (0,) else torch.empty(0, dtype=torch.float64)
    x[...] = -x if x.numel() else x  # signed zeros: -0.0 where x > 0
    theirs, ours = same_outcome(
        outcome(lambda: F.feature_alpha_dropout(x.clone(), p, True, inplace)),
        outcome(lambda: selu_ext.feature_alpha_dropout(x.clone(), p, True, inplace)))
    if not isinstance(theirs, Exception):
        assert torch.equal(ours, theirs)
        assert torch.equal(ours.signbit(), theirs.signbit())
    for module in (nn.FeatureAlphaDropout, snn.FeatureAlphaDropout):
        same_outcome(outcome(lambda: nn.FeatureAlphaDropout(p)(x)),
                     outcome(lambda: module(p)(x)))
