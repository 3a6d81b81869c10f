"""SearchSpace: a spec compiled to an ordered sequence of categorical decisions.

Everything samples, mutates, encodes and counts through that sequence. One walk over the spec
(`_walk`) serves three purposes through its context: declaring the decisions, decoding a list of
option indices into an Arch, and reading the indices back out of an Arch (encode).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from nas.arch import Arch, Block, Head
from nas.build import ArchError, plan
from nas.channels import double_after_downsample, regnet_widths, scale_width
from nas.language import Choice, SpaceError
from nas.spec import SpaceSpec, load_spec
from search_spaces import builtin_space_files

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
            read = lambda s=src, d=dst: _first_cell_edges(target)[(s, d)]
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
        depth = value(f"stages[{i}].depth", depth_raw, cond, read=lambda i=i, o=offset: len(target.stages[i]) - o)
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


class SearchSpace:
    """A search space compiled to decisions: size, sample, mutate, encode, decode, contains."""

    def __init__(self, spec: SpaceSpec):
        self.spec = spec
        compiler = _Compile()
        try:
            _walk(spec, compiler)
        except SpaceError as err:
            raise SpaceError(spec.source, err.path, err.message) from None
        self.decisions: tuple[Decision, ...] = tuple(compiler.decisions)
        self._index = compiler.index
        self._indirect = [d.name for d in self.decisions if not compiler.direct[d.name]]
        self._memo: dict[tuple, int] = {}  # exact counts, keyed on everything later conditions read

    @property
    def name(self) -> str:
        return self.spec.name

    def with_io(self, input: tuple[int, int, int] | None = None, classes: int | None = None) -> "SearchSpace":
        """The same space for a data set's input shape and classes."""
        return SearchSpace(replace(self.spec, input=tuple(input) if input is not None else self.spec.input,
                                   classes=classes if classes is not None else self.spec.classes))

    def active(self, values: Sequence[int]) -> list[bool]:
        """Which decisions are active under these option indices."""
        ctx = _Decode(self._index, values)
        return [ctx.active(d.condition) for d in self.decisions]

    def canonical(self, values: Sequence[int]) -> list[int]:
        """Validate option indices and zero the inactive ones."""
        values = [int(v) for v in values]
        if len(values) != len(self.decisions):
            raise ValueError(f"{self.name}: expected {len(self.decisions)} decisions, got {len(values)}")
        for d, v in zip(self.decisions, values):
            if not 0 <= v < len(d.options):
                raise ValueError(f"{self.name}: decision {d.name} has {len(d.options)} options, got index {v}")
        return [v if a else 0 for v, a in zip(values, self.active(values))]

    def decode(self, values: Sequence[int]) -> Arch:
        """The architecture these option indices describe."""
        return _walk(self.spec, _Decode(self._index, self.canonical(values)))

    def encode(self, arch: Arch) -> list[int]:
        """Option indices that decode to arch; raises NotInSpace when there are none."""
        indirect = [self.decisions[self._index[n]] for n in self._indirect]
        combos = itertools.product(*(range(len(d.options)) for d in indirect))
        for tries, combo in enumerate(combos):
            if tries >= 100_000:
                break
            ctx = _Read(self._index, {d.name: c for d, c in zip(indirect, combo)})
            try:
                decoded = _walk(self.spec, ctx, target=arch)
            except NotInSpace:
                if not indirect:
                    break
                continue
            if decoded.arch_id == arch.arch_id:
                return self.canonical(ctx.values)
        raise NotInSpace(f"architecture {arch.arch_id} is not in space {self.name}")

    def contains(self, arch: Arch) -> bool:
        """Whether some choice of decisions gives exactly arch."""
        try:
            self.encode(arch)
            return True
        except NotInSpace:
            return False

    def sample_values(self, rng: np.random.Generator) -> list[int]:
        """Option indices drawn so that every architecture of the space is equally likely."""
        values = [0] * len(self.decisions)
        for k, d in enumerate(self.decisions):
            if not _Decode(self._index, values).active(d.condition):
                continue
            weights = []
            for o in range(len(d.options)):
                values[k] = o
                weights.append(self._count(k + 1, values))
            weights = np.array(weights, float)
            values[k] = int(rng.choice(len(d.options), p=weights / weights.sum()))
        return values

    def sample(self, rng: np.random.Generator, max_macs: float | None = None, max_params: float | None = None,
               max_tries: int = 10_000) -> Arch:
        """A uniformly random architecture under the cost limits (analytic cost, no module built)."""
        return self.decode(self.sample_encoded(rng, max_macs, max_params, max_tries))

    def sample_encoded(self, rng: np.random.Generator, max_macs: float | None = None,
                       max_params: float | None = None, max_tries: int = 10_000) -> list[int]:
        """Like sample, returning the option indices."""
        limited = max_macs or max_params or self.spec.constraints
        for _ in range(max_tries):
            values = self.sample_values(rng)
            if not limited or self.within_limits(self.decode(values), max_macs, max_params):
                return values
        raise ValueError(f"{self.name}: no architecture within max_macs={max_macs} max_params={max_params} "
                         f"in {max_tries} samples; raise the limits")

    def within_limits(self, arch: Arch, max_macs: float | None = None, max_params: float | None = None) -> bool:
        """Whether arch meets the given limits and the space's own constraints."""
        from nas.cost import arch_cost  # cost needs the block modules; keep the space import light

        max_macs = min(filter(None, (max_macs, self.spec.constraints.get("max_macs"))), default=None)
        max_params = min(filter(None, (max_params, self.spec.constraints.get("max_params"))), default=None)
        if max_macs is None and max_params is None:
            return True
        cost = arch_cost(arch)
        return (max_macs is None or cost.macs <= max_macs) and (max_params is None or cost.params <= max_params)

    def mutate_values(self, values: Sequence[int], rng: np.random.Generator) -> list[int]:
        """Change one active decision to another option; newly active decisions are drawn at random."""
        values = self.canonical(values)
        active = self.active(values)
        choices = [k for k, d in enumerate(self.decisions) if active[k] and len(d.options) > 1]
        if not choices:
            return values
        k = int(rng.choice(choices))
        values[k] = int(rng.choice([o for o in range(len(self.decisions[k].options)) if o != values[k]]))
        now = self.active(values)
        for i, d in enumerate(self.decisions):
            if now[i] and not active[i]:
                values[i] = int(rng.integers(len(d.options)))
        return self.canonical(values)

    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """A neighbour of arch that differs in one decision."""
        return self.decode(self.mutate_values(self.encode(arch), rng))

    def size(self) -> int:
        """Exact number of distinct decision assignments (inactive decisions do not count)."""
        return self._count(0, [0] * len(self.decisions))

    @cached_property
    def _controllers(self) -> list[tuple[int, ...]]:
        """For each position k: indices before k that the conditions of decisions k.. read."""
        out: list[tuple[int, ...]] = []
        for k in range(len(self.decisions) + 1):
            names = {name for d in self.decisions[k:] for name, _ in d.condition}
            out.append(tuple(sorted(i for i in (self._index[n] for n in names) if i < k)))
        return out

    @cached_property
    def _read_later(self) -> list[frozenset[str]]:
        """For each position k: names of decisions that some condition of decisions k.. reads."""
        return [frozenset(name for d in self.decisions[k:] for name, _ in d.condition)
                for k in range(len(self.decisions) + 1)]

    def _count(self, k: int, values: list[int]) -> int:
        """Assignments of decisions k.. given the earlier values (memoised on what later ones read)."""
        if k >= len(self.decisions):
            return 1
        memo = self._memo
        key = (k, tuple(values[i] for i in self._controllers[k]))
        if key in memo:
            return memo[key]
        d = self.decisions[k]
        if not _Decode(self._index, values).active(d.condition):
            total = self._count(k + 1, values)
        elif d.name not in self._read_later[k + 1]:
            total = len(d.options) * self._count(k + 1, values)
        else:
            total = 0
            saved = values[k]
            for o in range(len(d.options)):
                values[k] = o
                total += self._count(k + 1, values)
            values[k] = saved
        memo[key] = total
        return total

    def check_channels(self, rng_seed: int = 0, samples: int = 256) -> None:
        """Decode every architecture (small spaces) or a seeded sample, and validate each block."""
        raw = int(np.prod([len(d.options) for d in self.decisions], dtype=float)) if self.decisions else 1
        if raw <= 4096:
            candidates = self._enumerate()
        else:
            rng = np.random.default_rng(rng_seed)
            candidates = [self.sample_values(rng) for _ in range(samples)]
        for values in candidates:
            try:
                plan(self.decode(values))
            except ArchError as err:
                picks = ", ".join(f"{d.name}={d.options[v]}" for d, v, a in zip(self.decisions, values, self.active(values)) if a)
                raise SpaceError(self.spec.source, "channels", f"{err} (when {picks})") from None

    def _enumerate(self) -> list[list[int]]:
        out, seen = [], set()
        for combo in itertools.product(*(range(len(d.options)) for d in self.decisions)):
            canon = tuple(self.canonical(combo))
            if canon not in seen:
                seen.add(canon)
                out.append(list(canon))
        return out


def load_space(name_or_path: str | Path, check: bool | None = None) -> SearchSpace:
    """A built-in space by name or a YAML file by path; validated, channel rules checked.

    Built-in spaces skip the channel check by default: the test suite checks them exhaustively.
    """
    builtin = builtin_space_files()
    path = builtin.get(str(name_or_path))
    check = path is None if check is None else check
    if path is None:
        path = Path(name_or_path)
        if path.suffix not in (".yaml", ".yml") or not path.exists():
            raise SpaceError(str(name_or_path), "", f"no such space (built-in: {', '.join(builtin)}; or a path to a .yaml file)")
    space = SearchSpace(load_spec(path))
    if check:
        space.check_channels()
    return space
