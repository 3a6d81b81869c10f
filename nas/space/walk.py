"""One walk over a space spec, three uses: declare the decisions, decode indices, read them back.

The contexts decide what a choice means: `_Compile` records a Decision the first time it meets a
choice, `_Decode` returns the option a list of indices picks, `_Read` takes the option from a
target architecture (encode). Keeping one walk means the three can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nas.arch import Arch, Block, Head
from nas.model.channels import double_after_downsample, regnet_widths, scale_width
from nas.space.language import Choice, SpaceError
from nas.space.spec import SpaceSpec

Condition = tuple[tuple[str, frozenset], ...]  # all clauses hold: decision name -> allowed option indices


@dataclass(frozen=True)
class Decision:
    """One categorical decision: its name, options and the condition under which it is active."""

    name: str
    options: tuple
    condition: Condition = ()
    path: str = ""  # where the choice is written in the space file


class NotInSpace(ValueError):
    """The architecture cannot be produced by this space."""


class _Compile:
    building = False

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self.index: dict[str, int] = {}
        self.direct: dict[str, bool] = {}

    def active(self, cond: Condition) -> bool:
        return True

    def choose(self, name: str, choice: Choice, cond: Condition, read: Callable | None = None) -> Any:
        if name in self.index:
            if self.decisions[self.index[name]].options != choice.options:
                raise SpaceError("", choice.path, f"shared choice {name!r} has different options in different places")
            return choice.options[0]
        self.index[name] = len(self.decisions)
        self.decisions.append(Decision(name, choice.options, cond, choice.path))
        self.direct[name] = read is not None
        return choice.options[0]


class _Decode:
    building = True

    def __init__(self, index: dict[str, int], values: Sequence[int]):
        self.index, self.values = index, list(values)

    def active(self, cond: Condition) -> bool:
        return all(self.values[self.index[name]] in allowed for name, allowed in cond)

    def choose(self, name: str, choice: Choice, cond: Condition, read: Callable | None = None) -> Any:
        return choice.options[self.values[self.index[name]]]


class _Read(_Decode):
    """Decode while taking each readable decision from the target architecture."""

    def __init__(self, index: dict[str, int], guesses: dict[str, int]):
        super().__init__(index, [0] * len(index))
        self.guesses, self.seen = guesses, set()

    def choose(self, name: str, choice: Choice, cond: Condition, read: Callable | None = None) -> Any:
        k = self.index[name]
        if name not in self.seen:
            self.seen.add(name)
            if read is None:
                self.values[k] = self.guesses.get(name, 0)
            else:
                try:
                    found = choice.index_of(read())
                except (IndexError, KeyError, AttributeError, TypeError):
                    found = None
                if found is None:
                    raise NotInSpace(f"no option of {name} matches the architecture")
                self.values[k] = found
        return choice.options[self.values[k]]


def _allowed(choice: Choice, values: tuple) -> frozenset:
    return frozenset(i for i, o in enumerate(choice.options) if o in values)


def _block_dict(block: Block) -> dict:
    return {"type": block.type, **block.kwargs}


def _walk(spec: SpaceSpec, ctx, target: Arch | None = None) -> Arch | None:
    """Declare, decode or read every decision of spec in one fixed order."""
    def value(name: str, raw: Any, cond: Condition = (), read: Callable | None = None) -> Any:
        return ctx.choose(name, raw, cond, read) if isinstance(raw, Choice) else raw

    ch = spec.channels
    multiplier = value("channels.multiplier", ch.get("multiplier", 1.0))
    divisor = value("channels.divisor", ch.get("divisor", 1))
    scaled = not (ch.get("multiplier", 1.0) == 1.0 and ch.get("divisor", 1) in (1, None))

    stem: tuple[Block, ...] = ()
    if spec.stem:
        s = spec.stem
        first = (lambda: target.stem[0].out) if target is not None and not (scaled and s.get("scale_stem", True)) else None
        channels = value("stem.channels", s["channels"], read=first)
        kernel = value("stem.kernel", s["kernel"], read=lambda: target.stem[0].get("kernel"))
        stride = value("stem.stride", s["stride"], read=lambda: target.stem[0].stride)
        pool = value("stem.pool", s["pool"], read=lambda: len(target.stem) > 1)
        extra = {k: value(f"stem.{k}", s[k], read=lambda k=k: target.stem[0].get(k)) for k in ("act", "bn", "padding") if k in s}
        if ctx.building:
            if ch.get("scale_stem", True):
                channels = scale_width(channels, multiplier, divisor)
            stem = (Block.make("conv", channels, stride, kernel=kernel, **extra),)
            if pool:
                stem += (Block.make("pool", channels, 2, kernel=3, padding=1),)

    edges: tuple = ()
    if spec.cell:
        ops = []
        for src, dst in spec.cell["edges"]:
            def read(s=src, d=dst):  # bound now: the loop moves on before it is called
                return _first_cell_edges(target)[(s, d)]

            ops.append(value(f"cell.{dst}<-{src}", spec.cell["ops"], read=read))
        edges = tuple((s, d, op) for (s, d), op in zip(spec.cell["edges"], ops))

    stages: list[tuple[Block, ...]] = []
    if ch["rule"] == "regnet":
        params = [value(f"channels.{k}", ch[k]) for k in ("w0", "wa", "wm", "depth")]
        widths, depths = regnet_widths(*params, q=ch.get("quantum", 8)) if ctx.building else ([1], [1])
        specs = [{**spec.stages[0], "depth": d, "width": w} for w, d in zip(widths, depths)]
        count = len(specs)
    else:
        specs = list(spec.stages)
        count = value("num_stages", spec.num_stages, read=lambda: len(target.stages))
        base = value("channels.base", ch.get("base", 1))
    strides: list[int] = []
    c_prev = stem[-1].out if stem else spec.input[0]
    for i, st in enumerate(specs):
        cond: Condition = ()
        if isinstance(spec.num_stages, Choice) and ch["rule"] != "regnet" and i >= min(spec.num_stages.options):
            cond = (("num_stages", frozenset(k for k, n in enumerate(spec.num_stages.options) if n > i)),)
        elif ctx.building and i >= count:
            break
        if not ctx.active(cond):
            continue
        has_transition = "transition" in st
        stride = value(f"stages[{i}].stride", st["stride"], cond, read=lambda i=i: target.stages[i][0].stride)
        offset = 1 if (has_transition and stride > 1) else 0
        depth_raw = st["depth"]
        # the depth acts through the block conditions below; declaring it here fixes its place in the order
        value(f"stages[{i}].depth", depth_raw, cond, read=lambda i=i, o=offset: len(target.stages[i]) - o)
        width_read = None if scaled else (lambda i=i: target.stages[i][-1].out)
        width = value(f"stages[{i}].width", st["width"], cond, read=width_read) if "width" in st else None
        strides.append(stride)
        if ctx.building:
            if width is None:
                width = double_after_downsample(base, strides)[-1]
            width = scale_width(width, multiplier, divisor)
        blocks = [_transition(st["transition"], width, stride, c_prev)] if offset and ctx.building else []
        max_depth = max(depth_raw.options) if isinstance(depth_raw, Choice) else depth_raw
        for j in range(max_depth):
            bcond = cond
            if isinstance(depth_raw, Choice) and j >= min(depth_raw.options):  # shallower blocks always exist
                bcond = cond + ((f"stages[{i}].depth", frozenset(k for k, d in enumerate(depth_raw.options) if d > j)),)
            if not ctx.active(bcond):
                continue
            fields = _block_fields(st["block"], i, j, bcond, ctx, value, lambda i=i, j=j, o=offset: target.stages[i][j + o])
            if ctx.building:
                kind = fields.pop("type")
                if kind == "cell":
                    fields["edges"] = edges
                blocks.append(Block.make(kind, width, stride if (j == 0 and not offset) else 1, **fields))
        stages.append(tuple(blocks))
        if ctx.building:
            c_prev = blocks[-1].out

    head = {k: value(f"head.{k}", v, read=lambda k=k: getattr(target.head, k)) for k, v in spec.head.items()}
    if not ctx.building:
        return None
    if "hidden" in head:
        head["hidden"] = tuple(head["hidden"])
    return Arch(spec.input, spec.classes, stem, tuple(stages), Head(**head))


def _transition(spec: dict, width: int, stride: int, c_prev: int) -> Block:
    """The extra first block of a downsampling stage; a pool keeps the incoming channels."""
    options = {k: v for k, v in spec.items() if k != "type"}
    return Block.make(spec["type"], c_prev if spec["type"] == "pool" else width, stride, **options)


def _first_cell_edges(target: Arch) -> dict:
    for _, block in target.blocks():
        if block.type == "cell":
            return {(s, d): op for s, d, op in block.get("edges")}
    raise KeyError("no cell")


def _block_fields(template: Any, i: int, j: int, cond: Condition, ctx, value, read_block: Callable) -> dict:
    """The fields of block j of stage i: a whole-block variant, or a template of choices."""
    if isinstance(template, Choice):
        name = _decision_name(template, i, j, "block")
        variant = value(name, template, cond, read=lambda: _block_dict(read_block()))
        return dict(variant)
    fields: dict[str, Any] = {}
    for key, raw in template.items():
        if not isinstance(raw, Choice):
            fields[key] = raw
            continue
        clause: Condition = ()
        skip = False
        for sibling, allowed in raw.when:
            sib = template[sibling]
            if isinstance(sib, Choice):
                clause += ((_decision_name(sib, i, j, sibling), _allowed(sib, allowed)),)
            elif sib not in allowed:
                skip = True
        if skip or not ctx.active(cond + clause):
            continue
        picked = value(_decision_name(raw, i, j, key), raw, cond + clause,
                       read=lambda key=key: _block_dict(read_block())[key])
        fields[key] = picked
    return fields


def _decision_name(choice: Choice, i: int, j: int, key: str) -> str:
    if choice.share:
        return choice.share
    if choice.per == "net":
        return choice.path
    if choice.per == "block":
        return f"stages[{i}].blocks[{j}].{key}"
    return f"stages[{i}].block.{key}" if key != "block" else f"stages[{i}].block"
