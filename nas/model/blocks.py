"""Blocks of the language: each a module plus a complexity() twin taking the same arguments."""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Callable
from functools import cache, lru_cache

import torch
from torch import nn

from nas.model.channels import bottleneck_width, expanded_width, se_width
from nas.model.layers import SqueezeExcite, Tally, activation, conv_bn_act, conv_bn_act_cost

BLOCKS: dict[str, type[nn.Module]] = {}


def register_block(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make a block type available to spaces and architectures by name."""
    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if name in BLOCKS:
            raise ValueError(f"block type '{name}' is registered twice")
        BLOCKS[name] = cls
        return cls
    return add


def block_class(name: str) -> type[nn.Module]:
    """The module class of a block type; the error lists every known type."""
    try:
        return BLOCKS[name]
    except KeyError:
        raise ValueError(f"unknown block type '{name}' (known: {', '.join(sorted(BLOCKS))})") from None


@cache
def _signature_defaults(cls: type) -> dict[str, object]:
    params = inspect.signature(cls.__init__).parameters
    return {k: p.default for k, p in params.items() if k not in ("self", "c_in", "c_out", "stride")}


def block_options(name: str) -> dict[str, object]:
    """Option names of a block type with their defaults (everything after c_in, c_out, stride)."""
    return dict(_signature_defaults(block_class(name)))


@lru_cache(maxsize=65536)
def check_block(name: str, c_in: int, c_out: int, stride: int, options: tuple) -> str | None:
    """Why this block cannot exist with these channels and (key, value) options, or None."""
    options = dict(options)
    known = _signature_defaults(block_class(name))
    unknown = sorted(set(options) - set(known))
    if unknown:
        return f"block '{name}' has no option {unknown[0]!r} (known: {', '.join(known) or 'none'})"
    check = getattr(block_class(name), "check", None)
    return check(c_in, c_out, stride, **options) if check else None


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module | None:
    """Projection shortcut (1x1 conv + BN) when the shape changes, else None (identity)."""
    return conv_bn_act(c_in, c_out, 1, stride, act="none") if stride != 1 or c_in != c_out else None


def _shortcut_cost(t: Tally, name: str, c_in: int, c_out: int, h: int, w: int, stride: int) -> None:
    if stride != 1 or c_in != c_out:
        conv_bn_act_cost(t, f"{name}.shortcut", c_in, c_out, h, w, 1, stride, act="none")


class _Residual(nn.Module):
    """Shared forward of residual blocks: act(branch(x) + shortcut(x))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        if self.se is not None:
            out = self.se(out)
        out = out + (x if self.shortcut is None else self.shortcut(x))
        return self.act(out)


@register_block("basic")
class BasicBlock(_Residual):
    """ResNet basic block: two 3x3 convs, projection shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, se_ratio: float = 0.0, act: str = "relu"):
        super().__init__()
        self.branch = nn.Sequential(OrderedDict(
            conv1=conv_bn_act(c_in, c_out, 3, stride, act=act),
            conv2=conv_bn_act(c_out, c_out, 3, act="none")))
        self.se = SqueezeExcite(c_out, se_width(c_out, se_ratio)) if se_ratio else None
        self.shortcut = _shortcut(c_in, c_out, stride)
        self.act = activation(act)

    @staticmethod
    def complexity(t, name, c_in, c_out, h, w, stride=1, se_ratio=0.0, act="relu"):
        h2, w2 = conv_bn_act_cost(t, f"{name}.branch.conv1", c_in, c_out, h, w, 3, stride, act=act)
        h2, w2 = conv_bn_act_cost(t, f"{name}.branch.conv2", c_out, c_out, h2, w2, 3, act="none")
        if se_ratio:
            SqueezeExcite.complexity(t, f"{name}.se", c_out, se_width(c_out, se_ratio), h2, w2)
        _shortcut_cost(t, name, c_in, c_out, h, w, stride)
        t.add(f"{name}.add", c_out, h2, w2)
        t.act(f"{name}.act", c_out, h2, w2, act)
        return h2, w2


@register_block("bottleneck")
class Bottleneck(_Residual):
    """ResNet bottleneck: 1x1 reduce to out*mid_ratio, 3x3 (grouped, strided), 1x1 expand."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, mid_ratio: float = 0.25, groups: int = 1,
                 group_width: int = 0, se_ratio: float = 0.0, act: str = "relu"):
        super().__init__()
        mid, groups = bottleneck_width(c_out, mid_ratio, groups, group_width)
        self.branch = nn.Sequential(OrderedDict(
            conv1=conv_bn_act(c_in, mid, 1, act=act),
            conv2=conv_bn_act(mid, mid, 3, stride, groups=groups, act=act),
            conv3=conv_bn_act(mid, c_out, 1, act="none")))
        self.se = SqueezeExcite(c_out, se_width(c_out, se_ratio)) if se_ratio else None
        self.shortcut = _shortcut(c_in, c_out, stride)
        self.act = activation(act)

    @staticmethod
    def complexity(t, name, c_in, c_out, h, w, stride=1, mid_ratio=0.25, groups=1, group_width=0,
                   se_ratio=0.0, act="relu"):
        mid, groups = bottleneck_width(c_out, mid_ratio, groups, group_width)
        h1, w1 = conv_bn_act_cost(t, f"{name}.branch.conv1", c_in, mid, h, w, 1, act=act)
        h2, w2 = conv_bn_act_cost(t, f"{name}.branch.conv2", mid, mid, h1, w1, 3, stride, groups, act)
        conv_bn_act_cost(t, f"{name}.branch.conv3", mid, c_out, h2, w2, 1, act="none")
        if se_ratio:
            SqueezeExcite.complexity(t, f"{name}.se", c_out, se_width(c_out, se_ratio), h2, w2)
        _shortcut_cost(t, name, c_in, c_out, h, w, stride)
        t.add(f"{name}.add", c_out, h2, w2)
        t.act(f"{name}.act", c_out, h2, w2, act)
        return h2, w2


