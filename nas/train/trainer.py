"""Train one child network: the function every Ray trial calls, and `nas train`.

The data set lives on the training device as uint8 (N, C, H, W); batches are sliced, normalised
and augmented there (padded random crop, flip) with no DataLoader, so a small child on a GPU is
not starved by Python workers. bf16 autocast and channels_last on CUDA; optional torch.compile.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.arch import Arch
from nas.model.build import build_model
from nas.model.cost import arch_cost
from nas.outcome import OK, Outcome, TrialStatus
from nas.train.recipe import OptimRecipe, Recipe

EpochCallback = Callable[[dict], bool | None]  # per-epoch metrics -> True to stop early


@dataclass
class TrainResult:
    """What a child's training reports; status is ok, diverged or 'failed: <reason>' (error: the traceback)."""

    status: str
    val_acc: float = 0.0
    val_loss: float = float("nan")
    test_acc: float | None = None
    train_loss: float = float("nan")
    epochs: int = 0
    wall_s: float = 0.0
    device_s: float = 0.0
    images_per_s: float = 0.0
    macs: int = 0
    params: int = 0
    device: str = "cpu"
    history: list = None  # per-epoch dicts
    error: str | None = None  # the full traceback of a failure

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def outcome(self) -> Outcome:
        return Outcome.parse(self.status)


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present; an explicit 'cuda' without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA GPU on this machine")
    return device


class DeviceData:
    """A split held on the device as uint8, with normalisation constants."""

    def __init__(self, x: np.ndarray, y: np.ndarray, mean, std, device: torch.device, resolution: int = 0):
        images = torch.from_numpy(np.ascontiguousarray(x))
        if resolution and resolution != images.shape[-1]:
            images = F.interpolate(images.float(), size=(resolution, resolution), mode="bilinear",
                                   antialias=True, align_corners=False).round().clamp(0, 255).to(torch.uint8)
        self.x = images.to(device)  # N,C,H,W uint8
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
        c = self.x.shape[1]
        self.mean = torch.tensor(mean[:c] if len(mean) >= c else mean * c, device=device).view(1, c, 1, 1) * 255
        self.std = torch.tensor(std[:c] if len(std) >= c else std * c, device=device).view(1, c, 1, 1) * 255

    def __len__(self) -> int:
        return self.x.shape[0]

    def normalise(self, batch: torch.Tensor) -> torch.Tensor:
        return (batch.float() - self.mean) / self.std


