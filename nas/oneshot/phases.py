"""Phases 1 and 2 of `nas search --controller weight-sharing` (its controller's phases(), nas.phase).

1. ``supernet``: the supernet trains on the Ray cluster with Ray Train (a TorchTrainer of
   ``workers`` workers, DDP between them, one GPU each when the search uses GPUs) and is saved as
   RUN/supernet.pt.
2. ``inherited_search``: one Ray task holding a trial's devices loads the supernet and runs the
   controller's ``score_children``: every child the inner search asks for is scored with inherited
   weights (BatchNorm recalibrated on a few training batches) and its analytic multiply-adds.

The search engine records each phase in the run store once it has finished, with its device-seconds,
which the budget charges like a child's (wall time x devices held). A resumed run repeats only a
phase that had not finished. Phase 3, training the chosen children from scratch, is the ordinary search loop.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from nas.controllers.weight_sharing import SUPERNET_FILE, WeightSharingController
from nas.oneshot.training import SupernetRecipe, recipe_dict
from nas.phase import PhaseContext, PhaseResult

__all__ = ["SUPERNET_FILE", "inherited_search_phase", "score_with_supernet", "train_supernet_phase"]


def phase_device(settings) -> str:
    """Where the phases run: on a GPU when the search's children do."""
    return "cuda" if settings.gpus_per_trial else "cpu"


def supernet_recipe(controller: WeightSharingController, settings) -> SupernetRecipe:
    """The supernet's training recipe: the search's batch size, lr and seed, the controller's epochs and rule."""
    return SupernetRecipe(epochs=controller.supernet_epochs, batch_size=settings.batch_size,
                          lr=controller.supernet_lr or settings.lr, rule=controller.rule, device=phase_device(settings),
                          threads=max(1, int(settings.cpus_per_trial)), seed=settings.seed,
                          calib_batches=controller.calib_batches)


def supernet_workers(controller: WeightSharingController, settings) -> int:
    """The controller's ``workers``, else one per GPU of the Ray cluster when the search uses GPUs, else one."""
    if controller.workers:
        return controller.workers
    if not settings.gpus_per_trial:
        return 1
    import ray

    return max(1, int(ray.cluster_resources().get("GPU", 0)))


def train_supernet_phase(context: PhaseContext) -> PhaseResult:
    """Phase 1: train the supernet on the Ray cluster and save it as RUN/supernet.pt."""
    from nas.oneshot.training import train_supernet_distributed

    controller, settings, run_dir, out = context.controller, context.settings, Path(context.run_dir), context.out
    recipe = supernet_recipe(controller, settings)
    workers = supernet_workers(controller, settings)
    context.held_devices = workers  # a worker holds one device (a GPU, or its CPUs as one device)
    print(f"weight sharing: training the supernet, {recipe.epochs} epochs ({recipe.rule}) on "
          f"{workers} worker(s)", file=out, flush=True)
    start = time.perf_counter()
    supernet, stats = train_supernet_distributed(
        controller.space, context.splits, recipe, num_workers=workers, use_gpu=settings.gpus_per_trial > 0,
        storage_path=run_dir / "ray", max_macs=settings.max_macs, max_params=settings.max_params)
    wall = time.perf_counter() - start
    partial = run_dir / (SUPERNET_FILE + ".partial")
    supernet.save(partial)
    os.replace(partial, run_dir / SUPERNET_FILE)  # never a half-written supernet under the real name
    device_s = wall * workers  # a worker holds one device (a GPU, or its CPUs as one device)
    detail = {"recipe": recipe_dict(recipe), "workers": workers, "wall_s": wall,
              **{k: v for k, v in stats.items() if isinstance(v, (int, float, str, bool))}}
    print(f"weight sharing: supernet trained in {wall:.1f} s ({device_s / 3600:.4f} device-hours)", file=out, flush=True)
    return PhaseResult(device_s, detail)


def inherited_search_phase(context: PhaseContext) -> PhaseResult:
    """Phase 2: score children with the supernet's weights in one Ray task; the controller's retrain queue is set."""
    import ray

    controller, settings, out = context.controller, context.settings, context.out
    path = Path(context.run_dir) / SUPERNET_FILE
    print(f"weight sharing: scoring {controller.children} children with inherited weights ({controller.search})",
          file=out, flush=True)
    task = ray.remote(num_cpus=settings.cpus_per_trial, num_gpus=settings.gpus_per_trial or 0)(score_with_supernet)
    start = time.perf_counter()
    scored_controller, scored, stats = ray.get(task.remote(controller, str(path), context.splits, settings.batch_size,
                                                           settings.seed, settings.cpus_per_trial,
                                                           phase_device(settings)))
    wall = time.perf_counter() - start
    controller.load_state_dict(scored_controller.state_dict())
    rows = []
    for values, metrics in scored:
        arch = controller.space.decode(values)
        rows.append((arch.arch_id, arch.to_json(), values, metrics or {"status": "failed"}))
    ok = [m["val_acc"] for _, m in scored if m]
    detail = {"search": controller.search, "asks": controller.children, "children": len(scored), "failed": len(scored) - len(ok),
              "best_val_acc": max(ok, default=None), "queued": len(controller.queue), "wall_s": wall, **stats}
    print(f"weight sharing: {len(scored)} children scored in {wall:.1f} s (best inherited {max(ok, default=0):.2f}%); "
          f"training the best {len(controller.queue)} from scratch", file=out, flush=True)
    return PhaseResult(wall * settings.devices_per_trial, detail, inherited=rows)


def score_with_supernet(controller: WeightSharingController, supernet_path: str, splits, batch_size: int, seed: int,
                        cpus: float, device: str) -> tuple[WeightSharingController, list, dict]:
    """Phase 2 where it runs (a Ray task): the controller after scoring, the scored children, timings."""
    import torch

    from nas.oneshot.supernet import Supernet, calibration_batches, evaluate_inherited
    from nas.train.trainer import DeviceData, resolve_device

    device = resolve_device(device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(cpus)))
    supernet = Supernet.load(supernet_path, space=controller.space).to(device).eval()
    info = splits.info
    train = DeviceData(splits.train_x, splits.train_y, info.mean, info.std, device)
    val = DeviceData(splits.val_x, splits.val_y, info.mean, info.std, device)
    calib = calibration_batches(train, batches=controller.calib_batches, batch_size=batch_size, seed=seed)
    failures: dict[str, int] = {}

    def evaluate(values: list[int]) -> dict | None:
        try:
            return evaluate_inherited(supernet, controller.space.decode(values), train, val, calib=calib)
        except Exception as err:  # a child that cannot run is recorded as failed; the search goes on
            reason = f"{type(err).__name__}: {err}".splitlines()[0][:200]
            failures[reason] = failures.get(reason, 0) + 1
            return None

    start = time.perf_counter()
    scored = controller.score_children(evaluate)
    wall = time.perf_counter() - start
    return controller, scored, {"ms_per_child": 1e3 * wall / max(len(scored), 1), "device": str(device),
                                "failures": failures}
