"""DistributedDataParallel: a SelfNormalizingMLP trained on 2 CPU processes (gloo)
ends with the parameters of single-process training on the same data.

Dropout seeds per rank: selu_ext's dropout draws its (seed, offset) from torch's
default generator of the input's device, in each process separately. With the same
torch.manual_seed on every rank (the usual recipe for identical initial weights)
every rank therefore draws the same masks, element for element; seed the ranks
differently, e.g. torch.manual_seed(seed + rank) after building the model (or pass
seed= per call), for independent masks. Backward never draws: it regenerates each
mask from the 16-byte rng_state saved in forward, so DDP's gradient all-reduce
sees exactly the masks of its own forward.

The test checks both: the masks agree across ranks under one seed and differ
under per-rank seeds, and a dropout run with per-rank seeds matches a
single-process emulation that replays each rank's generator.
"""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import selu_ext
from conftest import F64_SUMMATION_ORDER

WORLD = 2
STEPS = 4
BATCH = 8  # per rank
SEED = 1234
DROPOUTS = (0.0, 0.2)

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def _data():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(STEPS, WORLD * BATCH, 6, generator=g, dtype=torch.float64)
    y = torch.randn(STEPS, WORLD * BATCH, 3, generator=g, dtype=torch.float64)
    return x, y


def _model(dropout):
    return selu_ext.nn.SelfNormalizingMLP(6, 12, 3, depth=2, dropout=dropout, dtype=torch.float64,
                                          generator=torch.Generator().manual_seed(SEED))


def _train(rank, dropout):
    model = torch.nn.parallel.DistributedDataParallel(_model(dropout).train())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(SEED + rank)  # per-rank dropout masks
    x, y = _data()
    shard = slice(rank * BATCH, (rank + 1) * BATCH)
    for step in range(STEPS):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x[step, shard]), y[step, shard])
        loss.backward()
        opt.step()
    return [p.detach() for p in model.module.parameters()]


def _worker(rank, store_path, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank,
                            world_size=WORLD)
    try:
        # Masks across ranks: identical under one seed, different under seed + rank.
        probe = torch.arange(4096, dtype=torch.float64)
        torch.manual_seed(SEED)
        same = selu_ext.alpha_dropout(probe, 0.5, True)
        torch.manual_seed(SEED + rank)
        own = selu_ext.alpha_dropout(probe, 0.5, True)
        gathered_same = [torch.empty_like(same) for _ in range(WORLD)]
        gathered_own = [torch.empty_like(own) for _ in range(WORLD)]
        dist.all_gather(gathered_same, same)
        dist.all_gather(gathered_own, own)
        torch.save({"params": {d: _train(rank, d) for d in DROPOUTS},
                    "same": gathered_same, "own": gathered_own},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _single_process(dropout):
    """The same training in one process: the mean of the ranks' losses, each shard's
    dropout drawn from that rank's generator (replayed from its state)."""
    model = _model(dropout).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    states = []
    for rank in range(WORLD):
        torch.manual_seed(SEED + rank)
        states.append(torch.get_rng_state())
    x, y = _data()
    for step in range(STEPS):
        opt.zero_grad()
        losses = []
        for rank in range(WORLD):
            torch.set_rng_state(states[rank])
            shard = slice(rank * BATCH, (rank + 1) * BATCH)
            losses.append(torch.nn.functional.mse_loss(model(x[step, shard]), y[step, shard]))
            states[rank] = torch.get_rng_state()
        (sum(losses) / WORLD).backward()
        opt.step()
    return [p.detach() for p in model.parameters()]


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    """One 2-process run (process start-up dominates) that trains every case."""
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(str(tmp / "store"), str(tmp)), nprocs=WORLD, join=True)
    return [torch.load(tmp / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.parametrize("dropout", DROPOUTS, ids=["no-dropout", "dropout-per-rank-seed"])
def test_ddp_matches_single_process(ddp_results, dropout):
    ranks = [res["params"][dropout] for res in ddp_results]
    ref = _single_process(dropout)
    # Both ranks hold the same parameters (DDP's invariant) ...
    for p0, p1 in zip(*ranks):
        torch.testing.assert_close(p0, p1, rtol=0, atol=0)
    # ... equal to single-process training up to the all-reduce's summation order.
    for p, r in zip(ranks[0], ref):
        torch.testing.assert_close(p, r, **F64_SUMMATION_ORDER)
    # Training changed the parameters (the comparison is not between initial values).
    init = list(_model(dropout).parameters())
    assert any(not torch.allclose(p, q) for p, q in zip(ref, init))


def test_dropout_masks_across_ranks(ddp_results):
    for res in ddp_results:
        torch.testing.assert_close(res["same"][0], res["same"][1], rtol=0, atol=0)
        assert not torch.equal(res["own"][0], res["own"][1])
