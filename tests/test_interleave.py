# SPDX-License-Identifier: GPL-3.0-or-later
import hashlib

import numpy as np
import pytest

from infercom import interleave as il


@pytest.mark.parametrize("n", [0, 1, 2, 3, 1000, 525312])
def test_is_permutation(n):
    p = il.permutation(n)
    assert p.dtype == np.int64 and p.size == n
    assert np.array_equal(np.sort(p), np.arange(n))


def test_same_key_same_permutation_and_cache_is_read_only():
    a = il.permutation(10000, b"k" * 16)
    il._permutation_cached.cache_clear()
    b = il.permutation(10000, b"k" * 16)
    assert np.array_equal(a, b)
    with pytest.raises(ValueError):
        a[0] = 0


def test_matches_spec_reimplemented_from_hashlib():
    """SHAKE-256(domain | len(key) | key | n) -> 64-bit LE words -> Fisher-Yates, as documented."""
    key, n = b"a secret key of 16+ bytes", 777
    h = hashlib.shake_256(il.DOMAIN + len(key).to_bytes(8, "little") + key + n.to_bytes(8, "little"))
    words = np.frombuffer(h.digest(8 * (n - 1)), "<u8")
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = int(words[i - 1]) % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    assert np.array_equal(il.permutation(n, key), perm)
    assert np.array_equal(il.fisher_yates_numpy(words, n), perm)


def test_different_keys_or_lengths_give_unrelated_permutations():
    n = 100000
    a = il.permutation(n, il.PUBLIC_KEY)
    b = il.permutation(n, b"another key, 16 bytes+")
    # agreement and correlation of two independent uniform permutations: ~1 fixed point, corr ~ 1/sqrt(n)
    assert np.count_nonzero(a == b) < 10
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(n)
    c = il.permutation(n + 1, il.PUBLIC_KEY)
    assert np.count_nonzero(a == c[:n]) < 10
    # no structure: neighbours in tx order are far apart in the original order
    assert np.median(np.abs(np.diff(a))) > n / 10


def test_round_trip_exact():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(4097) + 1j * rng.standard_normal(4097)).astype(np.complex64)
    p = il.permutation(x.size, b"0123456789abcdef")
    tx = il.interleave(x, p)
    assert not np.array_equal(tx, x)
    assert np.array_equal(il.deinterleave(tx, p), x)
    with pytest.raises(ValueError, match="length"):
        il.interleave(x[:-1], p)


def test_keyring(tmp_path):
    kr = il.Keyring({3: b"s" * 16})
    assert kr.key(0) == il.PUBLIC_KEY and kr.key(3) == b"s" * 16
    with pytest.raises(ValueError, match="no interleaver key"):
        kr.key(4)
    with pytest.raises(ValueError, match="0..15"):
        kr.key(16)
    with pytest.raises(ValueError, match="1..15"):
        il.Keyring({0: b"x" * 16})
    with pytest.raises(ValueError, match="16 bytes"):
        il.Keyring({1: b"short"})
    f = tmp_path / "keys.txt"
    f.write_text("# id hex\n5 " + ("ab" * 16) + "\n")
    assert il.Keyring.from_file(f).key(5) == bytes.fromhex("ab" * 16)
    f.write_text("5 nothex\n")
    with pytest.raises(ValueError, match="keys.txt:1"):
        il.Keyring.from_file(f)
    with pytest.raises(ValueError):
        il.permutation(-1)
    with pytest.raises(ValueError):
        il.permutation(10, b"")
