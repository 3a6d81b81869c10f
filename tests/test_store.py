"""The run database: marked as ours, refused when foreign, damaged or newer (its bytes untouched),
older runs read without writing and migrated when written; lost attempts charged; one search per folder."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.cli import main
from nas.report import run_state
from nas.search import SearchSettings, run_search
from nas.store import RunStore
from nas.store.run_folder import LOCK_NAME, RunInUse, check_run_dir, run_lock
from nas.store.store_file import ADDED_COLUMNS, APPLICATION_ID, SCHEMA_VERSION


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _settings(run_dir: Path, **changes) -> SearchSettings:
    return SearchSettings(**{"space": "nasbench_macro", "controller": "random", "dataset": "digits", "budget_trials": 2,
                             "run_dir": str(run_dir), **changes})


def _new_run(run_dir: Path, **changes) -> RunStore:
    store = RunStore(run_dir, create=True)
    store.save_settings({"search": _settings(run_dir, **changes).to_dict(), "created": time.time()})
    return store


def _legacy_run(run_dir: Path) -> Path:
    """A run as nas wrote it before the file was marked: no application_id, user_version 0, no heartbeat
    table, trials without the columns added since; one finished and one running child."""
    store = _new_run(run_dir)
    store.start_trial(0, "{}", "a0", [1])
    store.finish_trial(0, "ok", {"val_acc": 90.0, "macs": 1000}, 12.0, {})
    store.close()
    path = run_dir / "run.sqlite"
    with sqlite3.connect(path) as db:
        for column in ADDED_COLUMNS["trials"]:
            db.execute(f"ALTER TABLE trials DROP COLUMN {column}")
        db.execute("DROP TABLE heartbeat")
        db.execute("PRAGMA application_id=0")
        db.execute("PRAGMA user_version=0")
        db.execute("INSERT INTO trials VALUES (1, 'a1', '{}', '[2]', 'running', NULL, 0, 20.0, NULL, 1, NULL)")  # old layout
    db.close()
    return path


def _refused(argv: list[str], capsys) -> str:
    """Run the CLI, expect exit 2 and exactly one line on stderr; return it."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nas: error: "), err
    return err


# ------------------------------------------------------------------------------ the mark and the schema

def test_a_new_run_is_marked_as_ours(tmp_path):
    _new_run(tmp_path / "run").close()
    db = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert not (tmp_path / "run" / "run.sqlite.new").exists()


def test_a_legacy_run_is_read_without_writing_and_migrated_when_written(tmp_path, capsys):
    path = _legacy_run(tmp_path / "run")
    before = _sha(path)
    assert main(["report", str(tmp_path / "run"), "--json"]) == 0
    assert _sha(path) == before  # read through temporary views: nothing written
    state = run_state(tmp_path / "run")
    assert [(t.status, t.lost_device_s, t.error) for t in state.trials] == [("ok", 0, None), ("running", 0, None)]
    assert state.budget.spent_device_hours == pytest.approx(12.0 / 3600)
    store = RunStore(tmp_path / "run")  # opened for writing, as --resume and retrain do: brought up to date
    store.beat(30.0)
    store.charge_killed_attempts(devices=2.0)
    store.finish_trial(1, "failed: boom", {}, 1.0, {}, error="Traceback: boom")
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()
    trials = run_state(tmp_path / "run").trials
    assert (trials[0].val_acc, trials[0].device_s) == (90.0, 12.0)  # old rows kept
    assert (trials[1].lost_device_s, trials[1].error) == (20.0, "Traceback: boom")


def test_a_run_from_a_newer_nas_is_refused(tmp_path, capsys):
    _new_run(tmp_path / "run").close()
    path = tmp_path / "run" / "run.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    before = _sha(path)
    assert "upgrade nas" in _refused(["report", str(tmp_path / "run")], capsys)
    assert "upgrade nas" in _refused(["search", "--resume", str(tmp_path / "run")], capsys)
    assert _sha(path) == before


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE foo (x)")
        db.execute("CREATE TABLE settings (k, v)")
        db.execute("INSERT INTO foo VALUES (1)")


