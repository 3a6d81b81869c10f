"""Train one child: the recipe (proxy-training settings) and the trainer every trial and `nas train` call."""

from nas.train.recipe import Recipe, with_overrides
from nas.train.trainer import (
    DeviceData,
    TrainResult,
    evaluate,
    failure_status,
    load_checkpoint,
    lr_at,
    param_groups,
    random_crop_flip,
    resolve_device,
    save_checkpoint,
    train_child,
)

__all__ = ["DeviceData", "Recipe", "TrainResult", "evaluate", "failure_status", "load_checkpoint", "lr_at", "param_groups",
           "random_crop_flip", "resolve_device", "save_checkpoint", "train_child", "with_overrides"]
