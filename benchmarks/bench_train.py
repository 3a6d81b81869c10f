"""Images per second of nas's trainer against a minimal hand-written PyTorch loop.

Both train the same network (a fixed resnet_like child on CIFAR-shaped synthetic data) with the
same batch size and precision on the same device, in one process. The trainer runs with
augmentation off for the like-for-like ratio; its figure with augmentation on is printed too.

    python benchmarks/bench_train.py [--device auto|cpu|cuda] [--batch-size 256] [--steps 60]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from nas.data import load_splits
from nas.model.build import build_model
from nas.model.cost import arch_cost
from nas.space import load_space
from nas.train import Recipe, param_groups, resolve_device, train_child


def child():
    """A mid-sized resnet_like child: 3 stages of basic blocks, base width 32."""
    space = load_space("resnet_like")
    return space.sample(np.random.default_rng(3), max_macs=60e6)


def baseline(arch, splits, batch_size: int, steps: int, device: torch.device, bf16: bool, channels_last: bool) -> float:
    """The loop a person writes by hand: uint8 data on the device, SGD, cross-entropy."""
    torch.manual_seed(0)
    model = build_model(arch).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(param_groups(model.parameters(), 5e-4), lr=0.05, momentum=0.9, nesterov=True)
    x_all = torch.from_numpy(splits.train_x).to(device)
    y_all = torch.from_numpy(splits.train_y).to(device)
    mean = torch.tensor(splits.info.mean, device=device).view(1, -1, 1, 1) * 255
    std = torch.tensor(splits.info.std, device=device).view(1, -1, 1, 1) * 255
    model.train()
    per_epoch = len(x_all) // batch_size

    def step(i):
        idx = torch.randint(0, len(x_all), (batch_size,), device=device)
        x = (x_all[idx].float() - mean) / std
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y_all[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for i in range(min(5, steps)):  # warm-up, as the trainer's first epoch also pays it
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(steps):
        loss = step(i)
        if (i + 1) % per_epoch == 0:
            loss.item()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40, help="optimiser steps per measured epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="alternating measurement rounds (best of each)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    n = args.batch_size * args.steps
    splits = load_splits("synthetic", n_train=n, n_test=256, shape=(3, 32, 32), classes=10, val_fraction=256 / (n + 256))
    arch = child().with_io((3, 32, 32), 10)
    cost = arch_cost(arch)
    print(f"device={device} ({torch.cuda.get_device_name(device) if cuda else 'cpu'}), threads={torch.get_num_threads()}")
    print(f"child {arch.arch_id}: {cost.macs / 1e6:.1f} M multiply-adds, {cost.params / 1e6:.3f} M params")
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size, lr=0.05, augment=False, device=str(device), compile="off")
    # Steady state on both sides: the trainer's epochs after the first (which pays one-time costs)
    # against the baseline after its warm-up steps; rounds alternate so drift hits both alike.
    ours, base, aug = [], [], []
    for _ in range(args.rounds):
        run = train_child(arch, splits, recipe)
        ours.append(float(np.median([h["images_per_s"] for h in run.history[1:]])))
        base.append(baseline(arch, splits, args.batch_size, args.steps * (args.epochs - 1), device, cuda, cuda))
    augmented = train_child(arch, splits, Recipe(**{**recipe.__dict__, "augment": True}))
    aug = float(np.median([h["images_per_s"] for h in augmented.history[1:]]))
    print(f"rounds: trainer {[round(x, 1) for x in ours]}, baseline {[round(x, 1) for x in base]} images/s")
    print(f"trainer with augmentation (crop + flip) = {aug:.1f} images/s")
    best_ours, best_base = max(ours), max(base)
    print(f"images_per_second={best_ours:.1f}")
    print(f"baseline_images_per_second={best_base:.1f}")
    print(f"ratio={best_ours / best_base:.3f}")


if __name__ == "__main__":
    main()