@register_block("resnext")
class ResNeXtBlock(Bottleneck):
    """ResNeXt block: a bottleneck whose 3x3 conv is grouped (groups or group_width channels each)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, mid_ratio: float = 0.5, groups: int = 32,
                 group_width: int = 0, se_ratio: float = 0.0, act: str = "relu"):
        super().__init__(c_in, c_out, stride, mid_ratio, groups, group_width, se_ratio, act)

    @staticmethod
    def complexity(t, name, c_in, c_out, h, w, stride=1, mid_ratio=0.5, groups=32, group_width=0,
                   se_ratio=0.0, act="relu"):
        return Bottleneck.complexity(t, name, c_in, c_out, h, w, stride, mid_ratio, groups, group_width, se_ratio, act)


@register_block("dwsep")
class DepthwiseSeparable(nn.Module):
    """MobileNetV1 block: depthwise kxk conv, optional SE, pointwise 1x1 conv."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, kernel: int = 3, se_ratio: float = 0.0,
                 act: str = "relu"):
        super().__init__()
        self.dw = conv_bn_act(c_in, c_in, kernel, stride, groups=c_in, act=act)
        self.se = SqueezeExcite(c_in, se_width(c_in, se_ratio)) if se_ratio else nn.Identity()
        self.pw = conv_bn_act(c_in, c_out, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.se(self.dw(x)))

    @staticmethod
    def complexity(t, name, c_in, c_out, h, w, stride=1, kernel=3, se_ratio=0.0, act="relu"):
        h, w = conv_bn_act_cost(t, f"{name}.dw", c_in, c_in, h, w, kernel, stride, c_in, act)
        if se_ratio:
            SqueezeExcite.complexity(t, f"{name}.se", c_in, se_width(c_in, se_ratio), h, w)
        return conv_bn_act_cost(t, f"{name}.pw", c_in, c_out, h, w, 1, act=act)


