"""A damaged store: SQLite's integrity check, and recovering the rows it can still read.

What a failing store's error means for the user is :func:`cellsearch.store.sqlite.explain`; the
tables copied are the schema's own (:data:`cellsearch.store.sqlite.TABLES`), all of them.

:func:`check` runs SQLite's integrity check; :func:`recover` (``cellsearch doctor``) copies
every row it can still read from a damaged store into a new one, row by row, so a damaged
page costs only the rows on it. The damaged file is never written: the copy reads a
snapshot of it (with its WAL) in a temporary folder.

This module imports nothing from JAX.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile

from cellsearch.errors import StorageError
from cellsearch.store.sqlite import TABLES, Store, explain, has_table, is_sqlite_file

_GAP = 2000  # rowids tried past the last readable row when the table's end cannot be read


def check(path: str) -> list[str]:
    """SQLite's integrity check of the store: ``[]`` if sound, else its complaints (at most
    20). Reads only."""
    if not os.path.exists(path):
        raise StorageError(f"no search store at {path!r}")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = [r[0] for r in con.execute("PRAGMA integrity_check(20)")]
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        if not is_sqlite_file(path):
            raise explain(path, e) from None
        return [str(e)]
    return [] if rows == ["ok"] else rows


def _snapshot(path: str, folder: str) -> str:
    """A copy of the store and its WAL in ``folder`` (the damaged original is never opened
    for writing)."""
    copy = os.path.join(folder, "store.db")
    shutil.copyfile(path, copy)
    for ext in ("-wal",):
        if os.path.exists(path + ext):
            shutil.copyfile(path + ext, copy + ext)
    return copy


def _rows(con: sqlite3.Connection, table: str) -> tuple[list[tuple], int]:
    """The readable rows of ``table`` (with their rowid) and how many lookups failed."""
    try:
        return [tuple(r) for r in con.execute(f"SELECT rowid, * FROM {table} ORDER BY rowid")], 0
    except sqlite3.DatabaseError:
        pass  # a damaged page: read the rows one by one around it
    try:
        last = con.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0]
    except sqlite3.DatabaseError:
        last = None
    rows, failed, misses, rowid = [], 0, 0, -1
    while (rowid <= last) if last is not None else (misses < _GAP):
        try:
            row = con.execute(f"SELECT rowid, * FROM {table} WHERE rowid = ?", (rowid,)).fetchone()
        except sqlite3.DatabaseError:
            row, failed = None, failed + 1
        if row is None:
            misses += 1
        else:
            rows.append(tuple(row))
            misses = 0
        rowid += 1
    return rows, failed


def recover(path: str, out: str) -> dict[str, dict[str, int]]:
    """Copies every readable row of the store ``path`` into a new store ``out``; returns, per
    table, ``{"rows": copied, "unreadable": failed lookups}``. ``out`` must not exist."""

    if os.path.exists(out):
        raise StorageError(f"{out!r} exists; give the recovered store a new path (-o)")
    if not is_sqlite_file(path):
        raise StorageError(f"{path!r} is not a SQLite file; there is nothing to recover from it")
    report: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="cellsearch-doctor-") as tmp:
        src = sqlite3.connect(_snapshot(path, tmp))
        try:
            with Store(out) as new:
                for table in TABLES:
                    if _absent(src, table):  # older than the table: nothing lost, nothing to copy
                        report[table] = {"rows": 0, "unreadable": 0}
                        continue
                    try:
                        rows, failed = _rows(src, table)
                    except sqlite3.DatabaseError:  # the table itself cannot be found
                        rows, failed = [], 1
                    with new.tx():
                        for row in rows:
                            marks = ", ".join("?" * len(row))
                            new.conn.execute(f"INSERT OR REPLACE INTO {table} (rowid, "
                                             f"{', '.join(_columns(new.conn, table))}) VALUES ({marks})", row)
                    report[table] = {"rows": len(rows), "unreadable": failed}
        finally:
            src.close()
    return report


def _absent(con: sqlite3.Connection, table: str) -> bool:
    """Whether the store never had ``table`` (a store written before the table existed); ``False``
    when its schema cannot be read, so the table is tried anyway."""
    try:
        return not has_table(con, table)
    except sqlite3.DatabaseError:
        return False


def _columns(con: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
