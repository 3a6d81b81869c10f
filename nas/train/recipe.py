"""Training settings checked on construction: the shared OptimRecipe and the child's Recipe; no torch needed."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class OptimRecipe:
    """Settings shared by the child trainer and the supernet: SGD + Nesterov, schedule, augmentation, device."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4  # not applied to BatchNorm weights or biases
    label_smoothing: float = 0.1
    schedule: str = "cosine"  # cosine | onecycle (nas.train.trainer.lr_at)
    warmup_epochs: float = 0.0
    augment: bool = True
    flip: bool | None = None  # None: flip only natural 3-channel images, never digits
    grad_clip: float = 5.0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # CPU threads for torch; 0 keeps torch's default (all cores)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1 (got {self.epochs}, {self.batch_size})")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number (--lr), got {self.lr}")
        for name, low, high in (("momentum", 0, 1), ("label_smoothing", 0, 1)):
            if not low <= getattr(self, name) < high:
                raise ValueError(f"{name} must be in [{low}, {high}), got {getattr(self, name)}")
        for name in ("weight_decay", "warmup_epochs", "grad_clip", "threads"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {value}")
        if self.schedule not in ("cosine", "onecycle"):
            raise ValueError(f"schedule must be cosine or onecycle, got {self.schedule!r}")


@dataclass(frozen=True, kw_only=True)
class Recipe(OptimRecipe):
    """Proxy-training settings for one child: the shared optimizer settings plus data, precision and compile."""

    train_fraction: float = 1.0
    resolution: int = 0  # 0 keeps the data set's size; else a lower proxy resolution
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
    channels_last: bool | None = None  # None: on CUDA only
    compile: str = "auto"  # auto (CUDA and >= 2,000 steps) | on | off
    eval_test: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.resolution) and self.resolution >= 0):
            raise ValueError(f"resolution must be a number >= 0, got {self.resolution}")
        if not 0 < self.train_fraction <= 1:
            raise ValueError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")


def with_overrides(recipe: Recipe, **changes) -> Recipe:
    """The recipe with the given non-None fields replaced."""
    return replace(recipe, **{k: v for k, v in changes.items() if v is not None})
