"""Drop-in behaviour (issue 21, the autograd items): the graph nodes, side by side
with torch.nn.

* forward over reverse where only the output is kept (save_output=True, the fused
  op, convert(), SelfNormalizingMLP): the saved output keeps its tangent;
* saved-tensor hooks that compress what they pack cannot change the dropout mask
  (the rng state is not a saved tensor where the host can read it);
* compiled autograd (torch._dynamo.compiled_autograd) runs every node;
* reverse over forward through the in-place SELU;
* graph-node introspection: a Python type per node, an instance of
  torch.autograd.graph.Node, with torch's _saved_* / _raw_saved_* accessors.

The dropouts draw other masks than torch's; where values are compared with torch,
torch's side is written with selu_ext's mask (torch.where on the keep mask), or the
dropout result is compared with selu_ext's own eager run.
"""

import copy

import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import nn
from torch._dynamo.utils import counters
from torch.func import jacfwd, jacrev, jvp, vjp

import selu_ext
from conftest import F64_TRANSFORMED
from dropin_common import outcome, same_outcome, seed_torch, selu_kept  # noqa: F401  (autouse fixture)
from dropout_common import keep_mask
from selu_ext import nn as snn

SEED = 1234
P = 0.3


def _x(shape=(3, 4), seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64) * 6 - 3
    return x.requires_grad_(requires_grad)


def _close(a, b):
    torch.testing.assert_close(a, b, **F64_TRANSFORMED)


def _torch_alpha_dropout(t):
    """torch's alpha_dropout(t, P, True) with selu_ext's mask for seed=SEED."""
    a, b, dropped = selu_ext.alpha_dropout_coefficients(P)
    keep = keep_mask(torch.tensor([SEED, 0]), t, P)
    return torch.where(keep, a * t + b, torch.full_like(t, dropped))


def _torch_fused(t):
    return _torch_alpha_dropout(F.selu(t))


# The forms that keep only their output, as (torch's, selu_ext's) functions of x.
OUTPUT_SAVING = {
    "save_output": (F.selu, lambda t: selu_ext.selu(t, save_output=True)),
    "module-save_output": (nn.SELU(), snn.SELU(save_output=True)),
    "inplace": (lambda t: F.selu(t * 1.0, inplace=True),
                lambda t: selu_ext.selu(t * 1.0, inplace=True)),
    "fused": (_torch_fused, lambda t: selu_ext.selu_alpha_dropout(t, P, True, seed=SEED)),
}


# ---------------------------------------------------------------------------
# Forward over reverse where only the output is kept


def _hvp_dual(f, x, v):
    """The HVP of sum(f(x)^2) by forward over reverse: the tangent of the gradient
    computed from a dual input."""
    x = x.detach().requires_grad_()
    with fwAD.dual_level():
        dual = fwAD.make_dual(x, v)
        (g,) = torch.autograd.grad(f(dual).square().sum(), dual, create_graph=True)
        primal, tangent = fwAD.unpack_dual(g)
        return primal.detach(), None if tangent is None else tangent.detach()


@pytest.mark.parametrize("form", list(OUTPUT_SAVING))
def test_hvp_forward_over_reverse(form):
    theirs, ours = OUTPUT_SAVING[form]
    x, v = _x(), _x(seed=1)
    (g_t, hvp_t), (g_o, hvp_o) = _hvp_dual(theirs, x, v), _hvp_dual(ours, x, v)
    assert hvp_t is not None and hvp_o is not None, "the gradient lost its tangent"
    _close(g_o, g_t)
    _close(hvp_o, hvp_t)


def _selu_mlp(seed=0):
    g = torch.Generator().manual_seed(seed)
    layers = [nn.Linear(4, 6), nn.SELU(), nn.AlphaDropout(P), nn.Linear(6, 6), nn.SELU(),
              nn.Linear(6, 2)]
    model = nn.Sequential(*layers).double()
    for prm in model.parameters():
        prm.data.copy_(torch.randn(prm.shape, generator=g, dtype=torch.float64))
    return model.eval()  # the same function for torch and selu_ext: no dropout mask


@pytest.mark.parametrize("strategy", ["forward-mode", "reverse-mode"])
def test_hessian_of_converted_model(strategy):
    theirs = _selu_mlp()
    ours = snn.convert(copy.deepcopy(theirs))
    x = _x((4,))
    # convert saves outputs per call, inside the Sequential's forward
    assert "output" in selu_kept(ours(x.clone().requires_grad_())), "nothing to test"
    hess = lambda m: torch.autograd.functional.hessian(  # noqa: E731
        lambda t: m(t).square().sum(), x, vectorize=True, outer_jacobian_strategy=strategy)
    _close(hess(ours), hess(theirs))


