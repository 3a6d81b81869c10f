"""The state of a run folder as data: settings, every trial, budget spent, the Pareto front."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from controllers.base import objective_vector
from nas.pareto import hypervolume_2d, non_dominated_ranks
from nas.store import RunStore


def run_state(run_dir: str | Path) -> dict:
    """Machine-readable state of a run, finished, running or killed (reads what is there)."""
    store = RunStore(run_dir)
    try:
        settings = store.settings()
        trials = store.trials()
        events = store.events()
    finally:
        store.close()
    search = settings.get("search", {})
    objectives = tuple(search.get("objectives", ("accuracy", "macs")))
    done = [t for t in trials if t.status == "ok"]
    points = [objective_vector(t.metrics, objectives) for t in done]
    valid = [(t, p) for t, p in zip(done, points) if p is not None]
    ranks = non_dominated_ranks(np.array([p for _, p in valid])) if valid else np.array([])
    front = sorted((t for (t, _), r in zip(valid, ranks) if r == 0), key=lambda t: t.metrics.get("macs", 0))
    budget_h = search.get("budget_gpu_hours")
    spent_h = sum(t.device_s for t in trials if t.status != "running") / 3600
    return {
        "run_dir": str(Path(run_dir)),
        "settings": search,
        "objectives": list(objectives),
        "trials": [_trial_dict(t) for t in trials],
        "counts": {"total": len(trials), "ok": len(done), "running": sum(t.status == "running" for t in trials),
                   "failed": sum(t.status not in ("ok", "running", "stopped") for t in trials),
                   "stopped": sum(t.status == "stopped" for t in trials)},
        "budget": {"gpu_hours": budget_h, "spent_device_hours": spent_h,
                   "spent_fraction": spent_h / budget_h if budget_h else None},
        "pareto_front": [_trial_dict(t) for t in front],
        "hypervolume": front_hypervolume([t.metrics for t in front]),
        "events": [{"at": at, "kind": kind, "detail": d} for at, kind, d in events],
        "flops_note": "macs are multiply-adds",
    }


def front_hypervolume(metrics: list[dict], max_macs: float | None = None) -> float | None:
    """Hypervolume of (accuracy in [0,1], macs / max_macs) points, reference (0 accuracy, max_macs)."""
    pts = [(m.get("val_acc"), m.get("macs")) for m in metrics if m.get("val_acc") is not None and m.get("macs")]
    if not pts:
        return None
    scale = max_macs or max(mac for _, mac in pts) * 1.1
    arr = np.array([(-acc / 100.0, mac / scale) for acc, mac in pts])
    return hypervolume_2d(arr, np.array([0.0, 1.0]))


def _trial_dict(t) -> dict:
    return {"trial_id": t.trial_id, "arch_id": t.arch_id, "status": t.status, "decisions": t.decisions,
            "val_acc": t.metrics.get("val_acc"), "test_acc": t.metrics.get("test_acc"),
            "macs": t.metrics.get("macs"), "params": t.metrics.get("params"), "device_s": t.device_s,
            "started": t.started, "ended": t.ended, "attempts": t.attempts, "checkpoint": t.checkpoint,
            "metrics": t.metrics, "arch": t.arch}
