"""Dropout under CUDA graph capture: a captured training step replays with fresh
masks (the rng state is read on the device at each replay, as PyTorch's own
dropout does), and each replay computes what the CPU ops compute with that replay's
rng state: the same mask exactly, the values to float rounding."""

import pytest
import torch

import selu_ext
from conftest import F32_OTHER_IMPLEMENTATION, HAS_CUDA
from selu_ext import ops

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU visible")]


def _capture(fn):
    torch.cuda.synchronize()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):  # warm up outside the graph, as torch.cuda.graphs asks
            fn()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return graph, out


def test_captured_step_replays_with_fresh_masks():
    torch.manual_seed(0)
    x = torch.randn(4099, device="cuda", requires_grad=True)
    g = torch.randn(4099, device="cuda")
    state = {}

    def step():
        rng = ops.dropout_rng_state(x.device)
        z = ops.selu_alpha_dropout(x, 0.3, rng)
        (gx,) = torch.autograd.grad(z, x, g)
        state["rng"] = rng
        return z, gx

    graph, (z, gx) = _capture(step)
    seen = []
    for _ in range(3):
        graph.replay()
        torch.cuda.synchronize()
        rng = state["rng"].cpu()
        # The replay's output is the op applied with the state this replay drew.
        want = ops.selu_alpha_dropout(x.detach().cpu(), 0.3, rng)
        want_g = ops.selu_alpha_dropout_backward(g.cpu(), want, 0.3, rng)
        torch.testing.assert_close(z.cpu(), want, **F32_OTHER_IMPLEMENTATION)
        torch.testing.assert_close(gx.cpu(), want_g, **F32_OTHER_IMPLEMENTATION)
        seen.append((tuple(rng.tolist()), ops.dropout_keep_mask(rng, x.numel(), 0.3)))
    states = {s for s, _ in seen}
    assert len(states) == 3, f"replays reused an rng state: {states}"
    assert not torch.equal(seen[0][1], seen[1][1])


def test_graph_and_eager_advance_the_same_generator():
    # Eager calls after a replay do not repeat the replay's masks.
    x = torch.randn(1000, device="cuda")
    graph, out = _capture(lambda: selu_ext.alpha_dropout(x, 0.5, training=True))
    graph.replay()
    eager = selu_ext.alpha_dropout(x, 0.5, training=True)
    assert not torch.equal(out, eager)
