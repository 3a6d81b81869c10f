"""The run database file: its schema, its mark, and the checks made before it is opened.

Every file is looked at read-only first. Ours carries APPLICATION_ID and a schema version; a run
written before the mark existed (application_id 0, nothing but our tables) is ours too, brought up
to date only when opened for writing and read through temporary views otherwise, so `nas report`
never writes to it. Anything else (another program's database, a damaged file, a newer schema) is
refused with one line and left byte for byte as it was.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

DB_NAME = "run.sqlite"
APPLICATION_ID = int.from_bytes(b"nasR", "big")  # PRAGMA application_id: this file is a nas run
SCHEMA_VERSION = 1  # PRAGMA user_version; 0 is a run written before the file was marked
TABLES = {
    "settings": "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "trials": """CREATE TABLE IF NOT EXISTS trials (
        trial_id INTEGER PRIMARY KEY,
        arch_id TEXT NOT NULL,
        arch TEXT NOT NULL,
        decisions TEXT NOT NULL,
        status TEXT NOT NULL,          -- running | ok | diverged | failed: <reason> | stopped
        metrics TEXT,
        device_s REAL NOT NULL DEFAULT 0,
        started REAL,                  -- the running attempt's start; NULL once a killed attempt is charged
        ended REAL,
        attempts INTEGER NOT NULL DEFAULT 1,
        checkpoint TEXT,
        lost_device_s REAL NOT NULL DEFAULT 0,  -- earlier attempts killed or lost before they reported
        error TEXT                     -- a failed child's full traceback
    )""",
    "controller": "CREATE TABLE IF NOT EXISTS controller (id INTEGER PRIMARY KEY CHECK (id = 0), state TEXT NOT NULL, saved REAL)",
    "events": "CREATE TABLE IF NOT EXISTS events (at REAL NOT NULL, kind TEXT NOT NULL, detail TEXT)",
    "retrains": """CREATE TABLE IF NOT EXISTS retrains (       -- `nas retrain`: a found child trained again, longer
        retrain_id INTEGER PRIMARY KEY AUTOINCREMENT,
        trial_id INTEGER NOT NULL,
        recipe TEXT NOT NULL,
        metrics TEXT NOT NULL,
        device_s REAL NOT NULL DEFAULT 0,
        ended REAL,
        checkpoint TEXT
    )""",
    "phases": """CREATE TABLE IF NOT EXISTS phases (         -- work outside the children, charged to the budget
        name TEXT PRIMARY KEY,
        device_s REAL NOT NULL DEFAULT 0,
        detail TEXT,
        ended REAL
    )""",
    "inherited": """CREATE TABLE IF NOT EXISTS inherited (   -- children scored with weights inherited from a supernet
        arch_id TEXT PRIMARY KEY,
        arch TEXT NOT NULL,
        decisions TEXT NOT NULL,
        metrics TEXT NOT NULL
    )""",
    "heartbeat": "CREATE TABLE IF NOT EXISTS heartbeat (id INTEGER PRIMARY KEY CHECK (id = 0), at REAL NOT NULL)",
}
# Columns added after version 0: (declaration, the value an old row reads as).
ADDED_COLUMNS = {"trials": {"lost_device_s": ("REAL NOT NULL DEFAULT 0", "0"), "error": ("TEXT", "NULL")}}
LEGACY_CORE = {"settings", "trials"}  # an unmarked file is a legacy run only if it has these (and no others of its own)


class NotARun(ValueError):
    """The folder holds no run."""


class BadRunFile(ValueError):
    """The run database is not one this nas can use (foreign, damaged, newer); it was left untouched."""


@dataclass(frozen=True)
class FileShape:
    """What a read-only look at a run database found."""

    version: int
    tables: frozenset[str]
    missing_columns: dict[str, tuple[str, ...]]  # table -> columns added since the file was written

    @property
    def current(self) -> bool:
        return self.version == SCHEMA_VERSION and not self.missing_columns and set(TABLES) <= self.tables


def require_db(run_dir: Path) -> Path:
    """The run database of a folder, or NotARun."""
    path = Path(run_dir) / DB_NAME
    if not path.is_file():
        raise NotARun(f"{run_dir}: not a nas run folder (no {DB_NAME})")
    return path


def damaged(path: Path, err: sqlite3.DatabaseError) -> BadRunFile:
    """The one-line error for a file SQLite cannot read."""
    if isinstance(err, sqlite3.OperationalError):  # locked, unreadable: the file may be fine
        return BadRunFile(f"{path}: cannot be read ({err})")
    return BadRunFile(f"{path}: damaged ({err}); restore it from a backup, or start a new run in another folder")


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, timeout=30, isolation_level=None)


def inspect(path: Path, thorough: bool = False) -> FileShape:
    """Look at a run database without writing to it; refuse what is not a usable nas run.

    thorough: also read every page (PRAGMA quick_check), before a file is written to.
    """
    if path.stat().st_size == 0:
        raise BadRunFile(f"{path}: empty file (0 bytes), not a nas run database; remove it or choose another run folder")
    try:
        con = _read_only(path)
        try:
            app_id = con.execute("PRAGMA application_id").fetchone()[0]
            version = con.execute("PRAGMA user_version").fetchone()[0]
            tables = frozenset(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
                               if not r[0].startswith("sqlite_"))
            columns = {t: {r[1] for r in con.execute(f"PRAGMA table_info({t})")} for t in ADDED_COLUMNS if t in tables}
            problem = con.execute("PRAGMA quick_check(1)").fetchone()[0] if thorough else "ok"
        finally:
            con.close()
    except sqlite3.DatabaseError as err:
        raise damaged(path, err) from None
    if problem != "ok":
        raise damaged(path, sqlite3.DatabaseError(problem))
    _judge(path, app_id, version, tables)
    missing = {t: tuple(c for c in added if c not in columns[t]) for t, added in ADDED_COLUMNS.items() if t in columns}
    return FileShape(version, tables, {t: cols for t, cols in missing.items() if cols})


def _judge(path: Path, app_id: int, version: int, tables: frozenset[str]) -> None:
    """Refuse a file that is not ours, or is ours from a newer nas."""
    if app_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise BadRunFile(f"{path}: written by a newer nas (schema version {version}; this nas reads up to "
                             f"{SCHEMA_VERSION}); upgrade nas to use this run")
        return
    if app_id != 0:
        raise BadRunFile(f"{path}: not a nas run database (application_id {app_id:#x} belongs to another program)")
    if version != 0 or not LEGACY_CORE <= tables or not tables <= set(TABLES):
        found = f"it has tables {', '.join(sorted(tables))}" if tables else "it has no tables"
        extra = f", user_version {version}" if version else ""
        raise BadRunFile(f"{path}: not a nas run database ({found}{extra})")


def _upgrade_script(shape: FileShape) -> str:
    """One transaction: the columns and tables this file lacks, then the mark."""
    alters = [f"ALTER TABLE {t} ADD COLUMN {c} {ADDED_COLUMNS[t][c][0]};" for t, cols in shape.missing_columns.items()
              for c in cols]
    creates = [f"{sql};" for name, sql in TABLES.items() if name not in shape.tables]
    return "\n".join(["BEGIN IMMEDIATE;", *alters, *creates, f"PRAGMA application_id={APPLICATION_ID};",
                      f"PRAGMA user_version={SCHEMA_VERSION};", "COMMIT;"])


def _upgrade(db: sqlite3.Connection, shape: FileShape) -> None:
    try:
        db.executescript(_upgrade_script(shape))
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _shim(db: sqlite3.Connection, shape: FileShape) -> None:
    """Make an older file read like the current schema, in temporary objects only (the file is not written)."""
    for name, sql in TABLES.items():
        if name not in shape.tables:
            db.execute(sql.replace("CREATE TABLE IF NOT EXISTS", "CREATE TEMP TABLE", 1))
    for table, cols in shape.missing_columns.items():  # a temp view shadows the table of the same name
        defaults = ", ".join(f"{ADDED_COLUMNS[table][c][1]} AS {c}" for c in cols)
        db.execute(f"CREATE TEMP VIEW {table} AS SELECT *, {defaults} FROM main.{table}")


def create_db(path: Path) -> None:
    """A new, empty run database, put in place whole (never a half-made file under the real name)."""
    partial = path.with_name(path.name + ".new")
    partial.unlink(missing_ok=True)
    db = sqlite3.connect(partial, isolation_level=None)
    try:
        _upgrade(db, FileShape(0, frozenset(), {}))
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()
    os.replace(partial, path)


def connect_checked(path: Path, readonly: bool) -> sqlite3.Connection:
    """A connection to a checked run database (an older one brought up to date when opened for writing)."""
    shape = inspect(path, thorough=not readonly)
    try:
        if readonly:
            db = _read_only(path)
            _shim(db, shape)
            return db
        db = sqlite3.connect(path, timeout=30, isolation_level=None)  # explicit transactions in RunStore
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        if not shape.current:
            _upgrade(db, shape)
        return db
    except sqlite3.DatabaseError as err:
        raise damaged(path, err) from None