def _other_program(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA application_id=1234")
        for table in ("settings", "trials"):
            db.execute(f"CREATE TABLE {table} (x)")


def _truncated(path: Path) -> None:
    store = _new_run(path.parent)
    for i in range(200):  # enough rows for several pages, so the cut lands inside the tables
        store.start_trial(i, "{\"pad\": \"" + "x" * 400 + "\"}", f"a{i}", [i])
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("make, says", [
    (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    (lambda p: p.write_bytes(os.urandom(8192)), "damaged (file is not a database)"),
    (_truncated, "damaged (database disk image is malformed)"),
    (_foreign, "not a nas run database (it has tables foo, settings)"),
    (_other_program, "belongs to another program"),
], ids=["empty", "random", "truncated", "foreign", "other-program"])
def test_a_bad_run_file_is_one_line_and_left_untouched(tmp_path, capsys, make, says):
    run = tmp_path / "run"
    run.mkdir()
    path = run / "run.sqlite"
    make(path)
    before = _sha(path)
    for argv in (["report", str(run)], ["report", str(run), "--json"], ["search", "--resume", str(run)],
                 ["export", str(run), "--trial", "0", "-o", str(tmp_path / "x.py")],
                 ["retrain", str(run), "--trial", "0", "--epochs", "1"]):
        err = _refused(argv, capsys)
        assert str(path) in err and says in err, (argv, err)
        assert _sha(path) == before, argv
    with pytest.raises(ValueError, match="already holds a run"):  # a new search does not take it over either
        run_search(_settings(run))
    assert _sha(path) == before


# ------------------------------------------------------------------------------ lost attempts are charged

def test_a_killed_attempt_is_charged_up_to_the_last_heartbeat(tmp_path):
    store = _new_run(tmp_path / "run")
    started = [store.start_trial(i, "{}", f"a{i}", [i]) for i in range(3)]
    store.finish_trial(0, "ok", {"val_acc": 50.0}, 7.0, {})
    beat = started[1] + 4.0
    store.beat(beat)
    store.charge_killed_attempts(devices=0.5)  # the driver died: trials 1 and 2 were running
    store.charge_killed_attempts(devices=0.5)  # a resume killed before restarting them charges nothing more
    lost = {t.trial_id: t.lost_device_s for t in store.trials()}
    assert lost[0] == 0
    assert lost[1] == pytest.approx((beat - started[1]) * 0.5)
    assert lost[2] == pytest.approx(max(0.0, beat - started[2]) * 0.5)
    store.start_trial(1, "{}", "a1", [1])  # the resumed driver starts it again
    assert [t.attempts for t in store.trials()] == [1, 2, 1]
    total = 7.0 + lost[1] + lost[2]  # running trials' lost attempts count, their unfinished ones not yet
    assert store.device_seconds() == pytest.approx(total)
    store.close()
    state = run_state(tmp_path / "run")
    assert state.budget.spent_device_hours * 3600 == pytest.approx(total)
    assert [t.lost_device_s for t in state.trials] == pytest.approx([lost[0], lost[1], lost[2]])


def test_a_retried_attempt_is_charged_and_the_next_one_starts(tmp_path):
    store = _new_run(tmp_path / "run")
    started = store.start_trial(0, "{}", "a0", [0])
    store.retry_trial(0, lost_device_s=3.0, at=started + 3.0)
    store.finish_trial(0, "ok", {}, 5.0, {})
    (t,) = store.trials()
    assert (t.attempts, t.lost_device_s, t.started, t.device_s) == (2, 3.0, started + 3.0, 5.0)
    assert store.device_seconds() == pytest.approx(8.0)


def test_the_searcher_charges_an_attempt_tune_retries(tmp_path):
    from tests.test_search import finished, make_searcher

    settings = _settings(tmp_path / "run", gpus_per_trial=0.5)
    searcher, _, store = make_searcher(tmp_path, settings)
    config = searcher.suggest("t0")
    searcher.attempt_lost("t0")
    searcher.on_trial_complete("t0", finished(80.0, config["macs"], 2.0))
    (t,) = store.trials()
    assert t.attempts == 2 and t.lost_device_s > 0
    assert store.device_seconds() == pytest.approx(1.0 + t.lost_device_s)  # 2 s at half a device, plus the lost one
    assert searcher.budget.spent_s == pytest.approx(store.device_seconds())


# ------------------------------------------------------------------------------ one search per run folder

def _holder(run_dir: Path) -> subprocess.Popen:
    """Another process holding the folder's lock until killed."""
    code = ("import sys, time\nfrom nas.store.run_folder import run_lock\nwith run_lock(sys.argv[1]):\n"
            "    print('locked', flush=True)\n    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.stdout.readline() == "locked\n"
    return proc


def test_a_locked_run_folder_refuses_a_second_search_until_its_holder_dies(tmp_path, capsys):
    run = tmp_path / "run"
    _new_run(run).close()
    proc = _holder(run)
    try:
        err = _refused(["search", "--resume", str(run)], capsys)
        assert f"is in use by another nas search (pid {proc.pid})" in err
        with pytest.raises(RunInUse, match=f"pid {proc.pid}"):
            run_search(_settings(run), resume=True)
    finally:
        proc.kill()
        proc.wait()
    with run_lock(run):  # the kernel released it with the process
        assert (run / LOCK_NAME).read_text().strip() == str(os.getpid())


@pytest.mark.ray
def test_a_new_search_on_a_locked_empty_folder_names_the_holder(tmp_path):
    proc = _holder(tmp_path / "new")
    try:
        with pytest.raises(RunInUse, match=f"pid {proc.pid}"):
            run_search(_settings(tmp_path / "new"))
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_is_not_inherited_by_child_processes(tmp_path):
    with run_lock(tmp_path / "run"):
        child = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"],
                                 close_fds=False, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "up\n"  # running its own program: what it inherited is what it keeps
    try:
        with run_lock(tmp_path / "run"):  # the child still lives, and does not hold the lock
            pass
    finally:
        child.kill()
        child.wait()


def test_a_new_search_refuses_a_folder_that_holds_something(tmp_path, capsys):
    run = tmp_path / "run"
    _new_run(run).close()
    before = _sha(run / "run.sqlite")
    search = ["search", "--space", "nasbench_macro", "--dataset", "digits", "--budget-trials", "1", "--gpus-per-trial", "0"]
    assert "already holds a run; continue it with nas search --resume" in _refused(search + ["--run-dir", str(run)], capsys)
    assert _sha(run / "run.sqlite") == before
    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"x")
    assert "exists and is not a nas run folder" in _refused(search + ["--run-dir", str(other)], capsys)
    assert sorted(p.name for p in other.iterdir()) == ["a.jpg"]  # not even a lock file left there
    assert "not a nas run folder (no run.sqlite)" in _refused(["search", "--resume", str(other)], capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    check_run_dir(empty, resume=False)  # an empty folder is fine
