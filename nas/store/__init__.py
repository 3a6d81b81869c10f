"""The run store: one SQLite file per run folder (run.sqlite), its format checks, and the run-folder lock."""

from nas.store.run_folder import LOCK_NAME, RunDirTaken, RunInUse, check_run_dir, lock_holder, run_lock
from nas.store.run_store import RunStore, TrialRecord
from nas.store.store_file import DB_NAME, BadRunFile, NotARun

__all__ = ["BadRunFile", "DB_NAME", "LOCK_NAME", "NotARun", "RunDirTaken", "RunInUse", "RunStore", "TrialRecord",
           "check_run_dir", "lock_holder", "run_lock"]
