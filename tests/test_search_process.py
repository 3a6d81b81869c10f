"""`nas search` as a user runs it: killed with SIGKILL and resumed; joined to a separate Ray cluster."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from nas.report import phase_seconds, run_state
from nas.store import RunStore

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # every test here runs `nas search` on Ray in a subprocess

SEARCH = [sys.executable, "-m", "nas", "search", "--space", "resnet_like", "--dataset", "digits", "--epochs", "2",
          "--batch-size", "64", "--lr", "0.05", "--max-macs", "2M", "--controller-option", "population=3",
          "--controller-option", "tournament=2"]


def _killable(run_dir) -> bool:
    """Two children finished, and the driver's last heartbeat came after every running child started
    (so each of them has device time on record to be charged)."""
    if not (run_dir / "run.sqlite").exists():
        return False
    store = RunStore(run_dir, readonly=True)
    try:
        trials, beat = store.trials(), store.heartbeat()
    finally:
        store.close()
    running = [t.started for t in trials if t.status == "running"]
    return len(trials) - len(running) >= 2 and bool(running) and beat is not None and beat > max(running)


def test_resume_after_sigkill_loses_and_repeats_nothing(tmp_path, capsys):
    from nas.cli import main

    run = tmp_path / "run"
    # children of a few seconds each, so the kill lands while some run, after a heartbeat that follows their start
    proc = subprocess.Popen(SEARCH + ["--epochs", "4", "--budget-trials", "6", "--run-dir", str(run)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (run / "run.sqlite").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert main(["search", "--resume", str(run)]) == 2  # one search at a time on a run folder
    assert f"in use by another nas search (pid {proc.pid})" in capsys.readouterr().err
    assert main(SEARCH[3:] + ["--budget-trials", "2", "--run-dir", str(run)]) == 2  # nor a new one over it
    assert f"in use by another nas search (pid {proc.pid})" in capsys.readouterr().err
    while not _killable(run) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray processes it started
    proc.wait()
    killed = RunStore(run, readonly=True)  # what the killed driver left: its running attempts and last heartbeat
    try:
        last_beat = killed.heartbeat()
        was_running = {t.trial_id: t.started for t in killed.trials() if t.status == "running"}
    finally:
        killed.close()
    assert any(started < last_beat for started in was_running.values())
    before = {t.trial_id: t for t in run_state(run).trials if t.status != "running"}
    assert len(before) >= 2
    done = subprocess.run([sys.executable, "-m", "nas", "search", "--resume", str(run)], capture_output=True,
                          text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    state = run_state(run)
    ids = [t.trial_id for t in state.trials]
    assert ids == list(range(6))  # nothing lost, nothing repeated, the budget respected
    assert all(t.status == "ok" for t in state.trials)
    for trial_id, old in before.items():  # finished children are kept as they were
        now = state.trials[trial_id]
        assert (now.arch_id, now.val_acc, now.ended) == (old.arch_id, old.val_acc, old.ended)
    assert [e.kind for e in state.events if e.kind in ("start", "resume")] == ["start", "resume"]
    for t in state.trials:  # each killed attempt is charged from its start to the driver's last heartbeat
        expected = max(0.0, last_beat - was_running[t.trial_id]) if t.trial_id in was_running else 0.0
        assert t.lost_device_s == pytest.approx(expected), t.trial_id
        assert t.attempts == (2 if t.trial_id in was_running else 1)
    charged = sum(t.device_s + t.lost_device_s for t in state.trials) + phase_seconds(state.phases)
    assert state.budget.spent_device_hours * 3600 == pytest.approx(charged)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_cluster(address: str, env: dict, head: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and head.poll() is None:
        status = subprocess.run(["ray", "status", f"--address={address}"], capture_output=True, timeout=60, env=env)
        if status.returncode == 0:
            return
        time.sleep(1)
    raise AssertionError(f"the Ray head at {address} did not come up")


def test_search_joins_an_existing_ray_cluster(tmp_path):
    port = _free_port()
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "RAY_AUTH_MODE": "token"}  # Ray's token authentication, as a real cluster runs it
    # --block keeps the head's processes in this test's own session: the test stops exactly that process group by pid.
    # Its own --temp-dir: `ray start` records the head there, not in /tmp/ray where ray.init() would find it later.
    temp_dir = tempfile.mkdtemp(prefix="nas-ray-")  # short: Ray's socket paths must stay under ~100 characters
    head = subprocess.Popen(["ray", "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                             "--disable-usage-stats", "--block", f"--temp-dir={temp_dir}"], start_new_session=True,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_cluster(address, env, head)
        run = tmp_path / "run"
        done = subprocess.run(SEARCH + ["--budget-trials", "2", "--epochs", "1", "--run-dir", str(run),
                                        "--ray-address", address], capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        assert run_state(run).counts.ok == 2
        status = subprocess.run(["ray", "status", f"--address={address}"], capture_output=True, text=True,
                                timeout=60, env=env)
        assert status.returncode == 0  # the cluster outlives the search that joined it
        local = tmp_path / "local"
        done = subprocess.run(SEARCH + ["--budget-trials", "1", "--epochs", "1", "--run-dir", str(local)],
                              capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-2000:]  # without --ray-address: a private instance, not this one
        assert run_state(local).counts.ok == 1
    finally:
        _stop_group(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _stop_group(leader: subprocess.Popen) -> None:
    """SIGTERM, a grace period, then SIGKILL to whatever is left of the process group this test started."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(leader.pid, sig)
        except ProcessLookupError:
            return
        try:
            leader.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass


