"""What a failing store's SQLite error means for the user.

:func:`explain` turns an ``sqlite3`` error into one :class:`~cellsearch.errors.StorageError`
that names the store and the cause (a full disk, a file or WAL that cannot be written, a
damaged file, a file that is not SQLite at all) and what to do; the CLI prints it as one line
with exit status 2. Each result is written in its own transaction, so a write that fails
leaves what was stored before sound (``PRAGMA integrity_check``), and the same command resumes.
Imports nothing but the errors.
"""

from __future__ import annotations

from cellsearch.errors import StorageError

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
