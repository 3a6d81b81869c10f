"""The architecture type: a frozen, JSON-round-trippable network description (no torch)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

JsonValue = Any  # int | float | str | bool | None | tuple of JsonValue


class ArchError(ValueError):
    """An architecture that cannot be built (unknown block, bad option, impossible shapes)."""


def _canonical(value: Any) -> JsonValue:
    """Normalise an option value so equal meanings hash equally (lists -> tuples, 2.0 -> 2)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    raise TypeError(f"architecture values must be JSON scalars or lists, got {type(value).__name__}")


def _to_json(value: JsonValue) -> Any:
    return [_to_json(v) for v in value] if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Block:
    """One block of a stage: a registered block type, output channels, stride and typed options."""

    type: str
    out: int
    stride: int = 1
    options: tuple[tuple[str, JsonValue], ...] = ()

    @classmethod
    def make(cls, type: str, out: int, stride: int = 1, **options: Any) -> Block:
        """Build a block with options normalised (sorted keys, canonical numbers)."""
        opts = tuple(sorted((k, _canonical(v)) for k, v in options.items()))
        return cls(type=str(type), out=int(out), stride=int(stride), options=opts)

    def __post_init__(self) -> None:
        if self.out < 1:
            raise ValueError(f"block '{self.type}': out channels must be >= 1, got {self.out}")
        if self.stride < 1:
            raise ValueError(f"block '{self.type}': stride must be >= 1, got {self.stride}")

    @property
    def kwargs(self) -> dict[str, JsonValue]:
        """Options as a dict (what the block's module and complexity twin take)."""
        return dict(self.options)

    def get(self, key: str, default: Any = None) -> Any:
        """One option, or default when the block does not set it."""
        return dict(self.options).get(key, default)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "out": self.out, "stride": self.stride}
        out.update({k: _to_json(v) for k, v in self.options})
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Block:
        data = dict(data)
        try:
            type_, out = data.pop("type"), data.pop("out")
        except KeyError as missing:
            raise ValueError(f"block needs field {missing}") from None
        return cls.make(type_, out, data.pop("stride", 1), **data)


@dataclass(frozen=True)
class Head:
    """Classifier: optional 1x1 conv or BN+act, pooling to pool_size^2, hidden linears, dropout, linear."""

    conv: int = 0  # 1x1 conv + BN + act to this width before pooling (MobileNetV2's 1280); 0 = none
    pool: str = "avg"  # "avg" | "max"
    pool_size: int = 1  # 1 = global pooling; 7 = torchvision VGG's adaptive 7x7
    hidden: tuple[int, ...] = ()
    dropout: float = 0.0
    act: str = "relu"
    norm_act: bool = False  # BN + act before pooling (pre-activation networks, NAS-Bench-201)

    def __post_init__(self) -> None:
        # canonical types, so equal heads hash equally whichever way they were written
        object.__setattr__(self, "conv", int(self.conv))
        object.__setattr__(self, "pool_size", int(self.pool_size))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "dropout", float(self.dropout))
        object.__setattr__(self, "norm_act", bool(self.norm_act))

    def to_dict(self) -> dict[str, Any]:
        return {"conv": self.conv, "pool": self.pool, "pool_size": self.pool_size, "hidden": list(self.hidden),
                "dropout": self.dropout, "act": self.act, "norm_act": self.norm_act}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Head:
        data = dict(data)
        data["hidden"] = tuple(int(h) for h in data.get("hidden", ()))
        if "dropout" in data:
            data["dropout"] = float(data["dropout"])
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"head: unknown field(s) {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class Arch:
    """A whole network: input (C, H, W), classes, stem blocks, stages of blocks, head."""

    input: tuple[int, int, int]
    classes: int
    stem: tuple[Block, ...]
    stages: tuple[tuple[Block, ...], ...]
    head: Head = field(default_factory=Head)
    name: str = ""  # a label for references ("resnet50"); not part of the identity

    def __post_init__(self) -> None:
        if len(self.input) != 3 or min(self.input) < 1:
            raise ValueError(f"input must be (C, H, W) with positive sizes, got {self.input}")
        if self.classes < 1:
            raise ValueError(f"classes must be >= 1, got {self.classes}")

    def blocks(self) -> Iterator[tuple[str, Block]]:
        """Every block with its module path (stem.b1, s1.b1, ...), in forward order."""
        for j, block in enumerate(self.stem, 1):
            yield f"stem.b{j}", block
        for i, stage in enumerate(self.stages, 1):
            for j, block in enumerate(stage, 1):
                yield f"s{i}.b{j}", block

    def with_io(self, input: tuple[int, int, int] | None = None, classes: int | None = None) -> Arch:
        """The same network for another input shape or number of classes (a data set's)."""
        return replace(self, input=tuple(input) if input is not None else self.input,
                       classes=classes if classes is not None else self.classes)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "input": list(self.input),
            "classes": self.classes,
            "stem": [b.to_dict() for b in self.stem],
            "stages": [[b.to_dict() for b in stage] for stage in self.stages],
            "head": self.head.to_dict(),
        }
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Arch:
        """Parse a dict as to_dict writes it; raises ValueError naming the bad field."""
        if not isinstance(data, Mapping):
            raise ValueError("architecture JSON must be an object")
        # input_contract: what an export records beside the architecture (nas.model.export); not part of it
        unknown = set(data) - {"input", "classes", "stem", "stages", "head", "name", "arch_id", "input_contract"}
        if unknown:
            raise ValueError(f"unknown architecture field(s) {sorted(unknown)}")
        try:
            stem = tuple(Block.from_dict(b) for b in data.get("stem", ()))
            stages = tuple(tuple(Block.from_dict(b) for b in stage) for stage in data["stages"])
            arch = cls(input=tuple(int(x) for x in data["input"]), classes=int(data["classes"]),
                       stem=stem, stages=stages, head=Head.from_dict(data.get("head", {})),
                       name=str(data.get("name", "")))
        except KeyError as missing:
            raise ValueError(f"architecture JSON needs field {missing}") from None
        except TypeError as err:
            raise ValueError(f"architecture JSON: {err}") from None
        if "arch_id" in data and data["arch_id"] != arch.arch_id:
            raise ValueError(f"architecture JSON says arch_id {data['arch_id']} but its content hashes to {arch.arch_id}")
        return arch

    def to_json(self, with_id: bool = True) -> str:
        """One-line JSON; with_id adds arch_id for readers that want it (ignored on load)."""
        data = self.to_dict()
        if with_id:
            data = {"arch_id": self.arch_id, **data}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Arch:
        return cls.from_dict(json.loads(text))

    @property
    def arch_id(self) -> str:
        """Stable content hash: the same network gives the same id in every process."""
        data = self.to_dict()
        data.pop("name", None)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]
