"""What a search run needs (SearchSettings), saved in the run folder so --resume needs nothing else; run folder names."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from nas.controllers.base import SEARCH_WIDE_OPTIONS
from nas.train.recipe import Recipe

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
    def from_dict(cls, d: dict) -> SearchSettings:
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
