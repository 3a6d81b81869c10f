"""Primitive layers and their analytic cost twins (multiply-adds, params, output bytes)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from nas.arch import ArchError

BYTES_PER_VALUE = 4  # activation memory is reported at float32, batch 1

ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "silu": lambda: nn.SiLU(inplace=True),
    "hardswish": lambda: nn.Hardswish(inplace=True),
    "gelu": lambda: nn.GELU(),
    "sigmoid": lambda: nn.Sigmoid(),
}


def activation(name: str) -> nn.Module:
    """The activation module called name ('none' gives Identity)."""
    if name == "none":
        return nn.Identity()
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}' (known: none, {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]()


def conv_out(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool = False) -> int:
    """Output length of a convolution or pooling window along one axis."""
    span = size + 2 * padding - kernel
    if span < 0:
        raise ArchError(f"a {kernel}x{kernel} window does not fit a {size}-pixel input with padding {padding}")
    return (-(-span // stride) if ceil_mode else span // stride) + 1


def adaptive_window_sum(size: int, out: int) -> int:
    """Sum of window lengths PyTorch's adaptive pooling uses to map size onto out."""
    return sum(-(-((i + 1) * size) // out) - (i * size) // out for i in range(out))


@dataclass
class LayerRow:
    """One primitive layer of the per-layer cost table."""

    name: str
    kind: str  # conv | linear | pool | bn | act | add | mul
    c_in: int
    h_in: int
    w_in: int
    c_out: int
    h_out: int
    w_out: int
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    groups: int = 1
    params: int = 0
    macs: int = 0
    act_bytes: int = 0


class Tally:
    """Accumulates cost; keeps a row per primitive layer only when detail is asked for."""

    __slots__ = ("params", "macs", "act_bytes", "rows")

    def __init__(self, detail: bool = False):
        self.params = self.macs = self.act_bytes = 0
        self.rows: list[LayerRow] | None = [] if detail else None

    def _add(self, name, kind, c_in, h_in, w_in, c_out, h_out, w_out, params, macs, kernel=0, stride=1, padding=0, groups=1):
        out_bytes = c_out * h_out * w_out * BYTES_PER_VALUE
        self.params += params
        self.macs += macs
        self.act_bytes += out_bytes
        if self.rows is not None:
            self.rows.append(LayerRow(name, kind, c_in, h_in, w_in, c_out, h_out, w_out,
                                      kernel, stride, padding, groups, params, macs, out_bytes))

    def conv(self, name, c_in, c_out, h, w, kernel, stride=1, padding=None, groups=1, bias=False):
        """A Conv2d; returns the output (h, w)."""
        padding = kernel // 2 if padding is None else padding
        h2, w2 = conv_out(h, kernel, stride, padding), conv_out(w, kernel, stride, padding)
        per_out = (c_in // groups) * kernel * kernel
        params = c_out * per_out + (c_out if bias else 0)
        self._add(name, "conv", c_in, h, w, c_out, h2, w2, params, c_out * h2 * w2 * per_out, kernel, stride, padding, groups)
        return h2, w2

    def bn(self, name, c, h, w):
        self._add(name, "bn", c, h, w, c, h, w, 2 * c, 0)

    def act(self, name, c, h, w, kind="relu"):
        if kind != "none":
            self._add(name, "act", c, h, w, c, h, w, 0, 0)

    def pool(self, name, c, h, w, kernel, stride, padding=0, ceil_mode=False):
        """A K x K pooling window: K*K multiply-adds per output element (the course's convention)."""
        h2, w2 = conv_out(h, kernel, stride, padding, ceil_mode), conv_out(w, kernel, stride, padding, ceil_mode)
        self._add(name, "pool", c, h, w, c, h2, w2, 0, c * h2 * w2 * kernel * kernel, kernel, stride, padding)
        return h2, w2

    def adaptive_pool(self, name, c, h, w, size):
        """Adaptive pooling to size x size: every window's elements are counted exactly."""
        macs = c * adaptive_window_sum(h, size) * adaptive_window_sum(w, size)
        self._add(name, "pool", c, h, w, c, size, size, 0, macs, -(-h // size), 1, 0)
        return size, size

    def linear(self, name, f_in, f_out, bias=True):
        self._add(name, "linear", f_in, 1, 1, f_out, 1, 1, f_in * f_out + (f_out if bias else 0), f_in * f_out)

    def add(self, name, c, h, w):
        self._add(name, "add", c, h, w, c, h, w, 0, 0)

    def mul(self, name, c, h, w):
        self._add(name, "mul", c, h, w, c, h, w, 0, 0)


def conv_bn_act(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: str = "relu",
                padding: int | None = None) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm -> activation, the unit most blocks are made of."""
    padding = kernel // 2 if padding is None else padding
    layers = OrderedDict(conv=nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=False),
                         bn=nn.BatchNorm2d(c_out))
    if act != "none":
        layers["act"] = activation(act)
    return nn.Sequential(layers)


def conv_bn_act_cost(t: Tally, name: str, c_in: int, c_out: int, h: int, w: int, kernel: int, stride: int = 1,
                     groups: int = 1, act: str = "relu", padding: int | None = None) -> tuple[int, int]:
    """Cost twin of conv_bn_act; returns the output (h, w)."""
    h, w = t.conv(f"{name}.conv", c_in, c_out, h, w, kernel, stride, padding, groups)
    t.bn(f"{name}.bn", c_out, h, w)
    t.act(f"{name}.act", c_out, h, w, act)
    return h, w


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation gate: global pool, 1x1 conv down, act, 1x1 conv up, sigmoid, scale."""

    def __init__(self, channels: int, squeeze: int, act: str = "relu"):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = activation(act)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))

    @staticmethod
    def complexity(t: Tally, name: str, channels: int, squeeze: int, h: int, w: int, act: str = "relu") -> None:
        t.adaptive_pool(f"{name}.pool", channels, h, w, 1)
        t.conv(f"{name}.fc1", channels, squeeze, 1, 1, 1, bias=True)
        t.act(f"{name}.act", squeeze, 1, 1, act)
        t.conv(f"{name}.fc2", squeeze, channels, 1, 1, 1, bias=True)
        t.act(f"{name}.gate", channels, 1, 1, "sigmoid")
        t.mul(f"{name}.scale", channels, h, w)
