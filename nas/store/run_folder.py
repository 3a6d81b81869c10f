"""Guards around a run folder: one search at a time, and a new search never writes over another run.

The lock is an flock on `lock` in the folder, held for the search's whole life. The kernel drops it
when the process ends, SIGKILL included, so a killed search never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nas.store.store_file import DB_NAME, require_db

LOCK_NAME = "lock"


class RunInUse(ValueError):
    """Another nas search holds the run folder."""


class RunDirTaken(ValueError):
    """A new search was pointed at a folder that already holds something."""


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse a folder the search must not use: for a new run, one holding anything; for --resume, one with no run."""
    if resume:
        require_db(run_dir)
        return
    if (run_dir / DB_NAME).exists():
        holder = lock_holder(run_dir)
        if holder is not None:
            raise RunInUse(f"{run_dir} is in use by another nas search (pid {holder}); wait for it or stop it")
        raise RunDirTaken(f"{run_dir} already holds a run; continue it with nas search --resume {run_dir}, "
                          "or choose another --run-dir")
    if run_dir.exists() and (not run_dir.is_dir() or any(p.name != LOCK_NAME for p in run_dir.iterdir())):
        raise RunDirTaken(f"{run_dir} exists and is not a nas run folder; choose another --run-dir")


def _holder(fd: int) -> str:
    """The pid the lock's holder wrote (it may not have written it yet)."""
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return text if text.isdigit() else "unknown"


def lock_holder(run_dir: Path) -> str | None:
    """The pid of the process holding the folder's lock, or None when nobody holds it (creates nothing)."""
    try:
        fd = os.open(run_dir / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _holder(fd)
    finally:
        os.close(fd)  # a shared lock taken here ends with it


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold the folder's lock (creating the folder) for the block; RunInUse when another process holds it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # os.open's descriptors are not inherited by the processes Ray starts (PEP 446), so none of them
    # can keep the lock alive after this process is gone. The file stays: removing it would let a
    # second process lock a new file while a third still holds the old one.
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInUse(f"{run_dir} is in use by another nas search (pid {_holder(fd)}); "
                           "wait for it or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield run_dir
    finally:
        os.close(fd)  # releases the lock
