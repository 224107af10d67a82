# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pytest fixtures: dataset locations and seeded generators."""

from __future__ import annotations

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
