"""In-place use: SELU gives the same values, version-counter bumps and autograd errors
as torch.nn.functional.selu(x, inplace=True); the dropout functions write the input
(strided views included) with the out-of-place result and gradients, and the dropout
modules store the flag without acting on it, as torch.nn's do."""

import pytest
import torch
import torch.nn.functional as F

import selu_ext
from conftest import (DEVICES, F32_NETWORK, F64_REORDERED, assert_close_dtype, make_input, require_device,
                      selu_reference)
from dropout_common import FUNCTIONS, TORCH_FUNCTIONS


def _both(fn):
    """Runs fn(selu) with torch's and selu_ext's in-place selu; returns both results."""
    return fn(lambda t: F.selu(t, inplace=True)), fn(lambda t: selu_ext.selu(t, inplace=True))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced", "channels_last"])
def test_inplace_values_and_identity(device, layout):
    require_device(device)
    shape = (2, 6, 5, 3) if layout == "channels_last" else (33, 17)
    x = make_input(shape, torch.float32, device, layout=layout)
    ref = selu_reference(x)
    base = x._base
    out = selu_ext.selu(x, inplace=True)
    assert out is x
    assert_close_dtype(x, ref, torch.float32)
    if layout == "sliced":  # a strided view: the base tensor sees the result
        assert_close_dtype(base[1::2, 1::2], ref, torch.float32)


@pytest.mark.parametrize("mode", ["grad", "no_grad", "inference_mode"])
def test_version_counter_matches_torch(mode):
    ctx = {"grad": torch.enable_grad, "no_grad": torch.no_grad,
           "inference_mode": torch.inference_mode}[mode]

    def bumps(selu_):
        x = torch.randn(10)
        v0 = x._version
        with ctx():
            selu_(x)
        return x._version - v0

    theirs, ours = _both(bumps)
    assert ours == theirs >= 1


def test_leaf_requiring_grad_errors_like_torch():
    def err(selu_):
        x = torch.randn(5, requires_grad=True)
        with pytest.raises(RuntimeError) as e:
            selu_(x)
        return str(e.value)

    theirs, ours = _both(err)
    assert "leaf Variable that requires grad" in ours
    assert ours.split(".")[0] == theirs.split(".")[0]
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        selu_ext.nn.SELU(inplace=True)(torch.randn(5, requires_grad=True))


def test_view_of_leaf_errors_like_torch():
    def err(selu_):
        x = torch.randn(5, 4, requires_grad=True)
        with pytest.raises(RuntimeError) as e:
            selu_(x[1])
        return str(e.value)

    theirs, ours = _both(err)
    assert "view of a leaf Variable that requires grad" in ours and \
        "view of a leaf Variable that requires grad" in theirs


def test_modified_saved_tensor_is_detected():
    def err(selu_):
        x = torch.randn(8, requires_grad=True)
        h = x * 2
        s = h.sin()  # sin saves h
        selu_(h)
        with pytest.raises(RuntimeError) as e:
            s.sum().backward()
        return str(e.value)

    theirs, ours = _both(err)
    assert "modified by an inplace operation" in ours and "modified by an inplace operation" in theirs


@pytest.mark.parametrize("device", DEVICES)
def test_inplace_gradients_match_torch(device):
    require_device(device)

    def grads(selu_):
        torch.manual_seed(0)
        x = torch.randn(64, 3, device=device, requires_grad=True)
        h = x * 1.5
        selu_(h[:, 1])  # in-place on a view of a non-leaf
        (g,) = torch.autograd.grad((h * h).sum(), x)
        return g

    theirs, ours = _both(grads)
    torch.testing.assert_close(ours, theirs, **F32_NETWORK)


def test_inplace_double_backward():
    x = torch.randn(20, dtype=torch.float64, requires_grad=True)

    def f(t):
        h = t * 1.0
        return selu_ext.selu(h, inplace=True)

    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


def test_overlapping_memory_is_refused():
    x = torch.randn(1, 4).expand(3, 4)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        selu_ext.selu(x, inplace=True)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        F.selu(x, inplace=True)


def test_module_inplace():
    m = selu_ext.nn.SELU(inplace=True)
    x = torch.randn(9)
    ref = selu_reference(x).float()
    assert m(x) is x
    torch.testing.assert_close(x, ref)


# ---------------------------------------------------------------------------
# Dropout


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_inplace_writes_the_input(device, fn):
    require_device(device)
    f = getattr(selu_ext, fn)
    x = make_input((16, 9, 3), torch.float32, device)
    want = f(x, 0.3, training=True, seed=10)
    y = x.clone()
    v0 = y._version
    out = f(y, 0.3, training=True, inplace=True, seed=10)
    assert out is y
    assert y._version > v0
    torch.testing.assert_close(y, want, rtol=0, atol=0)  # bitwise, as in torch
    # A strided view: the base sees the result.
    base = make_input((16, 9, 6), torch.float32, device)
    view = base[:, :, ::2]
    want = f(view, 0.3, training=True, seed=10)
    assert f(view, 0.3, training=True, inplace=True, seed=10) is view
    torch.testing.assert_close(base[:, :, ::2], want, rtol=0, atol=0)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_inplace_on_leaf_requiring_grad_errors_like_torch(fn):
    x = torch.randn(5, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        getattr(selu_ext, fn)(x, 0.5, training=True, inplace=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        TORCH_FUNCTIONS[fn](x, 0.5, training=True, inplace=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_inplace_gradients_equal_out_of_place(device, fn):
    require_device(device)
    f = getattr(selu_ext, fn)

    def grads(inplace):
        x = make_input((12, 6, 5), torch.float64, device).requires_grad_()
        h = x * 1.5
        y = f(h, 0.4, training=True, inplace=inplace, seed=21)
        (g,) = torch.autograd.grad((y * y).sum(), x)
        return y.detach(), g

    (y0, g0), (y1, g1) = grads(False), grads(True)
    torch.testing.assert_close(y1, y0, rtol=0, atol=0)
    torch.testing.assert_close(g1, g0, **F64_REORDERED)


def test_inplace_modules():
    # As torch.nn's: the flag is stored and shown, and the input is left alone.
    x = torch.randn(8, 6, 4)
    for module in (selu_ext.nn.AlphaDropout, selu_ext.nn.FeatureAlphaDropout):
        m = module(0.5, inplace=True)
        assert "inplace=True" in repr(m)
        y = x.clone()
        torch.manual_seed(0)
        want = module(0.5)(y)
        torch.manual_seed(0)
        got = m(y)
        assert got is not y and torch.equal(y, x)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        assert m.eval()(y) is y
