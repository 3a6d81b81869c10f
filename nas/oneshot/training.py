"""Train a weight-sharing supernet: single-path uniform sampling (SPOS) or the sandwich rule.

One loop serves a single process and every Ray Train worker: the child sequence and the batch order come
from the shared seed (the same on every rank), each rank takes its own slice of every batch, and under
DDP (which needs fixed parameters) only children that fit the pre-computed banks are trained.
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.arch import Arch, ArchError
from nas.controllers.weight_sharing import RULES
from nas.model.cost import arch_cost
from nas.oneshot.supernet import Supernet, calibration_batches, evaluate_inherited, region
from nas.space.search_space import SearchSpace, load_space
from nas.train.recipe import OptimRecipe
from nas.train.trainer import DeviceData, lr_at, param_groups, random_crop_flip, resolve_device

EpochCallback = Callable[[dict], bool | None]  # per-epoch metrics -> True to stop early


@dataclass(frozen=True, kw_only=True)
class SupernetRecipe(OptimRecipe):
    """Supernet training settings: the shared optimizer settings over the banks, a sampling rule, per-epoch probes."""

    lr: float = 0.05
    rule: str = "spos"  # spos: one uniform child per step | sandwich: largest + smallest + one uniform
    calib_batches: int = 4  # BN recalibration batches when children are evaluated per epoch
    eval_children: int = 0  # children evaluated with inherited weights after each epoch (0 = none)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        if self.calib_batches < 1 or self.eval_children < 0:
            raise ValueError("calib_batches must be >= 1 and eval_children >= 0")


def optimizer_for(supernet: Supernet, recipe: SupernetRecipe, params: dict[str, nn.Parameter] | None = None):
    """SGD + Nesterov over the parameter banks; weight decay on conv and linear weights only."""
    params = params if params is not None else supernet.bank_params()
    return torch.optim.SGD(param_groups(params.values(), recipe.weight_decay), lr=recipe.lr,
                           momentum=recipe.momentum, nesterov=recipe.momentum > 0)


def rebuild_optimizer(old: torch.optim.Optimizer, before: dict[str, nn.Parameter], supernet: Supernet,
                      recipe: SupernetRecipe) -> torch.optim.Optimizer:
    """A new optimizer over grown banks, momentum buffers padded into the banks' new shapes."""
    now = supernet.bank_params()
    fresh = optimizer_for(supernet, recipe, now)
    for key, param in now.items():
        state = old.state.get(before.get(key))
        if state and state.get("momentum_buffer") is not None:
            buf = state["momentum_buffer"]
            padded = torch.zeros_like(param)
            padded[region(tuple(param.shape), tuple(buf.shape))] = buf
            fresh.state[param] = {"momentum_buffer": padded}
    return fresh


def valid(arch: Arch) -> bool:
    """Whether the child fits its input (deep spaces on small images have children that do not)."""
    try:
        arch_cost(arch)
        return True
    except ArchError:
        return False


def extremes(supernet: Supernet, max_macs: float | None, max_params: float | None) -> tuple[Arch, Arch]:
    """(largest, smallest) child of the supernet's pool by multiply-adds, within the limits."""
    space = supernet.space
    costed = []
    for values in supernet.pool_values:
        arch = space.decode(values)
        if valid(arch) and space.within_limits(arch, max_macs, max_params):
            costed.append((arch_cost(arch).macs, arch.arch_id, arch))
    if not costed:
        raise ValueError("no child of the supernet's pool meets max_macs/max_params; raise the limits")
    costed.sort(key=lambda c: (c[0], c[1]))
    return costed[-1][2], costed[0][2]


class ChildSampler:
    """The child sequence: seeded, so every rank of a distributed run draws the same children."""

    def __init__(self, supernet: Supernet, recipe: SupernetRecipe, max_macs: float | None,
                 max_params: float | None, grow: bool):
        self.supernet, self.space, self.grow = supernet, supernet.space, grow
        self.rng = np.random.default_rng(recipe.seed)
        self.limits = (max_macs, max_params)
        self.pinned = list(extremes(supernet, max_macs, max_params)) if recipe.rule == "sandwich" else []
        self.sampled = self.skipped = 0
        self.seen: set[str] = set()

    def _uniform(self) -> Arch:
        for _ in range(1000):
            arch = self.space.decode(self.space.sample_encoded(self.rng, *self.limits))
            if valid(arch) and (self.grow or self.supernet.fits(arch)):
                return arch
            self.skipped += 1  # too deep for the input, or (under DDP) larger than the banks
        raise ValueError("1000 sampled children in a row cannot be trained: check the space's input size")

    def step(self) -> list[Arch]:
        """The children of one optimizer step."""
        archs = self.pinned + [self._uniform()]
        self.sampled += len(archs)
        self.seen.update(a.arch_id for a in archs)
        return archs


