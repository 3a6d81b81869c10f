"""The phase contract: work a controller declares to run before its child trials (e.g. training a supernet).

A controller's ``phases()`` lists Phase objects; the search engine runs them in order, records
each finished one in the run store (a recorded phase is skipped on resume) and charges its
device-seconds to the budget. The engine knows nothing of what a phase does.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO


@dataclass(frozen=True)
class PhaseResult:
    """What a finished phase leaves: device-seconds, a JSON-able detail, optional inherited scores.

    inherited: children scored without training from scratch, as (arch_id, arch_json, decisions, metrics);
    the report compares them with the same children's stand-alone results.
    """

    device_s: float
    detail: dict = field(default_factory=dict)
    inherited: list[tuple] = field(default_factory=list)


@dataclass
class PhaseContext:
    """What a phase may use: the controller (which it may update), the search settings, data, run folder."""

    controller: Any
    settings: Any
    store: Any
    splits: Any
    run_dir: Path
    out: TextIO
    held_devices: float = 0.0  # what the running phase holds (set by the phase): charged if it is interrupted


@dataclass(frozen=True)
class Phase:
    """One phase: its name (the store's key) and the function that runs it, named "module:function".

    The function is imported when the phase runs, so a controller can declare a phase implemented in
    a package above it (its training code) without importing it. output: a file the phase leaves in
    the run folder; a recorded phase whose file is gone runs again.
    """

    name: str
    runner: str
    output: str | None = None

    def run(self, context: PhaseContext) -> PhaseResult:
        return self.function()(context)

    def function(self) -> Callable[[PhaseContext], PhaseResult]:
        module, _, name = self.runner.partition(":")
        return getattr(importlib.import_module(module), name)

    def done(self, recorded: dict, run_dir: Path) -> bool:
        """Whether a run already finished this phase (and still has what it left)."""
        return self.name in recorded and (self.output is None or (Path(run_dir) / self.output).exists())
