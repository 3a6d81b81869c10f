"""SearchSpace: a spec compiled to an ordered sequence of categorical decisions.

Everything samples, mutates, encodes and counts through that sequence; nas.space.walk turns the spec
into decisions, decodes indices into an Arch and reads them back out of one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path

import numpy as np

from nas.arch import Arch, ArchError
from nas.search_spaces import builtin_space_files
from nas.space.language import SpaceError
from nas.space.spec import SpaceSpec, load_spec
from nas.space.walk import Condition, Decision, NotInSpace, _Compile, _Decode, _Read, _walk

__all__ = ["Condition", "Decision", "NotInSpace", "SearchSpace", "load_space"]

UNFIT_TRIES = 1000  # samples that all fail to fit the input before the space is declared too deep for it
MUTATE_TRIES = 100  # mutations tried for a neighbour that fits the input

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

    def with_io(self, input: tuple[int, int, int] | None = None, classes: int | None = None) -> SearchSpace:
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
        """Like sample, returning the option indices; only architectures that fit the space's input."""
        limited = max_macs or max_params or self.spec.constraints
        unfit, why = 0, ""
        for tries in range(1, max_tries + 1):
            values = self.sample_values(rng)
            error = self.unfit(values)
            if error:  # e.g. more downsampling stages than the input has pixels: resample
                unfit, why = unfit + 1, error
                if unfit == tries and tries >= min(max_tries, UNFIT_TRIES):
                    raise ValueError(self._no_fit(tries, why))
                continue
            if not limited or self.within_limits(self.decode(values), max_macs, max_params):
                return values
        if unfit == max_tries:
            raise ValueError(self._no_fit(max_tries, why))
        raise ValueError(f"{self.name}: no architecture within max_macs={max_macs} max_params={max_params} "
                         f"in {max_tries} samples; raise the limits")

    def _no_fit(self, tries: int, why: str) -> str:
        c, h, w = self.spec.input
        return (f"{self.name}: no architecture fits a {c}x{h}x{w} input after {tries} tries ({why}); "
                "use a larger --input or fewer downsampling stages")

    def unfit(self, values: Sequence[int]) -> str | None:
        """Why these decisions cannot be built at the space's input (a window larger than the map), or None."""
        arch = self.decode(values)
        if _surely_fits(arch):  # most spaces at their own input: no need for the cost walk (and torch)
            return None
        from nas.model.cost import arch_cost  # cost needs the block modules; keep the space import light

        try:
            arch_cost(arch)
        except ValueError as err:  # ArchError: the cost walk is the build's shape check, without torch modules
            return str(err)
        return None

    def within_limits(self, arch: Arch, max_macs: float | None = None, max_params: float | None = None) -> bool:
        """Whether arch can be built at its input and meets the given limits and the space's own constraints."""
        from nas.model.cost import arch_cost  # cost needs the block modules; keep the space import light

        max_macs = min(filter(None, (max_macs, self.spec.constraints.get("max_macs"))), default=None)
        max_params = min(filter(None, (max_params, self.spec.constraints.get("max_params"))), default=None)
        try:
            cost = arch_cost(arch)
        except ValueError:  # cannot be built at this input: no limit is met
            return False
        return (max_macs is None or cost.macs <= max_macs) and (max_params is None or cost.params <= max_params)

    def mutate_values(self, values: Sequence[int], rng: np.random.Generator) -> list[int]:
        """Change one active decision to another option (newly active decisions drawn at random), keeping
        to architectures that fit the input; the values back unchanged when no try finds one."""
        values = self.canonical(values)
        for _ in range(MUTATE_TRIES):
            neighbour = self._mutate_once(values, rng)
            if neighbour == values or not self.unfit(neighbour):
                return neighbour
        return values

    def _mutate_once(self, values: list[int], rng: np.random.Generator) -> list[int]:
        values = list(values)
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
        from nas.model.build import plan  # validating blocks needs their modules (torch); sizes and sampling do not

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


def _surely_fits(arch: Arch) -> bool:
    """Whether every window surely fits the input, by a torch-free walk of the side length.

    Only the built-in blocks' geometry is known here: convolutions pad to "same" (a padded window
    always fits), pooling windows are unpadded unless told. Any other block type, or a side near a
    window's size, leaves the decision to the exact cost walk.
    """
    side = min(arch.input[1:])
    for _, block in arch.blocks():
        options = dict(block.options)
        stride = max(1, block.stride)
        if block.type == "pool":
            kernel, padding = int(options.get("kernel", 2)), int(options.get("padding", 0))
            if side + 2 * padding < kernel:
                return False
            side = (side + 2 * padding - kernel) // stride + 1
        elif block.type in _SAME_PADDED and int(options.get("padding", -1)) < 0:
            side = -(-side // stride)
        else:
            return False
    return True


# built-in blocks whose windows pad to "same": any side fits them
_SAME_PADDED = frozenset({"conv", "basic", "bottleneck", "resnext", "mbconv", "identity", "dwsep"})


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
