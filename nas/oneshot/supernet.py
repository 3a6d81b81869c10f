"""Weight-sharing supernet: one parameter bank per shared key, every child a functional view of the banks.

A child Arch is built with the ordinary builder's pieces on the meta device and run with
torch.func.functional_call, each of its parameters and buffers a slice of a bank, so gradients and
BatchNorm running-stat updates land in the banks. Nothing here knows a block type's internals:

* shared key = the child's module path with the block type after the block position
  (`s2.b3/mbconv/expand.conv.weight`); a cell edge adds its operation (`.../ops.1<-0/nor_conv_3x3/...`).
  Different types at one position are parallel candidates; the same type shares (elastic depth: block j
  of stage i is the same position at every depth).
* slice = the leading `[:s0, :s1, ...]` region (elastic width), except the spatial dims of 4-D conv
  weights, which take the centre crop (elastic kernel as in once-for-all).
* bank shape = elementwise max over a seeded pool of children; a later, larger child grows the bank.

Bank initialisation (seeded per key, so growth and order do not change it): conv weights kaiming-normal
fan-out (torchvision ResNet), linear weights U(+-1/sqrt(fan_in)) (PyTorch's default bound), every bias
zero, norm weights and running_var one, running_mean and num_batches_tracked zero.
"""

from __future__ import annotations

import math
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from nas.arch import Arch, ArchError, Block
from nas.model.build import build_model, plan
from nas.model.checkpoint import CheckpointError, load_file, require_fields
from nas.model.cost import arch_cost
from nas.model.network import Head, Network
from nas.space.search_space import SearchSpace, load_space
from nas.train.trainer import DeviceData, evaluate

FORMAT = "nas-supernet-1"
SAVED_FIELDS = ("format", "space", "input", "classes", "seed", "pool", "pool_values", "banks", "state")
KeyRule = Callable[[Block, str], str]  # (block, path inside the block) -> refined path inside the block
KEY_RULES: dict[str, KeyRule] = {}


def key_rule(block_type: str) -> Callable[[KeyRule], KeyRule]:
    """Decorator: refine the shared keys of one block type's tensors (the default keeps the path)."""
    def add(rule: KeyRule) -> KeyRule:
        KEY_RULES[block_type] = rule
        return rule
    return add


@key_rule("cell")
def _cell_key(block: Block, rest: str) -> str:
    """`ops.1<-0.conv.weight` -> `ops.1<-0/nor_conv_3x3/conv.weight`: every op on every edge owns weights."""
    parts = rest.split(".")
    if parts[0] != "ops":
        return rest
    ops = {f"{int(d)}<-{int(s)}": op for s, d, op in block.get("edges", ())}
    return f"ops.{parts[1]}/{ops[parts[1]]}/" + ".".join(parts[2:])


def shared_key(blocks: dict[str, Block], name: str) -> str:
    """The bank key of a child tensor: block type (and the key rule's refinement) after the position."""
    parts = name.split(".")
    position = ".".join(parts[:2])
    if position not in blocks:
        return name  # the head: one per network
    block = blocks[position]
    rest = ".".join(parts[2:])
    return f"{position}/{block.type}/{KEY_RULES.get(block.type, lambda b, r: r)(block, rest)}"


def bank_name(key: str) -> str:
    """A valid nn.Module attribute name for a key (dots are not allowed there; no module name has ':')."""
    return "bank:" + key.replace(".", ":")