@register_block("mbconv")
class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual: 1x1 expand, depthwise kxk, optional SE, linear 1x1 project."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, kernel: int = 3, expansion: float = 6,
                 se_ratio: float = 0.0, act: str = "relu6"):
        super().__init__()
        hidden = expanded_width(c_in, expansion)
        self.expand = conv_bn_act(c_in, hidden, 1, act=act) if hidden != c_in else nn.Identity()
        self.dw = conv_bn_act(hidden, hidden, kernel, stride, groups=hidden, act=act)
        self.se = SqueezeExcite(hidden, se_width(c_in, se_ratio)) if se_ratio else nn.Identity()
        self.project = conv_bn_act(hidden, c_out, 1, act="none")
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.dw(self.expand(x))))
        return x + out if self.residual else out

    @staticmethod
    def complexity(t, name, c_in, c_out, h, w, stride=1, kernel=3, expansion=6, se_ratio=0.0, act="relu6"):
        hidden = expanded_width(c_in, expansion)
        if hidden != c_in:
            conv_bn_act_cost(t, f"{name}.expand", c_in, hidden, h, w, 1, act=act)
        h2, w2 = conv_bn_act_cost(t, f"{name}.dw", hidden, hidden, h, w, kernel, stride, hidden, act)
        if se_ratio:
            SqueezeExcite.complexity(t, f"{name}.se", hidden, se_width(c_in, se_ratio), h2, w2)
        conv_bn_act_cost(t, f"{name}.project", hidden, c_out, h2, w2, 1, act="none")
        if stride == 1 and c_in == c_out:
            t.add(f"{name}.add", c_out, h2, w2)
        return h2, w2


@register_block("conv")
class ConvBlock(nn.Module):
    """Plain convolution (VGG/AlexNet style, or a stem): conv, optional BN, activation."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, kernel: int = 3, padding: int = -1,
                 groups: int = 1, bn: bool = True, act: str = "relu"):
        super().__init__()
        padding = kernel // 2 if padding < 0 else padding
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=not bn)
        self.bn = nn.BatchNorm2d(c_out) if bn else nn.Identity()
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @staticmethod
    def check(c_in, c_out, stride, groups=1, **_):
        if c_in % groups or c_out % groups:
            return f"conv groups={groups} must divide both {c_in} input and {c_out} output channels"
        return None

    @staticmethod
    def complexity(t, name, c_in, c_out, h, w, stride=1, kernel=3, padding=-1, groups=1, bn=True, act="relu"):
        padding = kernel // 2 if padding < 0 else padding
        h, w = t.conv(f"{name}.conv", c_in, c_out, h, w, kernel, stride, padding, groups, bias=not bn)
        if bn:
            t.bn(f"{name}.bn", c_out, h, w)
        t.act(f"{name}.act", c_out, h, w, act)
        return h, w


@register_block("pool")
class PoolBlock(nn.Module):
    """Max or average pooling (VGG stage ends, the ImageNet stem's 3x3/2 max-pool)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 2, kernel: int = 2, padding: int = 0,
                 mode: str = "max"):
        super().__init__()
        pool = nn.MaxPool2d if mode == "max" else nn.AvgPool2d
        self.pool = pool(kernel, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)

    @staticmethod
    def check(c_in, c_out, stride, mode="max", **_):
        if c_in != c_out:
            return f"pool keeps channels: out must equal {c_in}, got {c_out}"
        return None if mode in ("max", "avg") else f"pool mode must be max or avg, got {mode!r}"

    @staticmethod
    def complexity(t, name, c_in, c_out, h, w, stride=2, kernel=2, padding=0, mode="max"):
        return t.pool(f"{name}.pool", c_in, h, w, kernel, stride, padding)


@register_block("identity")
class IdentityBlock(nn.Module):
    """Skip a layer; where the shape changes it becomes a strided 1x1 conv + BN projection."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.proj = _shortcut(c_in, c_out, stride) or nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)

    @staticmethod
    def complexity(t, name, c_in, c_out, h, w, stride=1):
        if stride == 1 and c_in == c_out:
            return h, w
        return conv_bn_act_cost(t, f"{name}.proj", c_in, c_out, h, w, 1, stride, act="none")
