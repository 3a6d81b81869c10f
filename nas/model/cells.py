"""Cell blocks: a DAG of nodes whose edges each apply a chosen operation (NAS-Bench-201 style)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import networkx as nx
import torch
from torch import nn

from nas.arch import ArchError
from nas.model.blocks import register_block
from nas.model.layers import Tally
from nas.model.registries import CELL_OPS


def register_cell_op(name: str, cost: Callable):
    """Decorator for an edge operation: a module factory f(channels) and its cost twin."""
    def add(factory: Callable[[int], nn.Module]):
        CELL_OPS.add(name, (factory, cost))
        return factory
    return add


def _relu_conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """ReLU -> Conv (no bias) -> BN: NAS-Bench-201's pre-activation conv unit."""
    return nn.Sequential(OrderedDict(
        act=nn.ReLU(inplace=False),
        conv=nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
        bn=nn.BatchNorm2d(c_out)))


def _relu_conv_bn_cost(t: Tally, name: str, c_in: int, c_out: int, h: int, w: int, kernel: int, stride: int = 1):
    t.act(f"{name}.act", c_in, h, w)
    h, w = t.conv(f"{name}.conv", c_in, c_out, h, w, kernel, stride)
    t.bn(f"{name}.bn", c_out, h, w)
    return h, w


class Zero(nn.Module):
    """The 'none' edge: contributes nothing (a zero tensor of the input's shape)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


register_cell_op("none", lambda t, name, c, h, w: None)(lambda c: Zero())
register_cell_op("skip_connect", lambda t, name, c, h, w: None)(lambda c: nn.Identity())
register_cell_op("nor_conv_1x1", lambda t, name, c, h, w: _relu_conv_bn_cost(t, name, c, c, h, w, 1))(
    lambda c: _relu_conv_bn(c, c, 1))
register_cell_op("nor_conv_3x3", lambda t, name, c, h, w: _relu_conv_bn_cost(t, name, c, c, h, w, 3))(
    lambda c: _relu_conv_bn(c, c, 3))
register_cell_op("avg_pool_3x3", lambda t, name, c, h, w: t.pool(f"{name}", c, h, w, 3, 1, 1))(
    lambda c: nn.AvgPool2d(3, 1, 1, count_include_pad=False))


def cell_graph(edges) -> nx.DiGraph:
    """The cell as a networkx DAG; edges are (src, dst, op) with src < dst, node 0 the input."""
    graph = nx.DiGraph()
    for src, dst, op in edges:
        graph.add_edge(int(src), int(dst), op=op)
    return graph


def check_cell_edges(edges) -> str | None:
    """Why these edges are not a valid cell, or None."""
    if not edges:
        return "a cell needs at least one edge"
    for src, dst, op in edges:
        if op not in CELL_OPS:
            return f"unknown cell operation '{op}' (known: {', '.join(CELL_OPS)})"
        if not 0 <= src < dst:
            return f"cell edge {src}->{dst} must go from a lower to a higher node"
    graph = cell_graph(edges)
    last = max(graph.nodes)
    missing = [n for n in range(1, last + 1) if n not in graph or graph.in_degree(n) == 0]
    return f"cell node {missing[0]} has no incoming edge" if missing else None


def _edge_key(src: int, dst: int) -> str:
    return f"{dst}<-{src}"  # ModuleDict keys cannot hold dots; NAS-Bench-201 uses this form


@register_block("cell")
class Cell(nn.Module):
    """Node j sums op(node i) over its incoming edges; the last node is the output."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, edges: tuple = ()):
        super().__init__()
        edges = sorted(edges, key=lambda e: (e[1], e[0]))  # by destination: inputs are ready in forward
        self.edges = [(int(s), int(d)) for s, d, _ in edges]
        self.nodes = max(d for _, d in self.edges) + 1
        self.ops = nn.ModuleDict({_edge_key(s, d): CELL_OPS[op][0](c_out) for s, d, op in edges})

    @staticmethod
    def check(c_in, c_out, stride, edges=()):
        if c_in != c_out or stride != 1:
            return f"a cell keeps its shape: needs in == out channels and stride 1 (got {c_in}->{c_out}, stride {stride})"
        return check_cell_edges(edges)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x] + [None] * (self.nodes - 1)
        for src, dst in self.edges:
            out = self.ops[_edge_key(src, dst)](nodes[src])
            nodes[dst] = out if nodes[dst] is None else nodes[dst] + out
        return nodes[-1]

    @staticmethod
    def complexity(t, name, c_in, c_out, h, w, stride=1, edges=()):
        fan_in: dict[int, int] = {}
        for src, dst, op in edges:
            CELL_OPS[op][1](t, f"{name}.ops.{_edge_key(src, dst)}", c_out, h, w)
            fan_in[dst] = fan_in.get(dst, 0) + 1
            if fan_in[dst] > 1:
                t.add(f"{name}.node{dst}.add{fan_in[dst] - 1}", c_out, h, w)
        return h, w


@register_block("nb201_residual")
class NB201Residual(nn.Module):
    """NAS-Bench-201's reduction block: two ReLU-conv-BN 3x3 units, avg-pool + 1x1 conv shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 2):
        super().__init__()
        self.conv_a = _relu_conv_bn(c_in, c_out, 3, stride)
        self.conv_b = _relu_conv_bn(c_out, c_out, 3)
        if stride == 2:
            self.shortcut = nn.Sequential(OrderedDict(
                pool=nn.AvgPool2d(2, 2), conv=nn.Conv2d(c_in, c_out, 1, bias=False)))
        elif c_in != c_out:
            self.shortcut = _relu_conv_bn(c_in, c_out, 1)
        else:
            self.shortcut = nn.Identity()

    @staticmethod
    def check(c_in, c_out, stride):
        return None if stride in (1, 2) else f"nb201_residual supports stride 1 or 2, got {stride}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))

    @staticmethod
    def complexity(t, name, c_in, c_out, h, w, stride=2):
        if stride == 2 and (h % 2 or w % 2):
            raise ArchError(f"{name}: nb201_residual with stride 2 needs an even input size, got {h}x{w}")
        h2, w2 = _relu_conv_bn_cost(t, f"{name}.conv_a", c_in, c_out, h, w, 3, stride)
        _relu_conv_bn_cost(t, f"{name}.conv_b", c_out, c_out, h2, w2, 3)
        if stride == 2:
            hp, wp = t.pool(f"{name}.shortcut.pool", c_in, h, w, 2, 2)
            t.conv(f"{name}.shortcut.conv", c_in, c_out, hp, wp, 1)
        elif c_in != c_out:
            _relu_conv_bn_cost(t, f"{name}.shortcut", c_in, c_out, h, w, 1)
        t.add(f"{name}.add", c_out, h2, w2)
        return h2, w2
