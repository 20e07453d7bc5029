"""`cellsearch status` and `report --watch` while a writer holds the store, and a resume on
other CPU cores."""

from __future__ import annotations

import json
import sqlite3

from cellsearch.cli.main import main
from cellsearch.search.driver import run_search
from cellsearch.search.runs import status, writer
from cellsearch.store.sqlite import Store
from tests.cli.test_store_failures import _run_cli_search
from tests.search_helpers import Scripted, cfg, staged


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
        from cellsearch.cli.report import build_report

        build_report(db, str(out), refresh=5)
        assert "http-equiv='refresh' content='5'" in out.read_text()
    st = status(db)  # the writer is gone but its record says running: it died
    assert st.get("died") and "ended without closing the store" in st["lines"][0]
    assert main(["report", "--db", db, "--watch", "1", "-o", str(tmp_path / "w.html")]) == 0
    assert "last update" in capsys.readouterr().out
    assert "http-equiv" not in (tmp_path / "w.html").read_text()  # the final page does not reload


def test_a_resume_on_other_cores_says_so(tmp_path, monkeypatch, capsys):
    """A CPU search's float rounding depends on the cores it may use (README, "Repeat it"): the
    run record keeps them, and a resume with other cores says that it no longer repeats the
    uninterrupted search; a resume on the same cores says nothing of it."""
    from cellsearch.search import runs

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
