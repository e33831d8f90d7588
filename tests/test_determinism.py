"""Determinism and the random stream. Every selu_ext op runs under
torch.use_deterministic_algorithms(True), and the same seed gives bitwise-identical
results (forward and backward, dropout included) on repeated runs, on CPU and CUDA;
on the CPU also with any number of threads, since the dropout mask of an element
depends only on (seed, offset, index), never on how the work was split.

The dropout functions and modules draw their rng state from torch's generator
(torch.manual_seed replays them) unless seed= fixes it, which draws nothing; a seed
gives the same mask on CPU and CUDA. Statistical independence of consecutive masks
is in test_dropout_statistics.py.
"""

import os

import pytest
import torch

import selu_ext
from conftest import DEVICES, F64_REORDERED, make_input, ops, require_device
from dropout_common import is_dropped, rng_state

# cuBLAS (the Linear layers on CUDA) needs this under use_deterministic_algorithms.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@pytest.fixture
def deterministic():
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(before, warn_only=warn_only)


def _run_everything(device, seed, n=3000):
    """Forward and backward of every public op and module; returns every output and
    gradient, on the CPU."""
    torch.manual_seed(seed)
    if device == "cuda":
        torch.cuda.manual_seed(seed)
    g = torch.Generator().manual_seed(99)
    x = (torch.randn(n, 8, generator=g) * 2).to(device).requires_grad_()
    h = x * 1.0  # non-leaf, for the in-place forms
    outs = [
        selu_ext.selu(x),
        selu_ext.selu(h.clone(), inplace=True),
        selu_ext.alpha_dropout(x, 0.3, True),
        selu_ext.alpha_dropout(h.clone(), 0.3, True, True),
        selu_ext.alpha_dropout(x, 0.3, True, seed=5),
        selu_ext.feature_alpha_dropout(x.view(n, 4, 2), 0.3, True).view(n, 8),
        selu_ext.feature_alpha_dropout(h.view(n, 4, 2).clone(), 0.3, True, True).view(n, 8),
        selu_ext.selu_alpha_dropout(x, 0.3, True),
        selu_ext.nn.AlphaDropout(0.2).train()(x),
        selu_ext.nn.FeatureAlphaDropout(0.2).train()(x),
        selu_ext.nn.SELUAlphaDropout(0.2).train()(x),
        selu_ext.SELUFunction.apply(x),
        selu_ext.AlphaDropoutFunction.apply(x, 0.4, torch.ops.selu_ext.dropout_rng_state(x.device)),
        selu_ext.SELUAlphaDropoutFunction.apply(x, 0.4,
                                               torch.ops.selu_ext.dropout_rng_state(x.device)),
    ]
    mlp = selu_ext.nn.SelfNormalizingMLP(8, 16, 4, depth=2, dropout=0.1,
                                         generator=torch.Generator().manual_seed(3)).to(device)
    outs.append(mlp(x))
    loss = sum((o * (i + 1)).sum() for i, o in enumerate(outs))
    loss.backward()
    result = [o.detach().cpu() for o in outs] + [x.grad.cpu()]
    result += [p.grad.cpu() for p in mlp.parameters()]
    return result


def _assert_bitwise(a, b):
    assert len(a) == len(b)
    for i, (u, v) in enumerate(zip(a, b)):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert torch.equal(u.view(torch.uint8) if u.is_floating_point() else u,
                           v.view(torch.uint8) if v.is_floating_point() else v), f"result {i}"


@pytest.mark.parametrize("device", DEVICES)
def test_same_seed_bitwise_identical(device, deterministic):
    require_device(device)
    a = _run_everything(device, seed=0)
    b = _run_everything(device, seed=0)
    _assert_bitwise(a, b)
    # And the seed matters: the generator-seeded dropout outputs change with it.
    c = _run_everything(device, seed=1)
    assert not torch.equal(a[2], c[2])
    assert torch.equal(a[4], c[4])  # seed=5 given explicitly: unchanged
    assert torch.equal(a[0], c[0])  # selu: no randomness


def test_cpu_thread_count_does_not_change_results(deterministic):
    # Large enough (>= 2 * 32768 elements) that at::parallel_for splits the work.
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _run_everything("cpu", seed=0, n=20000)
        torch.set_num_threads(max(2, before))
        many = _run_everything("cpu", seed=0, n=20000)
    finally:
        torch.set_num_threads(before)
    # The Linear layers' float sums may depend on the thread count; selu_ext's own
    # results (everything but the MLP's output and the gradients through it) must not.
    n_ops = 14
    _assert_bitwise(one[:n_ops], many[:n_ops])


