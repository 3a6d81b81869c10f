"""The Tune side of a search: the controller as a Tune Searcher and the heartbeat callback.

Module-level classes, so Tune can pickle them by reference; only a search imports this module (and Ray).
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import numpy as np
from ray.tune import Callback, Stopper
from ray.tune.search import Searcher

from nas.controllers.base import Controller, Exhausted
from nas.model.cost import arch_cost
from nas.outcome import INTERRUPTED, STOPPED, Outcome, TrialStatus
from nas.pareto import pareto_front
from nas.search.budget import Budget
from nas.search.checkpoints import CheckpointFront
from nas.search.progress import Progress
from nas.search.settings import SearchSettings
from nas.store.run_store import RunStore
from nas.train.trainer import failure_status

# What Tune adds to every result (bookkeeping, the flattened config): not the child's metrics.
TUNE_RESULT_KEYS = frozenset({"trial_id", "timestamp", "checkpoint_dir_name", "done", "training_iteration", "date",
                              "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
                              "iterations_since_restore", "experiment_tag"})


def _child_metric(key: str) -> bool:
    """Whether a result key is the child's own (the traceback is stored apart, in the trial's error)."""
    return key != "error" and key not in TUNE_RESULT_KEYS and not key.startswith("config/")


class ControllerSearcher(Searcher):
    """Tune drives the controller: suggest -> ask, on_trial_complete -> tell (+ the store)."""

    def __init__(self, controller: Controller, store: RunStore, settings: SearchSettings, budget: Budget,
                 progress: Progress, run_dir: Path, interrupt=None):
        super().__init__()  # no Tune metric: children are ranked by our own objectives
        self.controller, self.store, self.settings = controller, store, settings
        self.budget, self.progress, self.run_dir = budget, progress, run_dir
        self.live: dict[str, tuple[int, float, float]] = {}  # Tune id -> (our trial id, start time, macs)
        self.replay = sorted(controller.pending.items())  # children a killed run left unfinished
        self.done = False
        self.interrupt = interrupt  # nas.search.run.Interrupt: a signal stops new children
        self.failures_in_a_row, self.last_failure = 0, ""
        self.checkpoints = CheckpointFront(store, settings.objectives) if settings.keep_checkpoints == "pareto" else None

    def __getstate__(self) -> dict:
        # Tune pickles its configuration; our durable state lives in the run store instead.
        return {k: v for k, v in self.__dict__.items() if k not in ("store", "progress", "controller", "checkpoints")}

    def suggest(self, tune_id: str) -> dict | None:
        if self.interrupt is not None and self.interrupt.signals:
            self.done = True  # interrupted: start nothing more, replays included (--resume reruns them)
            return None if self.live else Searcher.FINISHED
        if self.replay:
            trial_id, values = self.replay.pop(0)
            arch = self.controller.space.decode(values)
        elif self.done or self.gave_up or not self.budget.allows(self._running()):
            self.done = True  # the budget is spent: let the running children finish, start none
            return None if self.live else Searcher.FINISHED
        else:
            try:
                proposal = self.controller.ask()
            except Exhausted:  # nothing more to try: let the running children finish
                self.done = True
                return None if self.live else Searcher.FINISHED
            trial_id, values, arch = proposal.trial_id, proposal.values, proposal.arch
            self.budget.started += 1
            self.store.save_controller(self.controller.state_dict())
        started = self.store.start_trial(trial_id, arch.to_json(), arch.arch_id, values)
        try:
            macs = arch_cost(arch).macs
        except ValueError as err:  # the space allowed it, but it cannot be built at this input: fail it, go on
            self._finish(trial_id, Outcome.parse(failure_status(err)), {}, 0.0, traceback.format_exc())
            return None  # Tune asks again at its next step
        self.live[tune_id] = (trial_id, started, macs)
        self.progress.update(self._status())
        ckpt = None if self.settings.keep_checkpoints == "none" else str(self.run_dir / "checkpoints" / f"trial_{trial_id}.pt")
        return {"trial_id": trial_id, "arch": arch.to_dict(), "recipe": asdict(self.settings.recipe()),
                "checkpoint": ckpt, "macs": macs, "report_epochs": self.settings.scheduler == "asha"}

    def on_trial_complete(self, tune_id: str, result: dict | None = None, error: bool = False) -> None:
        trial_id, started, macs = self.live.pop(tune_id, (None, time.time(), 0))
        if trial_id is None:
            return
        result = dict(result or {})
        devices = self.settings.devices_per_trial
        device_s = float(result.get("elapsed_s", time.time() - started)) * devices
        if self.interrupt is not None and self.interrupt.signals and (error or not result.get("final", False)):
            self._interrupted(trial_id, device_s, macs)  # the signal ended it, not the child or the scheduler
            return
        if error:
            outcome = Outcome.failed("ray worker lost (retried once)")
        elif not result.get("final", False):
            outcome = STOPPED  # ended early by the scheduler; its accuracy is low-fidelity
        else:
            outcome = Outcome.parse(str(result.get("status", "failed: no result")))
        metrics = {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool)) and _child_metric(k)}
        metrics["device_s"] = device_s
        metrics.update(self.controller.annotations(self.controller.pending.get(trial_id, [])))
        checkpoint = self._finish(trial_id, outcome, metrics, device_s, result.get("error"))
        self.budget.record(device_s, macs)
        if self.checkpoints is not None and outcome.status is TrialStatus.OK:
            self.checkpoints.add(trial_id, metrics, checkpoint)
        self.progress.update(self._status(), final_line=True)

    def _finish(self, trial_id: int, outcome: Outcome, metrics: dict, device_s: float, error: str | None) -> str | None:
        """Tell the controller and record the child with the state that learned from it, in one transaction;
        returns the child's checkpoint path when it left one."""
        usable = outcome.usable
        self.failures_in_a_row = 0 if usable else self.failures_in_a_row + 1
        self.last_failure = self.last_failure if usable else str(outcome)
        self.controller.tell(trial_id, metrics if usable else None, outcome)
        ckpt = self.run_dir / "checkpoints" / f"trial_{trial_id}.pt"
        checkpoint = str(ckpt) if ckpt.exists() else None
        self.store.finish_trial(trial_id, outcome, metrics, device_s, self.controller.state_dict(), checkpoint, error=error)
        return checkpoint

    def _interrupted(self, trial_id: int, device_s: float, macs: float) -> None:
        """Record a child a signal stopped: charged, not told to the controller (it stays pending, so --resume reruns it)."""
        self.store.interrupt_trial(trial_id, str(INTERRUPTED), device_s, self.controller.state_dict())
        self.budget.spent_s += device_s
        self.progress.update(self._status(), final_line=True)

    def record_interrupted(self) -> None:
        """Record the children still live when Tune ended (stopped by the experiment's stop, which tells no searcher)."""
        now, devices = time.time(), self.settings.devices_per_trial
        for tune_id in list(self.live):
            trial_id, started, macs = self.live.pop(tune_id)
            self._interrupted(trial_id, max(0.0, now - started) * devices, macs)

    @property
    def gave_up(self) -> bool:
        """Whether so many children failed in a row that the cause must be the space, recipe or data."""
        limit = self.settings.max_failures_in_a_row
        return bool(limit) and self.failures_in_a_row >= limit

    def attempt_lost(self, tune_id: str) -> None:
        """Tune retries a child whose worker was lost: charge that attempt, from its start to now."""
        if tune_id not in self.live:
            return
        trial_id, started, macs = self.live[tune_id]
        now = time.time()
        lost = max(0.0, now - started) * self.settings.devices_per_trial
        self.store.retry_trial(trial_id, lost, now)
        self.budget.spent_s += lost
        self.live[tune_id] = (trial_id, now, macs)

    def _running(self) -> list[tuple[float, float]]:
        now, devices = time.time(), self.settings.devices_per_trial
        return [(macs, (now - started) * devices) for _, started, macs in self.live.values()]

    def _status(self) -> dict:
        trials = self.controller.history
        ok = [o for o in trials if o.objectives is not None]
        best = max((-o.objectives[0] for o in ok), default=None)
        front = len(pareto_front(np.array([o.objectives for o in ok]))) if ok else 0
        est = self.budget.estimate()
        left = None
        if est is not None and self.budget.limit_s < math.inf:
            slots = max(1, len(self.live))
            left = max(0.0, self.budget.limit_s - self.budget.spent_s) / self.settings.devices_per_trial / slots
        return {"done": len(trials) - sum(o.objectives is None for o in trials), "running": len(self.live),
                "failed": sum(o.objectives is None for o in trials), "spent_h": self.budget.spent_s / 3600,
                "budget_h": self.settings.budget_gpu_hours, "best": best, "front": front, "eta_s": left}


HEARTBEAT_S = 1.0  # a killed driver's running children are charged up to its last heartbeat (one small write)


class InterruptStopper(Stopper):
    """Ends the Tune experiment, stopping its running trials, once a signal asks to stop them now."""

    def __init__(self, interrupt):
        self.interrupt = interrupt

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.interrupt.stop_now


class AttemptWatch(Callback):
    """Keeps the run's heartbeat fresh and charges the attempts Tune retries after a lost worker."""

    def __init__(self, searcher):
        self.searcher, self.last_beat = searcher, 0.0

    def __getstate__(self) -> dict:
        return {"last_beat": self.last_beat}  # Tune pickles its configuration; the searcher holds the store

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        now = time.time()
        if now - self.last_beat >= HEARTBEAT_S:
            self.searcher.store.beat(now)
            self.last_beat = now

    def on_trial_recover(self, iteration: int, trials: list, trial, **info) -> None:
        self.searcher.attempt_lost(trial.trial_id)
