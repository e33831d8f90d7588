"""Determinism: every selu_ext op runs under torch.use_deterministic_algorithms(True),
and the same seed gives bitwise-identical results (forward and backward, dropout
included) on repeated runs, on CPU and CUDA; on the CPU also with any number of
threads, since the dropout mask of an element depends only on (seed, offset,
index), never on how the work was split.
"""

import os

import pytest
import torch

import selu_ext
from conftest import DEVICES, require_device

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


@pytest.mark.cuda
def test_seed_gives_same_masks_on_cpu_and_cuda(deterministic):
    require_device("cuda")
    x = torch.randn(4099, 3, dtype=torch.float64)
    for fn in (lambda t: selu_ext.alpha_dropout(t, 0.3, True, seed=7),
               lambda t: selu_ext.feature_alpha_dropout(t, 0.3, True, seed=7),
               lambda t: selu_ext.selu_alpha_dropout(t, 0.3, True, seed=7)):
        cpu = fn(x)
        cuda = fn(x.cuda()).cpu()
        torch.testing.assert_close(cuda, cpu, rtol=1e-12, atol=1e-12)


def test_dropout_rng_state_advances_generator():
    # Two calls draw two different (seed, offset)s; manual_seed replays them.
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        torch.manual_seed(0)
        a = torch.ops.selu_ext.dropout_rng_state(torch.device(device)).cpu()
        b = torch.ops.selu_ext.dropout_rng_state(torch.device(device)).cpu()
        torch.manual_seed(0)
        a2 = torch.ops.selu_ext.dropout_rng_state(torch.device(device)).cpu()
        assert not torch.equal(a, b) and torch.equal(a, a2)