def test_hessian_of_self_normalizing_mlp():
    ours = snn.SelfNormalizingMLP(4, 6, 2, depth=2, dtype=torch.float64,
                                  generator=torch.Generator().manual_seed(0))
    theirs = nn.Sequential(*[nn.SELU() if isinstance(m, snn.SELU) else m for m in ours])
    x = _x((4,))
    hess = lambda m: torch.autograd.functional.hessian(  # noqa: E731
        lambda t: m(t).square().sum(), x, vectorize=True, outer_jacobian_strategy="forward-mode")
    _close(hess(ours), hess(theirs))


@pytest.mark.parametrize("form", list(OUTPUT_SAVING))
def test_gradgradcheck_forward_over_reverse(form):
    theirs, ours = OUTPUT_SAVING[form]
    x = _x((3, 2)).requires_grad_()
    x.data[x.data.abs() < 0.1] = 0.5  # finite differences straddle no kink
    check = lambda f: torch.autograd.gradgradcheck(  # noqa: E731
        lambda t: f(t).square(), (x,), check_fwd_over_rev=True, check_undefined_grad=False)
    assert check(theirs) and check(ours)


# ---------------------------------------------------------------------------
# Saved-tensor hooks that compress


def _bf16_hooks():
    """Activation compression: every saved tensor packed to bfloat16 and back."""
    return torch.autograd.graph.saved_tensors_hooks(
        lambda t: (t.dtype, t.to(torch.bfloat16)), lambda packed: packed[1].to(packed[0]))


DROPOUT_PAIRS = {  # (torch's, selu_ext's) training-mode dropout of a SELU output
    "AlphaDropout": (nn.AlphaDropout(P), snn.AlphaDropout(P)),
    "FeatureAlphaDropout": (nn.FeatureAlphaDropout(P), snn.FeatureAlphaDropout(P)),
    "alpha_dropout": (lambda t: F.alpha_dropout(t, P, True),
                      lambda t: selu_ext.alpha_dropout(t, P, True)),
    "alpha_dropout-inplace": (lambda t: F.alpha_dropout(t * 1.0, P, True, inplace=True),
                              lambda t: selu_ext.alpha_dropout(t * 1.0, P, True, inplace=True)),
    "fused": (lambda t: F.alpha_dropout(F.selu(t), P, True),
              lambda t: selu_ext.selu_alpha_dropout(t, P, True)),
}


def _rng_state(x):
    return torch.ops.selu_ext.dropout_rng_state(x.device)


# The autograd.Function forms, rng_state made as their docstrings say: the same masks as
# the functions' for the same seed, so torch's pair is the same.
DROPOUT_PAIRS["AlphaDropoutFunction"] = (
    DROPOUT_PAIRS["alpha_dropout"][0],
    lambda t: selu_ext.AlphaDropoutFunction.apply(t, P, _rng_state(t)))
DROPOUT_PAIRS["SELUAlphaDropoutFunction"] = (
    DROPOUT_PAIRS["fused"][0],
    lambda t: selu_ext.SELUAlphaDropoutFunction.apply(t, P, _rng_state(t)))


@pytest.mark.parametrize("name", list(DROPOUT_PAIRS))
def test_compressing_saved_tensor_hooks_keep_the_mask(name):
    def grad(f, hooked):
        x = _x((16, 8, 4), requires_grad=True)
        torch.manual_seed(7)
        if hooked:
            with _bf16_hooks():
                y = f(x)
        else:
            y = f(x)
        (y * _x((16, 8, 4), seed=3)).sum().backward()
        return x.grad

    for f in DROPOUT_PAIRS[name]:
        plain, hooked = grad(f, False), grad(f, True)
        # torch's change: only the rounding of what it saves (its noise, a SELU output).
        change = (hooked - plain).norm() / plain.norm()
        assert change < 1e-2, f"{f}: hooks changed the gradient by {change:.1%}"


@pytest.mark.parametrize("fused", [False, True], ids=["alpha_dropout", "fused"])
def test_rng_state_is_not_a_saved_tensor_on_the_host(fused):
    packed = []
    x = _x((8,), requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t.dtype) or t,
                                                  lambda t: t):
        y = (selu_ext.selu_alpha_dropout if fused else selu_ext.alpha_dropout)(x, P, True)
    assert packed == ([torch.float64] if fused else [])  # the fused op's output only
    assert y.grad_fn._saved_rng_state.dtype == torch.int64


@pytest.mark.parametrize("name", ["AlphaDropoutFunction", "SELUAlphaDropoutFunction"])
def test_function_rng_state_is_not_a_saved_tensor_on_the_host(name):
    packed = []
    x = _x((8,), requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t.dtype) or t,
                                                  lambda t: t):
        y = DROPOUT_PAIRS[name][1](x)
    assert packed == ([torch.float64] if name.startswith("SELU") else [])  # the output only
    y.sum().backward()  # the mask rebuilt from the kept ints
    assert x.grad is not None and torch.isfinite(x.grad).all()


