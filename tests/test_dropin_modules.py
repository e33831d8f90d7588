"""Drop-in behaviour of the modules and of convert() (issue 21, items 3-6 and 11),
side by side: the same snippet on a torch.nn model and on selu_ext's (its modules,
or convert() of the torch.nn model, fused and not), outcomes and values compared.

- the modules are instances of torch's classes (code that finds layers by type,
  the Monte-Carlo-dropout recipe), with torch's repr, state_dict, constants,
  pickling and deepcopy;
- after convert() every slot keeps a module whose attributes drive what runs
  (`model[2].p = 0.0`, `model[2].train()`), and hooks keep applying;
- convert()'s output saving never breaks code outside the Sequential's own forward
  (slices, loops over the layers, hooks that modify tensors);
- `model = convert(model)` after the optimizer was built still trains the model.
"""

import copy
import io
import pickle
import warnings

import pytest
import torch
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from conftest import F32_NETWORK
from dropin_common import MODULES, make_x, outcome, same_outcome, seed_torch  # noqa: F401
from selu_ext import nn as snn

pytestmark = pytest.mark.filterwarnings("ignore::selu_ext.SelfNormalizationWarning")


def close(actual, expected):
    # float32 models: torch's Linears, SELU within 2 ULP of torch's.
    torch.testing.assert_close(actual, expected, **F32_NETWORK)


def _torch_model(p=0.5):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.SELU(), nn.AlphaDropout(p), nn.Linear(8, 4))


# Each snippet's model: torch.nn's, and selu_ext's from convert() of the same one.
VARIANTS = {
    "fuse": lambda m: snn.convert(m),
    "nofuse": lambda m: snn.convert(m, fuse=False),
    "inplace": lambda m: snn.convert(m, inplace=True),
}


def _side_by_side(build, snippet, variant):
    """snippet(model) on build() and on its conversion: the same outcome; returns
    both results."""
    theirs = outcome(lambda: snippet(build()))
    ours = outcome(lambda: snippet(VARIANTS[variant](build())))
    return same_outcome(theirs, ours)


# ---------------------------------------------------------------------------
# Item 3: instances of torch's classes


@pytest.mark.parametrize("name", list(MODULES))
def test_instances_of_torchs_classes(name):
    theirs_cls, ours_cls = MODULES[name]
    theirs, ours = theirs_cls(), ours_cls()
    assert isinstance(ours, type(theirs))
    assert isinstance(ours, _DropoutNd) == isinstance(theirs, _DropoutNd)
    assert repr(ours) == repr(theirs)
    assert ours.state_dict() == theirs.state_dict() == {}
    assert set(type(theirs).__constants__) <= set(type(ours).__constants__)
    for copied in (copy.deepcopy(ours), pickle.loads(pickle.dumps(ours))):
        assert type(copied) is type(ours) and vars(copied).keys() == vars(ours).keys()
        assert repr(copied) == repr(ours)
    buf = io.BytesIO()
    torch.save(ours, buf)
    buf.seek(0)
    assert repr(torch.load(buf, weights_only=False)) == repr(ours)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_monte_carlo_dropout_recipe(variant):
    """eval(), then train() every dropout found by type: the samples differ."""
    x = make_x((5, 6), dtype=torch.float32)

    def snippet(model):
        model.eval()
        for m in model.modules():
            if isinstance(m, _DropoutNd):
                m.train()
        a, b = model(x), model(x)
        return not torch.equal(a, b), model(x).shape

    theirs, ours = _side_by_side(_torch_model, snippet, variant)
    assert theirs == ours == (True, torch.Size([5, 4]))


def test_converted_structure_is_torchs():
    model = _torch_model()
    for variant in VARIANTS:
        out = VARIANTS[variant](_torch_model())
        assert isinstance(out, nn.Sequential) and repr(out) == repr(model)
        assert len(out) == len(model)
        assert [n for n, _ in out.named_modules()] == [n for n, _ in model.named_modules()]
        assert out.state_dict().keys() == model.state_dict().keys()
        out.load_state_dict(model.state_dict())
        restored = pickle.loads(pickle.dumps(out))
        assert type(restored) is snn.Sequential and repr(restored) == repr(model)


# ---------------------------------------------------------------------------
# Item 4: the AlphaDropout slot still drives the fused op


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_dropout_schedule_p_zero(variant):
    """A dropout schedule that ends at p = 0: training output is then the eval one."""
    x = make_x((5, 6), dtype=torch.float32)

    def snippet(model):
        model.train()
        model[2].p = 0.0
        return model(x)

    theirs, ours = _side_by_side(_torch_model, snippet, variant)
    close(ours, theirs)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_dropout_slot_train_and_eval(variant):
    x = make_x((5, 6), dtype=torch.float32)

    def snippet(model):
        model.eval()
        model[2].train()  # only the dropout
        on = not torch.equal(model(x), model(x))
        model.train()
        model[2].eval()
        return on, model(x)

    theirs, ours = _side_by_side(_torch_model, snippet, variant)
    assert theirs[0] and ours[0]
    close(ours[1], theirs[1])


