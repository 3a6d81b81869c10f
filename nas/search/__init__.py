"""`nas search`: settings, budget, the child trainable and the run loop (Tune's classes live in nas.search.searcher)."""

from nas.search.budget import Budget
from nas.search.run import FailingChildren, prepare_search, run_search
from nas.search.settings import MAX_BUDGET_GPU_HOURS, MAX_BUDGET_TRIALS, SearchSettings, default_run_dir
from nas.search.trainable import child_trial

__all__ = ["Budget", "FailingChildren", "MAX_BUDGET_GPU_HOURS", "MAX_BUDGET_TRIALS", "SearchSettings", "child_trial",
           "default_run_dir", "prepare_search", "run_search"]
