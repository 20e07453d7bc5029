"""A store that fails under a search: a full disk, an unwritable folder, a damaged file and its
recovery with ``cellsearch doctor``; each is one line and nothing stored is lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cellsearch.cli.main import main
from cellsearch.errors import StorageError
from cellsearch.search import executors
from cellsearch.search.driver import run_search
from cellsearch.store.doctor import check, recover
from tests.search_helpers import Scripted, cfg, staged


def rows(db: str, table: str) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


def integrity(db: str) -> str:
    con = sqlite3.connect(db)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def _run_cli_search(monkeypatch, db: str, candidates: int, *, max_pages: int | None = None, query_only=False):
    """Runs the scripted search through the CLI's error handling, with the store capped at
    ``max_pages`` pages (SQLite then fails as on a full disk) or made read-only."""
    import cellsearch.search.driver as search_mod

    orig = search_mod.begin_run

    def capped(store, *a):
        rec = orig(store, *a)
        if max_pages is not None:
            n = store.conn.execute("PRAGMA page_count").fetchone()[0]
            store.conn.execute(f"PRAGMA max_page_count = {n + max_pages}")
        if query_only:
            store.conn.execute("PRAGMA query_only = 1")
        return rec

    monkeypatch.setattr(search_mod, "begin_run", capped)
    monkeypatch.setattr(executors, "make_executor", lambda *a, **k: Scripted(staged))
    c = cfg(candidates=candidates)
    from cellsearch.cli import commands

    monkeypatch.setattr(commands, "search_config", lambda args: c)
    return main(["search", "--db", db, "--no-compile-cache"])


def test_a_full_disk_is_one_line_and_the_store_stays_sound(tmp_path, monkeypatch, capsys):
    db = str(tmp_path / "s.db")
    assert _run_cli_search(monkeypatch, db, 12, max_pages=6) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # the progress lines, then one line
    assert "Traceback" not in err and last.startswith("cellsearch: error: the disk holding the store")
    assert "is full" in last and repr(db) in last and "resumes" in last
    assert integrity(db) == "ok"
    kept = rows(db, "evaluations")
    assert kept > 0
    monkeypatch.undo()
    run_search(cfg(candidates=12), db, executor=Scripted(staged))  # space again: the same command resumes
    assert rows(db, "evaluations") > kept and integrity(db) == "ok"


def test_an_unwritable_store_is_one_line(tmp_path, monkeypatch, capsys):
    db = str(tmp_path / "s.db")
    assert _run_cli_search(monkeypatch, db, 4, query_only=True) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and "cannot be written" in last and "-wal" in last
    assert integrity(db) == "ok"


def _leaves(path: str, root: int, page: int = 4096) -> list[int]:
    """The child pages of a table's root page (the root itself if it is a leaf)."""
    data = Path(path).read_bytes()
    off = (root - 1) * page
    if data[off] != 0x05:  # not an interior table page
        return [root]
    n = int.from_bytes(data[off + 3:off + 5], "big")
    ptrs = [int.from_bytes(data[off + 12 + 2 * i:off + 14 + 2 * i], "big") for i in range(n)]
    return [int.from_bytes(data[off + p:off + p + 4], "big") for p in ptrs] + \
        [int.from_bytes(data[off + 8:off + 12], "big")]


def test_a_damaged_store_says_so_and_doctor_recovers_the_readable_rows(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    run_search(cfg(candidates=14), db, executor=Scripted(staged))
    total = rows(db, "evaluations")
    assert check(db) == [] and main(["doctor", "--db", db]) == 0
    con = sqlite3.connect(db)
    root = con.execute("SELECT rootpage FROM sqlite_master WHERE name='evaluations'").fetchone()[0]
    con.close()
    leaves = _leaves(db, root)
    assert len(leaves) >= 3, "the test needs an evaluations table over several pages"
    with open(db, "r+b") as f:  # one leaf of evaluations overwritten, as by a bad sector
        f.seek((leaves[1] - 1) * 4096)
        f.write(bytes(range(256)) * 16)
    capsys.readouterr()
    assert main(["top", "--db", db]) == 2
    err = capsys.readouterr().err
    assert "is damaged" in err and "cellsearch doctor" in err and err.count("\n") == 1
    assert main(["doctor", "--db", db]) == 1
    out = capsys.readouterr().out
    new = str(tmp_path / "s.recovered.db")
    assert "is damaged" in out and f"copied into {new}" in out and f"{new} is sound" in out
    got = rows(new, "evaluations")
    assert 0 < got < total and rows(new, "cells") == rows(db, "cells") and rows(new, "steps") == rows(db, "steps")
    assert check(new) == [] and main(["top", "--db", new]) == 0  # a sound, readable store
    with pytest.raises(StorageError, match="exists"):
        recover(db, new)
    bad = tmp_path / "x.db"
    bad.write_text("hello, not sqlite" * 100)
    assert main(["top", "--db", str(bad)]) == 2
    assert "not a SQLite file" in capsys.readouterr().err