def _batches(train: DeviceData, recipe: SupernetRecipe, rank: int, world: int):
    """Per-epoch generator of (x, y) for this rank: a shared batch order, this rank's slice of each batch."""
    device = train.x.device
    order_gen = torch.Generator(device=device).manual_seed(recipe.seed)
    aug_gen = torch.Generator(device=device).manual_seed(recipe.seed * 7919 + rank + 1)
    pad = max(1, train.x.shape[-1] // 8) if recipe.augment else 0
    flip = recipe.augment and (recipe.flip if recipe.flip is not None else train.x.shape[1] == 3)
    steps = max(1, len(train) // recipe.batch_size)  # drop the ragged last batch

    def epoch():
        order = torch.randperm(len(train), device=device, generator=order_gen)
        for step in range(steps):
            idx = order[step * recipe.batch_size:(step + 1) * recipe.batch_size][rank::world]
            x = train.x[idx]
            x = random_crop_flip(x, pad, flip, aug_gen) if pad or flip else x
            yield train.normalise(x), train.y[idx]
    return epoch, steps


def _run(supernet: Supernet, model: nn.Module, splits, recipe: SupernetRecipe, device: torch.device, *,
         rank: int = 0, world: int = 1, grow: bool = True, max_macs: float | None = None,
         max_params: float | None = None, on_epoch: EpochCallback | None = None) -> dict:
    """The training loop; model is supernet itself or its DDP wrapper."""
    if recipe.threads and device.type == "cpu":
        torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)  # dropout in heads
    info = splits.info
    if tuple(supernet.space.spec.input) != tuple(info.input_shape) or supernet.space.spec.classes != info.classes:
        raise ValueError(f"the supernet's space is for input {supernet.space.spec.input} and {supernet.space.spec.classes} "
                         f"classes; build it on space.with_io({info.input_shape}, {info.classes}) for {info.name}")
    train = DeviceData(splits.train_x, splits.train_y, info.mean, info.std, device)
    sampler = ChildSampler(supernet, recipe, max_macs, max_params, grow)
    epoch_batches, steps = _batches(train, recipe, rank, world)
    total = steps * recipe.epochs
    optimizer = optimizer_for(supernet, recipe)
    version, step, history = supernet.version, 0, []
    start = time.perf_counter()
    for epoch in range(1, recipe.epochs + 1):
        model.train()
        t0, loss_sum, batches = time.perf_counter(), torch.zeros((), device=device), 0
        for x, y in epoch_batches():
            archs = sampler.step()
            before = supernet.bank_params()
            for arch in archs:  # grow before any forward: a grown bank is a new Parameter
                supernet.ensure(arch)
            if supernet.version != version:
                optimizer, version = rebuild_optimizer(optimizer, before, supernet, recipe), supernet.version
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * lr_at(step, total, recipe, steps)
            optimizer.zero_grad(set_to_none=True)
            for arch in archs:  # sandwich: gradients of all three children accumulate into the banks
                loss = F.cross_entropy(model(x, arch), y, label_smoothing=recipe.label_smoothing)
                loss.backward()
                loss_sum += loss.detach() / len(archs)
            if recipe.grad_clip:
                nn.utils.clip_grad_norm_(supernet.parameters(), recipe.grad_clip)
            optimizer.step()
            step, batches = step + 1, batches + 1
        train_loss = _mean_over_ranks(loss_sum / max(1, batches), world).item()
        epoch_s = time.perf_counter() - t0
        metrics = {"epoch": epoch, "train_loss": train_loss, "steps": step, "children": sampler.sampled,
                   "unique_children": len(sampler.seen), "skipped": sampler.skipped, "growths": supernet.growths,
                   "images_per_s": batches * recipe.batch_size / epoch_s if epoch_s else 0.0}
        if recipe.eval_children:
            metrics["child_val_acc"] = _probe(supernet, splits, recipe, device)
        history.append(metrics)
        if not math.isfinite(train_loss) or (on_epoch is not None and on_epoch(metrics)):
            break
    wall = time.perf_counter() - start
    return {"epochs": len(history), "steps": step, "children": sampler.sampled, "unique_children": len(sampler.seen),
            "skipped": sampler.skipped, "growths": supernet.growths, "wall_s": wall, "device_s": wall * world,
            "train_loss": history[-1]["train_loss"], "images_per_s": step * recipe.batch_size / wall if wall else 0.0,
            "history": history}


def _mean_over_ranks(value: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1 and torch.distributed.is_initialized():
        value = value.clone()
        torch.distributed.all_reduce(value)
        value /= world
    return value


def _probe(supernet: Supernet, splits, recipe: SupernetRecipe, device: torch.device) -> float:
    """Mean inherited validation accuracy of a few seeded children (a cheap progress signal)."""
    info = splits.info
    train = DeviceData(splits.train_x, splits.train_y, info.mean, info.std, device)
    val = DeviceData(splits.val_x, splits.val_y, info.mean, info.std, device)
    calib = calibration_batches(train, batches=recipe.calib_batches, batch_size=256, seed=recipe.seed)
    rng = np.random.default_rng(recipe.seed + 1)
    accs = []
    while len(accs) < recipe.eval_children:
        arch = supernet.space.sample(rng)
        if valid(arch):
            accs.append(evaluate_inherited(supernet, arch, train, val, calib=calib)["val_acc"])
    return float(np.mean(accs))


def train_supernet(supernet: Supernet, splits, recipe: SupernetRecipe = SupernetRecipe(), *,
                   on_epoch: EpochCallback | None = None, max_macs: float | None = None,
                   max_params: float | None = None) -> dict:
    """Train the banks on splits (nas.data.Splits); returns epochs, steps, children, wall_s, train_loss, growths."""
    device = resolve_device(recipe.device)
    supernet.to(device)
    return _run(supernet, supernet, splits, recipe, device, max_macs=max_macs, max_params=max_params,
                on_epoch=on_epoch)


def _worker_loop(config: dict) -> None:
    """One Ray Train worker: same supernet and child sequence as every rank, its own slice of the data."""
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    recipe: SupernetRecipe = config["recipe"]
    supernet = Supernet(config["space"], pool=config["pool"], seed=recipe.seed)  # same seed -> same banks
    model = ray.train.torch.prepare_model(supernet, parallel_strategy_kwargs={"find_unused_parameters": True})
    device = ray.train.torch.get_device()
    stats = _run(supernet, model, config["splits"], recipe, device, rank=rank, world=world, grow=False,
                 max_macs=config["max_macs"], max_params=config["max_params"])
    stats.pop("history")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            supernet.save(Path(tmp) / "supernet.pt")
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(stats, checkpoint=checkpoint)


def train_supernet_distributed(space: str | SearchSpace, splits, recipe: SupernetRecipe = SupernetRecipe(), *,
                               num_workers: int, use_gpu: bool = False, storage_path: str | Path,
                               pool: int = 512, max_macs: float | None = None,
                               max_params: float | None = None) -> tuple[Supernet, dict]:
    """Data-parallel supernet training with Ray Train (DDP; gloo on CPU); returns the final banks and stats."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    space = load_space(space) if isinstance(space, str) else space
    space = space.with_io(splits.info.input_shape, splits.info.classes)
    config = {"space": space, "splits": splits, "recipe": recipe, "pool": pool, "max_macs": max_macs,
              "max_params": max_params}
    trainer = TorchTrainer(_worker_loop, train_loop_config=config,
                           scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
                           run_config=RunConfig(storage_path=str(Path(storage_path).resolve()),
                                                name=f"supernet-{space.name}-{int(time.time())}"))
    result = _off_the_main_thread(trainer.fit)
    if result.error is not None:
        raise result.error
    with result.checkpoint.as_directory() as folder:
        supernet = Supernet.load(Path(folder) / "supernet.pt", space=space)
    return supernet, dict(result.metrics)



def _off_the_main_thread(fit):
    """fit() in a daemon thread: Ray Train installs a SIGINT handler of its own (never restored) when fit runs
    on the main thread, and that handler exits the process; the caller's signal handling must stay in charge.
    A KeyboardInterrupt in the waiting main thread propagates; the thread ends when Ray shuts down."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["result"] = fit()
        except BaseException as err:  # re-raised on the main thread
            outcome["error"] = err

    thread = threading.Thread(target=target, name="supernet-fit", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)  # a timeout: signal handlers run on the main thread between waits
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def recipe_dict(recipe: SupernetRecipe) -> dict:
    """The recipe as plain JSON values (for run records)."""
    return asdict(recipe)
