"""Trial outcomes read and write the store's status strings unchanged; objectives are one table."""

from __future__ import annotations

import numpy as np
import pytest

from nas.objectives import OBJECTIVES, objective_vector
from nas.outcome import Outcome, TrialStatus


@pytest.mark.parametrize("text, status, reason", [
    ("ok", TrialStatus.OK, ""), ("diverged", TrialStatus.DIVERGED, ""), ("stopped", TrialStatus.STOPPED, ""),
    ("running", TrialStatus.RUNNING, ""), ("failed", TrialStatus.FAILED, ""),
    ("failed: out of memory: CUDA out of memory: 2.00 GiB", TrialStatus.FAILED, "out of memory: CUDA out of memory: 2.00 GiB"),
])
def test_stored_strings_parse_and_write_back_unchanged(text, status, reason):
    outcome = Outcome.parse(text)
    assert (outcome.status, outcome.reason) == (status, reason)
    assert str(outcome) == text


def test_usable_and_unusable_outcomes():
    assert [Outcome.parse(s).usable for s in ("ok", "stopped", "diverged", "failed: x", "running")] == [
        True, True, False, False, False]
    assert [Outcome.parse(s).unusable for s in ("ok", "stopped", "diverged", "failed: x", "running")] == [
        False, False, True, True, False]


def test_a_status_no_nas_wrote_is_a_failure_keeping_the_text():
    assert Outcome.parse("exploded") == Outcome(TrialStatus.FAILED, "exploded")


def test_objective_vector_minimises_every_objective_and_skips_missing_values():
    assert OBJECTIVES["accuracy"].key == "val_acc"
    metrics = {"val_acc": np.float32(90.0), "macs": 1000, "params": 5}
    assert objective_vector(metrics, ("accuracy", "macs", "params")) == [-90.0, 1000.0, 5.0]
    assert objective_vector({"val_acc": float("nan"), "macs": 1}, ("accuracy",)) is None
    assert objective_vector({"macs": 1}, ("accuracy", "macs")) is None
    assert objective_vector({"val_acc": True}, ("accuracy",)) is None