def region(bank_shape: tuple[int, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Index of a child's shape inside a bank: leading slice, centre crop on a 4-D weight's spatial dims."""
    out = []
    for dim, (big, small) in enumerate(zip(bank_shape, shape)):
        start = (big - small) // 2 if len(shape) == 4 and dim >= 2 else 0
        out.append(slice(start, start + small))
    return tuple(out)


@dataclass(frozen=True)
class BankSpec:
    """What a bank holds: shape, dtype, parameter or buffer, and its init rule."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    param: bool
    init: str  # conv | linear | ones | zeros

    def widen(self, shape: tuple[int, ...]) -> BankSpec:
        if len(shape) != len(self.shape):
            raise ArchError(f"a shared key holds tensors of {len(self.shape)} and {len(shape)} dims")
        return BankSpec(tuple(max(a, b) for a, b in zip(self.shape, shape)), self.dtype, self.param, self.init)


def _init_rule(module: nn.Module, name: str, tensor: torch.Tensor) -> str:
    if name in ("running_var",) or (isinstance(module, nn.modules.batchnorm._NormBase) and name == "weight"):
        return "ones"
    if name == "bias" or tensor.ndim < 2:
        return "zeros"
    return "linear" if isinstance(module, nn.Linear) or tensor.ndim == 2 else "conv"


def init_bank(spec: BankSpec, key: str, seed: int) -> torch.Tensor:
    """A freshly initialised bank (see the module docstring); seeded by (seed, key)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
    shape = spec.shape
    if spec.init == "conv":
        fan_out = shape[0] * math.prod(shape[2:])
        return (torch.randn(shape, generator=gen) * math.sqrt(2.0 / max(1, fan_out))).to(spec.dtype)
    if spec.init == "linear":
        bound = 1.0 / math.sqrt(max(1, shape[1]))
        return ((torch.rand(shape, generator=gen) * 2 - 1) * bound).to(spec.dtype)
    return (torch.ones if spec.init == "ones" else torch.zeros)(shape, dtype=spec.dtype)


def _module_tensors(module: nn.Module) -> list[tuple[str, tuple[int, ...], BankSpec]]:
    """(path, shape, spec) of every parameter and persistent buffer of a (meta) module."""
    out = []
    for prefix, m in module.named_modules():
        dot = prefix + "." if prefix else ""
        for n, t in m._parameters.items():
            if t is not None:
                out.append((dot + n, tuple(t.shape), BankSpec(tuple(t.shape), t.dtype, True, _init_rule(m, n, t))))
        for n, t in m._buffers.items():
            if t is not None and n not in m._non_persistent_buffers_set:
                out.append((dot + n, tuple(t.shape), BankSpec(tuple(t.shape), t.dtype, False, _init_rule(m, n, t))))
    return out


@dataclass(frozen=True)
class Entry:
    """One tensor of a child: its state_dict name, its bank key and its shape."""

    name: str
    key: str
    shape: tuple[int, ...]
    spec: BankSpec


class _MetaBuilder:
    """Meta-device modules and tensor entries of children, cached per block config (nn.Module init is slow)."""

    def __init__(self, cache_size: int):
        self.shapes: dict[tuple, list] = {}  # block config -> its tensors, wherever the block sits
        self.blocks: dict[tuple, nn.Module] = {}  # (position, config) -> module: never twice in one net
        self.models: OrderedDict[str, tuple[Network, list[Entry]]] = OrderedDict()
        self.listed: OrderedDict[str, list[Entry]] = OrderedDict()
        self.keyed: dict[tuple, list[Entry]] = {}  # (position, block config) -> entries with bank keys
        self.cache_size = cache_size

    def _module(self, path: str, config: tuple, make: Callable[[], nn.Module]) -> nn.Module:
        if (path, config) not in self.blocks:
            with torch.device("meta"):
                self.blocks[path, config] = make()
        return self.blocks[path, config]

    def _tensors(self, config: tuple, make: Callable[[], nn.Module]) -> list:
        if config not in self.shapes:
            with torch.device("meta"):
                self.shapes[config] = _module_tensors(make())
        return self.shapes[config]

    def _cached(self, cache: OrderedDict, arch: Arch, make: Callable[[], object]):
        """LRU lookup by arch_id: children repeat (sandwich extremes, evaluation after training)."""
        if arch.arch_id in cache:
            cache.move_to_end(arch.arch_id)
        else:
            cache[arch.arch_id] = make()
            if len(cache) > self.cache_size:
                cache.popitem(last=False)
        return cache[arch.arch_id]

    def entries(self, arch: Arch) -> list[Entry]:
        """Every tensor of the child with its bank key, without building the whole child."""
        return self._cached(self.listed, arch, lambda: [e for path, config in self.parts(arch)
                                                         for e in self.part_entries(path, config)])

    def parts(self, arch: Arch) -> list[tuple[str, tuple]]:
        """(position, config) of every block and the head: the units whose entries are cached."""
        p = plan(arch)
        blocks = dict(arch.blocks())
        out = [(c.path, (blocks[c.path], c.cls, c.c_in, c.c_out, c.stride, c.kwargs))
               for c in list(p.stem) + [c for stage in p.stages for c in stage]]
        return out + [("head", ("head", p.head_c_in, p.classes, p.head_kwargs))]

    def part_entries(self, path: str, config: tuple) -> list[Entry]:
        """Entries of one block at one position (or of the head)."""
        if (path, config) in self.keyed:
            return self.keyed[path, config]
        if path == "head":
            _, c_in, classes, kwargs = config
            tensors = self._tensors(config, lambda: Head(c_in, classes, **dict(kwargs)))
            out = [Entry(f"head.{r}", f"head.{r}", shape, spec) for r, shape, spec in tensors]
        else:
            block, cls, c_in, c_out, stride, kwargs = config
            tensors = self._tensors(config[1:], lambda: cls(c_in, c_out, stride, **dict(kwargs)))
            out = [Entry(f"{path}.{r}", shared_key({path: block}, f"{path}.{r}"), shape, spec)
                   for r, shape, spec in tensors]
        self.keyed[path, config] = out
        return out

    def model(self, arch: Arch) -> tuple[Network, list[Entry]]:
        """The child's meta module and entries."""
        return self._cached(self.models, arch, lambda: (self._network(arch), self.entries(arch)))

    def _network(self, arch: Arch) -> Network:
        p = plan(arch)
        blocks = dict(arch.blocks())
        mods = {c.path: self._module(c.path, (blocks[c.path], c.cls, c.c_in, c.c_out, c.stride, c.kwargs), c.instantiate)
                for c in list(p.stem) + [c for stage in p.stages for c in stage]}
        head = self._module("head", ("head", p.head_c_in, p.classes, p.head_kwargs),
                            lambda: Head(p.head_c_in, p.classes, **dict(p.head_kwargs)))
        return Network([mods[c.path] for c in p.stem], [[mods[c.path] for c in s] for s in p.stages], head)


def _size(space: SearchSpace, values: list[int]) -> int:
    try:
        return arch_cost(space.decode(values)).params
    except ArchError:
        return -1  # does not fit the input (a deep space on small images)


def survey(space: SearchSpace, pool: int, seed: int, builder: _MetaBuilder) -> tuple[dict[str, BankSpec], list[list[int]]]:
    """Bank specs over a seeded pool: `pool` uniform samples plus every option forced onto the widest."""
    rng = np.random.default_rng(seed)
    values = [space.sample_values(rng) for _ in range(pool)]
    widest = max(values, key=lambda v: _size(space, v)) if values else [0] * len(space.decisions)
    for k, d in enumerate(space.decisions):
        for o in range(len(d.options)):
            values.append(space.canonical(widest[:k] + [o] + widest[k + 1:]))
    parts, kept = set(), []
    for v in values:
        try:
            parts.update(builder.parts(space.decode(v)))
        except ArchError:
            continue  # a forced option that does not fit the widest child's other choices
        kept.append(v)
    specs: dict[str, BankSpec] = {}
    for part in sorted(parts, key=repr):
        for e in builder.part_entries(*part):
            specs[e.key] = specs[e.key].widen(e.shape) if e.key in specs else e.spec
    return specs, kept


class Supernet(nn.Module):
    """All children of a space over shared banks; forward(x, arch) runs one child."""

    def __init__(self, space: SearchSpace, *, pool: int = 512, seed: int = 0, cache_size: int = 128,
                 banks: dict[str, BankSpec] | None = None, pool_values: list[list[int]] | None = None):
        super().__init__()
        self.space, self.pool, self.seed = space, pool, seed
        self.version = 0  # bumped whenever a bank grows or appears: optimizers over old banks are stale
        self.growths = 0
        self._builder = _MetaBuilder(cache_size)
        if banks is None:
            banks, pool_values = survey(space, pool, seed, self._builder)
        self.pool_values = pool_values or []  # the survey's children (sandwich picks its extremes here)
        self.specs: dict[str, BankSpec] = {}
        for key in sorted(banks):
            self._set_bank(key, banks[key], init_bank(banks[key], key, seed))

    def _set_bank(self, key: str, spec: BankSpec, value: torch.Tensor) -> None:
        name = bank_name(key)
        self.specs[key] = spec
        self._parameters.pop(name, None)
        self._buffers.pop(name, None)
        if spec.param:
            self.register_parameter(name, nn.Parameter(value))
        else:
            self.register_buffer(name, value)

    def bank(self, key: str) -> torch.Tensor:
        """The bank tensor (parameter or buffer) of a shared key."""
        name = bank_name(key)
        return self._parameters[name] if name in self._parameters else self._buffers[name]

    def _device(self) -> torch.device:
        return next(iter(self.bank(k) for k in self.specs), torch.empty(0)).device

    def bank_params(self) -> dict[str, nn.Parameter]:
        """Shared key -> parameter bank (what an optimizer steps)."""
        return {k: self.bank(k) for k, s in self.specs.items() if s.param}

    def fits(self, arch: Arch) -> bool:
        """Whether arch runs on the current banks without any growing."""
        entries = self._builder.entries(arch)
        return all(e.key in self.specs and self.specs[e.key].widen(e.shape) == self.specs[e.key] for e in entries)

    def ensure(self, arch: Arch) -> bool:
        """Grow (or add) the banks arch needs, keeping old values in place; True when anything changed."""
        changed = False
        for e in self._builder.entries(arch):
            old = self.specs.get(e.key)
            spec = old.widen(e.shape) if old else e.spec
            if spec == old:
                continue
            value = init_bank(spec, e.key, self.seed).to(self._device())
            if old is not None:
                current = self.bank(e.key).detach()
                value[region(spec.shape, old.shape)] = current
                self.growths += 1
            with torch.no_grad():
                self._set_bank(e.key, spec, value)
            changed = True
        if changed:
            self.version += 1
        return changed

    def child_tensors(self, arch: Arch) -> dict[str, torch.Tensor]:
        """Child state_dict name -> view of its bank (grows banks the child does not fit)."""
        self.ensure(arch)
        out = {}
        for e in self._builder.entries(arch):
            bank = self.bank(e.key)
            out[e.name] = bank if bank.ndim == 0 else bank[region(tuple(bank.shape), e.shape)]
        return out

    def child_state_dict(self, arch: Arch) -> dict[str, torch.Tensor]:
        """Detached contiguous copies that build_model(arch).load_state_dict(..., strict=True) accepts."""
        return {k: v.detach().clone().contiguous() for k, v in self.child_tensors(arch).items()}

    def forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:  # N,C,H,W -> N,classes
        tensors = self.child_tensors(arch)
        model, _ = self._builder.model(arch)
        model.train(self.training)  # meta modules are shared between children: set the mode every call
        return functional_call(model, tensors, (x,), tie_weights=False)

    def save(self, path: str | Path) -> None:
        """Banks by shared key plus what restores them without a survey (space, io, seed, pool, shapes)."""
        spec = self.space.spec
        torch.save({"format": FORMAT, "space": self.space.name, "input": list(spec.input), "classes": spec.classes,
                    "seed": self.seed, "pool": self.pool, "pool_values": self.pool_values,
                    "banks": {k: [list(s.shape), str(s.dtype).removeprefix("torch."), s.param, s.init]
                              for k, s in self.specs.items()},
                    "state": {k: self.bank(k).detach().cpu() for k in self.specs}}, str(path))

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace | None = None) -> Supernet:
        """A supernet as save wrote it (weights_only); space defaults to the built-in of the saved name."""
        data = require_fields(path, load_file(path), ("format",), f"a nas supernet file ({FORMAT})")
        if data["format"] != FORMAT:
            raise CheckpointError(f"{path}: field format is {data['format']!r}, not a nas supernet file ({FORMAT})")
        require_fields(path, data, SAVED_FIELDS, f"a complete nas supernet file ({FORMAT})")
        try:  # right fields, wrong values: name the file rather than fail somewhere below
            space = (space or load_space(data["space"])).with_io(tuple(data["input"]), data["classes"])
            banks = {k: BankSpec(tuple(shape), getattr(torch, dtype), param, init)
                     for k, (shape, dtype, param, init) in data["banks"].items()}
            net = cls(space, pool=data["pool"], seed=data["seed"], banks=banks, pool_values=data["pool_values"])
            with torch.no_grad():
                for k, value in data["state"].items():
                    net.bank(k).copy_(value)
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as err:
            raise CheckpointError(f"{path}: damaged supernet file, fields space, input, classes, banks, pool and state "
                                  f"disagree ({type(err).__name__}: {err})") from None
        return net


def inherited_model(supernet: Supernet, arch: Arch, calib_batches: Iterable[torch.Tensor]) -> nn.Module:
    """The real child with the supernet's weights and BatchNorm stats recalibrated on calib_batches; eval mode."""
    with torch.device("meta"):
        model = build_model(arch)  # no init cost: every tensor is assigned below
    model.load_state_dict(supernet.child_state_dict(arch), strict=True, assign=True)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every calibration batch counts equally
    model.eval()
    for m in norms:
        m.train()  # only BN in train mode: dropout stays off while calibrating
    with torch.no_grad():
        for x in calib_batches:
            model(x)
    return model.eval()


def calibration_batches(data: DeviceData, *, batches: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """Seeded, normalised, non-augmented training batches for BN recalibration."""
    gen = torch.Generator(device=data.x.device).manual_seed(seed)
    out = []
    for _ in range(batches):
        idx = torch.randperm(len(data), device=data.x.device, generator=gen)[:batch_size]
        out.append(data.normalise(data.x[idx]))
    return out


def evaluate_inherited(supernet: Supernet, arch: Arch, train_data: DeviceData, val_data: DeviceData, *,
                       calib_batches: int = 4, batch_size: int = 256, seed: int = 0,
                       calib: list[torch.Tensor] | None = None) -> dict:
    """val_acc (%), val_loss, macs, params of arch with inherited weights (pass calib to reuse batches)."""
    if calib is None:
        calib = calibration_batches(train_data, batches=calib_batches, batch_size=batch_size, seed=seed)
    model = inherited_model(supernet, arch, calib)
    val_acc, val_loss = evaluate(model, val_data, batch_size, nullcontext, False)
    cost = arch_cost(arch)
    return {"val_acc": val_acc, "val_loss": val_loss, "macs": cost.macs, "params": cost.params}

