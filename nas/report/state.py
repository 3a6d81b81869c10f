"""The state of a run folder as data: settings, every trial, budget spent, the Pareto front.

Also the pieces `nas report`, `nas export RUN_DIR` and `nas retrain` share: the front as table rows
with summaries, the hypervolume against device-hours (one incremental sweep); nas.report.files writes them.
Reference architectures trained in a run carry `"reference": "<name>"` in their metrics; they are
drawn and listed, but kept out of the front and the hypervolume, which measure what the search found.
"""

from __future__ import annotations

import gc
import math
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from nas.objectives import finite, objective_vector
from nas.outcome import TrialStatus
from nas.pareto import hypervolume_2d, pareto_front
from nas.report.phases import inherited_summary
from nas.store.run_store import RunStore, TrialRecord

FLOPS_NOTE = "macs are multiply-adds"


@dataclass(frozen=True)
class Counts:
    """Trials by outcome (failed: every unusable outcome; a reference architecture counts as a trial)."""

    total: int
    ok: int
    running: int
    failed: int
    stopped: int

    def to_dict(self) -> dict:
        return {"total": self.total, "ok": self.ok, "running": self.running, "failed": self.failed,
                "stopped": self.stopped}


@dataclass(frozen=True)
class BudgetUse:
    """The run's device-hour budget (None: a trial budget only) and what it has spent."""

    gpu_hours: float | None
    spent_device_hours: float

    @property
    def spent_fraction(self) -> float | None:
        return self.spent_device_hours / self.gpu_hours if self.gpu_hours else None

    @property
    def overspent_hours(self) -> float | None:
        """Device-hours spent beyond the budget (children in flight when it ran out finish); None within it."""
        if not self.gpu_hours or self.spent_device_hours <= self.gpu_hours:
            return None
        return self.spent_device_hours - self.gpu_hours

    def overspent_line(self) -> str | None:
        """A one-line warning when the run spent more than its budget."""
        over = self.overspent_hours
        if over is None:
            return None
        return (f"over budget: spent {self.spent_device_hours:.4f} of {self.gpu_hours:g} device-hours "
                f"({over:.4f} more, {self.spent_device_hours / self.gpu_hours:.0%} of the budget)")

    def to_dict(self) -> dict:
        return {"gpu_hours": self.gpu_hours, "spent_device_hours": self.spent_device_hours,
                "spent_fraction": self.spent_fraction, "overspent_device_hours": self.overspent_hours}


class Event(NamedTuple):
    """One line of the run's event log (start, resume, end, ...)."""

    at: float
    kind: str
    detail: Any


@dataclass(frozen=True)
class RunState:
    """A run folder as read: its settings, every trial (with its Arch), the budget spent and the front.

    `to_dict()` is the JSON of `nas report --json` (plus its "front" rows, added by the CLI).
    """

    run_dir: str
    settings: dict  # the search settings (SearchSettings.to_dict() as stored)
    objectives: tuple[str, ...]
    trials: tuple[TrialRecord, ...]
    counts: Counts
    budget: BudgetUse
    pareto_front: tuple[TrialRecord, ...]  # by MACs, then trial id
    hypervolume: float | None
    hypervolume_macs: float | None  # the MACs end of the hypervolume box (its accuracy end is 0)
    references: tuple[TrialRecord, ...]
    retrains: tuple[dict, ...]  # RunStore.retrains(), oldest first
    phases: dict[str, dict]  # RunStore.phases()
    inherited: dict | None  # nas.report.phases.inherited_summary, when a phase scored children
    events: tuple[Event, ...]

    def trial(self, trial_id: int) -> TrialRecord | None:
        return next((t for t in self.trials if t.trial_id == trial_id), None)

    def to_dict(self) -> dict:
        """Plain JSON-able data, the keys in their documented order."""
        return {
            "run_dir": self.run_dir,
            "settings": self.settings,
            "objectives": list(self.objectives),
            "trials": [trial_json(t) for t in self.trials],
            "counts": self.counts.to_dict(),
            "budget": self.budget.to_dict(),
            "pareto_front": [trial_json(t) for t in self.pareto_front],
            "hypervolume": self.hypervolume,
            "hypervolume_reference": {"val_acc": 0.0, "macs": self.hypervolume_macs},
            "references": [trial_json(t) for t in self.references],
            "retrains": list(self.retrains),
            "phases": self.phases,
            "weight_sharing": self.inherited,  # key kept for old readers
            "events": [{"at": e.at, "kind": e.kind, "detail": e.detail} for e in self.events],
            "flops_note": FLOPS_NOTE,
        }


def trial_json(t: TrialRecord) -> dict:
    """One trial as the report's JSON shows it: the headline metrics beside the whole record."""
    return {"trial_id": t.trial_id, "arch_id": t.arch_id, "status": t.status, "decisions": t.decisions,
            "val_acc": t.val_acc, "test_acc": t.test_acc, "macs": t.macs, "params": t.params, "device_s": t.device_s,
            "lost_device_s": t.lost_device_s, "started": t.started, "ended": t.ended, "attempts": t.attempts,
            "checkpoint": t.checkpoint, "error": t.error, "metrics": t.metrics, "arch": t.arch.to_dict() if t.arch else {}}


