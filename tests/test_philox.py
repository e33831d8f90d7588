"""The dropout mask: Philox4x32-10 (checked against Random123's known-answer
vectors) and the element -> random word layout of csrc/selu.h, recomputed here in
pure Python and compared with every backend's keep mask."""

import numpy as np
import pytest
import torch

from conftest import DEVICES, require_device
from selu_ext import ops

M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
MASK32 = 0xFFFFFFFF


def philox4x32_10(counter, key):
    c = list(counter)
    k0, k1 = key
    for _ in range(10):
        p0, p1 = M0 * c[0], M1 * c[2]
        c = [((p1 >> 32) ^ c[1] ^ k0) & MASK32, p1 & MASK32,
             ((p0 >> 32) ^ c[3] ^ k1) & MASK32, p0 & MASK32]
        k0, k1 = (k0 + W0) & MASK32, (k1 + W1) & MASK32
    return c


# Random123's kat_vectors for philox4x32_10.
KAT = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([MASK32] * 4, [MASK32] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
]


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_reference_matches_random123(counter, key, expected):
    assert philox4x32_10(counter, key) == expected


TIE_GROUP = 1 << 63


def reference_keep(seed, offset, p, n, start=0):
    """keep[i] for start <= i < n, as csrc/selu.h defines it: element 32 j + t of
    256-element block k takes 16 bits u of the call for group 32 k + t (the low half
    of word j, or for j >= 4 the high half of word j - 4) and the same 16 bits u' of
    the call for group (32 k + t) | 2**63, and is kept when u * 2**16 + u' is at least
    the threshold (p >= 1: 2**32 - 1, so only 2**32 - 1 keeps a unit). Here u' is
    always computed; the kernels compute it only when u ties with the threshold's
    high half. tests/test_large.py reads windows past 2**31 from it."""
    threshold = 0 if p <= 0 else min(round(p * 2**32), 2**32 - 1)
    seed &= (1 << 64) - 1
    ctr_lo = (offset // 4) & ((1 << 64) - 1)
    key = [seed & MASK32, seed >> 32]

    def call(group):
        return philox4x32_10([ctr_lo & MASK32, ctr_lo >> 32, group & MASK32, group >> 32], key)

    keep = []
    for i in range(start, n):
        group = (i // 256) * 32 + i % 32
        j = (i // 32) % 8
        u = (call(group)[j % 4] >> (16 * (j // 4))) & 0xFFFF
        u2 = (call(group | TIE_GROUP)[j % 4] >> (16 * (j // 4))) & 0xFFFF
        keep.append((u << 16 | u2) >= threshold)
    return keep


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed,offset", [(0, 0), (123456789, 4), (-1, 2**40 + 8), (2**62 + 11, 1 << 34)])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_mask_matches_reference(device, seed, offset, p):
    require_device(device)
    n = 1000
    rng = torch.tensor([seed, offset], dtype=torch.int64, device=device)
    got = ops.dropout_keep_mask(rng, n, p).cpu().tolist()
    assert got == reference_keep(seed, offset, p, n)


def test_keep_mask_every_cpu_variant(cpu_capability):
    rng = torch.tensor([987654321, 12], dtype=torch.int64)
    assert ops.dropout_keep_mask(rng, 700, 0.3).tolist() == reference_keep(987654321, 12, 0.3, 700)


def reference_keep_np(seed, offset, p, n):
    """reference_keep(seed, offset, p, n) vectorized over the counter groups with
    numpy (checked against it below), and each element's 16 bits u: enough elements
    for the rare ties (u equal to the threshold's high half, 2**-16 of them)."""
    threshold = 0 if p <= 0 else min(round(p * 2**32), 2**32 - 1)
    seed &= (1 << 64) - 1
    ctr_lo = (offset // 4) & ((1 << 64) - 1)
    m32 = np.uint64(MASK32)

    def call(g):
        c = [np.full_like(g, ctr_lo & MASK32), np.full_like(g, ctr_lo >> 32), g & m32, g >> np.uint64(32)]
        k0, k1 = seed & MASK32, seed >> 32
        for _ in range(10):
            p0, p1 = c[0] * np.uint64(M0), c[2] * np.uint64(M1)
            c = [(p1 >> np.uint64(32)) ^ c[1] ^ np.uint64(k0), p1 & m32,
                 (p0 >> np.uint64(32)) ^ c[3] ^ np.uint64(k1), p0 & m32]
            k0, k1 = (k0 + W0) & MASK32, (k1 + W1) & MASK32
        return np.stack(c)

    i = np.arange(n, dtype=np.int64)
    group = ((i // 256) * 32 + i % 32).astype(np.uint64)
    j = (i // 32) % 8
    shift = (16 * (j // 4)).astype(np.uint64)
    u = (call(group)[j % 4, np.arange(n)] >> shift) & np.uint64(0xFFFF)
    u2 = (call(group | np.uint64(TIE_GROUP))[j % 4, np.arange(n)] >> shift) & np.uint64(0xFFFF)
    return ((u << np.uint64(16)) | u2) >= threshold, u.astype(np.int64), threshold


def test_numpy_reference_matches_pure_python():
    for seed, offset, p in [(5, 8, 0.3), (2**62 + 11, 1 << 34, 0.9), (-1, 4, 0.25)]:
        keep, _, _ = reference_keep_np(seed, offset, p, 1100)
        assert keep.tolist() == reference_keep(seed, offset, p, 1100)


# p = 0.3: the threshold's low half is not 0, so a tie is decided by the tie call,
# both ways in this many elements (checked, so that the test exercises that path);
# p = 0.25 = 2**30 / 2**32: low half 0, every tie kept without a tie call.
TIE_N = 2**20 + 77


@pytest.mark.parametrize("p", [0.3, 0.25])
def test_ties_every_cpu_variant(cpu_capability, p):
    seed, offset = 20261130, 0  # offset 0: what seed= gives the kernels below
    keep, u, threshold = reference_keep_np(seed, offset, p, TIE_N)
    ties = u == threshold >> 16
    if threshold & 0xFFFF:
        assert keep[ties].any() and not keep[ties].all(), "the inputs no longer exercise ties"
    else:
        assert ties.sum() > 0 and keep[ties].all()
    rng = torch.tensor([seed, offset], dtype=torch.int64)
    got = ops.dropout_keep_mask(rng, TIE_N, p).numpy()
    assert np.array_equal(got, keep)
    # And the kernels that draw the mask themselves, on an unaligned window too.
    _assert_kernels_follow(torch.device("cpu"), seed, p, keep)


@pytest.mark.parametrize("device", DEVICES)
def test_ties_device(device):
    require_device(device)
    seed, p = 77, 0.3
    keep, _, _ = reference_keep_np(seed, 0, p, TIE_N)
    rng = torch.tensor([seed, 0], dtype=torch.int64, device=device)
    assert np.array_equal(ops.dropout_keep_mask(rng, TIE_N, p).cpu().numpy(), keep)
    _assert_kernels_follow(torch.device(device), seed, p, keep)


def _assert_kernels_follow(device, seed, p, keep):
    """alpha_dropout, its backward, the fused op and its backward (through a NaN z,
    which makes the CPU kernel redraw the mask) drop exactly the reference's units,
    given seed=seed (offset 0)."""
    import selu_ext

    keep = torch.from_numpy(keep)
    zeros = torch.zeros(TIE_N, device=device)
    x = zeros.clone().requires_grad_()
    z = selu_ext.alpha_dropout(x, p, True, seed=seed)
    _, b, _ = selu_ext.alpha_dropout_coefficients(p)
    assert torch.equal((z == torch.tensor(b, dtype=z.dtype, device=device)).cpu(), keep)
    z.backward(torch.ones_like(z))
    assert torch.equal((x.grad != 0).cpu(), keep)
    z = selu_ext.selu_alpha_dropout(zeros, p, True, seed=seed)  # selu(0) = 0: kept b
    assert torch.equal((z == torch.tensor(b, dtype=z.dtype, device=device)).cpu(), keep)
    x = torch.full((TIE_N,), float("nan"), device=device, requires_grad=True)
    z = selu_ext.selu_alpha_dropout(x, p, True, seed=seed)
    z.backward(torch.ones_like(z))
    assert torch.equal((x.grad != 0).cpu(), keep)  # dropped: grad * 0
