"""Channel rules: tiny pure functions that turn a space's width settings into channel counts."""

from __future__ import annotations

import numpy as np


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round to the nearest multiple of divisor without dropping more than 10% (MobileNet rule)."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return int(rounded)


def scale_width(width: int, multiplier: float = 1.0, divisor: int = 1) -> int:
    """Apply a width multiplier, then make the result divisible by divisor."""
    if multiplier == 1.0 and divisor <= 1:
        return int(width)
    return make_divisible(width * multiplier, divisor) if divisor > 1 else max(1, int(round(width * multiplier)))


def double_after_downsample(base: int, strides: list[int] | tuple[int, ...]) -> list[int]:
    """Stage widths that double at every stage whose stride downsamples (the VGG/ResNet rule)."""
    widths, width = [], base
    for i, stride in enumerate(strides):
        if stride > 1 and i > 0:
            width *= 2
        widths.append(width)
    return widths


def regnet_widths(w0: float, wa: float, wm: float, depth: int, q: int = 8) -> tuple[list[int], list[int]]:
    """RegNet quantized-linear rule: per-stage (widths, depths) from w0, wa, wm and total depth."""
    if w0 <= 0 or wa < 0 or wm <= 1 or depth < 1:
        raise ValueError(f"regnet needs w0 > 0, wa >= 0, wm > 1, depth >= 1 (got {w0}, {wa}, {wm}, {depth})")
    linear = w0 + wa * np.arange(depth)  # u_j = w0 + wa * j
    exps = np.round(np.log(linear / w0) / np.log(wm))  # s_j
    widths = np.round(w0 * np.power(wm, exps) / q) * q  # quantized w_j
    stage_widths, stage_depths = np.unique(widths, return_counts=True)
    return [int(w) for w in stage_widths], [int(d) for d in stage_depths]


def group_compatible(mid: int, groups: int | None = None, group_width: int | None = None) -> tuple[int, int]:
    """Adjust a grouped conv's width so groups divide it; returns (mid, groups)."""
    if group_width:
        group_width = min(group_width, mid)
        mid = max(group_width, int(round(mid / group_width)) * group_width)
        return mid, mid // group_width
    groups = max(1, min(groups or 1, mid))
    return max(groups, int(round(mid / groups)) * groups), groups


def bottleneck_width(c_out: int, ratio: float, groups: int | None = None, group_width: int | None = None) -> tuple[int, int]:
    """Middle width and groups of a bottleneck/ResNeXt block (mid = out * ratio, group-compatible)."""
    return group_compatible(max(1, int(round(c_out * ratio))), groups, group_width)


def se_width(channels: int, ratio: float) -> int:
    """Squeeze width of a squeeze-excitation gate on `channels` channels."""
    return max(1, int(round(channels * ratio)))


def expanded_width(c_in: int, expansion: float) -> int:
    """Hidden width of an inverted residual: the input width times the expansion (MobileNetV2)."""
    return int(round(c_in * expansion))
