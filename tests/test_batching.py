# SPDX-License-Identifier: GPL-3.0-or-later
"""Batched multi-user inference: batched restorations are bit-identical to unbatched ones (both stages, both
checkpoints, mixed sizes), the batching wrapper really batches concurrent calls and bounds them, a bad attempt
fails alone, and the server with batching decides exactly as without."""

from __future__ import annotations

import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from infercom import degrade, link  # noqa: E402
from receiver_server.batching import BatchingRestorer  # noqa: E402
from receiver_server.restorers import get_restorer  # noqa: E402


def _obs(shape, bh, seed, snr=-4.0):
    img = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    d = degrade.degrade(img, link.LinkConfig(bh=bh, bw=bh), snr + seed % 3, np.random.default_rng(seed),
                        attempts=1 + seed % 2, fading="block", fading_per="frame", frame_len=256)
    return d.observation, d.meta()


@pytest.fixture(scope="module")
def full():
    torch.set_num_threads(1)
    return get_restorer("infercom-restorer", config={"steps": 2})


@pytest.mark.parametrize("name", ["infercom-restorer", "infercom-restorer-v1", "infercom-restorer-stage1"])
def test_batched_equals_unbatched_bit_exactly(name, full):
    r = full if name == "infercom-restorer" else get_restorer(name, config={"steps": 2})
    # three of one size (one batch), two of another size and a grey one (their own batches)
    items = [_obs((45, 60, 3), 3, s) for s in range(3)] + [_obs((40, 40, 3), 2, s) for s in (3, 4)] \
        + [_obs((45, 60), 3, 5)]
    batched = r.restore_batch([o for o, _ in items], [m for _, m in items])
    for (o, m), b in zip(items, batched):
        one = r.restore(o, m)
        assert one.dtype == b.dtype and one.shape == b.shape
        assert np.array_equal(one, b)
    # a batch of different images is not a batch of copies: the images differ
    assert not np.array_equal(batched[0], batched[1])


def test_batching_wrapper_batches_concurrent_calls_and_keeps_results(full):
    items = [_obs((36, 48, 3), 3, s) for s in range(6)]
    alone = [full.restore(o, m) for o, m in items]
    b = BatchingRestorer(full, max_batch=4, max_wait_ms=2000)
    try:
        out: list = [None] * len(items)

        def go(i):
            out[i] = b.restore(*items[i])

        ths = [threading.Thread(target=go, args=(i,)) for i in range(len(items))]
        for t in ths:
            t.start()
        for t in ths:
            t.join(60)
        assert all(np.array_equal(a, o) for a, o in zip(alone, out))
        assert b.batched_calls == 6 and b.batches == 2          # bounded: 4 + 2, not one batch of 6
        assert b.name == full.name and b.config is full.config   # a Restorer in its own right
    finally:
        b.close()
    with pytest.raises(RuntimeError):
        b.restore(*items[0])


def test_a_bad_attempt_fails_alone(full):
    good = _obs((36, 48, 3), 3, 1)
    bad_obs = good[0][:-1]                                      # does not match the meta's size
    b = BatchingRestorer(full, max_batch=2, max_wait_ms=2000)
    try:
        res: dict = {}

        def go(key, o, m):
            try:
                res[key] = b.restore(o, m)
            except ValueError as exc:
                res[key] = exc

        ths = [threading.Thread(target=go, args=("good", *good)), threading.Thread(target=go, args=("bad", bad_obs, good[1]))]
        for t in ths:
            t.start()
        for t in ths:
            t.join(60)
        assert isinstance(res["bad"], ValueError)
        assert np.array_equal(res["good"], full.restore(*good))
    finally:
        b.close()


def test_bad_batching_config_rejected(full):
    with pytest.raises(ValueError, match="restore_batch"):
        BatchingRestorer(get_restorer("bicubic"))
    with pytest.raises(ValueError):
        BatchingRestorer(full, max_batch=0)
    with pytest.raises(ValueError):
        BatchingRestorer(full, max_wait_ms=-1)


def test_server_with_batching_decides_exactly_as_without():
    """Four transmitters through the real server (loopback ZeroMQ), 4 workers, with and without batching: the
    same outcome, attempts, decisions and QoE scores for every image; the batched run did batch."""
    from infercom_apps.bench_server import serve

    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (48, 72, 3), dtype=np.uint8)]
    kw = dict(timeout_s=30, workers=4, snr_db=1.0, max_attempts=3, design_snr_db=-4)
    runs = [serve("infercom-restorer-stage1", imgs, 4, batch_max=b, batch_wait_ms=1000, **kw) for b in (1, 4)]

    def summary(run):
        return {t: [(r["outcome"], r["n_attempts"], [(a["decision"], a["scores"]) for a in r["attempts"]])
                    for r in recs] for t, recs in run["arq"].items()}

    assert summary(runs[0]) == summary(runs[1])
    assert not runs[0]["batching"]["active"] and runs[1]["batching"]["active"]
    b = runs[1]["batching"]
    assert b["attempts"] >= 1 and b["batches"] < b["attempts"]       # at least one batch held two attempts


def test_reduced_precision_path_runs_and_stays_close(full):
    """The autocast path of the GPU (dtype bf16; fp16 needs CUDA) runs on the CPU too, batched, and stays close
    to fp32; fp16 on the CPU and unknown dtypes are refused."""
    from infercom import metrics

    items = [_obs((36, 48, 3), 3, s) for s in range(2)]
    bf = get_restorer("infercom-restorer-stage1", config={"dtype": "bf16"})
    fp = get_restorer("infercom-restorer-stage1")
    for a, b in zip(bf.restore_batch([o for o, _ in items], [m for _, m in items]),
                    fp.restore_batch([o for o, _ in items], [m for _, m in items])):
        assert a.dtype == np.uint8 and metrics.psnr(a, b) > 30.0
    with pytest.raises(ValueError, match="fp16"):
        get_restorer("infercom-restorer", config={"dtype": "fp16"})
    with pytest.raises(ValueError, match="dtype"):
        get_restorer("infercom-restorer", config={"dtype": "int8"})


def test_one_forward_pass_over_a_batch_matches_the_images_alone(full):
    """The CUDA path's batched forward pass (restore_tensors over a list), run here on the CPU: each image's
    result equals its own pass up to the kernels' rounding (oneDNN is not batch-invariant, which is why the CPU
    restore_batch goes image by image), and a batch of mixed sizes is refused."""
    from receiver_server.restorers.infercom_restorer.model import from_unit

    items = [_obs((36, 48, 3), 3, s) for s in range(3)]
    s1, out = full.restore_tensors([o for o, _ in items], [m for _, m in items])
    for k, (o, m) in enumerate(items):
        a1, a = full.restore_tensors(o, m)
        assert float((out[k] - a[0]).abs().max()) < 1e-3 and float((s1[k] - a1[0]).abs().max()) < 1e-3
        img = from_unit(out[k]).round().clamp(0, 255).byte()
        assert int((img.int() - from_unit(a[0]).round().clamp(0, 255).byte().int()).abs().max()) <= 1
    other = _obs((40, 40, 3), 2, 9)
    with pytest.raises(ValueError, match="one size"):
        full.restore_tensors([items[0][0], other[0]], [items[0][1], other[1]])
