"""Shared fixtures: seeded generators, JAX keys, data paths, and the gpu marker's skip."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("CELLSEARCH_DATA", ROOT.parent / "shared" / "data"))


def _has_gpu() -> bool:
    try:
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    if not _has_gpu():
        skip = pytest.mark.skip(reason="needs a GPU")
        for item in items:
            if item.get_closest_marker("gpu"):
                item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def key():
    import jax

    return jax.random.key(0)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def ptb_dir(data_dir) -> Path:
    p = data_dir / "ptb"
    if not (p / "ptb.train.txt").exists():
        pytest.skip(f"PTB not found under {p}")
    return p