def _running_trial(run_dir) -> bool:
    """Whether the store holds a child marked running."""
    if not (run_dir / "run.sqlite").exists():
        return False
    store = RunStore(run_dir, readonly=True)
    try:
        return any(t.status == "running" for t in store.trials())
    finally:
        store.close()


def _signal_search(cmd: list[str], signals: list[tuple[int, bool]], ready) -> tuple[subprocess.Popen, str]:
    """Start `nas search` in its own session, wait until ready() (or, given a string, until stderr shows it),
    send each (signal, to the whole group) once the previous one was acknowledged; returns the ended process
    and its stderr."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        if isinstance(ready, str):
            seen += [line for line in _lines_until(proc.stderr, ready)]
        else:
            deadline = time.time() + 300  # a safety net only: the loop waits on the store
            while not ready() and time.time() < deadline and proc.poll() is None:
                time.sleep(0.2)
        assert proc.poll() is None, "".join(seen) + proc.communicate()[1][-2000:]
        for k, (sig, group) in enumerate(signals, 1):
            # a terminal's Ctrl-C signals the whole foreground group (Ray's processes too); `kill` the driver alone
            os.killpg(proc.pid, sig) if group else os.kill(proc.pid, sig)
            for line in proc.stderr:  # each signal is acknowledged before the next is sent (the kernel merges two pending)
                seen.append(line)
                if "starting no more children" in line and sum("nas: SIG" in x for x in seen) == k:
                    break
            else:
                break
        _, err = proc.communicate(timeout=300)
    finally:
        _stop_group(proc)
    return proc, "".join(seen) + err


@pytest.mark.parametrize("signals", [[(signal.SIGINT, True)], [(signal.SIGTERM, False)],
                                     [(signal.SIGINT, True), (signal.SIGINT, True)]], ids=["ctrl-c", "term", "ctrl-c-twice"])
def test_a_signal_stops_the_search_and_resume_completes_it(tmp_path, signals):
    run = tmp_path / "run"
    extra = ["--on-interrupt", "finish"] if len(signals) == 2 else []  # the second signal stops the children at once
    proc, err = _signal_search(SEARCH + ["--epochs", "30", "--budget-trials", "2", "--run-dir", str(run)] + extra,
                               signals, lambda: _running_trial(run))
    assert proc.returncode == 130, err[-2000:]
    assert f"interrupted; resume with nas search --resume {run}" in err
    state = run_state(run)
    assert not [t for t in state.trials if t.status == "running"]
    stopped = [t for t in state.trials if t.status == "stopped: interrupted"]
    assert stopped and all(t.lost_device_s > 0 for t in stopped)  # their device time is charged
    assert "interrupted" in [e.kind for e in state.events]
    if signals[0][0] != signal.SIGINT or len(signals) > 1:
        return  # resuming is the same whatever stopped the run: once is enough (each resume trains 30 epochs)
    done = subprocess.run([sys.executable, "-m", "nas", "search", "--resume", str(run)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    state = run_state(run)
    assert [t.trial_id for t in state.trials] == [0, 1]
    assert all(t.status == "ok" for t in state.trials)


def _lines_until(stream, text: str):
    """The stream's lines up to and including the first that holds text."""
    for line in stream:
        yield line
        if text in line:
            return


def test_ctrl_c_during_the_supernet_phase_stops_it_and_charges_it(tmp_path):
    run = tmp_path / "run"
    cmd = SEARCH[:-4] + ["--controller", "weight-sharing", "--controller-option", "supernet_epochs=200",
                         "--controller-option", "children=4", "--controller-option", "retrain=1",
                         "--budget-trials", "1", "--run-dir", str(run)]
    proc, err = _signal_search(cmd, [(signal.SIGINT, True)], "training the supernet")
    assert proc.returncode == 130, err[-2000:]
    assert f"interrupted; resume with nas search --resume {run}" in err
    state = run_state(run)
    assert list(state.phases) == ["supernet (interrupted)"] and not state.trials  # no child started
    assert state.phases["supernet (interrupted)"]["device_s"] > 0  # its device time is charged
    assert state.budget.spent_device_hours * 3600 == pytest.approx(phase_seconds(state.phases))
