"""``cellsearch doctor``: a recovered store keeps every table of the schema, confirmations included."""

from __future__ import annotations

import sqlite3

from cellsearch.search.driver import run_search
from cellsearch.search.results import baseline_of
from cellsearch.store.doctor import check, recover
from cellsearch.store.sqlite import TABLES, Store
from tests.search_helpers import Scripted, cfg, staged


def count(db: str, table: str) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


def test_a_recovered_store_keeps_its_confirmations_and_every_other_table(tmp_path):
    db, out = str(tmp_path / "s.db"), str(tmp_path / "r.db")
    run_search(cfg(candidates=4), db, executor=Scripted(staged))
    with Store(db) as st:
        base = baseline_of(st)[1]
        for seed in range(3):
            st.add_confirmation(base, "arithmetic", seed, 100, {"learning_rate": 0.5},
                                {"score": 0.4 + seed / 100, "status": "ok", "metrics": {}, "wall_s": 1.0})
    got = recover(db, out)
    assert set(got) == set(TABLES) and "confirmations" in got
    for table in TABLES:
        assert got[table]["rows"] == count(db, table) == count(out, table) and got[table]["unreadable"] == 0, table
    assert count(out, "confirmations") == 3 and check(out) == []
    with Store(out, write=False) as st:
        assert [r["score"] for r in st.confirmations()] == [0.4 + seed / 100 for seed in range(3)]
        assert baseline_of(st)[1] == base  # the meta table came along: the store still reads alone


def test_a_store_older_than_a_table_recovers_without_unreadable_rows(tmp_path):
    """A store written before a table existed (``states`` came later) is not damaged where it lacks
    it: ``doctor`` copies the rest and reports the table empty, not thousands of unreadable rows."""
    db, out = str(tmp_path / "s.db"), str(tmp_path / "r.db")
    run_search(cfg(candidates=2), db, executor=Scripted(staged))
    con = sqlite3.connect(db)
    con.execute("DROP TABLE states")
    con.commit()
    con.close()
    got = recover(db, out)
    assert got["states"] == {"rows": 0, "unreadable": 0}
    assert all(got[t]["unreadable"] == 0 and got[t]["rows"] == count(db, t) for t in TABLES if t != "states")
    assert count(out, "cells") > 0 and check(out) == []
