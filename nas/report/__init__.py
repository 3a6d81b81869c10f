"""`nas report`: a run folder's state as data, the front, text tables, HTML and plots, the report files."""

from nas.report.files import CSV_COLUMNS, write_compare, write_report, write_tables
from nas.report.state import (
    IncrementalFront,
    front_hypervolume,
    front_rows,
    hypervolume_curve,
    hypervolume_scale,
    phase_seconds,
    pick_trial,
    run_phase,
    run_state,
    trial_weights,
    weight_sharing_line,
    weight_sharing_summary,
)

__all__ = ["CSV_COLUMNS", "IncrementalFront", "front_hypervolume", "front_rows", "hypervolume_curve", "hypervolume_scale",
           "phase_seconds", "pick_trial", "run_phase", "run_state", "trial_weights", "weight_sharing_line",
           "weight_sharing_summary", "write_compare", "write_report", "write_tables"]