# ---------------------------------------------------------------------------
# Compiled autograd


def _compiled_autograd():
    return torch._dynamo.compiled_autograd._enable(torch.compile(backend="eager", fullgraph=True))


# Each a (torch's, selu_ext's) pair of functions of x that builds a graph through
# every selu_ext node (the backward ops' own nodes too: create_graph=True).
NODE_CASES = {
    "SeluBackward0": (F.selu, selu_ext.selu),
    "SeluBackward1": OUTPUT_SAVING["save_output"],
    "selu_": OUTPUT_SAVING["inplace"],
    "AlphaDropoutBackward0": (_torch_alpha_dropout,
                              lambda t: selu_ext.alpha_dropout(t, P, True, seed=SEED)),
    "SeluAlphaDropoutBackward0": OUTPUT_SAVING["fused"],
}


@pytest.mark.parametrize("double", [False, True], ids=["backward", "double-backward"])
@pytest.mark.parametrize("name", list(NODE_CASES))
def test_compiled_autograd(name, double):
    theirs, ours = NODE_CASES[name]

    def grads(f, compiled):
        x = _x(requires_grad=True)
        w = _x(seed=2)
        torch._dynamo.reset()
        counters.clear()
        with _compiled_autograd() if compiled else torch.enable_grad():
            y = f(x)
            if double:
                (g,) = torch.autograd.grad((y.square() * w).sum(), x, create_graph=True)
                g.square().sum().backward()
            else:
                (y.square() * w).sum().backward()
        # Each backward captured (not run eagerly, where the values would agree anyway).
        assert counters["compiled_autograd"]["captures"] == (1 + double if compiled else 0)
        return x.grad

    expected = grads(theirs, False)
    _close(grads(theirs, True), expected)
    _close(grads(ours, True), expected)


def test_compiled_autograd_lifts_the_rng_state():
    """A new mask per step reuses the compiled backward (the rng state is a graph
    input, not a constant of the graph, so torch.nn and selu_ext capture as often)
    and each step gets its own mask's gradient."""
    def captures(dropout):
        torch._dynamo.reset()
        counters.clear()
        model = nn.Sequential(nn.Linear(6, 6), dropout, nn.Linear(6, 1)).double()
        for step in range(3):
            x = _x((5, 6), seed=step, requires_grad=True)
            torch.manual_seed(step)
            (eager,) = torch.autograd.grad(model(x).sum(), x)
            torch.manual_seed(step)
            with _compiled_autograd():
                model(x).sum().backward()
            _close(x.grad, eager)
        return counters["compiled_autograd"]["captures"]

    assert captures(snn.AlphaDropout(P)) == captures(nn.AlphaDropout(P))
    assert captures(snn.SELUAlphaDropout(P)) == captures(nn.AlphaDropout(P))


# ---------------------------------------------------------------------------
# Reverse over forward through the in-place SELU

INPLACE = {
    "functional": (lambda t: F.selu(t * 1.0, inplace=True),
                   lambda t: selu_ext.selu(t * 1.0, inplace=True)),
    "module": (lambda t: nn.SELU(inplace=True)(t * 1.0),
               lambda t: snn.SELU(inplace=True)(t * 1.0)),
}


def _reverse_over_forward(f, x, v):
    """jacrev(jacfwd), vjp of jvp, and autograd.grad of a forward-AD tangent."""
    out = [jacrev(jacfwd(f))(x)]
    _, pull = vjp(lambda t: jvp(f, (t,), (v,))[1], x)
    out.append(pull(torch.ones_like(x))[0])
    xr = x.detach().requires_grad_()
    with fwAD.dual_level():
        _, tangent = fwAD.unpack_dual(f(fwAD.make_dual(xr, v)))
        out.append(torch.autograd.grad(tangent.square().sum(), xr)[0])
    return out


@pytest.mark.parametrize("form", list(INPLACE))
def test_reverse_over_forward_inplace(form):
    theirs, ours = INPLACE[form]
    x, v = _x((5,)), _x((5,), seed=1)
    result_t = outcome(lambda: _reverse_over_forward(theirs, x, v))
    result_o = outcome(lambda: _reverse_over_forward(ours, x, v))
    for t, o in zip(*same_outcome(result_t, result_o)):
        _close(o, t)


# ---------------------------------------------------------------------------
# Graph-node introspection

# (torch's, selu_ext's) calls whose grad_fn saves a tensor under the same name.
SAVING = {
    "self": (F.selu, selu_ext.selu),
    "result": OUTPUT_SAVING["inplace"],
}


