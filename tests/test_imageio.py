# SPDX-License-Identifier: GPL-3.0-or-later
import numpy as np
import pytest
from PIL import Image

from infercom import imageio


def test_load_kodak(kodak_dir):
    files = imageio.list_images(kodak_dir)
    assert len(files) == 24
    img = imageio.load_image(files[0])
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape in ((512, 768, 3), (768, 512, 3))


def test_grey_and_palette_become_rgb_and_save_round_trip(tmp_path):
    g = (np.arange(30 * 20) % 256).astype(np.uint8).reshape(30, 20)
    Image.fromarray(g).save(tmp_path / "g.png")
    rgb = imageio.load_image(tmp_path / "g.png")
    assert rgb.shape == (30, 20, 3) and np.array_equal(rgb[:, :, 1], g)
    assert np.array_equal(imageio.load_image(tmp_path / "g.png", mode="L"), g)
    imageio.save_image(tmp_path / "sub" / "x.png", rgb)
    assert np.array_equal(imageio.load_image(tmp_path / "sub" / "x.png"), rgb)


def test_bad_files(tmp_path):
    (tmp_path / "notes.png").write_text("this is not an image")
    with pytest.raises(ValueError, match="not an image"):
        imageio.load_image(tmp_path / "notes.png")
    with pytest.raises(ValueError, match="no such file"):
        imageio.load_image(tmp_path / "missing.png")
    Image.fromarray(np.zeros((1, 4097), np.uint8)).save(tmp_path / "wide.png")
    with pytest.raises(ValueError, match="4096"):
        imageio.load_image(tmp_path / "wide.png")
    with pytest.raises(ValueError, match="zero-size"):
        imageio.check_image(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        imageio.check_image(np.zeros((5, 5, 3), np.float32))
    with pytest.raises(ValueError, match="no such directory"):
        imageio.list_images(tmp_path / "nodir")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        imageio.list_images(tmp_path / "empty")


@pytest.mark.parametrize("text,block", [("1", (1, 1)), ("1/2", (1, 2)), ("1/4", (2, 2)), ("1/6", (2, 3)),
                                        ("1/9", (3, 3)), ("1/16", (4, 4)), ("1/25", (5, 5)), ("0.25", (2, 2)),
                                        ("2x3", (2, 3))])
def test_parse_rate(text, block):
    assert imageio.parse_rate(text) == block


@pytest.mark.parametrize("text", ["2/3", "1/100", "0", "-1/4", "abc", "1/11", "9x1", "1/0"])
def test_parse_rate_rejects(text):
    with pytest.raises(ValueError):
        imageio.parse_rate(text)


# --- one image validator (infercom.source.as_image3) behind every path that takes an image ------------------

_BAD_IMAGES = {
    "float": np.zeros((4, 4, 3), np.float32),
    "int16": np.zeros((4, 4), np.int16),
    "bool": np.zeros((4, 4), bool),
    "two channels": np.zeros((4, 4, 2), np.uint8),
    "four channels": np.zeros((4, 4, 4), np.uint8),
    "1-D": np.zeros(16, np.uint8),
    "4-D": np.zeros((2, 2, 2, 3), np.uint8),
    "zero height": np.zeros((0, 5, 3), np.uint8),
    "zero width": np.zeros((5, 0), np.uint8),
    "too tall": np.zeros((4097, 1), np.uint8),
    "too wide": np.zeros((1, 4097, 1), np.uint8),
}
_GOOD_IMAGES = [np.zeros((1, 1), np.uint8), np.zeros((3, 5, 1), np.uint8), np.zeros((2, 3, 3), np.uint8),
                np.zeros((4096, 1), np.uint8)]


def _image_paths():
    from infercom import degrade, link, source
    from receiver_server.qoe import base as qoe_base

    cfg = link.LinkConfig(bh=1, bw=1, planes=1)
    return {
        "source.as_image3": lambda a: source.as_image3(a),
        "source.lpf_encode": lambda a: source.lpf_encode(a, 1, 1),
        "imageio.check_image": lambda a: imageio.check_image(a),
        "link.encode_image": lambda a: link.encode_image(a, cfg),
        "degrade.degrade": lambda a: degrade.degrade(a, cfg, 10.0, np.random.default_rng(0)),
        "qoe.as_image": lambda a: qoe_base.as_image(a),
    }


def _message_body(exc: ValueError) -> str:
    """The message without the caller's ``what`` prefix ("image: ...", "restored image: ...")."""
    return str(exc).split(": ", 1)[1]


@pytest.mark.parametrize("case", sorted(_BAD_IMAGES))
def test_every_image_path_rejects_the_same_inputs_alike(case):
    bodies = {}
    for name, check in _image_paths().items():
        with pytest.raises(ValueError) as e:
            check(_BAD_IMAGES[case])
        bodies[name] = _message_body(e.value)
    assert len(set(bodies.values())) == 1, bodies
    body = next(iter(bodies.values()))
    if case in ("too tall", "too wide"):
        assert "4096" in body and "outside" in body
    if case.startswith("zero"):
        assert "zero-size" in body


def test_every_image_path_accepts_the_same_inputs():
    for name, check in _image_paths().items():
        for a in _GOOD_IMAGES:
            if name == "degrade.degrade" and a.shape[0] == 4096:
                continue                     # valid, only slow to send
            check(a)


def test_load_image_size_limit_is_the_validators(tmp_path):
    Image.fromarray(np.zeros((1, 4097), np.uint8)).save(tmp_path / "wide.png")
    with pytest.raises(ValueError) as from_file:
        imageio.load_image(tmp_path / "wide.png")
    with pytest.raises(ValueError) as in_memory:
        imageio.check_image(np.zeros((1, 4097), np.uint8))
    assert _message_body(from_file.value) == _message_body(in_memory.value)
    assert str(tmp_path / "wide.png") in str(from_file.value)
