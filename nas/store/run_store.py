"""The run folder: one SQLite file of truth (settings, trials, controller state), plus checkpoints.

SQLite in WAL mode with synchronous=FULL: every committed transaction survives a SIGKILL, and a
trial's result and the controller state that learned from it are written in one transaction, so
a resumed run never sees one without the other.

The file is marked as ours (PRAGMA application_id and user_version) and checked read-only before
anything is written to it (nas.store.store_file): another program's database, a damaged file or one from
a newer nas is refused, its bytes untouched.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.arch import Arch
from nas.outcome import Outcome, TrialStatus
from nas.store.store_file import DB_NAME, BadRunFile, NotARun, connect_checked, create_db, damaged, require_db

__all__ = ["DB_NAME", "BadRunFile", "NotARun", "RunStore", "TrialRecord"]

TRIAL_COLUMNS = ("trial_id, arch_id, arch, decisions, status, metrics, device_s, started, ended, attempts, checkpoint, "
                 "lost_device_s, error")


def _controller_row(state: dict) -> tuple[str, tuple]:
    """The statement that saves the controller state (one row, replaced)."""
    return "INSERT OR REPLACE INTO controller VALUES (0, ?, ?)", (json.dumps(state), time.time())


def _arch(text: str) -> Arch | None:
    """The stored architecture, parsed once here; None when the row holds none (reports say so, and go on)."""
    try:
        data = json.loads(text)
        data.pop("arch_id", None)  # the trials table has its own arch_id column; re-hashing every row is wasted
        return Arch.from_dict(data)
    except (ValueError, AttributeError):
        return None


@dataclass
class TrialRecord:
    """One child as the store keeps it, its architecture parsed and its status typed."""

    trial_id: int
    arch_id: str
    arch: Arch | None  # None: the stored JSON is no architecture (an early run's placeholder, a damaged row)
    decisions: list[int]
    outcome: Outcome
    metrics: dict
    device_s: float
    started: float | None
    ended: float | None
    attempts: int
    checkpoint: str | None
    lost_device_s: float = 0.0  # device-seconds of earlier attempts that were killed or lost
    error: str | None = None  # the full traceback of a failed child

    @property
    def status(self) -> str:
        """The status as stored ("ok", "failed: <reason>", ...)."""
        return str(self.outcome)

    @property
    def ok(self) -> bool:
        return self.outcome.status is TrialStatus.OK

    @property
    def val_acc(self) -> float | None:
        return self.metrics.get("val_acc")

    @property
    def test_acc(self) -> float | None:
        return self.metrics.get("test_acc")

    @property
    def macs(self) -> float | None:
        return self.metrics.get("macs")

    @property
    def params(self) -> float | None:
        return self.metrics.get("params")

    @property
    def reference(self) -> str | None:
        """The name of a reference architecture trained in the run (kept out of the front), else None."""
        return self.metrics.get("reference")

    def to_dict(self) -> dict:
        """Plain JSON-able fields, as the store's columns hold them."""
        d = {k: v for k, v in self.__dict__.items() if k != "outcome"}
        return {**d, "arch": self.arch.to_dict() if self.arch else {}, "status": self.status}