def _nodes(y):
    """Every node of y's graph, in breadth-first order."""
    seen, todo = [], [y.grad_fn]
    while todo:
        fn = todo.pop(0)
        if fn is not None and fn not in seen:
            seen.append(fn)
            todo.extend(f for f, _ in fn.next_functions)
    return seen


def _selu_ext_graph_of(x):
    """A graph with every selu_ext node: each op's and (create_graph) its backward's."""
    y = selu_ext.selu(selu_ext.selu_alpha_dropout(x, P, True), save_output=True)
    y = selu_ext.alpha_dropout(selu_ext.selu(y), P, True)
    (g,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    return g


def _selu_ext_graph():
    return _selu_ext_graph_of(_x(requires_grad=True))


def test_every_node_has_its_python_type():
    names = set()
    for fn in _nodes(_selu_ext_graph()):
        assert isinstance(fn, torch.autograd.graph.Node)
        names.add(type(fn).__name__)
        if fn.name() in NODE_NAMES:
            assert type(fn).__name__ == fn.name()
    assert NODE_NAMES <= names


NODE_NAMES = {"SeluBackward0", "SeluBackward1", "SeluBackwardBackward0", "AlphaDropoutBackward0",
            "AlphaDropoutBackwardBackward0", "SeluAlphaDropoutBackward0",
            "SeluAlphaDropoutBackwardBackward0"}


@pytest.mark.parametrize("saved", list(SAVING))
def test_saved_tensor_accessors_as_torch(saved):
    def inspect(f):
        x = _x(requires_grad=True)
        y = f(x)
        fn = y.grad_fn
        assert isinstance(fn, torch.autograd.graph.Node) and type(fn).__name__ == fn.name()
        raw = getattr(fn, f"_raw_saved_{saved}")
        value = getattr(fn, f"_saved_{saved}").detach().clone()
        y.sum().backward()
        after = outcome(lambda: getattr(fn, f"_saved_{saved}"))
        return type(raw), value, after

    theirs, ours = inspect(SAVING[saved][0]), inspect(SAVING[saved][1])
    assert ours[0] is theirs[0] is torch._C._autograd.SavedTensor
    _close(ours[1], theirs[1])
    same_outcome(theirs[2], ours[2])  # released by backward: both raise
    assert theirs[2][0] == "raise"


@pytest.mark.parametrize("saved", list(SAVING))
def test_raw_saved_tensor_hooks_as_torch(saved):
    """Hooks registered on a node's SavedTensor see and replace the saved tensor."""
    def grad(f):
        x = _x(requires_grad=True)
        y = f(x)
        packed = []
        getattr(y.grad_fn, f"_raw_saved_{saved}").register_hooks(
            lambda t: packed.append(t.clone()) or t.to(torch.bfloat16),
            lambda t: t.to(torch.float64))
        y.sum().backward()
        return packed[0], x.grad

    for t, o in zip(grad(SAVING[saved][0]), grad(SAVING[saved][1])):
        _close(o, t)


@pytest.mark.skipif(not hasattr(torch.autograd.graph, "node_creation_hook"),
                    reason="this torch has no torch.autograd.graph.node_creation_hook (2.14 does)")
def test_node_creation_hook_sees_complete_nodes():
    """torch.autograd.graph.node_creation_hook sees every node, its saved state
    readable, as it sees torch's."""
    def created(f):
        seen = []

        def hook(node):
            saved = [a for a in dir(node) if a.startswith("_saved_")]
            seen.append((type(node).__name__, {a: getattr(node, a) for a in saved}))

        x = _x(requires_grad=True)
        with torch.autograd.graph.node_creation_hook(hook):
            f(x)
        return [s for s in seen if s[0] != "AccumulateGrad"]

    for saved, (theirs, ours) in SAVING.items():
        (name_t, saved_t), (name_o, saved_o) = created(theirs)[-1], created(ours)[-1]
        assert name_t.startswith("EluBackward") and name_o.startswith("SeluBackward")
        _close(saved_o[f"_saved_{saved}"], saved_t[f"_saved_{saved}"])
    names = {n for n, _ in created(_selu_ext_graph_of)}
    assert NODE_NAMES <= names, names


def test_dropout_node_accessors():
    x = _x(requires_grad=True)
    y = selu_ext.alpha_dropout(x, P, True, seed=SEED)
    assert y.grad_fn._saved_p == P
    assert y.grad_fn._saved_rng_state.tolist() == [SEED, 0]
    z = selu_ext.selu_alpha_dropout(x, P, True, seed=SEED)
    _close(z.grad_fn._saved_result, z)
    assert z.grad_fn._saved_rng_state.tolist() == [SEED, 0]
