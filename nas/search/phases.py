"""Running the phases a controller declares (nas.phase) before its children, each recorded once it finishes."""

from __future__ import annotations

import time
from pathlib import Path

from nas.phase import PhaseContext
from nas.store.run_store import RunStore


def run_phases(context: PhaseContext) -> list[str]:
    """Run the controller's phases that this run has not finished; returns the names of those that ran.

    A KeyboardInterrupt (a stopping signal) ends the phase unrecorded, its device time charged.
    """
    store: RunStore = context.store
    recorded, phases = store.phases(), context.controller.phases()
    # a finished phase's successors were built on it: resume after the last phase this run finished
    done = [i for i, phase in enumerate(phases) if phase.done(recorded, Path(context.run_dir))]
    ran = []
    for phase in phases[done[-1] + 1 if done else 0:]:
        context.held_devices, start = context.settings.devices_per_trial, time.perf_counter()
        try:
            result = phase.run(context)
        except KeyboardInterrupt:
            store.charge_interrupted_phase(phase.name, (time.perf_counter() - start) * context.held_devices)
            raise
        # the controller state is saved with the phase: a phase may have changed it (a scoring phase plans the children)
        store.finish_phase(phase.name, result.device_s, result.detail, inherited=result.inherited,
                           controller_state=context.controller.state_dict())
        ran.append(phase.name)
    settings = context.settings
    spent = store.device_seconds()
    if ran and settings.budget_gpu_hours and spent >= settings.budget_gpu_hours * 3600:
        print(f"note: the phases before the children ({', '.join(ran)}) spent the whole budget "
              f"({spent / 3600:.4f} of {settings.budget_gpu_hours} device-hours); no child will be trained. "
              "Give a larger budget or make the phases cheaper (e.g. fewer supernet_epochs).",
              file=context.out, flush=True)
    return ran
