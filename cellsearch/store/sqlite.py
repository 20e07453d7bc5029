"""The search store: one SQLite file, its whole schema, and every SQL statement of cellsearch.

Tables (``schema_version`` 2; :data:`TABLES` lists them, read from :data:`SCHEMA`):

* ``meta(key, value)``: schema version, the search's settings (JSON), creation time, the run
  record (:mod:`cellsearch.search.runs`), the baseline cell's name and hash.
* ``cells(id, hash, graph, functional_hash, parent, edits, origin, status, score, step, created_at)``:
  every cell ever proposed, with its lineage (parent hash and the edits that made it) and its
  fate (``seed``, ``duplicate``, ``filtered``, ``hurdle``, ``scored``, ``error``).
* ``evaluations(cell_hash, task, hp_key, hparams, seed, metrics, score, status, wall_s,
  compile_s, step, created_at)``: one row per (cell, task, setting), unique, so a resumed
  search looks results up instead of training again.
* ``steps(step, kind, cell_hash, outcome, detail, created_at)``: each finished search step.
* ``pool(cell_hash, added_step)``: the current pool (top-N, or the aging population).
* ``confirmations(cell_hash, task, seed, steps, hparams, score, status, metrics, wall_s,
  created_at)``: the runs of ``cellsearch confirm``, apart from the search's evaluations, one
  per (cell, task, seed, steps, setting); version 1 lacked the setting in the key
  (:meth:`Store._upgrade`).
* ``states(cell_hash, task, hp_key, state)``: the training state of a screen rung's setting
  (bytes the trainer wrote, :mod:`cellsearch.nn.resume`), which the child's next stage continues
  if it is promoted; written with its evaluation, deleted once continued.

A store is self-contained for reading: the cells' graphs, the settings and the baseline are in
it, so ``top``, ``show``, ``export``, ``report`` and ``confirm`` need no search space file; only a
resumed search does. Errors of SQLite are explained to the user by :func:`explain`.

The database runs in WAL mode and every result is written in its own transaction, so a
``kill -9`` loses at most the evaluation in flight. Only one search may write a store at a
time: :class:`Store` takes an exclusive ``flock`` on ``<db>.lock`` (released by the OS when
the process dies) and raises :class:`~cellsearch.errors.StorageError` if another holds it.

This module imports nothing from JAX.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any

from cellsearch.errors import StorageError

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
  id INTEGER PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  graph TEXT NOT NULL,
  functional_hash TEXT,
  parent TEXT,
  edits TEXT NOT NULL DEFAULT '[]',
  origin TEXT NOT NULL,
  status TEXT NOT NULL,
  score REAL,
  step INTEGER,
  created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cells_fhash ON cells(functional_hash);
CREATE TABLE IF NOT EXISTS evaluations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  cell_hash TEXT NOT NULL,
  task TEXT NOT NULL,
  hp_key TEXT NOT NULL,
  hparams TEXT NOT NULL,
  seed INTEGER NOT NULL,
  metrics TEXT NOT NULL,
  score REAL NOT NULL,
  status TEXT NOT NULL,
  wall_s REAL NOT NULL,
  compile_s REAL NOT NULL,
  step INTEGER,
  created_at REAL NOT NULL,
  UNIQUE(cell_hash, task, hp_key)
);
CREATE INDEX IF NOT EXISTS evaluations_cell ON evaluations(cell_hash, task);
CREATE TABLE IF NOT EXISTS steps (
  step INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  cell_hash TEXT,
  outcome TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT '{}',
  created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pool (cell_hash TEXT PRIMARY KEY, added_step INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS confirmations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  cell_hash TEXT NOT NULL,
  task TEXT NOT NULL,
  seed INTEGER NOT NULL,
  steps INTEGER NOT NULL,
  hparams TEXT NOT NULL,
  score REAL NOT NULL,
  status TEXT NOT NULL,
  metrics TEXT NOT NULL,
  wall_s REAL NOT NULL,
  created_at REAL NOT NULL,
  UNIQUE(cell_hash, task, seed, steps, hparams)
);
CREATE TABLE IF NOT EXISTS states (
  cell_hash TEXT NOT NULL,
  task TEXT NOT NULL,
  hp_key TEXT NOT NULL,
  state BLOB NOT NULL,
  PRIMARY KEY (cell_hash, task, hp_key)
);
"""
TABLES = tuple(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA))  # every table, in creation order


