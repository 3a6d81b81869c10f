"""`nas report`: a run folder's state as data, the front, text tables, HTML and plots, the report files."""

import importlib

# Public name -> submodule defining it. Loaded on first access: the CLI's text tables (nas.report.table)
# must not pull in the run state, which imports the controllers, the space language and torch.
_EXPORTS = {
    **dict.fromkeys(["CSV_COLUMNS", "write_compare", "write_report", "write_tables"], "nas.report.files"),
    **dict.fromkeys(["inherited_line", "inherited_summary", "phase_rows", "phase_seconds"], "nas.report.phases"),
    **dict.fromkeys(["BudgetUse", "Counts", "Event", "IncrementalFront", "RunState", "front_hypervolume", "front_rows",
                     "hypervolume_curve", "hypervolume_scale", "pick_trial", "run_phase", "run_state", "trial_json",
                     "trial_weights"], "nas.report.state"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """The public names, imported from their submodule on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nas.report' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
