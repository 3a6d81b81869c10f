"""`nas search`: a controller wrapped as a Ray Tune Searcher, a device-hour budget, a durable store.

Data flow: controller.ask -> Searcher.suggest -> Ray trial (child_trial: build, train, report)
-> Searcher.on_trial_complete -> controller.tell + store.finish_trial (one transaction).
Resuming re-opens the store, restores the controller (RNG included) and re-runs only the
children that were running when the previous process died.
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
from contextlib import ExitStack, closing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from controllers import make_controller
from controllers.base import SEARCH_WIDE_OPTIONS, Controller, Exhausted, objective_vector
from controllers.weight_sharing import WeightSharingController
from nas.arch import Arch
from nas.cluster import start_ray, trial_slots
from nas.cost import arch_cost
from nas.pareto import pareto_front
from nas.progress import Progress
from nas.run_folder import check_run_dir, run_lock
from nas.space import load_space
from nas.store import RunStore
from nas.train import Recipe, failure_status


MAX_BUDGET_GPU_HOURS = 1e7  # ~1,100 GPU-years: beyond any real cluster, and keeps every sum of seconds finite
MAX_BUDGET_TRIALS = 10**9


@dataclass(frozen=True)
class SearchSettings:
    """Everything a run needs; saved in the run folder so --resume needs nothing else."""

    space: str
    controller: str = "evolution"
    dataset: str = "cifar10"
    budget_gpu_hours: float | None = None
    budget_trials: int | None = None
    objectives: tuple[str, ...] = ("accuracy", "macs")
    max_macs: float | None = None
    max_params: float | None = None
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    train_fraction: float = 1.0
    val_fraction: float = 0.1
    resolution: int = 0
    gpus_per_trial: float = 0.0
    cpus_per_trial: float = 1.0
    seed: int = 0
    run_dir: str = ""
    ray_address: str | None = None
    scheduler: str | None = None  # None | "asha"
    data_dir: str | None = None
    keep_checkpoints: str = "pareto"  # pareto | all | none
    controller_options: dict = field(default_factory=dict)
    max_failures_in_a_row: int = 20  # then the search stops starting children: the cause is not the child; 0 = never

    def __post_init__(self) -> None:
        if self.budget_gpu_hours is None and self.budget_trials is None:
            raise ValueError("give a budget: --budget-gpu-hours H or --budget-trials N")
        if self.budget_gpu_hours is not None and not 0 < self.budget_gpu_hours <= MAX_BUDGET_GPU_HOURS:
            raise ValueError(f"--budget-gpu-hours must be a positive number of at most {MAX_BUDGET_GPU_HOURS:g}, "
                             f"got {self.budget_gpu_hours}")
        if self.budget_trials is not None and not 1 <= self.budget_trials <= MAX_BUDGET_TRIALS:
            raise ValueError(f"--budget-trials must be between 1 and {MAX_BUDGET_TRIALS:,}, got {self.budget_trials}")
        for flag, value in (("--max-macs", self.max_macs), ("--max-params", self.max_params)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{flag} must be a positive number, got {value}")
        if not (math.isfinite(self.gpus_per_trial) and self.gpus_per_trial >= 0):
            raise ValueError(f"--gpus-per-trial must be a number >= 0, got {self.gpus_per_trial}")
        if not (math.isfinite(self.cpus_per_trial) and self.cpus_per_trial > 0):
            raise ValueError(f"--cpus-per-trial must be a positive number, got {self.cpus_per_trial}")
        if self.gpus_per_trial > 1 and not float(self.gpus_per_trial).is_integer():
            raise ValueError(f"--gpus-per-trial above 1 must be a whole number of GPUs, got {self.gpus_per_trial}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.scheduler not in (None, "asha"):
            raise ValueError(f"--scheduler must be asha (or omitted), got {self.scheduler!r}")
        if self.max_failures_in_a_row < 0:
            raise ValueError(f"--max-failures-in-a-row must be >= 0 (0: never give up), got {self.max_failures_in_a_row}")
        if self.keep_checkpoints not in ("pareto", "all", "none"):
            raise ValueError(f"keep_checkpoints must be pareto, all or none, got {self.keep_checkpoints!r}")
        if not isinstance(self.controller_options, dict):
            raise ValueError(f"controller_options must be a mapping, got {type(self.controller_options).__name__}")
        for key in self.controller_options.keys() & SEARCH_WIDE_OPTIONS.keys():
            raise ValueError(f"--controller-option {key}: set it with {SEARCH_WIDE_OPTIONS[key]}")
        self.recipe()  # epochs, batch size, lr, train fraction: the recipe checks its own fields

    def to_dict(self) -> dict:
        d = asdict(self)
        d["objectives"] = list(self.objectives)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SearchSettings":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["objectives"] = tuple(d.get("objectives", ("accuracy",)))
        return cls(**d)

    def recipe(self) -> Recipe:
        return Recipe(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, train_fraction=self.train_fraction,
                      resolution=self.resolution, seed=self.seed, device="cuda" if self.gpus_per_trial else "cpu",
                      threads=max(1, int(self.cpus_per_trial)))

    @property
    def devices_per_trial(self) -> float:
        """Devices a trial holds for the budget: its GPU fraction, or one per CPU trial."""
        return self.gpus_per_trial if self.gpus_per_trial > 0 else 1.0


def default_run_dir(space: str, controller: str, root: str | Path = "runs") -> Path:
    """runs/<date>-<space>-<controller>, with a suffix when that folder exists."""
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{Path(space).stem}-{controller}"
    path, k = Path(root) / stem, 1
    while path.exists():
        k += 1
        path = Path(root) / f"{stem}-{k}"
    return path


def child_trial(config: dict, splits=None) -> None:
    """The Ray Tune function trainable: one child, trained by the same function as `nas train`.

    It always ends with one final report, a failure included (status 'failed: <reason>' and the
    traceback under 'error'), so that no exception of a child ever reaches Tune or the search.
    """
    from ray import tune

    from nas.train import train_child

    start = time.perf_counter()
    intermediate = config.get("report_epochs", False)

    def on_epoch(metrics: dict) -> None:
        if intermediate:
            tune.report({**metrics, "final": False, "macs": config["macs"], "elapsed_s": time.perf_counter() - start})

    try:
        recipe = Recipe(**config["recipe"])
        arch = Arch.from_dict(config["arch"])
        result = train_child(arch, splits, recipe, on_epoch=on_epoch, checkpoint=config.get("checkpoint"))
        metrics = {k: v for k, v in result.to_dict().items() if k != "history" and v is not None}
    except Exception as err:  # outside the training loop: building the recipe, the network, the data
        metrics = {"status": failure_status(err), "error": traceback.format_exc()}
    metrics.update(final=True, elapsed_s=time.perf_counter() - start)
    tune.report(metrics)


class Budget:
    """Device-seconds spent, and whether another child fits in what is left.

    Running children are charged their predicted cost (a least-squares fit of device-seconds on
    multiply-adds over the finished ones) less what they have used; a new child is charged the
    mean cost. A child starts when the projected total stays within half a child of the budget.
    """

    def __init__(self, settings: SearchSettings, spent_s: float, started: int):
        self.limit_s = settings.budget_gpu_hours * 3600 if settings.budget_gpu_hours else math.inf
        self.max_trials = settings.budget_trials or math.inf
        self.spent_s, self.started = spent_s, started
        self.costs: list[tuple[float, float]] = []  # (macs, device-seconds) of finished children

    def estimate(self) -> float | None:
        """Expected device-seconds of a child not chosen yet."""
        return float(np.mean([c for _, c in self.costs])) if self.costs else None

    def predict(self, macs: float) -> float:
        """Expected device-seconds of a child with this many multiply-adds."""
        x = np.array([m for m, _ in self.costs], float)
        y = np.array([c for _, c in self.costs], float)
        if len(self.costs) < 3 or np.ptp(x) == 0:
            return float(np.mean(y))
        slope, intercept = np.polyfit(x, y, 1)
        return float(max(slope, 0.0) * macs + max(intercept, 0.0)) if slope > 0 else float(np.mean(y))

    def allows(self, running: list[tuple[float, float]]) -> bool:
        """running: (macs, device-seconds used so far) of each child in flight."""
        if self.started >= self.max_trials:
            return False
        if self.limit_s == math.inf:
            return True
        est = self.estimate()
        if est is None:  # nothing finished yet: the first wave runs to learn the cost
            return self.spent_s < self.limit_s
        committed = sum(max(self.predict(m) - used, 0.0) for m, used in running)
        return self.spent_s + committed + est <= self.limit_s + 0.5 * est

    def record(self, device_s: float, macs: float = 0.0) -> None:
        self.spent_s += device_s
        self.costs.append((float(macs), float(device_s)))


def _searcher_class():
    from ray.tune.search import Searcher

    class ControllerSearcher(Searcher):
        """Tune drives the controller: suggest -> ask, on_trial_complete -> tell (+ the store)."""

        def __init__(self, controller: Controller, store: RunStore, settings: SearchSettings, budget: Budget,
                     progress: Progress, run_dir: Path):
            super().__init__()  # no Tune metric: children are ranked by our own objectives
            self.controller, self.store, self.settings = controller, store, settings
            self.budget, self.progress, self.run_dir = budget, progress, run_dir
            self.live: dict[str, tuple[int, float, float]] = {}  # Tune id -> (our trial id, start time, macs)
            self.replay = sorted(controller.pending.items())  # children a killed run left unfinished
            self.done = False
            self.failures_in_a_row, self.last_failure = 0, ""

        def __getstate__(self) -> dict:
            # Tune pickles its configuration; our durable state lives in the run store instead.
            return {k: v for k, v in self.__dict__.items() if k not in ("store", "progress", "controller")}

        def suggest(self, tune_id: str) -> dict | None:
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
                self._finish(trial_id, failure_status(err), {}, 0.0, traceback.format_exc())
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
            if error:
                status = "failed: ray worker lost (retried once)"
            elif not result.get("final", False):
                status = "stopped"  # ended early by the scheduler; its accuracy is low-fidelity
            else:
                status = str(result.get("status", "failed: no result"))
            metrics = {k: v for k, v in result.items()
                       if isinstance(v, (int, float, str, bool)) and k not in ("trial_id", "error")}
            metrics["device_s"] = device_s
            metrics.update(self.controller.annotations(self.controller.pending.get(trial_id, [])))
            self._finish(trial_id, status, metrics, device_s, result.get("error"))
            self.budget.record(device_s, macs)
            if self.settings.keep_checkpoints == "pareto":
                prune_checkpoints(self.store, self.settings.objectives)
            self.progress.update(self._status(), final_line=True)

        def _finish(self, trial_id: int, status: str, metrics: dict, device_s: float, error: str | None) -> None:
            """Tell the controller and record the child with the state that learned from it, in one transaction."""
            usable = status in ("ok", "stopped")
            self.failures_in_a_row = 0 if usable else self.failures_in_a_row + 1
            self.last_failure = self.last_failure if usable else status
            self.controller.tell(trial_id, metrics if usable else None, "ok" if usable else status)
            ckpt = self.run_dir / "checkpoints" / f"trial_{trial_id}.pt"
            self.store.finish_trial(trial_id, status, metrics, device_s, self.controller.state_dict(),
                                    str(ckpt) if ckpt.exists() else None, error=error)

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

    return ControllerSearcher


HEARTBEAT_S = 1.0  # a killed driver's running children are charged up to its last heartbeat (one small write)


def _attempt_watch_class():
    from ray.tune import Callback

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

    return AttemptWatch


def prune_checkpoints(store: RunStore, objectives: tuple[str, ...]) -> None:
    """Keep the checkpoints of the current Pareto set only."""
    kept = [(t, objective_vector(t.metrics, objectives)) for t in store.trials() if t.status == "ok" and t.checkpoint]
    kept = [(t, p) for t, p in kept if p is not None]
    if not kept:
        return
    front = set(pareto_front(np.array([p for _, p in kept])).tolist())
    for i, (trial, _) in enumerate(kept):
        if i not in front:
            Path(trial.checkpoint).unlink(missing_ok=True)
            store.set_checkpoint(trial.trial_id, None)


def prepare_search(settings: SearchSettings):
    """(splits, controller) of a search, every input checked; touches no file, so a refusal leaves nothing behind."""
    from nas.data import load_splits

    splits = load_splits(settings.dataset, data_dir=settings.data_dir, val_fraction=settings.val_fraction, seed=settings.seed)
    space = load_space(settings.space).with_io(splits.info.input_shape, splits.info.classes)
    controller = make_controller(settings.controller, space, seed=settings.seed, objectives=settings.objectives,
                                 max_macs=settings.max_macs, max_params=settings.max_params, **settings.controller_options)
    return splits, controller


def run_search(settings: SearchSettings, resume: bool = False, out=None, trainable=child_trial) -> Path:
    """Run (or resume) a search; returns the run folder (trainable is replaceable for benchmarks).

    With resume, settings are the run's own (read back from its store); ray_address may differ.
    Every input is checked, Ray included, before the run folder is created or locked.
    """
    import ray

    run_dir = Path(settings.run_dir).resolve()
    splits, controller = prepare_search(settings)
    check_run_dir(run_dir, resume)  # before the lock, whose file must not land in a folder that is not ours
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    with ExitStack() as stack:
        if resume:  # the folder is ours already: a second search on it is refused before Ray starts
            stack.enter_context(run_lock(run_dir))
        t_ray = time.perf_counter()
        start_ray(settings.ray_address)
        stack.callback(ray.shutdown)
        slots = trial_slots(settings, ray.nodes())
        if not resume:  # only now, with every input checked, is the new run folder created
            stack.enter_context(run_lock(run_dir))
        check_run_dir(run_dir, resume)  # again: another search may have made a run here in between
        store = stack.enter_context(closing(RunStore(run_dir, create=not resume)))
        if resume:
            store.charge_killed_attempts(settings.devices_per_trial)  # before this driver's first heartbeat
        else:
            store.save_settings({"search": settings.to_dict(), "created": time.time()})
        store.log("ray_ready", {"startup_s": time.perf_counter() - t_ray})
        _search(settings, resume, store, splits, controller, slots, run_dir, out or sys.stderr, trainable)
    return run_dir


def _search(settings: SearchSettings, resume: bool, store: RunStore, splits, controller: Controller, slots: int,
            run_dir: Path, out, trainable) -> None:
    """Restore the controller, run the weight-sharing phases if any, then the children on Ray Tune."""
    from ray import tune

    state = store.controller_state() if resume else None
    if state:
        controller.load_state_dict(state)
    finished = list(store.iter_finished())
    store.log("resume" if resume else "start", {"finished": len(finished)})
    if isinstance(controller, WeightSharingController) and not controller.planned:
        from nas.weight_sharing import prepare  # train the supernet and score children first

        prepare(controller, settings, store, splits, run_dir, out)
    budget = Budget(settings, store.device_seconds(), started=controller.next_id)
    budget.costs = [(t.metrics.get("macs", 0.0), t.device_s) for t in finished if t.device_s > 0]
    progress = Progress(out, total_h=settings.budget_gpu_hours)
    searcher = _searcher_class()(controller, store, settings, budget, progress, run_dir)
    per_trial = {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
    trainable = tune.with_resources(tune.with_parameters(trainable, splits=splits), per_trial)
    scheduler = None
    if settings.scheduler == "asha":
        from nas.schedulers import ParetoASHA

        scheduler = ParetoASHA(max_t=settings.epochs, objectives=settings.objectives)
    # No Tune metric: the searcher and the scheduler rank by our objectives, and a failed child's
    # result (which has no accuracy) must not trip Tune's check that every result holds the metric.
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1,
                                    max_concurrent_trials=slots, reuse_actors=True),
        run_config=tune.RunConfig(name="tune", storage_path=str(run_dir / "ray"), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=1),
                                  callbacks=[_attempt_watch_class()(searcher)], log_to_file=False),
    )
    tuner.fit()
    progress.close(searcher._status())
    if searcher.gave_up:
        store.log("gave_up", {"failures_in_a_row": searcher.failures_in_a_row, "last": searcher.last_failure})
        raise FailingChildren(f"{run_dir}: the last {searcher.failures_in_a_row} children all failed "
                              f"(the last one: {searcher.last_failure}); fix the cause and start a new search "
                              f"(nas report {run_dir} lists the failures)")
    store.log("end", {"spent_h": budget.spent_s / 3600})


class FailingChildren(ValueError):
    """Every child fails: the search stopped starting new ones (what finished is kept)."""
