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