class RunStore:
    """Read and append to one run folder; opening a folder that is not a run is an error."""

    def __init__(self, run_dir: str | Path, create: bool = False, readonly: bool = False):
        """create: make a new run when the folder has none; readonly: never write (nas report, nas export)."""
        self.dir = Path(run_dir)
        self.path = self.dir / DB_NAME
        if create and not self.path.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            create_db(self.path)
        require_db(self.dir)
        self.db = connect_checked(self.path, readonly)
        if not readonly:
            (self.dir / "checkpoints").mkdir(exist_ok=True)

    def close(self) -> None:
        self.db.close()

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Every row of a query; a damaged page found only now is a one-line error too."""
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as err:
            raise damaged(self.path, err) from None

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
        return {k: json.loads(v) for k, v in self._rows("SELECT key, value FROM settings")}

    # trials ---------------------------------------------------------------------------------
    def start_trial(self, trial_id: int, arch_json: str, arch_id: str, decisions: list[int]) -> float:
        """Mark a child as running (starting it again bumps attempts); returns the attempt's start time."""
        started = time.time()
        self._tx([("""INSERT INTO trials (trial_id, arch_id, arch, decisions, status, started)
                      VALUES (?, ?, ?, ?, 'running', ?)
                      ON CONFLICT(trial_id) DO UPDATE SET status='running', attempts=attempts+1, started=excluded.started""",
                   (trial_id, arch_id, arch_json, json.dumps(decisions), started))])
        return started

    def finish_trial(self, trial_id: int, status: Outcome | str, metrics: dict, device_s: float, controller_state: dict,
                     checkpoint: str | None = None, error: str | None = None) -> None:
        """Record a finished child (error: a failed child's traceback) and the controller state that has
        learned from it, atomically."""
        self._tx([
            ("UPDATE trials SET status=?, metrics=?, device_s=?, ended=?, checkpoint=?, error=? WHERE trial_id=?",
             (str(status), json.dumps(metrics), float(device_s), time.time(), checkpoint, error, trial_id)),
            _controller_row(controller_state),
        ])

    def interrupt_trial(self, trial_id: int, status: str, device_s: float, controller_state: dict) -> None:
        """Record a child a signal stopped: its attempt is charged as lost (a rerun's own time replaces device_s)."""
        self._tx([("UPDATE trials SET status=?, lost_device_s=lost_device_s+?, started=NULL, ended=? WHERE trial_id=?",
                   (status, float(device_s), time.time(), trial_id)),
                  _controller_row(controller_state)])

    # attempts that never reported (a killed driver, a lost worker) are charged too ----------------
    def beat(self, at: float | None = None) -> None:
        """The driver is alive: a killed attempt is charged up to the last beat."""
        self._tx([("INSERT OR REPLACE INTO heartbeat VALUES (0, ?)", (time.time() if at is None else at,))])

    def heartbeat(self) -> float | None:
        """When the last driver last beat (None before the first beat)."""
        rows = self._rows("SELECT at FROM heartbeat WHERE id=0")
        return rows[0][0] if rows else None

    def charge_killed_attempts(self, devices: float) -> None:
        """Charge each child still marked running (its driver was killed) from its start to the last
        heartbeat; its attempt is then over (started NULL), so charging twice adds nothing."""
        self._tx([("""UPDATE trials SET started=NULL, lost_device_s = lost_device_s
                      + MAX(0, COALESCE((SELECT at FROM heartbeat WHERE id=0) - started, 0)) * ?
                      WHERE status=?""", (float(devices), TrialStatus.RUNNING.value))])

    def retry_trial(self, trial_id: int, lost_device_s: float, at: float) -> None:
        """Charge an attempt Tune is retrying (its worker was lost) and start the next one at `at`."""
        self._tx([("UPDATE trials SET lost_device_s=lost_device_s+?, attempts=attempts+1, started=? WHERE trial_id=?",
                   (float(lost_device_s), at, trial_id))])

    def save_controller(self, state: dict) -> None:
        self._tx([_controller_row(state)])

    def controller_state(self) -> dict | None:
        rows = self._rows("SELECT state FROM controller WHERE id=0")
        return json.loads(rows[0][0]) if rows else None

    def set_checkpoint(self, trial_id: int, path: str | None) -> None:
        self._tx([("UPDATE trials SET checkpoint=? WHERE trial_id=?", (path, trial_id))])

    def trials(self, status: str | None = None) -> list[TrialRecord]:
        sql = f"SELECT {TRIAL_COLUMNS} FROM trials" + (" WHERE status=?" if status else "") + " ORDER BY trial_id"
        rows = self._rows(sql, (status,) if status else ())
        return [TrialRecord(r[0], r[1], _arch(r[2]), json.loads(r[3]), Outcome.parse(r[4]),
                            json.loads(r[5] or "{}"), r[6], r[7], r[8], r[9], r[10], r[11], r[12]) for r in rows]

    def iter_finished(self) -> Iterator[TrialRecord]:
        yield from (t for t in self.trials() if t.outcome.finished)

    def device_seconds(self) -> float:
        """Device-seconds charged to the budget: finished children, every lost attempt (of running
        children too) and phases (a supernet's training); the one definition the budget and reports use."""
        trials = self._rows("SELECT COALESCE(SUM(CASE WHEN status != ? THEN device_s ELSE 0 END + lost_device_s), 0) "
                            "FROM trials", (TrialStatus.RUNNING.value,))[0][0]
        phases = self._rows("SELECT COALESCE(SUM(device_s), 0) FROM phases")[0][0]
        return float(trials) + float(phases)

    def log(self, kind: str, detail: Any = None) -> None:
        self._tx([("INSERT INTO events VALUES (?, ?, ?)", (time.time(), kind, json.dumps(detail)))])

    def events(self) -> list[tuple[float, str, Any]]:
        return [(at, kind, json.loads(d) if d else None) for at, kind, d in self._rows("SELECT * FROM events ORDER BY at")]

    # retrains -------------------------------------------------------------------------------
    def add_retrain(self, trial_id: int, recipe: dict, metrics: dict, device_s: float, checkpoint: str | None = None) -> None:
        """Record one retraining of a trial's architecture (the report shows it beside the proxy result)."""
        self._tx([("INSERT INTO retrains (trial_id, recipe, metrics, device_s, ended, checkpoint) VALUES (?, ?, ?, ?, ?, ?)",
                   (trial_id, json.dumps(recipe), json.dumps(metrics), float(device_s), time.time(), checkpoint))])

    def retrains(self) -> list[dict]:
        """Every retraining, oldest first: trial_id, recipe, metrics, device_s, ended, checkpoint."""
        rows = self._rows("SELECT trial_id, recipe, metrics, device_s, ended, checkpoint FROM retrains ORDER BY retrain_id")
        return [{"trial_id": t, "recipe": json.loads(r), "metrics": json.loads(m), "device_s": d, "ended": e, "checkpoint": c}
                for t, r, m, d, e, c in rows]

    # phases (work a controller runs before its children, nas.phase) and their inherited scores ---
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

    def charge_interrupted_phase(self, name: str, device_s: float) -> None:
        """Charge the device time of a phase a signal stopped, as the row "NAME (interrupted)" (added up over
        attempts); the phase itself stays unrecorded, so a resume runs it again."""
        row = f"{name} (interrupted)"
        self._tx([("INSERT INTO phases VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET device_s = device_s + "
                   "excluded.device_s, detail = json_set(detail, '$.attempts', json_extract(detail, '$.attempts') + 1), "
                   "ended = excluded.ended", (row, float(device_s), json.dumps({"attempts": 1}), time.time()))])

    def phases(self) -> dict[str, dict]:
        """Finished phases by name: device_s, detail, ended."""
        rows = self._rows("SELECT name, device_s, detail, ended FROM phases ORDER BY ended")
        return {n: {"device_s": d, "detail": json.loads(t or "{}"), "ended": e} for n, d, t, e in rows}

    def inherited(self) -> list[dict]:
        """Children scored with inherited weights: arch_id, arch, decisions, metrics."""
        rows = self._rows("SELECT arch_id, arch, decisions, metrics FROM inherited")
        return [{"arch_id": a, "arch": json.loads(arch), "decisions": json.loads(d), "metrics": json.loads(m)}
                for a, arch, d, m in rows]
