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


MAX_MAPPINGS = 20_000  # Linux's default limit is 65,530 a process (vm.max_map_count)


def _mappings() -> int:
    try:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    except OSError:  # not Linux
        return 0


@pytest.fixture(autouse=True, scope="module")
def _bounded_programs():
    """After a test module, drops the compiled programs the process holds when it holds many
    memory mappings: one process runs every test, each XLA executable maps its own code, and
    the whole suite's programs together reach Linux's limit of 65,530 mappings (the process then
    dies in LLVM, a segfault or an abort). A search process bounds its own caches
    (``cellsearch.nn.train.CACHE_SIZE``)."""
    yield
    if _mappings() > MAX_MAPPINGS:
        import gc

        import jax

        from cellsearch.nn import compile as compile_mod
        from cellsearch.nn import train

        train._PROGRAMS.clear()
        train._COMPILED.clear()
        compile_mod._CACHE.clear()
        jax.clear_caches()
        gc.collect()


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
