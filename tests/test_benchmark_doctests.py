"""The examples in the benchmarks' docstrings hold (pytest collects doctests from the package only)."""

from __future__ import annotations

import doctest
import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
WITH_EXAMPLES = sorted(p.stem for p in BENCH.glob("*.py") if ">>>" in p.read_text())


def test_some_benchmark_has_examples():
    assert "rediscovery" in WITH_EXAMPLES


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_benchmark_examples(name, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # the scripts import their neighbours (`from common import ...`)
    module = importlib.import_module(name)
    try:
        result = doctest.testmod(module)
    finally:
        sys.modules.pop(name, None)
    assert result.attempted > 0 and result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
