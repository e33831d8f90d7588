"""Drop-in behaviour (issue 10): forward-mode AD and DTensor, side by side with torch.

Forward-mode AD (torch.func.jvp, jacfwd, hessian, torch.autograd.forward_ad): selu
against torch's selu; the dropouts, with a fixed seed= so that every call draws the
same mask, against the reverse-mode jacobian (jacrev) of the same call and against
finite differences (gradcheck's forward-AD check), in float64. hessian runs jacfwd
over jacrev, so it also checks the jvp of the backward ops.

DTensor on a 1-process gloo group: selu keeps Shard and Replicate placements,
redistributes Partial first (as torch's nonlinear pointwise ops), and
backpropagates; the dropouts return what torch's return on the same DTensor.
"""

import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.distributed as dist
import torch.nn.functional as F
from torch.func import hessian, jacfwd, jacrev, jvp

import selu_ext
from conftest import DEVICES, F64_TRANSFORMED, require_device
from dropin_common import seed_torch  # noqa: F401  (autouse fixture)
from selu_ext import nn as snn


def _x(shape=(3, 4, 2), seed=0, device="cpu", kink=True):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(shape, generator=g, dtype=torch.float64) * 6 - 3)
    if kink:  # x == 0: both must take the x <= 0 branch's derivative, as torch
        x.view(-1)[0] = 0.0
    return x.to(device)


def _v(x, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)


def _close(a, b):
    torch.testing.assert_close(a, b, **F64_TRANSFORMED)


# ---------------------------------------------------------------------------
# SELU against torch

