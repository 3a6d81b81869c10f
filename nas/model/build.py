"""Arch -> construction plan -> nn.Module. One plan serves the builder, the cost model and export."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from nas.arch import Arch, ArchError, Block
from nas.model.blocks import block_class, check_block
from nas.model.network import Head, Network


@dataclass(frozen=True)
class Call:
    """One constructor call: cls(c_in, c_out, stride=..., **kwargs); `path` is its module name."""

    path: str
    cls: type
    c_in: int
    c_out: int
    stride: int
    kwargs: tuple[tuple[str, Any], ...]

    def instantiate(self) -> nn.Module:
        return self.cls(self.c_in, self.c_out, self.stride, **dict(self.kwargs))


@dataclass(frozen=True)
class Plan:
    """The whole network as constructor calls: stem calls, stage calls, head arguments."""

    stem: tuple[Call, ...]
    stages: tuple[tuple[Call, ...], ...]
    head_c_in: int
    classes: int
    head_kwargs: tuple[tuple[str, Any], ...]


def _call(path: str, block: Block, c_in: int) -> Call:
    try:
        cls = block_class(block.type)
    except ValueError as err:
        raise ArchError(f"{path}: {err}") from None
    problem = check_block(block.type, c_in, block.out, block.stride, block.options)
    if problem:
        raise ArchError(f"{path}: {problem}")
    return Call(path, cls, c_in, block.out, block.stride, block.options)


def plan(arch: Arch) -> Plan:
    """Resolve channels block by block and validate every block against its type."""
    c = arch.input[0]
    stem = []
    for j, block in enumerate(arch.stem, 1):
        stem.append(_call(f"stem.b{j}", block, c))
        c = block.out
    stages = []
    for i, stage in enumerate(arch.stages, 1):
        calls = []
        for j, block in enumerate(stage, 1):
            calls.append(_call(f"s{i}.b{j}", block, c))
            c = block.out
        stages.append(tuple(calls))
    head = arch.head.to_dict()
    head["hidden"] = tuple(head["hidden"])
    return Plan(tuple(stem), tuple(stages), c, arch.classes, tuple(head.items()))


def build_model(arch: Arch) -> Network:
    """A freshly initialised nn.Module for arch (pure: same arch, same structure)."""
    p = plan(arch)
    return Network(stem=[c.instantiate() for c in p.stem],
                   stages=[[c.instantiate() for c in stage] for stage in p.stages],
                   head=Head(p.head_c_in, p.classes, **dict(p.head_kwargs)))
