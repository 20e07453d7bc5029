"""Living with a search: a full or unwritable store, a damaged one and its recovery, transient
errors, a population job that fails, the step cap, `status`, `report --watch` and the
comparison of searches. (Stopping real processes is in ``test_cli_search.py``.)"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path

import pytest

from cellsearch import executors
from cellsearch.cli import main
from cellsearch.doctor import check, recover
from cellsearch.errors import StorageError
from cellsearch.runs import status, writer
from cellsearch.search import run_search
from cellsearch.storage import Store
from tests.search_helpers import tiny_config
from tests.test_executors import job
from tests.test_search_stages import Scripted, cfg, staged

TINY_CLI = ["--space", "tiny", "--tasks", "arithmetic,xml", "--settings-per-task", "2", "--seed", "0"]


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
    import cellsearch.search as search_mod

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
    from cellsearch import commands

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


def test_host_errors_are_lost_not_the_cells_error(monkeypatch):
    from cellsearch import train

    def oom(*a, **k):
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4.0GiB")

    monkeypatch.setattr(train, "train_and_evaluate", oom)
    res = executors.run_job(job())
    assert executors.is_lost(res) and "host error" in res[0]["metrics"]["error"]
    monkeypatch.setattr(train, "train_and_evaluate", lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
    assert executors.is_lost(executors.run_job(job()))
    monkeypatch.setattr(train, "train_and_evaluate", lambda *a, **k: (_ for _ in ()).throw(ValueError("shape")))
    res = executors.run_job(job())
    assert not executors.is_lost(res) and res[0]["status"] == "error"


def test_a_search_retries_a_host_error_and_stores_no_error(tmp_path, monkeypatch):
    from cellsearch import train

    orig, calls = train.train_and_evaluate, {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise MemoryError("host out of memory")
        return orig(*a, **k)

    monkeypatch.setattr(train, "train_and_evaluate", flaky)
    db = str(tmp_path / "s.db")
    s = run_search(tiny_config(candidates=0), db)  # the seed steps: the third job fails once, on the host
    assert calls["n"] > 3 and s.steps == 2 and s.stopped == "budget"
    with Store(db, write=False) as st:
        assert not st.conn.execute("SELECT COUNT(*) FROM evaluations WHERE status='error'").fetchone()[0]


def test_a_failed_population_job_says_its_cells_trained_alone(monkeypatch):
    from cellsearch import population

    orig = population.train_population

    def group_fails(graphs, *a, **k):
        if len(graphs) > 1:
            raise ValueError("a group bug")
        return orig(graphs, *a, **k)

    monkeypatch.setattr(population, "train_population", group_fails)
    res = executors.run_job({"population": [job(), job()], "members": 4})
    assert len(res) == 2 and all(r["status"] == "ok" for rs in res for r in rs)
    assert all("trained alone in the interpreter after the group failed" in r["metrics"]["population"]
               for rs in res for r in rs)


def test_a_search_on_its_step_cap_says_so(tmp_path, monkeypatch):
    import cellsearch.steps as steps

    monkeypatch.setattr(steps, "mutate_live", lambda parent, **k: (parent, [], []))  # every child a duplicate
    s = run_search(cfg(candidates=1), str(tmp_path / "s.db"), executor=Scripted(staged))
    assert s.stopped == "step cap" and s.children == 0 and s.steps == 2 + 40 and s.duplicates > 0


def test_status_and_watch_while_a_writer_holds_the_store(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    run_search(cfg(candidates=6), db, executor=Scripted(staged))
    st = status(db)
    assert not st["running"] and st["run"]["state"] == "finished" and st["children"] == 6
    assert "no search is running" in st["lines"][0] and "6 of 6 children" in st["lines"][2]
    run_search(cfg(candidates=7), db, executor=Scripted(staged))  # resumed with a larger budget
    assert "7 of 7 children" in status(db)["lines"][2]
    with Store(db):  # a writer: the lock is held, the run record says running
        assert writer(db) and "pid" in writer(db)
        con = sqlite3.connect(db)
        rec = json.loads(con.execute("SELECT value FROM meta WHERE key='run'").fetchone()[0])
        con.execute("UPDATE meta SET value=? WHERE key='run'", (json.dumps(rec | {"state": "running"}),))
        con.commit()
        con.close()
        st = status(db)
        assert st["running"] and st["lines"][0].startswith(f"a search is running on {db}")
        assert main(["status", "--db", db, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["running"] is True
        out = tmp_path / "live.html"
        from cellsearch.report import build_report

        build_report(db, str(out), refresh=5)
        assert "http-equiv='refresh' content='5'" in out.read_text()
    st = status(db)  # the writer is gone but its record says running: it died
    assert st.get("died") and "ended without closing the store" in st["lines"][0]
    assert main(["report", "--db", db, "--watch", "1", "-o", str(tmp_path / "w.html")]) == 0
    assert "last update" in capsys.readouterr().out
    assert "http-equiv" not in (tmp_path / "w.html").read_text()  # the final page does not reload


def test_searches_side_by_side_render_in_a_browser(tmp_path, capsys):
    from cellsearch.compare import at, band, curves, groups
    from cellsearch.report import StoreData
    from tests.test_report import chromium

    a, a1, b = str(tmp_path / "a.db"), str(tmp_path / "a1.db"), str(tmp_path / "b.db")
    run_search(cfg(candidates=8), a, executor=Scripted(staged))
    run_search(cfg(candidates=8, seed=1), a1, executor=Scripted(staged))
    run_search(cfg(candidates=8, seed=3, strategy="random"), b, executor=Scripted(staged))
    out = tmp_path / "cmp.html"
    assert main(["report", a, b, "-o", str(out)]) == 0
    dom = chromium("--dump-dom", f"file://{out}").stdout
    assert re.findall(r"<h2>(.*?)</h2>", dom) == ["Best score so far", "Funnels", "Settings that differ", "Best cells"]
    assert "a.db (paper, seed 0)" in dom and "b.db (random, seed 3)" in dom
    assert "<th>strategy</th>" in dom and len(re.findall(r'<img[^>]+src="data:image/png;base64,', dom)) == 1
    # two seeds of one strategy: a group with its mean and range across seeds
    assert main(["report", a, a1, b, "-o", str(out)]) == 0
    dom = chromium("--dump-dom", f"file://{out}").stdout
    assert re.findall(r"<h2>(.*?)</h2>", dom)[:3] == ["Best score so far", "Across seeds", "Funnels"]
    assert re.search(r"<td>paper</td><td>0, 1</td>", dom) and re.search(r"<td>random</td><td>3</td>", dom)
    stores = [Store(p, write=False) for p in (a, a1, b)]
    try:
        data = [StoreData(st) for st in stores]
        assert groups(data) == {"paper": [0, 1], "random": [2]}
        cs = [curves(d) for d in data[:2]]
        xs, mean, lo, hi = band(cs, "children")
        assert xs[-1] == max(c["children"][-1] for c in cs)
        assert all(lo_ <= m <= hi_ for m, lo_, hi_ in zip(mean, lo, hi, strict=True))
        assert mean[-1] == sum(at(c, "children", xs[-1]) for c in cs) / 2
    finally:
        for st in stores:
            st.close()
    # a store with confirmation runs shows its best confirmed score and verdict
    from cellsearch.confirm import _TABLE
    from cellsearch.results import baseline_hash, leaderboard, stored_config

    with Store(a) as st, st.tx():
        c = stored_config(st)
        base = baseline_hash(c)
        cell = next(r["hash"] for r in leaderboard(st, c, 5) if r["hash"] != base)
        st.conn.execute(_TABLE)
        for t in c.tasks:
            for seed, bs in enumerate((0.40, 0.50, 0.45)):
                for h, score in ((base, bs), (cell, bs * 1.05)):
                    st.conn.execute("INSERT INTO confirmations (cell_hash, task, seed, steps, hparams, score, status, "
                                    "metrics, wall_s, created_at) VALUES (?, ?, ?, 100, '{}', ?, 'ok', '{}', 0, 0)",
                                    (h, t, seed, score))
    assert main(["report", a, b, "-o", str(out)]) == 0
    dom = chromium("--dump-dom", f"file://{out}").stdout
    assert "<th>best confirmed (verdict)</th>" in dom and "<td>1.0500 (better)</td>" in dom
    assert main(["report", a, a, "-o", str(out)]) == 2
    assert "named twice" in capsys.readouterr().err
    assert main(["report", a, b, "--watch", "-o", str(out)]) == 2
    os.remove(out)


def test_a_resume_on_other_cores_says_so(tmp_path, monkeypatch, capsys):
    """A CPU search's float rounding depends on the cores it may use (README, "Repeat it"): the
    run record keeps them, and a resume with other cores says that it no longer repeats the
    uninterrupted search; a resume on the same cores says nothing of it."""
    from cellsearch import runs

    db = str(tmp_path / "s.db")
    monkeypatch.setattr(runs, "visible_cores", lambda: 1)
    assert _run_cli_search(monkeypatch, db, 2) == 0
    with Store(db, write=False) as st:
        assert json.loads(st.meta("run"))["cores"] == 1
    assert _run_cli_search(monkeypatch, db, 3) == 0
    assert "CPU core" not in capsys.readouterr().err
    monkeypatch.setattr(runs, "visible_cores", lambda: 2)
    assert _run_cli_search(monkeypatch, db, 4) == 0
    err = capsys.readouterr().err
    assert "ran on 1 CPU core(s) before and runs on 2 now" in err
    with Store(db, write=False) as st:
        rec = json.loads(st.meta("run"))
    assert (rec["cores"], rec["cores_before"]) == (2, 1)
