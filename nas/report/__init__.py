"""`nas report`: a run folder's state as data, the front, text tables, HTML and plots, the report files."""

from nas.report.files import CSV_COLUMNS, write_compare, write_report, write_tables
from nas.report.phases import inherited_line, inherited_summary, phase_rows, phase_seconds
from nas.report.state import (IncrementalFront, front_hypervolume, front_rows, hypervolume_curve, hypervolume_scale,
                              pick_trial, run_phase, run_state, trial_weights)

__all__ = ["CSV_COLUMNS", "IncrementalFront", "front_hypervolume", "front_rows", "hypervolume_curve", "hypervolume_scale",
           "inherited_line", "inherited_summary", "phase_rows", "phase_seconds", "pick_trial", "run_phase", "run_state",
           "trial_weights", "write_compare", "write_report", "write_tables"]
