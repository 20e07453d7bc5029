"""Local process workers (slow: each worker process starts JAX and compiles)."""

from __future__ import annotations

import pytest

from cellsearch.search.driver import run_search
from cellsearch.store.sqlite import Store
from tests.search_helpers import tiny_config

pytestmark = pytest.mark.slow


def test_two_local_workers_evaluate_in_parallel(tmp_path):
    db = str(tmp_path / "w.db")
    summary = run_search(tiny_config(candidates=3), db, workers=2)
    assert summary.children == 3
    with Store(db, write=False) as st:
        statuses = [r[0] for r in st.conn.execute("SELECT status FROM evaluations")]
    assert statuses and "error" not in statuses
