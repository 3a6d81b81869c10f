"""`nas search`: a controller wrapped as a Ray Tune Searcher, a device-hour budget, a durable store.

Data flow: controller.ask -> Searcher.suggest -> Ray trial (child_trial: build, train, report)
-> Searcher.on_trial_complete -> controller.tell + store.finish_trial (one transaction).
Resuming re-opens the store, restores the controller (RNG included) and re-runs only the
children that were running when the previous process died.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path

from nas.controllers.base import Controller, make_controller
from nas.phase import PhaseContext
from nas.search.budget import Budget
from nas.search.cluster import start_ray, trial_slots
from nas.search.phases import run_phases
from nas.search.progress import Progress
from nas.search.settings import SearchSettings
from nas.search.trainable import child_trial
from nas.space.search_space import load_space
from nas.store.run_folder import check_run_dir, run_lock
from nas.store.run_store import RunStore


def prepare_search(settings: SearchSettings):
    """(splits, controller) of a search, every input checked; touches no file, so a refusal leaves nothing behind."""
    from nas.data import load_splits

    splits = load_splits(settings.dataset, data_dir=settings.data_dir, val_fraction=settings.val_fraction, seed=settings.seed)
    space = load_space(settings.space).with_io(splits.info.input_shape, splits.info.classes)
    controller = make_controller(settings.controller, space, seed=settings.seed, objectives=settings.objectives,
                                 max_macs=settings.max_macs, max_params=settings.max_params, **settings.controller_options)
    return splits, controller


def run_search(settings: SearchSettings, resume: bool = False, out=None, trainable=child_trial,
               on_interrupt: str = "stop") -> Path:
    """Run (or resume) a search; returns the run folder (trainable is replaceable for benchmarks).

    With resume, settings are the run's own (read back from its store); ray_address and the budget may differ.
    On SIGINT/SIGTERM no child starts; on_interrupt "stop" stops the running ones, "finish" lets them end
    (a second signal stops them); then Interrupted is raised.
    Every input is checked, Ray included, before the run folder is created or locked.
    """
    import ray

    run_dir = Path(settings.run_dir).resolve()
    splits, controller = prepare_search(settings)
    check_run_dir(run_dir, resume)  # before the lock, whose file must not land in a folder that is not ours
    with ExitStack() as stack:
        # From here on a signal is ours: before Tune runs (Ray starting, phases) it stops the work at hand.
        interrupt = stack.enter_context(_catch_signals(on_interrupt))
        interrupt.raise_when = "any"  # nothing runs yet that could finish
        store = None
        try:
            stack.enter_context(_tune_settings())  # the supernet's Ray Train run reads them too
            if resume:  # the folder is ours already: a second search on it is refused before Ray starts
                stack.enter_context(run_lock(run_dir))
            t_ray = time.perf_counter()
            if not ray.is_initialized():  # a Ray session the caller had started stays up after the search
                stack.callback(ray.shutdown)  # registered first: a signal may land inside ray.init
            try:
                start_ray(settings.ray_address)
            except SystemExit as ended:  # SIGTERM met ray.init's own handler, which exits
                if ended.code != signal.SIGTERM:
                    raise
                raise KeyboardInterrupt from None
            interrupt.install()  # ray.init replaced our SIGTERM handler with its own (which exits)
            slots = trial_slots(settings, ray.nodes())
            if not resume:  # only now, with every input checked, is the new run folder created
                stack.enter_context(run_lock(run_dir))
            check_run_dir(run_dir, resume)  # again: another search may have made a run here in between
            store = stack.enter_context(closing(RunStore(run_dir, create=not resume)))
            if resume:
                store.charge_killed_attempts(settings.devices_per_trial)  # before this driver's first heartbeat
                _save_raised_limits(store, settings)
            else:
                store.save_settings({"search": settings.to_dict(), "created": time.time()})
            store.log("ray_ready", {"startup_s": time.perf_counter() - t_ray})
        except KeyboardInterrupt:
            if resume or store is not None and store.settings():
                raise Interrupted(f"interrupted; resume with nas search --resume {run_dir}") from None
            raise Interrupted("interrupted before the search started; nothing was kept") from None
        _search(settings, resume, store, splits, controller, slots, run_dir, out or sys.stderr, trainable, interrupt)
    if interrupt.signals:
        raise Interrupted(f"interrupted; resume with nas search --resume {run_dir}")
    return run_dir


def _save_raised_limits(store: RunStore, settings: SearchSettings) -> None:
    """A resume that raises the budget saves the new limits in the run's settings, and an event says so."""
    saved = store.settings()
    old = saved["search"]
    changed = {k: [old.get(k), getattr(settings, k)] for k in ("budget_trials", "budget_gpu_hours")
               if old.get(k) != getattr(settings, k)}
    if changed:
        store.save_settings({"search": {**old, **{k: new for k, (_, new) in changed.items()}}})
        store.log("budget_raised", changed)


class Interrupt:
    """What SIGINT/SIGTERM asked for: stop starting children, and whether to stop the running ones now.

    raise_when: while the driver itself does the work (Ray starting, a phase such as training the
    supernet), a signal that stops it raises KeyboardInterrupt there: "any" signal, only one that
    "stops" now, or "never" (Tune's children run elsewhere and see the flag through the stopper).
    """

    def __init__(self, on_interrupt: str = "stop"):
        self.on_interrupt, self.signals, self.raise_when = on_interrupt, 0, "never"
        self.install = lambda: None  # (re)installs the handlers; set by _catch_signals

    @property
    def stop_now(self) -> bool:
        """Stop the running children too: the user chose it, or signalled twice."""
        return self.signals >= (1 if self.on_interrupt == "stop" else 2)

    @property
    def raises(self) -> bool:
        """Whether the signal just counted should interrupt the driver's own work."""
        return self.raise_when == "any" or (self.raise_when == "stops" and self.stop_now)