# ---------------------------------------------------------------------------
# Item 5: hooks registered before convert() keep applying


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_hooks_carried_over(variant, training):
    x = make_x((5, 6), dtype=torch.float32)
    captured = {}

    def build():
        model = _torch_model(p=0.0 if training else 0.5)  # p = 0: the same values
        model[1].register_forward_hook(lambda m, a, out: captured.setdefault("selu", out))
        model[1].register_forward_pre_hook(lambda m, a: (a[0] * 0.5,))
        model[2].register_forward_hook(lambda m, a, out: out + 1.0)
        return model

    def snippet(model):
        captured.clear()
        model.train(training)
        y = model(x)
        y.sum().backward()
        return y, captured["selu"], model[0].weight.grad

    theirs, ours = _side_by_side(build, snippet, variant)
    for t, o in zip(theirs, ours):
        close(o, t)



@pytest.mark.parametrize("variant", list(VARIANTS))
def test_forward_patched_onto_the_instance(variant):
    """Instrumentation that replaces a layer's forward (profilers do) keeps applying."""
    x = make_x((5, 6), dtype=torch.float32)

    def snippet(model):
        selu = model[1]
        original = selu.forward
        selu.forward = lambda t: original(t) * 2.0
        return model.eval()(x)

    theirs, ours = _side_by_side(_torch_model, snippet, variant)
    close(ours, theirs)

def test_hook_handles_work_after_inplace_convert():
    x = make_x((5, 6), dtype=torch.float32)

    def snippet(swap):
        model = _torch_model().eval()
        handle = model[1].register_forward_hook(lambda m, a, out: out * 0.0)
        model = swap(model)
        hooked = model(x)
        handle.remove()
        return hooked, model(x)

    theirs = snippet(lambda m: m)
    ours = snippet(lambda m: snn.convert(m, inplace=True))
    for t, o in zip(theirs, ours):
        close(o, t)
    assert not torch.equal(ours[0], ours[1])


# ---------------------------------------------------------------------------
# Item 6: output saving only inside the Sequential's own forward


def _slice_then_iadd(model):
    h = model[:2](make_x((5, 6), dtype=torch.float32))  # a feature extractor ending in SELU
    h += 1
    h.sum().backward()
    return h, model[0].weight.grad


def _loop_with_inplace_op(model):
    h = make_x((5, 6), dtype=torch.float32)
    for layer in model:
        h = layer(h)
        if isinstance(layer, nn.SELU):
            h.mul_(0.5)
    h.sum().backward()
    return h, model[0].weight.grad


def _clamping_pre_hook(model):
    model[3].register_forward_pre_hook(lambda m, a: (a[0].clamp_(max=0.5),))
    h = model(make_x((5, 6), dtype=torch.float32))
    h.sum().backward()
    return h, model[0].weight.grad


CONSUMERS = {"slice_iadd": _slice_then_iadd, "loop_inplace": _loop_with_inplace_op,
             "pre_hook_clamp_": _clamping_pre_hook}


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("consumer", list(CONSUMERS))
def test_code_outside_the_sequential_forward(consumer, variant, training):
    def snippet(model):
        model.train(training)
        return CONSUMERS[consumer](model)

    # p = 0 in training: the same values as torch's (masks are another stream).
    build = (lambda: _torch_model(p=0.0)) if training else _torch_model
    theirs, ours = _side_by_side(build, snippet, variant)
    for t, o in zip(theirs, ours):
        close(o, t)
    if training:  # and with a real mask it runs too
        (kind, _), _ = outcome(lambda: snippet(VARIANTS[variant](_torch_model()))), None
        assert kind == "ok"


def _mlp_and_twin(dropout):
    """A SelfNormalizingMLP and the torch.nn Sequential with the same Linears (a
    SELUAlphaDropout slot is torch's SELU + AlphaDropout)."""
    mlp = snn.SelfNormalizingMLP(6, 8, 4, depth=2, dropout=dropout)
    twin = [m if isinstance(m, nn.Linear) else
            nn.Sequential(nn.SELU(), nn.AlphaDropout(dropout)) if dropout else nn.SELU()
            for m in mlp]
    return mlp, nn.Sequential(*twin)


@pytest.mark.parametrize("dropout", [0.0, 0.2])
@pytest.mark.parametrize("consumer", ["slice_iadd", "loop_inplace"])
def test_self_normalizing_mlp_outside_its_forward(consumer, dropout):
    mlp, twin = _mlp_and_twin(dropout)

    def snippet(model):
        model.eval()
        model.zero_grad()
        return CONSUMERS[consumer](model)

    theirs, ours = same_outcome(outcome(lambda: snippet(twin)), outcome(lambda: snippet(mlp)))
    for t, o in zip(theirs, ours):
        close(o, t)
    mlp.train()
    CONSUMERS[consumer](mlp)  # training mode (the fused op where it runs) too


# ---------------------------------------------------------------------------
# Item 11: model = convert(model) after the optimizer was built


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_optimizer_built_before_convert_trains_the_model(variant):
    x = make_x((16, 6), dtype=torch.float32)

    def run(swap):
        model = _torch_model().eval()  # eval: deterministic, the same in both
        start = model(x).detach()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        model = swap(model)
        for _ in range(3):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
        return start, model(x).detach()

    theirs = run(lambda m: m)
    ours = run(VARIANTS[variant])
    assert not torch.allclose(theirs[1], theirs[0])  # training moved the output
    close(ours[0], theirs[0])
    close(ours[1], theirs[1])


def test_convert_without_inplace_leaves_the_original_modules():
    model = _torch_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = snn.convert(model)
    assert type(model) is nn.Sequential and type(model[1]) is nn.SELU
    assert type(model[2]) is nn.AlphaDropout and out[2] is not model[2]
    assert out[0].weight is model[0].weight and out[0] is not model[0]
