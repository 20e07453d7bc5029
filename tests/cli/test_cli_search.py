"""The search CLI in subprocesses: search, top, show, export, and kill -9 losing nothing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cellsearch.cell.graph import load
from cellsearch.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--space", "tiny", "--tasks", "arithmetic", "--settings-per-task", "2", "--steps", "6",
        "--filter-steps", "3", "--no-compile-cache"]


def cli(*argv, cwd, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "1"}
    return subprocess.run([sys.executable, "-m", "cellsearch", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def count(db, table):
    con = sqlite3.connect(db)
    try:
        return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    d = tmp_path_factory.mktemp("search")
    r = cli("search", *TINY, "--candidates", "3", "--db", "s.db", cwd=d)
    assert r.returncode == 0, r.stderr
    (d / "search.out").write_text(r.stdout)
    return d


def test_search_top_show_export(tiny_store, capsys):
    db = str(tiny_store / "s.db")
    assert main(["top", "--db", db, "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["rank", "id", "hash", "score"]
    best_id = out.splitlines()[1].split()[1]
    assert main(["show", best_id, "--db", db]) == 0
    shown = capsys.readouterr().out
    assert "# metrics" in shown and "# lineage" in shown and "h' =" in shown
    assert main(["show", best_id, "--db", db, "--format", "dot"]) == 0
    assert capsys.readouterr().out.startswith("digraph")
    out_json = tiny_store / "cell.json"
    assert main(["export", best_id, "--db", db, "-o", str(out_json)]) == 0
    g = load(str(out_json))
    from cellsearch.nn.export import GraphCell

    GraphCell.from_graph(g, features=8)  # loads into the flax module
    assert main(["show", "ffffffffffff", "--db", db]) == 2


def test_the_search_says_whether_its_best_is_confirmed(tiny_store, tmp_path, capsys):
    """The search's last line says that its best is a search-time score until ``confirm`` has
    re-trained it on fresh paired seeds, then the verdict (issue 32: a user is told whether the
    lead is real)."""
    import shutil

    from cellsearch.cli.commands import confirmation_line
    from cellsearch.search.results import stored_config, summarize
    from cellsearch.store.sqlite import Store

    assert "not confirmed yet" in (tiny_store / "search.out").read_text().splitlines()[-1]
    db = str(tmp_path / "c.db")
    shutil.copy(tiny_store / "s.db", db)
    with Store(db, write=False) as st:
        best = summarize(st, stored_config(st)).best[0][0]
    assert "not confirmed yet" in confirmation_line(db, best)
    assert main(["confirm", "-k", "1", "--seeds", "2", "--db", db, "--cells", best]) == 0
    capsys.readouterr()
    line = confirmation_line(db, best)
    assert line.startswith("confirmed on 2 fresh paired seeds: ") and any(
        v in line for v in ("better than", "worse than", "a tie with", "unstable")), line


def test_search_lineage_goes_back_to_a_seed(tiny_store, capsys):
    db = str(tiny_store / "s.db")
    con = sqlite3.connect(db)
    child = con.execute("SELECT id FROM cells WHERE origin='mutation' LIMIT 1").fetchone()
    con.close()
    assert child is not None, "the fixture's search must store a child (its seed is fixed)"
    assert main(["show", str(child[0]), "--db", db]) == 0
    lineage = capsys.readouterr().out.split("# lineage")[1]
    assert "seed:" in lineage and "mutation" in lineage


def children_of(pid: int) -> list[int]:
    """The live (not zombie) child processes of ``pid``."""
    out = []
    for d in os.listdir("/proc"):
        try:
            fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(d))
    return out


def alive(pids: list[int]) -> list[int]:
    def running(p):
        try:
            return Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    return [p for p in pids if running(p)]


def _start(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "cellsearch", *args], cwd=cwd, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "CI": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_more(db, proc, more=3, timeout=240):
    n0, deadline = count(db, "evaluations"), time.time() + timeout
    while time.time() < deadline and count(db, "evaluations") < n0 + more and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None and count(db, "evaluations") >= n0 + more, "the search ended before it could be stopped"


def _evaluations(db):
    con = sqlite3.connect(db)
    try:
        return set(con.execute("SELECT cell_hash, task, hp_key, metrics, created_at FROM evaluations").fetchall())
    finally:
        con.close()


def test_stopping_a_search_is_clean_and_it_resumes_exactly(tmp_path):
    """SIGTERM with two workers stops the search in seconds, in one line, and no worker is left;
    `kill -9` of the driver leaves no worker either (they notice and exit); the same command
    then resumes and loses nothing; a second search on the store is refused meanwhile."""
    # a persistent compilation cache makes the resumed runs quick (and is exercised too)
    args = ["search", *TINY[:-1], "--compile-cache", str(tmp_path / "jax-cache"), "--candidates", "4", "--db", "k.db"]
    db = str(tmp_path / "k.db")
    proc = _start([*args, "--workers", "2"], tmp_path)
    _wait_for_more(db, proc)
    assert main(["status", "--db", db]) == 0  # a reader beside the running search
    workers = children_of(proc.pid)
    assert workers, "the search has no worker processes"
    t = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert time.time() - t < 15 and proc.returncode == 143
    assert err.strip().splitlines()[-1].startswith("cellsearch: stopped by SIGTERM; ") and "resume" in err
    assert "Traceback" not in err
    deadline = time.time() + 10
    while alive(workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not alive(workers), "worker processes outlived the driver's SIGTERM"
    before = _evaluations(db)

    proc = _start([*args, "--workers", "2"], tmp_path)  # resumes; then killed outright
    _wait_for_more(db, proc)
    workers = children_of(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.time() + 15
    while alive(workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not alive(workers), "worker processes outlived a driver killed with kill -9"
    proc.communicate(timeout=30)  # the pipes close with the last worker
    r = cli("status", "--db", "k.db", cwd=tmp_path)
    assert r.returncode == 0 and "ended without closing the store" in r.stdout
    assert before <= _evaluations(db)

    # a second search on the same store at the same time is refused
    lock = subprocess.Popen([sys.executable, "-c", "import time; from cellsearch.store.sqlite import Store; s=Store('k.db'); "
                             "print('locked', flush=True); time.sleep(30)"], cwd=tmp_path, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE)
    assert lock.stdout.readline().strip() == "locked"
    r = cli(*args, cwd=tmp_path)
    lock.kill()
    lock.wait()
    lock.stdout.close()
    assert r.returncode == 2 and "in use by another search" in r.stderr

    before = _evaluations(db)
    r = cli(*args, cwd=tmp_path)  # the same command, one worker: finishes the search
    assert r.returncode == 0, r.stderr
    con = sqlite3.connect(db)
    children = con.execute("SELECT COUNT(*) FROM steps WHERE kind='child' AND outcome NOT IN ('duplicate', "
                           "'mutation_failed')").fetchone()[0]
    con.close()
    assert before <= _evaluations(db)  # every finished evaluation kept, untouched
    assert children == 4
    r = cli("status", "--db", "k.db", cwd=tmp_path)
    assert "the last one finished" in r.stdout and "4 of 4 children" in r.stdout


def test_a_refused_search_leaves_the_store_free(tmp_path):
    """A search refused at start-up (missing data) writes no settings: the corrected command runs."""
    r = cli("search", *TINY, "--tasks", "ptb", "--data-dir", str(tmp_path), "--candidates", "0", cwd=tmp_path)
    assert r.returncode == 2 and "ptb.train.txt' not found" in r.stderr
    r = cli("search", *TINY, "--set", "screen=none", "--candidates", "0", cwd=tmp_path)  # no rungs: quicker
    assert r.returncode == 0, r.stderr


def test_bad_cli_values_exit_2(tmp_path):
    r = cli("search", "--workers", "0", cwd=tmp_path)
    assert r.returncode == 2 and "positive integer" in r.stderr
    r = cli("search", "--tasks", "arithmetic,chess", "--db", "x.db", cwd=tmp_path)
    assert r.returncode == 2 and "unknown task 'chess'" in r.stderr
    r = cli("search", "--tasks", "arithmetic,ptb", "--data-dir", str(tmp_path), "--db", "p.db", cwd=tmp_path)
    assert r.returncode == 2 and "ptb.train.txt' not found" in r.stderr and "--data-dir" in r.stderr
    assert not (tmp_path / "p.db").exists()  # a refused search writes nothing
    r = cli("search", "--tasks", "arithmetic,xml,arithmetic", "--db", "d.db", cwd=tmp_path)
    assert r.returncode == 2 and "'arithmetic' is named twice" in r.stderr
    r = cli("search", "--tasks", "arithmetic", "--db", str(tmp_path / "no" / "such" / "s.db"), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "cannot write the store" in r.stderr
    r = cli("top", "--db", "missing.db", cwd=tmp_path)
    assert r.returncode == 2 and "no search store" in r.stderr
    assert json.loads(cli("show", "GRU", "--format", "json", cwd=tmp_path).stdout)["name"] == "GRU"


@pytest.mark.ray
# Ray starts its local processes by forking; JAX warns at every fork of a process it has
# threads in. The children exec Ray at once, so the warning does not apply here.
@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_ray_backend_on_a_local_instance(tmp_path):
    pytest.importorskip("ray")
    from cellsearch.search.driver import run_search
    from tests.search_helpers import tiny_config

    summary = run_search(tiny_config(candidates=2), str(tmp_path / "r.db"), workers=2, backend="ray")
    assert summary.children == 2 and summary.evaluations > 0
    import ray

    assert not ray.is_initialized()  # the executor shut down the local instance it started


def test_export_tables_as_csv_and_parquet(tiny_store, capsys, tmp_path):
    import csv

    import pandas as pd

    db = str(tiny_store / "s.db")
    out = tmp_path / "ev.csv"
    assert main(["export", "--db", db, "--table", "evaluations", "-o", str(out)]) == 0
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert rows and {"cell_hash", "task", "hp_learning_rate", "hp_init_scale", "status", "score", "wall_s"} <= set(rows[0])
    assert {r["task"] for r in rows} >= {"memorize", "arithmetic"}
    pq = tmp_path / "cells.parquet"
    assert main(["export", "--db", db, "--table", "cells", "-o", str(pq)]) == 0
    cells = pd.read_parquet(pq)
    assert {"hash", "status", "score", "best_arithmetic", "equations"} <= set(cells.columns)
    assert cells["score"].notna().any() and (cells["status"] == "seed").any()
    assert main(["export", "--db", db, "--table", "cells", "-o", str(tmp_path / "no" / "x.csv")]) == 2
    assert "cannot write" in capsys.readouterr().err
