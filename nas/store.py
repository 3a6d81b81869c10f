"""The run folder: one SQLite file of truth (settings, trials, controller state), plus checkpoints.

SQLite in WAL mode with synchronous=FULL: every committed transaction survives a SIGKILL, and a
trial's result and the controller state that learned from it are written in one transaction, so
a resumed run never sees one without the other.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

DB_NAME = "run.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    trial_id INTEGER PRIMARY KEY,
    arch_id TEXT NOT NULL,
    arch TEXT NOT NULL,
    decisions TEXT NOT NULL,
    status TEXT NOT NULL,          -- running | ok | diverged | failed: <reason>
    metrics TEXT,
    device_s REAL NOT NULL DEFAULT 0,
    started REAL,
    ended REAL,
    attempts INTEGER NOT NULL DEFAULT 1,
    checkpoint TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS controller (id INTEGER PRIMARY KEY CHECK (id = 0), state TEXT NOT NULL, saved REAL);
CREATE TABLE IF NOT EXISTS events (at REAL NOT NULL, kind TEXT NOT NULL, detail TEXT);
CREATE TABLE IF NOT EXISTS retrains (       -- `nas retrain`: a found child trained again with a longer recipe
    retrain_id INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id INTEGER NOT NULL,
    recipe TEXT NOT NULL,
    metrics TEXT NOT NULL,
    device_s REAL NOT NULL DEFAULT 0,
    ended REAL,
    checkpoint TEXT
);
CREATE TABLE IF NOT EXISTS phases (         -- work done outside the children, charged to the budget (a supernet)
    name TEXT PRIMARY KEY,
    device_s REAL NOT NULL DEFAULT 0,
    detail TEXT,
    ended REAL
);
CREATE TABLE IF NOT EXISTS inherited (      -- children scored with weights inherited from a supernet
    arch_id TEXT PRIMARY KEY,
    arch TEXT NOT NULL,
    decisions TEXT NOT NULL,
    metrics TEXT NOT NULL
);
"""


def _controller_row(state: dict) -> tuple[str, tuple]:
    """The statement that saves the controller state (one row, replaced)."""
    return "INSERT OR REPLACE INTO controller VALUES (0, ?, ?)", (json.dumps(state), time.time())


class NotARun(ValueError):
    """The folder holds no run."""


