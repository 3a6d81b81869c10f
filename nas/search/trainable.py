"""The Ray Tune function trainable: one child per trial, trained by the same function as `nas train`."""

from __future__ import annotations

import time
import traceback

from nas.arch import Arch
from nas.train.recipe import Recipe
from nas.train.trainer import failure_status


def child_trial(config: dict, splits=None) -> None:
    """The Ray Tune function trainable: one child, trained by the same function as `nas train`.

    It always ends with one final report, a failure included (status 'failed: <reason>' and the
    traceback under 'error'), so that no exception of a child ever reaches Tune or the search.
    """
    from ray import tune

    from nas.train.trainer import train_child

    start = time.perf_counter()
    intermediate = config.get("report_epochs", False)

    def on_epoch(metrics: dict) -> None:
        if intermediate:
            tune.report({**metrics, "final": False, "macs": config["macs"], "elapsed_s": time.perf_counter() - start})

    try:
        recipe = Recipe(**config["recipe"])
        arch = Arch.from_dict(config["arch"])
        result = train_child(arch, splits, recipe, on_epoch=on_epoch, checkpoint=config.get("checkpoint"))
        metrics = {k: v for k, v in result.to_dict().items() if k != "history" and v is not None}
    except Exception as err:  # outside the training loop: building the recipe, the network, the data
        metrics = {"status": failure_status(err), "error": traceback.format_exc()}
    metrics.update(final=True, elapsed_s=time.perf_counter() - start)
    tune.report(metrics)