SELUS = {  # (torch's, selu_ext's), built when a test runs
    "functional": lambda: (F.selu, selu_ext.selu),
    "module": lambda: (torch.nn.SELU(), snn.SELU()),
    "module-save_output": lambda: (torch.nn.SELU(), snn.SELU(save_output=True)),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("form", list(SELUS))
def test_selu_jvp_jacfwd(form, device):
    require_device(device)
    theirs, ours = SELUS[form]()
    x = _x(device=device)
    v = _v(x)
    (out_t, tan_t), (out_o, tan_o) = jvp(theirs, (x,), (v,)), jvp(ours, (x,), (v,))
    _close(out_o, out_t)
    _close(tan_o, tan_t)
    _close(jacfwd(ours)(x[0]), jacfwd(theirs)(x[0]))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("form", list(SELUS))
def test_selu_hessian(form, device):
    require_device(device)
    theirs, ours = SELUS[form]()
    x = _x(device=device)[0]
    w = _v(x, seed=2)
    _close(hessian(lambda t: (ours(t) * w).sum())(x),
           hessian(lambda t: (theirs(t) * w).sum())(x))


@pytest.mark.parametrize("inplace", [False, True], ids=["out", "inplace"])
def test_selu_forward_ad_dual(inplace):
    def tangent(selu):
        x, v = _x(), _v(_x())
        with fwAD.dual_level():
            dual = fwAD.make_dual(x, v)
            y = selu(dual * 1.0, inplace=True) if inplace else selu(dual)
            primal, tan = fwAD.unpack_dual(y)
            return primal.clone(), tan.clone()

    theirs, ours = tangent(F.selu), tangent(selu_ext.selu)
    _close(ours[0], theirs[0])
    _close(ours[1], theirs[1])


def test_selu_gradcheck_forward_ad():
    x = _x((5, 3), kink=False).requires_grad_()  # finite differences straddle a kink
    assert torch.autograd.gradcheck(selu_ext.selu, (x,), check_forward_ad=True,
                                    check_backward_ad=False, check_undefined_grad=False)


# ---------------------------------------------------------------------------
# The dropouts with a fixed seed: forward mode against reverse mode of the same call

SEED = 1234
DROPOUTS = {
    "alpha_dropout": lambda t: selu_ext.alpha_dropout(t, 0.3, True, seed=SEED),
    "selu_alpha_dropout": lambda t: selu_ext.selu_alpha_dropout(t, 0.3, True, seed=SEED),
    "feature_alpha_dropout": lambda t: selu_ext.feature_alpha_dropout(t, 0.3, True, seed=SEED),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(DROPOUTS))
def test_dropout_jvp_jacfwd_match_jacrev(name, device):
    require_device(device)
    f = DROPOUTS[name]
    x = _x(device=device)
    v = _v(x)
    # The reference: reverse mode, one backward per output (no vmap).
    jac = torch.autograd.functional.jacobian(f, x).reshape(x.numel(), x.numel())
    assert bool((jac == 0).all(dim=1).any()), "the seed drops no unit: the test would see no mask"
    _close(jacrev(f)(x).reshape(x.numel(), x.numel()), jac)
    out, tan = jvp(f, (x,), (v,))
    _close(out, f(x))
    _close(tan.flatten(), jac @ v.flatten())
    _close(jacfwd(f)(x).reshape(x.numel(), x.numel()), jac)
    with fwAD.dual_level():
        _, dual_tan = fwAD.unpack_dual(f(fwAD.make_dual(x, v)))
        _close(dual_tan.flatten(), jac @ v.flatten())


@pytest.mark.parametrize("name", list(DROPOUTS))
def test_dropout_hessian_matches_reverse_over_reverse(name):
    f = DROPOUTS[name]
    x = _x((2, 3, 2))
    w = _v(x, seed=3)
    g = lambda t: (f(t).square() * w).sum()  # noqa: E731  (nonzero second derivative)
    # Reverse over reverse, without vmap, against torch.func's forward over reverse.
    _close(hessian(g)(x), torch.autograd.functional.hessian(g, x))


@pytest.mark.parametrize("name", list(DROPOUTS))
def test_dropout_gradcheck_forward_ad(name):
    x = _x((4, 3, 2), kink=False).requires_grad_()
    assert torch.autograd.gradcheck(DROPOUTS[name], (x,), check_forward_ad=True,
                                    check_backward_ad=False, check_undefined_grad=False)


# ---------------------------------------------------------------------------
# DTensor on a 1-process gloo group

try:
    import torch.distributed.tensor as dtensor
    from torch.distributed.tensor import Partial, Replicate, Shard
except ImportError:  # a torch built without distributed
    dtensor = None


@pytest.fixture(scope="module")
def mesh():
    if dtensor is None or not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


PLACEMENTS = {"Shard0": lambda: Shard(0), "Shard1": lambda: Shard(1),
              "Replicate": lambda: Replicate()}


def _dt(mesh, placement, requires_grad=False):
    x = _x((4, 6, 2))
    return dtensor.distribute_tensor(x, mesh, [placement]).requires_grad_(requires_grad)


@pytest.mark.parametrize("inplace", [False, True], ids=["out", "inplace"])
@pytest.mark.parametrize("placement", list(PLACEMENTS))
def test_dtensor_selu_keeps_placement(mesh, placement, inplace):
    placement = PLACEMENTS[placement]()
    theirs = F.selu(_dt(mesh, placement), inplace=inplace)
    ours = selu_ext.selu(_dt(mesh, placement), inplace=inplace)
    assert isinstance(ours, dtensor.DTensor)
    assert ours.placements == theirs.placements == (placement,)
    _close(ours.full_tensor(), theirs.full_tensor())
    assert isinstance(snn.SELU()(_dt(mesh, placement)), dtensor.DTensor)


def test_dtensor_selu_partial_is_redistributed_first(mesh):
    def partial():
        return dtensor.DTensor.from_local(_x((4, 6, 2)), mesh, [Partial()])

    theirs, ours = F.selu(partial()), selu_ext.selu(partial())
    assert isinstance(ours, dtensor.DTensor)
    assert ours.placements == theirs.placements
    _close(ours.full_tensor(), theirs.full_tensor())


@pytest.mark.parametrize("placement", list(PLACEMENTS))
def test_dtensor_selu_backward(mesh, placement):
    placement = PLACEMENTS[placement]()

    def grad(selu):
        dt = _dt(mesh, placement, requires_grad=True)
        (selu(dt) * 2.0).sum().backward()
        return dt.grad

    theirs, ours = grad(F.selu), grad(selu_ext.selu)
    assert isinstance(ours, dtensor.DTensor) and ours.placements == theirs.placements
    _close(ours.full_tensor(), theirs.full_tensor())


DTENSOR_DROPOUTS = {
    "alpha_dropout": (F.alpha_dropout, selu_ext.alpha_dropout),
    "feature_alpha_dropout": (F.feature_alpha_dropout, selu_ext.feature_alpha_dropout),
}


@pytest.mark.filterwarnings("ignore:DTensor random operators")
@pytest.mark.parametrize("placement", list(PLACEMENTS))
@pytest.mark.parametrize("name", list(DTENSOR_DROPOUTS))
def test_dtensor_dropout(mesh, name, placement):
    """selu_ext falls back to torch's dropout on DTensors: the same kind of result,
    placements and AlphaDropout values; eval mode hands back the input."""
    theirs_fn, ours_fn = DTENSOR_DROPOUTS[name]
    placement = PLACEMENTS[placement]()
    x = _dt(mesh, placement)
    theirs, ours = theirs_fn(x, 0.3, True), ours_fn(x, 0.3, True)
    assert isinstance(ours, dtensor.DTensor)
    assert ours.placements == theirs.placements
    a, b, dropped = selu_ext.alpha_dropout_coefficients(0.3)
    full, xf = ours.full_tensor(), x.full_tensor()
    kept = torch.isclose(full, a * xf + b, **F64_TRANSFORMED)
    assert bool((kept | torch.isclose(full, torch.full_like(full, dropped))).all())
    assert ours_fn(x, 0.3, False) is x and theirs_fn(x, 0.3, False) is x
    m = (snn.AlphaDropout(0.3) if name == "alpha_dropout" else snn.FeatureAlphaDropout(0.3))
    assert m.eval()(x) is x
    assert isinstance(m.train()(x), dtensor.DTensor)


@pytest.mark.filterwarnings("ignore:DTensor random operators")
@pytest.mark.parametrize("name", list(DTENSOR_DROPOUTS))
def test_dtensor_dropout_partial(mesh, name):
    theirs_fn, ours_fn = DTENSOR_DROPOUTS[name]

    def run(fn):
        x = dtensor.DTensor.from_local(_x((4, 6, 2)), mesh, [Partial()])
        try:
            return "ok", fn(x, 0.3, True).placements
        except Exception as e:  # noqa: BLE001  (compared with what torch raises)
            return "raise", type(e)

    assert run(ours_fn) == run(theirs_fn)