def run_state(run_dir: str | Path) -> RunState:
    """The state of a run, finished, running or killed (reads what is there)."""
    # Every object built here stays alive; the cyclic GC would rescan them all repeatedly (~40% of the
    # time on 10,000 trials), so it pauses while the state is built.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _run_state(run_dir)
    finally:
        if paused:
            gc.enable()


def _run_state(run_dir: str | Path) -> RunState:
    store = RunStore(run_dir, readonly=True)
    try:
        settings, trials, events = store.settings(), tuple(store.trials()), store.events()
        retrains, phases, inherited = store.retrains(), store.phases(), store.inherited()
        spent_h = store.device_seconds() / 3600
    finally:
        store.close()
    search = settings.get("search", {})
    objectives = tuple(search.get("objectives", ("accuracy", "macs")))
    done = [t for t in trials if t.ok]
    searched = [t for t in done if not t.reference]
    front = _front(searched, objectives)
    scale = hypervolume_scale([t.metrics for t in searched], search.get("max_macs"))
    return RunState(
        run_dir=str(Path(run_dir)), settings=search, objectives=objectives, trials=trials, counts=_counts(trials),
        budget=BudgetUse(search.get("budget_gpu_hours"), spent_h), pareto_front=front,
        hypervolume=front_hypervolume([t.metrics for t in front], scale), hypervolume_macs=scale,
        references=tuple(t for t in done if t.reference), retrains=tuple(retrains), phases=phases,
        inherited=inherited_summary(inherited, trials) if inherited else None,
        events=tuple(Event(at, kind, d) for at, kind, d in events))


def _front(searched: list[TrialRecord], objectives: tuple[str, ...]) -> tuple[TrialRecord, ...]:
    """The searched children on the Pareto front of the run's objectives, by MACs then trial id."""
    valid = [(t, p) for t in searched if (p := objective_vector(t.metrics, objectives)) is not None]
    # one sweep for the front alone: peeling every rank costs seconds on 10,000 trials
    on_front = pareto_front(np.array([p for _, p in valid])) if valid else []
    return tuple(sorted((valid[i][0] for i in on_front), key=lambda t: (t.macs or 0, t.trial_id)))


def _counts(trials: tuple[TrialRecord, ...]) -> Counts:
    status = [t.outcome.status for t in trials]
    return Counts(total=len(trials), ok=status.count(TrialStatus.OK), running=status.count(TrialStatus.RUNNING),
                  failed=sum(t.outcome.unusable for t in trials), stopped=status.count(TrialStatus.STOPPED))


def hypervolume_reference(max_macs: float | None, scale: float | None) -> str:
    """What the MACs end of the hypervolume box is, in words: the run's --max-macs or 1.1 x its largest child."""
    if scale is None:
        return "no finished children yet"
    if max_macs:
        return f"0% accuracy, the MACs limit ({scale:,.0f} multiply-adds, --max-macs)"
    return f"0% accuracy, 1.1 x the largest child's MACs ({scale:,.0f}; the run has no --max-macs)"


def hypervolume_scale(metrics: list[dict], max_macs: float | None = None) -> float | None:
    """The MACs end of the hypervolume box: the run's --max-macs, else 1.1 x the largest child's."""
    if max_macs:
        return float(max_macs)
    macs = [m["macs"] for m in metrics if m.get("macs")]
    return max(macs) * 1.1 if macs else None


def front_hypervolume(metrics: list[dict], max_macs: float | None = None) -> float | None:
    """Hypervolume of (accuracy in [0,1], macs / max_macs) points, reference (0 accuracy, max_macs)."""
    pts = [(m.get("val_acc"), m.get("macs")) for m in metrics if finite(m.get("val_acc")) and m.get("macs")]
    if not pts:
        return None
    scale = max_macs or max(mac for _, mac in pts) * 1.1
    arr = np.array([(-acc / 100.0, mac / scale) for acc, mac in pts])
    return hypervolume_2d(arr, np.array([0.0, 1.0]))


class IncrementalFront:
    """A 2-D front (accuracy up, MACs down) whose hypervolume is updated per point in O(log n + removed).

    The front is kept sorted by MACs, so accuracy rises along it, and the dominated area is the sum of
    (acc_i - acc_{i-1}) * (1 - macs_i); a new point changes only its own term, the terms of the points
    it removes and the term of its right neighbour.
    """

    def __init__(self, scale: float):
        self.scale = scale
        self.macs: list[float] = []  # normalised by scale, ascending
        self.acc: list[float] = []  # fractions, ascending
        self.volume = 0.0

    def add(self, val_acc: float, macs: float) -> float:
        """Insert one child (accuracy in %, multiply-adds); returns the hypervolume after it."""
        a, m = val_acc / 100.0, macs / self.scale
        if not (a > 0 and m < 1):  # outside the reference box: dominates nothing inside it
            return self.volume
        pos = bisect_left(self.macs, m)
        prev = self.acc[pos - 1] if pos else 0.0
        if prev >= a or (pos < len(self.macs) and self.macs[pos] == m and self.acc[pos] >= a):
            return self.volume
        end = pos
        while end < len(self.acc) and self.acc[end] <= a:
            end += 1
        old, last = 0.0, prev
        for k in range(pos, min(end + 1, len(self.acc))):
            old += (self.acc[k] - last) * (1 - self.macs[k])
            last = self.acc[k]
        new = (a - prev) * (1 - m)
        if end < len(self.acc):
            new += (self.acc[end] - a) * (1 - self.macs[end])
        self.volume += new - old
        self.macs[pos:end] = [m]
        self.acc[pos:end] = [a]
        return self.volume