@dataclass
class TrialRecord:
    """One child as the store keeps it."""

    trial_id: int
    arch_id: str
    arch: dict
    decisions: list[int]
    status: str
    metrics: dict
    device_s: float
    started: float | None
    ended: float | None
    attempts: int
    checkpoint: str | None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class RunStore:
    """Read and append to one run folder; opening a folder that is not a run is an error."""

    def __init__(self, run_dir: str | Path, create: bool = False):
        self.dir = Path(run_dir)
        db = self.dir / DB_NAME
        if not db.exists() and not create:
            raise NotARun(f"{self.dir}: not a nas run folder (no {DB_NAME})")
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "checkpoints").mkdir(exist_ok=True)
        self.db = sqlite3.connect(db, timeout=30, isolation_level=None)  # explicit transactions below
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def _tx(self, statements: list[tuple[str, tuple]]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for sql, args in statements:
                self.db.execute(sql, args)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    # settings -------------------------------------------------------------------------------
    def save_settings(self, settings: dict[str, Any]) -> None:
        self._tx([("INSERT OR REPLACE INTO settings VALUES (?, ?)", (k, json.dumps(v))) for k, v in settings.items()])

    def settings(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM settings")}

    # trials ---------------------------------------------------------------------------------
    def start_trial(self, trial_id: int, arch_json: str, arch_id: str, decisions: list[int]) -> None:
        """Mark a child as running (a retry after a lost worker bumps attempts)."""
        self._tx([("""INSERT INTO trials (trial_id, arch_id, arch, decisions, status, started)
                      VALUES (?, ?, ?, ?, 'running', ?)
                      ON CONFLICT(trial_id) DO UPDATE SET status='running', attempts=attempts+1, started=excluded.started""",
                   (trial_id, arch_id, arch_json, json.dumps(decisions), time.time()))])

    def finish_trial(self, trial_id: int, status: str, metrics: dict, device_s: float, controller_state: dict,
                     checkpoint: str | None = None, error: str | None = None) -> None:
        """Record a finished child and the controller state that has learned from it, atomically."""
        self._tx([
            ("UPDATE trials SET status=?, metrics=?, device_s=?, ended=?, checkpoint=?, error=? WHERE trial_id=?",
             (status, json.dumps(metrics), float(device_s), time.time(), checkpoint, error, trial_id)),
            _controller_row(controller_state),
        ])

    def save_controller(self, state: dict) -> None:
        self._tx([_controller_row(state)])

    def controller_state(self) -> dict | None:
        row = self.db.execute("SELECT state FROM controller WHERE id=0").fetchone()
        return json.loads(row[0]) if row else None

    def set_checkpoint(self, trial_id: int, path: str | None) -> None:
        self._tx([("UPDATE trials SET checkpoint=? WHERE trial_id=?", (path, trial_id))])

    def trials(self, status: str | None = None) -> list[TrialRecord]:
        sql = "SELECT * FROM trials" + (" WHERE status=?" if status else "") + " ORDER BY trial_id"
        rows = self.db.execute(sql, (status,) if status else ())
        return [TrialRecord(r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[4], json.loads(r[5] or "{}"),
                            r[6], r[7], r[8], r[9], r[10]) for r in rows]

    def iter_finished(self) -> Iterator[TrialRecord]:
        yield from (t for t in self.trials() if t.status != "running")

    def device_seconds(self) -> float:
        """Device-seconds charged to the budget: finished children plus phases (a supernet's training)."""
        trials = self.db.execute("SELECT COALESCE(SUM(device_s), 0) FROM trials WHERE status != 'running'").fetchone()[0]
        phases = self.db.execute("SELECT COALESCE(SUM(device_s), 0) FROM phases").fetchone()[0]
        return float(trials) + float(phases)

    def log(self, kind: str, detail: Any = None) -> None:
        self._tx([("INSERT INTO events VALUES (?, ?, ?)", (time.time(), kind, json.dumps(detail)))])

    def events(self) -> list[tuple[float, str, Any]]:
        return [(at, kind, json.loads(d) if d else None) for at, kind, d in self.db.execute("SELECT * FROM events ORDER BY at")]

    # retrains -------------------------------------------------------------------------------
    def add_retrain(self, trial_id: int, recipe: dict, metrics: dict, device_s: float, checkpoint: str | None = None) -> None:
        """Record one retraining of a trial's architecture (the report shows it beside the proxy result)."""
        self._tx([("INSERT INTO retrains (trial_id, recipe, metrics, device_s, ended, checkpoint) VALUES (?, ?, ?, ?, ?, ?)",
                   (trial_id, json.dumps(recipe), json.dumps(metrics), float(device_s), time.time(), checkpoint))])

    def retrains(self) -> list[dict]:
        """Every retraining, oldest first: trial_id, recipe, metrics, device_s, ended, checkpoint."""
        rows = self.db.execute("SELECT trial_id, recipe, metrics, device_s, ended, checkpoint FROM retrains ORDER BY retrain_id")
        return [{"trial_id": t, "recipe": json.loads(r), "metrics": json.loads(m), "device_s": d, "ended": e, "checkpoint": c}
                for t, r, m, d, e, c in rows]

    # phases and inherited scores (weight sharing) --------------------------------------------
    def finish_phase(self, name: str, device_s: float, detail: dict, inherited: list[tuple] = (),
                     controller_state: dict | None = None) -> None:
        """Record a finished phase, the children it scored (arch_id, arch_json, decisions, metrics) and
        the controller state that follows from it, in one transaction."""
        statements = [("INSERT OR REPLACE INTO phases VALUES (?, ?, ?, ?)", (name, float(device_s), json.dumps(detail), time.time()))]
        statements += [("INSERT OR REPLACE INTO inherited VALUES (?, ?, ?, ?)", (a, arch, json.dumps(d), json.dumps(m)))
                       for a, arch, d, m in inherited]
        if controller_state is not None:
            statements.append(_controller_row(controller_state))
        self._tx(statements)

    def phases(self) -> dict[str, dict]:
        """Finished phases by name: device_s, detail, ended."""
        rows = self.db.execute("SELECT name, device_s, detail, ended FROM phases ORDER BY ended")
        return {n: {"device_s": d, "detail": json.loads(t or "{}"), "ended": e} for n, d, t, e in rows}

    def inherited(self) -> list[dict]:
        """Children scored with inherited weights: arch_id, arch, decisions, metrics."""
        rows = self.db.execute("SELECT arch_id, arch, decisions, metrics FROM inherited")
        return [{"arch_id": a, "arch": json.loads(arch), "decisions": json.loads(d), "metrics": json.loads(m)}
                for a, arch, d, m in rows]
