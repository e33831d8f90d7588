"""The backward of selu, alpha_dropout and the fused op writes its result into the
incoming gradient's buffer when nothing but the graph task can see that buffer
(csrc/autograd.cpp, into_incoming_grad: the backward ops' .grad_input forms; on the CPU
and on CUDA). These tests hold it to that: it happens in a plain backward, and wherever
someone else holds the gradient (retain_grad, a hook that keeps it, a grad_outputs
tensor, a view, create_graph) that gradient is left intact and every result equals the
one computed without reuse. Whether it happened shows in the addresses: a hook on the
op's output records where its incoming gradient lives (keeping the address only, not
the tensor), and AccumulateGrad makes the node's result the input's .grad."""

import pytest
import torch

import selu_ext
from conftest import DEVICES, require_device
from dropin_common import close

OPS = {
    "selu": lambda x: selu_ext.selu(x),
    "selu_save_output": lambda x: torch.ops.selu_ext.selu(x, True),
    "alpha_dropout": lambda x: selu_ext.alpha_dropout(x, 0.3, True, seed=7),
    "selu_alpha_dropout": lambda x: selu_ext.selu_alpha_dropout(x, 0.3, True, seed=7),
}


def _x(device, dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(64, 96, generator=gen, dtype=dtype).to(device).requires_grad_()


def _reference(op, x, upstream):
    """d(sum(op(x) * upstream))/dx with the upstream gradient held by the caller, so
    never written into."""
    y = OPS[op](x)
    held = upstream.clone()
    (gx,) = torch.autograd.grad(y, x, held)
    assert torch.equal(held, upstream)
    return gx


def _upstream(y):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(y.shape, generator=gen, dtype=y.dtype).to(y.device)


def _incoming(y):
    """The data_ptr of each gradient y's node receives, as the backward appends it."""
    seen = []
    y.register_hook(lambda g: seen.append(g.data_ptr()))
    return seen


def _written_into(grad, seen):
    """Whether `grad` (x.grad, or what autograd.grad returned) is the buffer y's node
    received: the backward op wrote its result there."""
    return grad is not None and grad.data_ptr() == seen[0]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("op", OPS)
def test_plain_backward_writes_into_the_incoming_gradient(op, dtype, device):
    require_device(device)
    x = _x(device, dtype)
    y = OPS[op](x)
    w = _upstream(y)
    seen = _incoming(y)
    (y * w).sum().backward()  # MulBackward0 hands y a gradient nothing else holds
    assert _written_into(x.grad, seen)
    assert torch.equal(x.grad, _reference(op, x, w))


class _ViewOfKept(torch.autograd.Function):
    """Identity whose backward hands on a view of a gradient it keeps."""

    kept = None

    @staticmethod
    def forward(ctx, t):
        return t.clone()

    @staticmethod
    def backward(ctx, g):
        _ViewOfKept.kept = g * 1.0
        return _ViewOfKept.kept.view(g.shape)


def _retain_grad(y, w):
    y.retain_grad()  # stores a copy: the buffer itself may still be taken
    (y * w).sum().backward()
    return y.grad, w, True


def _hook_keeps(y, w):
    kept = []
    y.register_hook(kept.append)
    (y * w).sum().backward()
    return kept[0], w, False


def _grad_outputs(y, w):
    g = w.clone()
    y.backward(g)
    return g, w, False


def _retained_view(y, w):
    flat = y.view(-1)
    flat.retain_grad()
    (flat * w.view(-1)).sum().backward()  # y gets a view (ViewBackward0) of flat's gradient
    return flat.grad, w.view(-1), True


def _view_of_kept(y, w):
    (_ViewOfKept.apply(y) * w).sum().backward()
    return _ViewOfKept.kept, w, False


def _slice_of_kept(y, w):
    c = torch.cat([y, torch.zeros_like(y)])  # y's gradient: rows 0..63 of c's, contiguous
    kept = []
    c.register_hook(kept.append)
    (c * torch.cat([w, w])).sum().backward()
    return kept[0], torch.cat([w, w]), False


# name -> f(y, w): runs a backward in which someone else holds y's gradient (or its
# storage) and returns (what they hold, what it must equal, whether the buffer may
# still be taken: only where what they hold is a copy).
HOLDERS = {f.__name__[1:]: f for f in (_retain_grad, _hook_keeps, _grad_outputs, _retained_view,
                                       _view_of_kept, _slice_of_kept)}


@pytest.mark.parametrize("holder", HOLDERS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("device", DEVICES)
def test_a_gradient_someone_holds_is_left_intact(holder, op, device):
    require_device(device)
    x = _x(device)
    y = OPS[op](x)
    w = _upstream(y)
    seen = _incoming(y)
    held, expected, may_take = HOLDERS[holder](y, w)
    if not may_take:
        assert not _written_into(x.grad, seen)
    assert torch.equal(held, expected)
    assert torch.equal(x.grad, _reference(op, x, w))


# torch.nn's counterparts of the ops whose values torch computes too (dropout masks
# are another stream).
TORCH = {"selu": torch.nn.functional.selu, "selu_save_output": torch.nn.SELU()}


@pytest.mark.parametrize("holder", HOLDERS)
@pytest.mark.parametrize("op", TORCH)
@pytest.mark.parametrize("device", DEVICES)
def test_a_holder_sees_what_torch_nn_gives(holder, op, device):
    """The same snippet with torch.nn's SELU beside: what the holder keeps and the
    input's gradient agree."""
    require_device(device)
    x = _x(device, torch.float64)
    xt = x.detach().clone().requires_grad_()
    w = _upstream(x)
    held, _, _ = HOLDERS[holder](OPS[op](x), w)
    held_torch, _, _ = HOLDERS[holder](TORCH[op](xt), w)
    assert torch.equal(held, held_torch)
    close(x.grad, xt.grad)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("device", DEVICES)
def test_create_graph_keeps_the_gradient_for_double_backward(op, device):
    require_device(device)
    x = _x(device, torch.float64)
    y = OPS[op](x)
    w = _upstream(y)
    seen = _incoming(y)
    (gx,) = torch.autograd.grad((y * w).sum(), x, create_graph=True)
    assert not _written_into(gx, seen)
    assert torch.equal(gx.detach(), _reference(op, x, w))
    if not gx.requires_grad:  # alpha_dropout is linear: its gradient is a constant
        return
    # The double-backward nodes read the gradient again: had it been overwritten,
    # these would differ from the same second derivative taken in one call.
    (ggx,) = torch.autograd.grad((gx * gx).sum(), x)
    x2 = x.detach().clone().requires_grad_()
    (gx2,) = torch.autograd.grad((OPS[op](x2) * w).sum(), x2, create_graph=True)
    (ggx2,) = torch.autograd.grad((gx2 * gx2).sum(), x2)
    assert torch.equal(ggx, ggx2)


@pytest.mark.parametrize("op", OPS)
def test_noncontiguous_gradient_is_not_written_into(op):
    x = _x("cpu")
    y = OPS[op](x)
    w = _upstream(y)
    seen = _incoming(y)
    # CatBackward0 along dim 1 hands y a column slice of the gradient: not contiguous.
    c = torch.cat([y, torch.zeros_like(y)], dim=1)
    (c * torch.cat([w, w], dim=1)).sum().backward()
    assert not _written_into(x.grad, seen)
    assert torch.equal(x.grad, _reference(op, x, w))
