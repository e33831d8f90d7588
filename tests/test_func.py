"""torch.func: vmap, grad, jacrev, vjp over selu_ext, compared with
torch.nn.functional; dropout under vmap's three randomness modes; per-sample
gradients of a SelfNormalizingMLP; and the transforms that are not supported
(forward-mode AD: jvp, jacfwd, hessian) raising a clear error.

Under torch.func the functional API runs through the Python autograd.Function
classes (C++ autograd functions cannot see functorch's wrapped tensors) and the
operators' vmap rules in selu_ext/ops.py.
"""

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jacfwd, jacrev, jvp, vjp, vmap

import selu_ext
from conftest import DEVICES, F64_TRANSFORMED, require_device

OPS = torch.ops.selu_ext


def _x(device, shape=(6, 9), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    return x.to(device)


# ---------------------------------------------------------------------------
# selu: values and derivatives equal F.selu's


@pytest.mark.parametrize("device", DEVICES)
def test_vmap_selu(device):
    require_device(device)
    x = _x(device)
    torch.testing.assert_close(vmap(selu_ext.selu)(x), F.selu(x))
    torch.testing.assert_close(vmap(selu_ext.selu, in_dims=1, out_dims=1)(x), F.selu(x))
    # Nested vmap and an inner transpose (non-contiguous batched tensor).
    torch.testing.assert_close(vmap(vmap(lambda t: selu_ext.selu(t.t())))(x.view(2, 3, 3, 3)),
                               F.selu(x.view(2, 3, 3, 3).transpose(-1, -2)))
    torch.testing.assert_close(vmap(selu_ext.nn.SELU())(x), F.selu(x))


@pytest.mark.parametrize("device", DEVICES)
def test_vmap_selu_inplace(device):
    require_device(device)
    x = _x(device)
    torch.testing.assert_close(vmap(lambda t: selu_ext.selu(t.clone(), inplace=True))(x), F.selu(x))
    y = x.clone()
    vmap(selu_ext.nn.SELU(inplace=True), in_dims=1)(y)  # mutates y through the batched view
    torch.testing.assert_close(y, F.selu(x))


@pytest.mark.parametrize("device", DEVICES)
def test_grad_jacrev_vjp_selu(device):
    require_device(device)
    x = _x(device)
    ours = lambda t: selu_ext.selu(t).sum()  # noqa: E731
    ref = lambda t: F.selu(t).sum()  # noqa: E731
    torch.testing.assert_close(grad(ours)(x), grad(ref)(x))
    torch.testing.assert_close(vmap(grad(ours))(x), vmap(grad(ref))(x))
    torch.testing.assert_close(jacrev(selu_ext.selu)(x[0]), jacrev(F.selu)(x[0]))
    torch.testing.assert_close(vmap(jacrev(selu_ext.selu))(x), vmap(jacrev(F.selu))(x))
    out, fn = vjp(selu_ext.selu, x)
    out_ref, fn_ref = vjp(F.selu, x)
    v = torch.randn_like(x)
    torch.testing.assert_close(out, out_ref)
    torch.testing.assert_close(fn(v)[0], fn_ref(v)[0])
    # Second derivative (grad of grad): through SELUFunction's backward Function.
    gg = lambda f: grad(lambda t: grad(lambda u: f(u).sum())(t).sum())(x)  # noqa: E731
    torch.testing.assert_close(gg(selu_ext.selu), gg(F.selu))
    # In-place under grad: same gradient.
    torch.testing.assert_close(grad(lambda t: selu_ext.selu(t * 1.0, inplace=True).sum())(x),
                               grad(ref)(x))


def test_per_sample_gradients_mlp():
    # The torch.func recipe: vmap(grad(functional_call)). Equal to a loop of ordinary
    # backward passes (which run selu_ext's C++ autograd).
    torch.manual_seed(0)
    m = selu_ext.nn.SelfNormalizingMLP(7, 6, 3, depth=2).double()
    params = {k: v.detach() for k, v in m.named_parameters()}
    x = torch.randn(5, 7, dtype=torch.float64)

    def loss(p, xi):
        return functional_call(m, p, (xi.unsqueeze(0),)).pow(2).sum()

    per_sample = vmap(grad(loss), in_dims=(None, 0))(params, x)
    for i in range(x.shape[0]):
        m.zero_grad()
        m(x[i:i + 1]).pow(2).sum().backward()
        for k, p in m.named_parameters():
            torch.testing.assert_close(per_sample[k][i], p.grad)


# ---------------------------------------------------------------------------
# Forward-mode AD is not supported: a clear error, not a wrong answer.


def test_forward_mode_matches_torch():
    # Forward-mode AD runs on the operators themselves (csrc/autograd.cpp), in
    # torch.func and in torch.autograd.forward_ad; tests/test_dropin_transforms.py
    # covers every op, this is the quick check beside the other transforms.
    x = _x("cpu")
    t = torch.randn_like(x)
    torch.testing.assert_close(jvp(selu_ext.selu, (x,), (t,)), jvp(F.selu, (x,), (t,)))
    torch.testing.assert_close(jacfwd(selu_ext.selu)(x[0]), jacfwd(F.selu)(x[0]))
    torch.testing.assert_close(torch.func.hessian(lambda v: selu_ext.selu(v).pow(2).sum())(x[0]),
                               torch.func.hessian(lambda v: F.selu(v).pow(2).sum())(x[0]))
    import torch.autograd.forward_ad as fwAD

    with fwAD.dual_level():
        got = fwAD.unpack_dual(selu_ext.selu(fwAD.make_dual(x, t))).tangent
        want = fwAD.unpack_dual(F.selu(fwAD.make_dual(x, t))).tangent
    torch.testing.assert_close(got, want)


# ---------------------------------------------------------------------------
# Dropout under vmap


DROPOUTS = [
    ("alpha_dropout", lambda t, **k: selu_ext.alpha_dropout(t, 0.4, True, **k)),
    ("alpha_dropout-inplace",
     lambda t, **k: selu_ext.alpha_dropout(t.clone(), 0.4, True, True, **k)),
    ("feature_alpha_dropout", lambda t, **k: selu_ext.feature_alpha_dropout(t, 0.4, True, **k)),
    ("selu_alpha_dropout", lambda t, **k: selu_ext.selu_alpha_dropout(t, 0.4, True, **k)),
]
DROPOUT_IDS = [n for n, _ in DROPOUTS]


@pytest.mark.parametrize("name,fn", DROPOUTS, ids=DROPOUT_IDS)
def test_vmap_dropout_randomness_error(name, fn):
    x = _x("cpu", (4, 8, 3))
    for kw in ({}, {"seed": 3}):
        with pytest.raises(RuntimeError, match=r"vmap: called random operation selu_ext\.\w+ "
                           "while in randomness error mode"):
            vmap(lambda t: fn(t, **kw))(x)
    module = {"alpha_dropout": selu_ext.nn.AlphaDropout(0.4),
              "feature_alpha_dropout": selu_ext.nn.FeatureAlphaDropout(0.4),
              "selu_alpha_dropout": selu_ext.nn.SELUAlphaDropout(0.4)}.get(name)
    if module is not None:
        with pytest.raises(RuntimeError, match="randomness error mode"):
            vmap(module.train())(x)
        # Eval mode is deterministic: no error.
        vmap(module.eval())(x)


def _mask(name, out, x):
    """Which units were kept, read off the output: dropped units all hold one value."""
    if name == "selu_alpha_dropout":
        x = F.selu(x)
    a, b, dropped = selu_ext.alpha_dropout_coefficients(0.4)
    tol = F64_TRANSFORMED["atol"]
    keep = (out - (a * x + b)).abs() < tol
    assert bool((keep | ((out - dropped).abs() < tol)).all()), "neither kept nor dropped"
    return keep


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,fn", DROPOUTS, ids=DROPOUT_IDS)
def test_vmap_dropout_different(device, name, fn):
    require_device(device)
    B, N, C, L = 6, 4, 3, 2
    x = _x(device, (B, N, C, L))
    out = vmap(lambda t: fn(t, seed=11), randomness="different")(x)
    keep = _mask(name, out, x)
    # Every sample its own mask ...
    flat = keep.flatten(1)
    assert all(not torch.equal(flat[i], flat[j]) for i in range(B) for j in range(i))
    # ... and exactly the masks of one call over the whole batch: the Philox stream in
    # the batched tensor's row-major order.
    if name.startswith("feature"):
        # Sample b's channel (n, c) is element (b * N + n) * C + c of the stream.
        ref = OPS.dropout_keep_mask(torch.tensor([11, 0]), B * N * C, 0.4).view(B, N, C, 1)
        assert torch.equal(keep, ref.to(device).expand_as(keep))
    else:
        torch.testing.assert_close(out, fn(x, seed=11))
    # Without a seed, torch's generator: still per-sample masks.
    torch.manual_seed(0)
    out2 = vmap(lambda t: fn(t), randomness="different")(x)
    keep2 = _mask(name, out2, x).flatten(1)
    assert not torch.equal(keep2[0], keep2[1])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,fn", DROPOUTS, ids=DROPOUT_IDS)
def test_vmap_dropout_same(device, name, fn):
    require_device(device)
    x = _x(device, (5, 4, 3, 2))
    out = vmap(lambda t: fn(t, seed=11), randomness="same")(x)
    keep = _mask(name, out, x)
    for i in range(5):
        assert torch.equal(keep[i], keep[0])
        # The mask of the unbatched call with the same seed.
        torch.testing.assert_close(out[i], fn(x[i], seed=11))
    assert 0 < keep.sum() < keep.numel()


@pytest.mark.parametrize("name,fn", DROPOUTS, ids=DROPOUT_IDS)
def test_vmap_grad_dropout(name, fn):
    # Per-sample gradients through dropout: each sample's gradient is a * [kept]
    # (times selu' for the fused op), with the mask of its forward.
    x = _x("cpu", (4, 4, 3, 2))
    g = vmap(grad(lambda t: fn(t, seed=5).sum()), randomness="different")(x)
    out = vmap(lambda t: fn(t, seed=5), randomness="different")(x)
    keep = _mask(name, out, x)
    a = selu_ext.alpha_dropout_coefficients(0.4)[0]
    dselu = torch.where(x > 0, selu_ext.SCALE, selu_ext.SCALE * selu_ext.ALPHA * x.exp())
    expect = a * keep.to(x.dtype) * (dselu if name == "selu_alpha_dropout" else 1)
    torch.testing.assert_close(g, expect)


def test_vmap_over_rng_state_is_refused():
    x = _x("cpu", (5, 7))
    rngs = torch.tensor([[1, 0]] * 5)
    with pytest.raises(RuntimeError, match="vmap over rng_state is not supported"):
        vmap(lambda t, r: OPS.alpha_dropout(t, 0.5, r), randomness="different")(x, rngs)


def test_vmap_backward_ops():
    # The backward operators' vmap rules, called directly with batched grad/result.
    x = _x("cpu", (5, 7))
    y = selu_ext.selu(x)
    g = torch.randn_like(x)
    torch.testing.assert_close(vmap(OPS.selu_backward)(g, y), OPS.selu_backward(g, y))
    torch.testing.assert_close(vmap(OPS.selu_backward, in_dims=(None, 0))(g[0], y),
                               OPS.selu_backward(g[0].expand_as(y), y))
    rng = torch.tensor([3, 0])
    torch.testing.assert_close(
        vmap(lambda gi: OPS.alpha_dropout_backward(gi, 0.3, rng), randomness="different")(g),
        OPS.alpha_dropout_backward(g, 0.3, rng))
    z = OPS.selu_alpha_dropout(x, 0.3, rng)
    torch.testing.assert_close(
        vmap(lambda gi, zi: OPS.selu_alpha_dropout_backward(gi, zi, 0.3, rng),
             randomness="different")(g, z),
        OPS.selu_alpha_dropout_backward(g, z, 0.3, rng))