def hypervolume_curve(trials: tuple[TrialRecord, ...] | list[TrialRecord], scale: float | None,
                      start_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(device-hours spent, front hypervolume) after each finished trial, in order of end time.

    start_s: device-seconds spent before the first child (the run's phases, nas.report.phases.phase_seconds).
    """
    finished = sorted((t for t in trials if t.outcome.status is not TrialStatus.RUNNING),
                      key=lambda t: (t.ended if t.ended is not None else math.inf, t.trial_id))
    spent = [t.device_s + t.lost_device_s for t in finished]  # a child's lost attempts too
    hours = (start_s + np.cumsum(spent)) / 3600 if finished else np.zeros(0)
    front = IncrementalFront(scale or 1.0)
    volume = []
    for t in finished:
        usable = t.ok and not t.reference and finite(t.val_acc) and t.macs
        volume.append(front.add(t.val_acc, t.macs) if usable and scale else front.volume)
    return hours, np.array(volume, float)


def front_rows(state: RunState) -> list[dict]:
    """The front as report rows: metrics, activation memory, a summary and the latest retraining."""
    latest = {r["trial_id"]: r for r in state.retrains}  # later rows win
    return [_front_row(rank, t, latest.get(t.trial_id)) for rank, t in enumerate(state.pareto_front)]


def _front_row(rank: int, t: TrialRecord, retrain: dict | None) -> dict:
    from nas.model.cost import arch_cost
    from nas.model.summary import summarize

    row = {"rank": rank, "trial_id": t.trial_id, "arch_id": t.arch_id, "val_acc": t.val_acc, "test_acc": t.test_acc,
           "macs": t.macs, "params": t.params, "device_s": t.device_s, "checkpoint": t.checkpoint,
           "inherited_val_acc": t.metrics.get("inherited_val_acc")}  # a phase's score of it, when one scored it
    try:
        if t.arch is None:
            raise ValueError("the stored record holds no architecture")
        row["summary"], row["activation_bytes"], row["arch_name"] = summarize(t.arch), arch_cost(t.arch).activation_bytes, t.arch.name
    except (ValueError, KeyError, TypeError) as err:  # a foreign or damaged record: say so, keep reporting
        row["summary"], row["activation_bytes"], row["arch_name"] = f"(unreadable architecture: {err})", None, ""
    row["final_val_acc"] = retrain["metrics"].get("val_acc") if retrain else None
    row["final_test_acc"] = retrain["metrics"].get("test_acc") if retrain else None
    row["final_epochs"] = retrain["recipe"].get("epochs") if retrain else None
    return row


def pick_trial(state: RunState, trial: int | None = None, pareto_index: int | None = None) -> TrialRecord:
    """One trial of a run by id or by its index on the front (the report's rank column)."""
    if (trial is None) == (pareto_index is None):
        raise ValueError("give exactly one of --trial ID or --pareto-index K for a run folder")
    if pareto_index is not None:
        front = state.pareto_front
        if not 0 <= pareto_index < len(front):
            span = f"0..{len(front) - 1}" if front else "none yet"
            raise ValueError(f"--pareto-index {pareto_index}: {state.run_dir} has {len(front)} architecture(s) "
                             f"on its front ({span}; see nas report)")
        return front[pareto_index]
    found = state.trial(trial)
    if found is None:
        raise ValueError(f"--trial {trial}: no such trial in {state.run_dir}")
    return found


def trial_weights(run_dir: str | Path, record: TrialRecord) -> Path | None:
    """The trial's checkpoint when the run kept it (looked up in the folder too, for runs moved since)."""
    if not record.checkpoint:
        return None
    path = Path(record.checkpoint)
    if path.exists():
        return path
    moved = Path(run_dir) / "checkpoints" / path.name
    return moved if moved.exists() else None


def run_phase(state: RunState) -> str:
    """Whether the run finished, is going (or was killed while children ran), or stopped early."""
    marks = [e.kind for e in state.events if e.kind in ("start", "resume", "end")]
    running = state.counts.running
    if marks and marks[-1] == "end" and not running:
        return "finished"
    if running:
        return (f"in progress, or killed: {running} trial(s) marked running "
                "(nas search --resume continues a killed run)")
    return "not finished: no end event (still starting, or stopped before its budget was spent)"
