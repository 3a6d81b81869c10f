"""How `nas search` turns SIGINT/SIGTERM into a stop: flags while Tune runs children, KeyboardInterrupt in the driver's own work."""

from __future__ import annotations

import os
import signal

import pytest

from nas.search.run import _catch_signals


def _send(sig: int = signal.SIGINT) -> None:
    os.kill(os.getpid(), sig)  # the handler runs on the main thread before the next bytecode


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_while_children_run_a_signal_is_only_a_flag(sig, capfd):
    before = signal.getsignal(sig)
    with _catch_signals("stop") as interrupt:
        _send(sig)
        assert interrupt.signals == 1 and interrupt.stop_now
    assert signal.getsignal(sig) is before  # the caller's handler is back
    assert f"nas: {signal.Signals(sig).name}: starting no more children; stopping the running children" in capfd.readouterr().err


def test_finish_lets_the_children_end_until_a_second_signal():
    with _catch_signals("finish") as interrupt:
        _send()
        assert interrupt.signals == 1 and not interrupt.stop_now
        _send()
        assert interrupt.stop_now


def test_a_phase_is_stopped_by_a_stopping_signal_only(capfd):
    with _catch_signals("finish") as interrupt:
        interrupt.raise_when = "stops"
        _send()  # the first lets the phase finish
        assert "letting the current phase finish" in capfd.readouterr().err
        with pytest.raises(KeyboardInterrupt):
            _send()
        assert "stopping now" in capfd.readouterr().err


def test_before_anything_runs_any_signal_stops_at_once():
    with _catch_signals("finish") as interrupt:
        interrupt.raise_when = "any"
        with pytest.raises(KeyboardInterrupt):
            _send(signal.SIGTERM)


def test_install_takes_the_handlers_back_from_a_library():
    with _catch_signals("stop") as interrupt:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # what ray.init does with its own handler
        interrupt.install()
        _send(signal.SIGTERM)
        assert interrupt.signals == 1