# ---------------------------------------------------------------------------
# The random stream: torch's generator, seed=, the same mask on CPU and CUDA

ALL = ["alpha_dropout", "selu_alpha_dropout", "feature_alpha_dropout"]


@pytest.mark.parametrize("device", DEVICES)
def test_dropout_rng_state_advances_generator(device):
    # Two calls draw two different (seed, offset)s; manual_seed replays them.
    require_device(device)
    torch.manual_seed(0)
    a = ops.dropout_rng_state(torch.device(device)).cpu()
    b = ops.dropout_rng_state(torch.device(device)).cpu()
    torch.manual_seed(0)
    a2 = ops.dropout_rng_state(torch.device(device)).cpu()
    assert not torch.equal(a, b) and torch.equal(a, a2)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn", ALL)
def test_manual_seed_reproduces_and_draws_from_torch_generator(device, fn):
    require_device(device)
    f = getattr(selu_ext, fn)
    x = torch.zeros(64, 129, device=device)  # kept -> b, dropped -> the dropped value
    torch.manual_seed(123)
    rng = ops.dropout_rng_state(torch.device(device))
    torch.manual_seed(123)
    y1 = f(x, 0.5, training=True)
    y2 = f(x, 0.5, training=True)
    torch.manual_seed(123)
    y3 = f(x, 0.5, training=True)
    assert torch.equal(y1, y3)
    assert not torch.equal(y1, y2)
    # The state a call uses is the next one torch's generator hands out.
    numel = x.numel() if fn != "feature_alpha_dropout" else x.shape[0] * x.shape[1]
    keep = ops.dropout_keep_mask(rng, numel, 0.5).to(device)
    if fn == "feature_alpha_dropout":
        keep = keep.view(64, 129)
    assert torch.equal(~is_dropped(y1, 0.5).view(keep.shape), keep.view(keep.shape))


@pytest.mark.parametrize("device", DEVICES)
def test_modules_follow_manual_seed(device):
    require_device(device)
    x = torch.randn(32, 16, 3, device=device)
    for m in (selu_ext.nn.AlphaDropout(0.2), selu_ext.nn.FeatureAlphaDropout(0.2),
              selu_ext.nn.SELUAlphaDropout(0.2)):
        torch.manual_seed(5)
        y1 = m(x)
        torch.manual_seed(5)
        assert torch.equal(m(x), y1)
        assert not torch.equal(m(x), y1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn", ALL)
def test_seed_fixes_the_mask(device, fn):
    require_device(device)
    f = getattr(selu_ext, fn)
    x = torch.randn(40, 33, device=device)
    state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state() if device == "cuda" else None
    y = f(x, 0.5, training=True, seed=42)
    assert torch.equal(torch.get_rng_state(), state)  # seed= draws nothing from torch
    if device == "cuda":
        assert torch.equal(torch.cuda.get_rng_state(), cuda_state)
    assert torch.equal(f(x, 0.5, training=True, seed=42), y)
    assert not torch.equal(f(x, 0.5, training=True, seed=43), y)
    # Seeds are taken modulo 2**64, as a uint64.
    assert torch.equal(f(x, 0.5, training=True, seed=-1), f(x, 0.5, training=True, seed=2**64 - 1))
    assert torch.equal(f(x, 0.5, training=True, seed=2**64 + 42), y)


@pytest.mark.cuda
@pytest.mark.parametrize("fn", ALL)
@pytest.mark.parametrize("shape", [(1,), (7, 1031), (2, 3, 64, 65)], ids=str)
def test_same_seed_same_mask_on_cpu_and_cuda(fn, shape, deterministic):
    require_device("cuda")
    f = getattr(selu_ext, fn)
    if fn == "feature_alpha_dropout" and len(shape) < 2:
        shape = (1, 1)
    x = make_input(shape, torch.float64, "cpu")
    y_cpu = f(x, 0.35, training=True, seed=2**40 + 3)
    y_cuda = f(x.cuda(), 0.35, training=True, seed=2**40 + 3)
    assert torch.equal(is_dropped(y_cpu, 0.35), is_dropped(y_cuda.cpu(), 0.35))
    torch.testing.assert_close(y_cuda.cpu(), y_cpu, **F64_REORDERED)
    # The keep-mask op itself, with the state on either device.
    rng = rng_state(2**40 + 3, 12)
    assert torch.equal(ops.dropout_keep_mask(rng, 100003, 0.35),
                       ops.dropout_keep_mask(rng.cuda(), 100003, 0.35).cpu())
