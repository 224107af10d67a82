# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pytest fixtures: dataset locations, seeded generators, a tiny random CLIP."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("INFERCOM_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not DATASETS.is_dir():
        pytest.skip(f"datasets not found at {DATASETS} (set INFERCOM_DATASETS)")
    return DATASETS


@pytest.fixture(scope="session")
def kodak_dir(datasets_dir: Path) -> Path:
    return datasets_dir / "kodak24"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """A tiny random CLIP (ViT 32 px) saved with its processor and a character-level tokenizer."""
    torch = pytest.importorskip("torch")
    from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTextConfig,
                              CLIPTokenizer, CLIPVisionConfig)

    root = tmp_path_factory.mktemp("clip")
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"))
    eos = vocab["<|endoftext|>"]
    text = CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=48, num_attention_heads=4,
                          num_hidden_layers=2, max_position_embeddings=32, projection_dim=16,
                          bos_token_id=vocab["<|startoftext|>"], eos_token_id=eos, pad_token_id=eos)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=48, num_attention_heads=4, num_hidden_layers=2,
                              image_size=32, patch_size=8, projection_dim=16)
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16))
    with torch.no_grad():
        model.logit_scale.fill_(math.log(100.0))          # so the model's own logits are 100 * cos
    proc = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                            crop_size={"height": 32, "width": 32}), tokenizer=tok)
    out = root / "clip"
    model.save_pretrained(str(out))
    proc.save_pretrained(str(out))
    return out