@contextmanager
def _catch_signals(on_interrupt: str) -> Iterator[Interrupt]:
    """Turn SIGINT/SIGTERM into a flag the searcher and Tune's stopper read, for the rest of the search."""
    interrupt = Interrupt(on_interrupt)

    def handler(signum, frame) -> None:
        interrupt.signals += 1
        if interrupt.signals <= 2:  # os.write: a print here could re-enter a print the signal interrupted
            now = "stopping the running children" if interrupt.stop_now else \
                "letting the running children finish (signal again to stop them now)"
            if interrupt.raise_when != "never":
                now = "stopping now" if interrupt.raises else "letting the current phase finish (signal again to stop it now)"
            os.write(2, f"\nnas: {signal.Signals(signum).name}: starting no more children; {now}\n".encode())
        if interrupt.raises:
            raise KeyboardInterrupt

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    interrupt.install = lambda: [signal.signal(sig, handler) for sig in old]
    try:
        yield interrupt
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _search(settings: SearchSettings, resume: bool, store: RunStore, splits, controller: Controller, slots: int,
            run_dir: Path, out, trainable, interrupt: Interrupt) -> None:
    """Restore the controller, run the phases it declares (those not yet recorded), then the children on Ray Tune."""
    from ray import tune

    from nas.search.searcher import AttemptWatch, ControllerSearcher, InterruptStopper  # only a search imports Ray

    state = store.controller_state() if resume else None
    if state:
        controller.load_state_dict(state)
    finished = list(store.iter_finished())
    store.log("resume" if resume else "start", {"finished": len(finished)})
    interrupt.raise_when = "stops"  # a phase runs in the driver's hands: finish it, or stop it on a stopping signal
    try:
        run_phases(PhaseContext(controller, settings, store, splits, run_dir, out))
    except KeyboardInterrupt:
        store.log("interrupted", {"signals": interrupt.signals, "during": "phases"})
        return
    finally:
        interrupt.raise_when = "never"
    if interrupt.signals:  # signalled during a phase that finished: start no child
        store.log("interrupted", {"signals": interrupt.signals, "during": "phases"})
        return
    budget = Budget(settings, store.device_seconds(), started=controller.next_id)
    budget.costs = [(t.metrics.get("macs", 0.0), t.device_s) for t in finished if t.device_s > 0]
    progress = Progress(out, total_h=settings.budget_gpu_hours, total_trials=settings.budget_trials, slots=slots,
                        devices_per_trial=settings.devices_per_trial)
    searcher = ControllerSearcher(controller, store, settings, budget, progress, run_dir, interrupt)
    per_trial = {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
    trainable = tune.with_resources(tune.with_parameters(trainable, splits=splits), per_trial)
    scheduler = None
    if settings.scheduler == "asha":
        from nas.search.schedulers import ParetoASHA

        scheduler = ParetoASHA(max_t=settings.epochs, objectives=settings.objectives)
    # No Tune metric: the searcher and the scheduler rank by our objectives, and a failed child's
    # result (which has no accuracy) must not trip Tune's check that every result holds the metric.
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1,
                                    max_concurrent_trials=slots, reuse_actors=True),
        run_config=tune.RunConfig(name="tune", storage_path=str(run_dir / "ray"), verbose=0, stop=InterruptStopper(interrupt),
                                  failure_config=tune.FailureConfig(max_failures=1),
                                  callbacks=[AttemptWatch(searcher)], log_to_file=False),
    )
    tuner.fit()
    searcher.record_interrupted()  # Tune stops them without telling the searcher
    progress.close(searcher._status())
    if interrupt.signals:
        store.log("interrupted", {"signals": interrupt.signals, "spent_h": budget.spent_s / 3600})
        return
    if searcher.gave_up:
        store.log("gave_up", {"failures_in_a_row": searcher.failures_in_a_row, "last": searcher.last_failure})
        raise FailingChildren(f"{run_dir}: the last {searcher.failures_in_a_row} children all failed "
                              f"(the last one: {searcher.last_failure}); fix the cause and start a new search "
                              f"(nas report {run_dir} lists the failures)")
    store.log("end", {"spent_h": budget.spent_s / 3600})


# Ray Tune reads these from the driver's environment only (2.60): its legacy output engine, which verbose=0
# keeps quiet, and no CSV/JSON/TensorBoard loggers per trial (the store holds the results); and no SIGINT
# handler of Tune's, which would replace ours and end the search as if it had finished.
_TUNE_ENV = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "TUNE_DISABLE_SIGINT_HANDLER": "1"}


@contextmanager
def _tune_settings() -> Iterator[None]:
    """Set _TUNE_ENV where the caller has not, and restore the caller's environment afterwards."""
    added = [name for name in _TUNE_ENV if name not in os.environ]
    os.environ.update({name: _TUNE_ENV[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


class FailingChildren(ValueError):
    """Every child fails: the search stopped starting new ones (what finished is kept)."""


class Interrupted(Exception):
    """SIGINT/SIGTERM stopped the search; what finished is kept and --resume continues it."""
