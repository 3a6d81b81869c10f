"""The network skeleton every architecture builds into: stem, stages of blocks, head."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from nas.model.layers import Tally, activation, conv_bn_act, conv_bn_act_cost


class Head(nn.Module):
    """Optional 1x1 conv or BN+act, pooling to pool_size^2, hidden linears with act and dropout, classifier."""

    def __init__(self, c_in: int, classes: int, conv: int = 0, pool: str = "avg", pool_size: int = 1,
                 hidden: tuple = (), dropout: float = 0.0, act: str = "relu", norm_act: bool = False):
        super().__init__()
        self.conv = conv_bn_act(c_in, conv, 1, act=act) if conv else nn.Identity()
        c_in = conv or c_in
        self.norm = nn.Sequential(OrderedDict(bn=nn.BatchNorm2d(c_in), act=activation(act))) if norm_act else nn.Identity()
        self.pool = (nn.AdaptiveAvgPool2d if pool == "avg" else nn.AdaptiveMaxPool2d)(pool_size)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        features = c_in * pool_size * pool_size
        for i, width in enumerate(hidden, 1):
            layers[f"fc{i}"] = nn.Linear(features, width)
            layers[f"act{i}"] = activation(act)
            layers[f"drop{i}"] = nn.Dropout(dropout)
            features = width
        if dropout and not hidden:
            layers["drop"] = nn.Dropout(dropout)
        layers["fc"] = nn.Linear(features, classes)
        self.classifier = nn.Sequential(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # N,C,H,W -> N,classes
        return self.classifier(torch.flatten(self.pool(self.norm(self.conv(x))), 1))

    @staticmethod
    def complexity(t: Tally, name: str, c_in: int, classes: int, h: int, w: int, conv: int = 0, pool: str = "avg",
                   pool_size: int = 1, hidden: tuple = (), dropout: float = 0.0, act: str = "relu",
                   norm_act: bool = False) -> None:
        if conv:
            conv_bn_act_cost(t, f"{name}.conv", c_in, conv, h, w, 1, act=act)
            c_in = conv
        if norm_act:
            t.bn(f"{name}.norm.bn", c_in, h, w)
            t.act(f"{name}.norm.act", c_in, h, w, act)
        t.adaptive_pool(f"{name}.pool", c_in, h, w, pool_size)
        features = c_in * pool_size * pool_size
        for i, width in enumerate(hidden, 1):
            t.linear(f"{name}.classifier.fc{i}", features, width)
            t.act(f"{name}.classifier.act{i}", width, 1, 1, act)
            features = width
        t.linear(f"{name}.classifier.fc", features, classes)


class Network(nn.Module):
    """stem -> s1 -> s2 -> ... -> head; module names match the cost table's layer names."""

    def __init__(self, stem: list[nn.Module], stages: list[list[nn.Module]], head: nn.Module):
        super().__init__()
        self.stem = nn.Sequential(OrderedDict((f"b{j}", block) for j, block in enumerate(stem, 1)))
        for i, stage in enumerate(stages, 1):
            self.add_module(f"s{i}", nn.Sequential(OrderedDict((f"b{j}", b) for j, b in enumerate(stage, 1))))
        self.num_stages = len(stages)
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"s{i}")(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # N,C,H,W -> N,classes
        return self.head(self.features(x))