# ----------------------------------------------------------------------------- errors

_HEADER = b"SQLite format 3\x00"


def is_sqlite_file(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == _HEADER
    except OSError:
        return False


def explain(path: str, e: BaseException) -> StorageError:
    """The user's view of SQLite error ``e`` on the store ``path``."""
    name = getattr(e, "sqlite_errorname", "") or ""
    msg = str(e)
    kept = "what was stored before is kept and sound; "
    if "FULL" in name or "disk is full" in msg:
        return StorageError(f"the disk holding the store {path!r} is full (SQLite: {msg}); {kept}free some space "
                            "and run the same command: the search resumes where it stopped")
    if name.startswith("SQLITE_CORRUPT") or "malformed" in msg or (
            (name == "SQLITE_NOTADB" or "not a database" in msg) and is_sqlite_file(path)):
        return StorageError(f"the store {path!r} is damaged (SQLite: {msg}); `cellsearch doctor --db {path}` "
                            "copies every row it can still read into a new store")
    if name == "SQLITE_NOTADB" or "not a database" in msg:
        return StorageError(f"{path!r} is not a SQLite file, so not a cellsearch store (SQLite: {msg}); "
                            "pass the .db file a search wrote")
    if name.startswith(("SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_PERM")) or any(
            m in msg for m in ("readonly", "unable to open", "I/O error")):
        return StorageError(f"the store {path!r} or its journal ({path}-wal, {path}-shm) cannot be written "
                            f"(SQLite: {msg}); {kept}make the folder writable (or free space) and run the same "
                            "command")
    return StorageError(f"the store {path!r} failed (SQLite: {msg})")


def has_table(con: sqlite3.Connection, name: str) -> bool:
    """Whether the database behind ``con`` has table ``name``."""
    return con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def _in(values: Iterable[int]) -> tuple[str, list[int]]:
    """``"(?, ?, ...)"`` and the distinct values, sorted, for an SQL ``IN`` list."""
    want = sorted(set(values))
    return f"({', '.join('?' * len(want))})", want


class Store:
    """An open search store. Use as a context manager, or call :meth:`close`.

    Args:
      path: the SQLite file (created if missing).
      write: take the writer's lock (a search); readers (``top``, ``show``) pass ``False``.
      create: start a new store if ``path`` is missing (a search); a writer into an existing
        search's store (``confirm``) passes ``False`` and gets the readers' error instead.
    """

    def __init__(self, path: str, *, write: bool = True, create: bool = True):
        self.path = path
        self._lock = None
        if (not write or not create) and not os.path.exists(path):
            raise StorageError(f"no search store at {path!r}; run `cellsearch search --db {path}` first")
        if write:
            self._take_lock()
        try:
            self.conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            if write:
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                with self.tx():
                    for statement in filter(str.strip, SCHEMA.split(";")):
                        self.conn.execute(statement)
                    self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                    self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('created_at', ?)", (str(time.time()),))
                    self._upgrade()
            version = self.meta("schema_version")
        except sqlite3.DatabaseError as e:
            self.close()
            raise explain(path, e) from None
        if version is None or int(version) > SCHEMA_VERSION:
            self.close()
            raise StorageError(f"{path!r} has schema version {version}; this cellsearch reads up to {SCHEMA_VERSION}")

    def _upgrade(self) -> None:
        """Brings a store written by an older cellsearch to :data:`SCHEMA_VERSION`, inside the
        opening transaction (a writer only; a reader reads either version). Version 1's
        ``confirmations`` held one setting per (cell, task, seed, steps); version 2 keys the runs
        by their setting too (``confirm --settings N``). Every stored run is kept."""
        version = int(self.meta("schema_version") or SCHEMA_VERSION)
        if version >= SCHEMA_VERSION:
            return
        ddl = SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS confirmations"):]
        ddl = ddl[:ddl.index(";")].replace("IF NOT EXISTS confirmations", "confirmations_v2")
        self.conn.execute(ddl)
        self.conn.execute("INSERT INTO confirmations_v2 SELECT * FROM confirmations")
        self.conn.execute("DROP TABLE confirmations")
        self.conn.execute("ALTER TABLE confirmations_v2 RENAME TO confirmations")
        self.conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    # -- locking and transactions -------------------------------------------------------------

    def _take_lock(self) -> None:
        lock_path = self.path + ".lock"
        try:
            f = open(lock_path, "a+")
        except OSError as e:
            raise StorageError(f"cannot write the store {self.path!r}: {e.strerror} ({lock_path}); "
                               "pass --db a path in a folder you can write") from None
        for attempt in range(5):  # a reader (`cellsearch status`) holds it for an instant at most
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt < 4:
                    time.sleep(0.1)
        else:
            f.seek(0)
            who = f.read().strip() or "another process"
            f.close()
            raise StorageError(
                f"the store {self.path!r} is in use by another search ({who}); two searches cannot write "
                "one store at once: wait for it to finish, stop it, or pass another --db"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        f.flush()
        self._lock = f

    def tx(self):
        """A transaction: ``with store.tx(): ...`` commits on success, rolls back on error."""
        return _Tx(self.conn)

    def close(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()
            self.conn = None
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- meta ----------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self.tx():
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- cells ---------------------------------------------------------------------------------

    def add_cell(self, hash_: str, graph_json: str, *, functional_hash: str | None, parent: str | None,
                 edits: list[dict], origin: str, status: str, step: int | None) -> None:
        with self.tx():
            self.conn.execute(
                "INSERT OR IGNORE INTO cells (hash, graph, functional_hash, parent, edits, origin, status, step,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (hash_, graph_json, functional_hash, parent, json.dumps(edits), origin, status, step, time.time()),
            )

    def set_cell_status(self, hash_: str, status: str, score: float | None = None) -> None:
        self.conn.execute("UPDATE cells SET status=?, score=? WHERE hash=?", (status, score, hash_))

    def cell(self, ref: str) -> sqlite3.Row | None:
        """A cell by numeric id, full hash or unique hash prefix."""
        if ref.isdigit():
            row = self.conn.execute("SELECT * FROM cells WHERE id=?", (int(ref),)).fetchone()
            if row is not None:
                return row
        rows = self.conn.execute("SELECT * FROM cells WHERE hash LIKE ?", (ref + "%",)).fetchall()
        if len(rows) > 1:
            raise StorageError(f"hash prefix {ref!r} matches {len(rows)} cells; give more characters")
        return rows[0] if rows else None

    def has_structure(self, hash_: str) -> bool:
        return self.conn.execute("SELECT 1 FROM cells WHERE hash=?", (hash_,)).fetchone() is not None

    def functional_twin(self, fhash: str) -> str | None:
        row = self.conn.execute("SELECT hash FROM cells WHERE functional_hash=? AND status != 'duplicate' LIMIT 1",
                                (fhash,)).fetchone()
        return None if row is None else row[0]

    def cells(self, where: str = "1", params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(f"SELECT * FROM cells WHERE {where} ORDER BY id", tuple(params)).fetchall()

    # -- evaluations ---------------------------------------------------------------------------

    def add_evaluations(self, cell_hash: str, task: str, results: list[dict], step: int | None,
                        continued: tuple[str, Iterable[str]] | None = None) -> None:
        """Writes the results of one job, and their training states where they carry one
        (``state``), in one transaction; ``continued``: ``(task, hp_keys)``, the states this job
        continued, deleted in the same transaction."""
        with self.tx():
            if continued:
                for key in continued[1]:
                    self.conn.execute("DELETE FROM states WHERE cell_hash=? AND task=? AND hp_key=?",
                                      (cell_hash, continued[0], key))
            for r in results:
                if r.get("state") and r["status"] != "error":
                    self.conn.execute("INSERT OR REPLACE INTO states (cell_hash, task, hp_key, state) VALUES (?, ?, ?, ?)",
                                      (cell_hash, task, r["hp_key"], sqlite3.Binary(r["state"])))
                hp = r["hparams"]
                self.conn.execute(
                    "INSERT OR IGNORE INTO evaluations (cell_hash, task, hp_key, hparams, seed, metrics, score, status,"
                    " wall_s, compile_s, step, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (cell_hash, task, r["hp_key"], json.dumps(hp, sort_keys=True), hp.get("seed", 0),
                     json.dumps(r["metrics"]), float(r["score"]), r["status"], float(r["wall_s"]),
                     float(r["compile_s"]), step, time.time()),
                )

    def states(self, cell_hash: str, task: str) -> dict[str, bytes]:
        """The training states kept for the cell's settings on ``task`` (a rung's name), by setting key."""
        rows = self.conn.execute("SELECT hp_key, state FROM states WHERE cell_hash=? AND task=?", (cell_hash, task))
        return {r[0]: bytes(r[1]) for r in rows}

    def graphs_evaluated(self, steps: Iterable[int]) -> list[str]:
        """The graphs (JSON) of the cells evaluated by ``steps``, in the order they were stored."""
        marks, want = _in(steps)
        return [r[0] for r in self.conn.execute(
            "SELECT c.graph FROM cells c WHERE c.hash IN (SELECT DISTINCT cell_hash FROM evaluations WHERE step IN "
            f"{marks}) ORDER BY c.id", want)] if want else []

    def evaluations(self, cell_hash: str, task: str | None = None) -> list[dict]:
        q = "SELECT * FROM evaluations WHERE cell_hash=?" + (" AND task=?" if task else "") + " ORDER BY id"
        rows = self.conn.execute(q, (cell_hash, task) if task else (cell_hash,)).fetchall()
        return [{"task": r["task"], "hp_key": r["hp_key"], "hparams": json.loads(r["hparams"]),
                 "metrics": json.loads(r["metrics"]), "score": r["score"], "status": r["status"],
                 "wall_s": r["wall_s"], "compile_s": r["compile_s"]} for r in rows]

    def done_keys(self, cell_hash: str, task: str, before_step: int | None = None) -> set[str]:
        """Settings already evaluated for this cell and task (by steps before ``before_step``)."""
        q = "SELECT hp_key FROM evaluations WHERE cell_hash=? AND task=?"
        args: tuple = (cell_hash, task)
        if before_step is not None:
            q += " AND step < ?"
            args += (before_step,)
        return {r[0] for r in self.conn.execute(q, args)}

    def first_error(self, cell_hash: str, task: str) -> str | None:
        """The message of the cell's first crashed evaluation on the task, if any."""
        row = self.conn.execute("SELECT metrics FROM evaluations WHERE cell_hash=? AND task=? AND status='error'"
                                " ORDER BY id LIMIT 1", (cell_hash, task)).fetchone()
        return None if row is None else str(json.loads(row[0]).get("error", "unknown error"))

    def statuses(self, cell_hash: str, task: str) -> dict[str, int]:
        """How many of the cell's evaluations on the task ended in each status."""
        rows = self.conn.execute("SELECT status, COUNT(*) FROM evaluations WHERE cell_hash=? AND task=?"
                                 " GROUP BY status", (cell_hash, task)).fetchall()
        return {r[0]: r[1] for r in rows}

    def best(self, cell_hash: str, task: str) -> float | None:
        """The cell's best score on the task: the highest ``ok`` score, 0 if every finished
        setting diverged, ``None`` if none finished (no evaluation, or only crashes)."""
        row = self.conn.execute("SELECT MAX(CASE WHEN status='ok' THEN score ELSE 0 END), COUNT(*) FROM evaluations"
                                " WHERE cell_hash=? AND task=? AND status != 'error'", (cell_hash, task)).fetchone()
        return None if row[1] == 0 else float(row[0])

    def results_table(self, cell_hash: str | None = None, task: str | None = None
                      ) -> dict[tuple[str, str], list[tuple[str, float]]]:
        """Every (cell, task) pair's finished settings in the order stored, as ``(hp_key, score)``
        (a diverged setting scores 0; a crashed one is not a result), in one query; with
        ``cell_hash`` and ``task``, that pair's alone (an indexed lookup)."""
        out: dict[tuple[str, str], list[tuple[str, float]]] = {}
        one = cell_hash is not None and task is not None
        rows = self.conn.execute("SELECT cell_hash, task, hp_key, CASE WHEN status='ok' THEN score ELSE 0 END"
                                 " FROM evaluations WHERE status != 'error'" + (" AND cell_hash=? AND task=?" if one else "")
                                 + " ORDER BY id", (cell_hash, task) if one else ())
        for h, t, k, v in rows:
            out.setdefault((h, t), []).append((k, float(v)))
        return out

    def evaluation_counts(self) -> dict[str, int]:
        """Evaluations stored per cell."""
        return {r[0]: r[1] for r in self.conn.execute("SELECT cell_hash, COUNT(*) FROM evaluations GROUP BY cell_hash")}

    def children_done(self, before_step: int | None = None) -> int:
        """Children whose evaluation finished (duplicates and failed mutations not counted),
        by steps before ``before_step`` if given."""
        row = self.conn.execute("SELECT COUNT(*) FROM steps WHERE kind='child' AND outcome NOT IN "
                                "('duplicate', 'mutation_failed') AND step < ?",
                                (10**18 if before_step is None else before_step,)).fetchone()
        return int(row[0])

    # -- steps and pool ------------------------------------------------------------------------

    def finished_steps(self) -> set[int]:
        return {r[0] for r in self.conn.execute("SELECT step FROM steps")}

    def finish_step(self, step: int, kind: str, cell_hash: str | None, outcome: str, detail: dict,
                    cell_status: tuple[str, float | None] | None = None,
                    pool_add: Iterable[str] = (), pool_remove: Iterable[str] = ()) -> None:
        """Records a finished step, the cell's fate and the pool change in one transaction."""
        with self.tx():
            if cell_status and cell_hash:
                self.set_cell_status(cell_hash, *cell_status)
            self.change_pool(step, pool_add, pool_remove)
            self.conn.execute("INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?, ?)",
                              (step, kind, cell_hash, outcome, json.dumps(detail), time.time()))

    def steps_outcomes(self, steps: Iterable[int]) -> list[dict]:
        """The finished steps among ``steps``, in step order: step, kind, cell, outcome, detail."""
        marks, want = _in(steps)
        rows = self.conn.execute(f"SELECT step, kind, cell_hash, outcome, detail FROM steps WHERE step IN {marks} "
                                 "ORDER BY step", want).fetchall() if want else []
        return [{"step": r[0], "kind": r[1], "cell": r[2], "outcome": r[3], "detail": json.loads(r[4])} for r in rows]

    def change_pool(self, step: int, add: Iterable[str] = (), remove: Iterable[str] = ()) -> None:
        """Removes ``remove`` from the pool and adds ``add`` (as added by ``step``)."""
        with self.tx():
            for h in remove:
                self.conn.execute("DELETE FROM pool WHERE cell_hash=?", (h,))
            for h in add:
                self.conn.execute("INSERT OR IGNORE INTO pool VALUES (?, ?)", (h, step))

    def close_round(self, round_no: int) -> None:
        """Marks round ``round_no`` of a population search committed (its pool changes applied;
        call inside the transaction that applies them)."""
        self.set_meta("rounds_committed", str(round_no + 1))

    def rounds_committed(self) -> int:
        """How many rounds of a population search have their pool changes applied."""
        return int(self.meta("rounds_committed") or 0)

    def steps_of(self, cell_hash: str) -> list[dict]:
        """The finished steps that evaluated the cell, in order (the one that proposed it first, then
        re-evaluations and promotions): step, kind, outcome and detail."""
        rows = self.conn.execute("SELECT step, kind, outcome, detail FROM steps WHERE cell_hash=? ORDER BY step",
                                 (cell_hash,)).fetchall()
        return [{"step": r[0], "kind": r[1], "outcome": r[2], "detail": json.loads(r[3])} for r in rows]

    def reevaluations(self, cell_hash: str, before: int) -> int:
        """How many finished steps before step ``before`` re-evaluated the cell."""
        return self.conn.execute("SELECT COUNT(*) FROM steps WHERE kind='reeval' AND cell_hash=? AND step < ?",
                                 (cell_hash, before)).fetchone()[0]

    def step_of(self, cell_hash: str) -> dict | None:
        """The step that proposed the cell (its outcome and detail), if it finished."""
        steps = self.steps_of(cell_hash)
        return steps[0] if steps else None

    def pool(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT cell_hash FROM pool ORDER BY added_step, cell_hash")]

    def probe_rejections(self) -> dict[str, int]:
        """Children rejected by the liveness probe (and resampled before training), by reason."""
        out: dict[str, int] = {}
        for (detail,) in self.conn.execute("SELECT detail FROM steps WHERE kind='child'"):
            for why, n in json.loads(detail).get("probe_rejected", {}).items():
                out[why] = out.get(why, 0) + n
        return out

    def child_fates(self) -> dict[str, int]:
        """Children by their last fate (``scored``, ``filtered``, ``screened``, ``hurdle``,
        ``diverged``, ``error``): the status of every cell a child step evaluated."""
        rows = self.conn.execute("SELECT status, COUNT(*) FROM cells WHERE origin='mutation' AND hash IN (SELECT "
                                 "cell_hash FROM steps WHERE kind='child' AND outcome NOT IN ('duplicate', "
                                 "'mutation_failed')) GROUP BY status").fetchall()
        return {r[0]: r[1] for r in rows}

    def counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT kind, outcome, COUNT(*) FROM steps GROUP BY kind, outcome").fetchall()
        return {f"{k}:{o}": n for k, o, n in rows}

    # -- reading for the report, tables and status ---------------------------------------------

    def steps_rows(self) -> list[dict]:
        """Every finished step, in step order, its detail parsed."""
        return [dict(r) | {"detail": json.loads(r["detail"])}
                for r in self.conn.execute("SELECT * FROM steps ORDER BY step")]

    def evaluation_rows(self) -> list[dict]:
        """Every evaluation, in the order stored, its settings and metrics parsed."""
        return [dict(r) | {"hparams": json.loads(r["hparams"]), "metrics": json.loads(r["metrics"])}
                for r in self.conn.execute("SELECT * FROM evaluations ORDER BY id")]

    def last_write(self) -> float | None:
        """When a step or an evaluation was last stored (``None`` before any)."""
        return self.conn.execute("SELECT MAX(t) FROM (SELECT MAX(created_at) AS t FROM steps UNION ALL "
                                 "SELECT MAX(created_at) FROM evaluations)").fetchone()[0]

    def unfinished_steps(self) -> list[int]:
        """Steps that stored evaluations but did not finish (their writer died or was stopped)."""
        return sorted({r[0] for r in self.conn.execute(
            "SELECT DISTINCT step FROM evaluations WHERE step IS NOT NULL AND step NOT IN (SELECT step FROM steps)")})

    # -- confirmation runs ---------------------------------------------------------------------

    def has_table(self, name: str) -> bool:
        """Whether the store has table ``name`` (a store written before the table existed, opened
        only to read, lacks it)."""
        return has_table(self.conn, name)

    def add_confirmation(self, cell_hash: str, task: str, seed: int, steps: int, hparams: dict, result: dict) -> None:
        """Stores one confirmation run (one transaction)."""
        with self.tx():
            self.conn.execute(
                "INSERT OR IGNORE INTO confirmations (cell_hash, task, seed, steps, hparams, score, status, metrics,"
                " wall_s, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (cell_hash, task, seed, steps, json.dumps(hparams, sort_keys=True), float(result["score"]),
                 result["status"], json.dumps(result["metrics"]), float(result["wall_s"]), time.time()))

    def confirmations(self) -> list[dict]:
        """Every confirmation run, in the order stored, its setting and metrics parsed."""
        if not self.has_table("confirmations"):
            return []
        return [dict(r) | {"hparams": json.loads(r["hparams"]), "metrics": json.loads(r["metrics"])}
                for r in self.conn.execute("SELECT * FROM confirmations ORDER BY id")]


def open_search_store(path: str, settings: str, identity: Callable[[str], dict]) -> Store:
    """Opens (or creates) a store for a search with ``settings`` (JSON). The settings are
    written only into a store that holds none yet; a store whose settings differ under
    ``identity`` (the fields a resumed search must share) is refused."""
    store = Store(path)
    saved = store.meta("config")
    if saved is None:
        store.set_meta("config", settings)
        return store
    old, new = identity(saved), identity(settings)
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        store.close()
        raise StorageError(f"the store {path!r} holds a search with other settings ({', '.join(diff)} differ); "
                           "resume it with the same settings or pass another --db")
    return store


class _Tx:
    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        if self.conn.in_transaction:
            self.nested = True
            return self
        self.nested = False
        self.conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, exc_type, *rest):
        if self.nested:
            return False
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:  # SQLite may have rolled back already (a full disk)
            self.conn.execute("ROLLBACK")
        return False
