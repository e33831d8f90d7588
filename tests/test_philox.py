"""The dropout mask: Philox4x32-10 (checked against Random123's known-answer
vectors) and the element -> random word layout of csrc/selu.h, recomputed here in
pure Python and compared with every backend's keep mask."""

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


def reference_keep(seed, offset, p, n, start=0):
    """keep[i] for start <= i < n, as csrc/selu.h defines it (p >= 1: the threshold
    2**32 - 1, so only the word 2**32 - 1 keeps a unit). tests/test_large.py reads
    windows past 2**31 from it."""
    threshold = 0 if p <= 0 else min(round(p * 2**32), 2**32 - 1)
    seed &= (1 << 64) - 1
    ctr_lo = (offset // 4) & ((1 << 64) - 1)
    keep = []
    for i in range(start, n):
        group = (i // 128) * 32 + i % 32
        word = (i // 32) % 4
        r = philox4x32_10([ctr_lo & MASK32, ctr_lo >> 32, group & MASK32, group >> 32],
                          [seed & MASK32, seed >> 32])
        keep.append(r[word] >= threshold)
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