def random_crop_flip(x: torch.Tensor, pad: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Padded random crop and horizontal flip of a whole batch at once (on its own device)."""
    n, c, h, w = x.shape
    if pad:
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=gen)
        dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=gen)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # N,1,H,1
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # N,1,1,W
        batch_idx = torch.arange(n, device=x.device)[:, None, None, None]
        chan_idx = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch_idx, chan_idx, rows, cols]
    if flip:
        mask = torch.rand(n, device=x.device, generator=gen) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x


def param_groups(params: Iterable[nn.Parameter], weight_decay: float) -> list[dict]:
    """Weight decay on conv and linear weights only, never on BatchNorm or biases."""
    decay, no_decay = [], []
    for p in params:
        (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, total: int, recipe: OptimRecipe, steps_per_epoch: int) -> float:
    """Learning rate multiplier at an optimiser step (warmup, then cosine or one-cycle)."""
    warmup = int(recipe.warmup_epochs * steps_per_epoch)
    if recipe.schedule == "onecycle":
        peak = max(1, int(0.25 * total))
        if step < peak:
            return 0.04 + 0.96 * step / peak
        return 0.5 * (1 + math.cos(math.pi * (step - peak) / max(1, total - peak)))
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


@torch.no_grad()
def evaluate(model: nn.Module, data: DeviceData, batch_size: int, autocast, channels_last: bool) -> tuple[float, float]:
    """(top-1 accuracy in %, mean cross-entropy) over a split."""
    model.eval()
    correct, loss_sum = 0, 0.0
    for start in range(0, len(data), batch_size):
        x = data.normalise(data.x[start:start + batch_size])
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast():
            logits = model(x)
        y = data.y[start:start + batch_size]
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    n = max(1, len(data))
    return 100.0 * correct / n, loss_sum / n


def train_child(arch: Arch, splits, recipe: Recipe = Recipe(), *, on_epoch: EpochCallback | None = None,
                checkpoint: str | Path | None = None) -> TrainResult:
    """Train arch on splits (nas.data.Splits) with recipe; a child that raises is returned as failed, never raised."""
    device = resolve_device(recipe.device)
    arch = arch.with_io(_input_shape(splits, recipe), splits.info.classes)
    cost = arch_cost(arch)
    result = TrainResult(status=str(OK), macs=cost.macs, params=cost.params, device=str(device), history=[])
    start = time.perf_counter()
    try:
        with seeded_torch(recipe.seed, recipe.threads if device.type == "cpu" else 0, device):
            _train(arch, splits, recipe, device, result, on_epoch, checkpoint)
    except Exception as err:  # a search records the reason and goes on
        result.status, result.error = failure_status(err), traceback.format_exc()
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
    result.wall_s = time.perf_counter() - start
    result.device_s = result.wall_s  # one device held; Ray scales this by the fraction of a GPU
    return result


# What allocators say when memory runs out without raising torch.OutOfMemoryError (CPU, MPS, cuDNN).
_ALLOCATION_FAILED = re.compile(r"can't allocate memory|out of memory|not enough memory|std::bad_alloc", re.IGNORECASE)


_TORCH_ASSERT_PREFIX = re.compile(r"^\[enforce fail at [^\]]*\]\s*(?:err == 0\.\s*)?")  # c10's location noise


def failure_status(err: BaseException) -> str:
    """'failed: out of memory: ...' or 'failed: <Type>: <first line>', at most 300 characters."""
    text = _TORCH_ASSERT_PREFIX.sub("", (str(err).strip().splitlines() or [""])[0])
    memory = isinstance(err, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(err, RuntimeError) and _ALLOCATION_FAILED.search(str(err)) is not None)
    reason = f"out of memory: {text}" if memory else f"{type(err).__name__}: {text}"
    return str(Outcome.failed(reason.rstrip(': ')[:292]))  # 300 characters in all, as the store has always kept


def _input_shape(splits, recipe: Recipe) -> tuple[int, int, int]:
    c, h, w = splits.info.input_shape
    return (c, recipe.resolution, recipe.resolution) if recipe.resolution else (c, h, w)


@contextmanager
def seeded_torch(seed: int, threads: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG and set its CPU threads (0: leave them) inside; the caller's come back after."""
    cuda = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
    before = torch.get_num_threads()
    with torch.random.fork_rng(devices=cuda):
        if cuda:
            torch.manual_seed(seed)
        else:  # the CPU generator only: torch.manual_seed would also queue a seed for CUDA's, outside the fork
            torch.default_generator.manual_seed(seed)
        if threads:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def _train(arch, splits, recipe, device, result, on_epoch, checkpoint) -> None:
    gen = torch.Generator(device=device).manual_seed(recipe.seed)
    info = splits.info
    train_x, train_y = splits.train_x, splits.train_y
    if recipe.train_fraction < 1:
        keep = np.random.default_rng(recipe.seed).permutation(len(train_x))[: max(1, int(len(train_x) * recipe.train_fraction))]
        train_x, train_y = train_x[np.sort(keep)], train_y[np.sort(keep)]
    train = DeviceData(train_x, train_y, info.mean, info.std, device, recipe.resolution)
    val = DeviceData(splits.val_x, splits.val_y, info.mean, info.std, device, recipe.resolution)
    cuda = device.type == "cuda"
    bf16 = recipe.precision == "bf16" or (recipe.precision == "auto" and cuda)
    channels_last = recipe.channels_last if recipe.channels_last is not None else cuda

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    model = build_model(arch).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    steps_per_epoch = max(1, len(train) // recipe.batch_size)  # drop the ragged last batch
    total = steps_per_epoch * recipe.epochs
    forward = model
    if recipe.compile == "on" or (recipe.compile == "auto" and cuda and total >= 2000):
        forward = torch.compile(model)
    optimizer = torch.optim.SGD(param_groups(model.parameters(), recipe.weight_decay), lr=recipe.lr,
                                momentum=recipe.momentum, nesterov=recipe.momentum > 0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(s, total, recipe, steps_per_epoch))
    pad = max(1, train.x.shape[-1] // 8) if recipe.augment else 0
    flip = recipe.augment and (recipe.flip if recipe.flip is not None else info.input_shape[0] == 3)
    images, train_time = 0, 0.0
    for epoch in range(1, recipe.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(len(train), device=device, generator=gen)
        loss_sum = torch.zeros((), device=device)
        for step in range(steps_per_epoch):
            idx = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
            x = train.normalise(random_crop_flip(train.x[idx], pad, flip, gen) if pad or flip else train.x[idx])
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast():
                loss = F.cross_entropy(forward(x), train.y[idx], label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach()
        train_loss = loss_sum.item() / steps_per_epoch  # one sync per epoch
        epoch_time = time.perf_counter() - t0
        train_time += epoch_time
        images += steps_per_epoch * recipe.batch_size
        if not math.isfinite(train_loss):
            result.status, result.epochs = str(Outcome(TrialStatus.DIVERGED)), epoch
            return
        val_acc, val_loss = evaluate(model, val, 512, autocast, channels_last)
        result.val_acc, result.val_loss, result.train_loss, result.epochs = val_acc, val_loss, train_loss, epoch
        result.images_per_s = images / train_time if train_time else 0.0
        metrics = {"epoch": epoch, "train_loss": train_loss, "val_acc": val_acc, "val_loss": val_loss,
                   "images_per_s": steps_per_epoch * recipe.batch_size / epoch_time}
        result.history.append(metrics)
        if on_epoch is not None and on_epoch(metrics):
            break
    if recipe.eval_test:
        test = DeviceData(splits.test_x, splits.test_y, info.mean, info.std, device, recipe.resolution)
        result.test_acc, _ = evaluate(model, test, 512, autocast, channels_last)
    if checkpoint:
        from nas.model.export import input_contract  # deferred: the exporter's module is only needed here

        contract = input_contract(_input_shape(splits, recipe), info.classes, info.mean, info.std, info.name)
        save_checkpoint(checkpoint, model, arch, result.to_dict(), contract)


def save_checkpoint(path: str | Path, model: nn.Module, arch: Arch, metrics: dict, contract: dict | None = None) -> None:
    """state_dict + architecture JSON + metrics (+ input contract), written to a temp file and renamed atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    plain = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool, type(None)))}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        data = {"state_dict": state, "arch": arch.to_json(), "metrics": plain}
        if contract is not None:  # the data set's normalisation, so an export can preprocess raw images
            data["input_contract"] = contract
        torch.save(data, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: str | Path) -> tuple[dict, Arch, dict]:
    """(state_dict, arch, metrics) from a checkpoint; a CheckpointError names the file and field at fault."""
    from nas.model.checkpoint import load_checkpoint as read  # the one weights_only loader

    return read(path)
