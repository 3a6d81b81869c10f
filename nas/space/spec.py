"""Load and validate a search-space YAML file into a SpaceSpec (static values and Choices)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from nas.model.registries import BLOCKS, CELL_OPS, block_options
from nas.space.language import Choice, SpaceError, check_keys, parse_value

if TYPE_CHECKING:  # importlib.resources.abc is 3.11+; the package supports 3.10
    from importlib.resources.abc import Traversable

TOP_KEYS = {"name", "description", "input", "classes", "dataset", "constraints", "stem", "channels",
            "num_stages", "stage_defaults", "stages", "head", "cell"}
STEM_KEYS = {"style", "channels", "kernel", "stride", "padding", "pool", "act", "bn"}
STEM_STYLES = {"cifar": {"kernel": 3, "stride": 1, "pool": False},
               "imagenet": {"kernel": 7, "stride": 2, "pool": True}}
CHANNEL_KEYS = {"rule", "base", "multiplier", "divisor", "scale_stem", "w0", "wa", "wm", "depth", "quantum"}
RULES = ("explicit", "double", "regnet")
STAGE_KEYS = {"depth", "stride", "width", "block", "transition"}
HEAD_KEYS = {"conv", "pool", "pool_size", "hidden", "dropout", "act", "norm_act"}


@dataclass(frozen=True)
class SpaceSpec:
    """A validated space: every field static or a Choice, stages merged with stage_defaults."""

    name: str
    source: str
    description: str
    input: tuple[int, int, int]
    classes: int
    dataset: str
    constraints: dict
    stem: dict | None
    channels: dict
    num_stages: Any
    stages: tuple[dict, ...]
    head: dict
    cell: dict | None
    extra: dict = field(default_factory=dict)


def load_spec(path: str | Path | Traversable) -> SpaceSpec:
    """Parse a YAML file or package resource (safe_load) and validate it; raises SpaceError naming file and field."""
    path = Path(path) if isinstance(path, str) else path
    source = path.name
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise SpaceError(source, "", f"cannot read: {err.strerror}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "YAML"
        raise SpaceError(source, where, f"invalid YAML: {getattr(err, 'problem', err)}") from None
    return parse_spec(raw, source, default_name=Path(source).stem)


def parse_spec(raw: Any, source: str, default_name: str = "space") -> SpaceSpec:
    """Validate an already-parsed mapping."""
    def fail(path: str, message: str) -> SpaceError:
        return SpaceError(source, path, message)

    raw = check_keys(raw, TOP_KEYS, "", fail, "a space file")
    inp = check_keys(raw.get("input", {"channels": 3, "size": 32}), {"channels", "size"}, "input", fail, "input")
    size = inp.get("size", 32)
    hw = (size, size) if isinstance(size, int) else tuple(size)
    channels_in = inp.get("channels", 3)
    if not (isinstance(channels_in, int) and channels_in > 0 and len(hw) == 2 and all(isinstance(s, int) and s > 0 for s in hw)):
        raise fail("input", "needs positive integer channels and size (or [height, width])")
    classes = raw.get("classes", 10)
    if not isinstance(classes, int) or classes < 1:
        raise fail("classes", f"must be a positive integer, got {classes!r}")
    constraints = check_keys(raw.get("constraints"), {"max_macs", "max_params"}, "constraints", fail, "constraints")
    for key, value in constraints.items():
        if not isinstance(value, (int, float)) or value <= 0:
            raise fail(f"constraints.{key}", f"must be a positive number, got {value!r}")

    channels = _parse_channels(raw.get("channels", {"rule": "explicit"}), fail)
    defaults = _parse_stage(raw.get("stage_defaults", {}), "stage_defaults", fail)
    stage_list = raw.get("stages", [])
    if channels["rule"] == "regnet":
        if stage_list:
            raise fail("stages", "the regnet rule derives the stages; describe them in stage_defaults only")
        stages: tuple[dict, ...] = (defaults,)
    else:
        if not isinstance(stage_list, list) or not stage_list:
            raise fail("stages", "must be a non-empty list of stages")
        stages = tuple(_merge(defaults, _parse_stage(s, f"stages[{i}]", fail)) for i, s in enumerate(stage_list))
    num_stages = parse_value(raw.get("num_stages", len(stages)), "num_stages", fail, "net")
    counts = num_stages.options if isinstance(num_stages, Choice) else (num_stages,)
    if channels["rule"] != "regnet" and not all(isinstance(n, int) and 1 <= n <= len(stages) for n in counts):
        raise fail("num_stages", f"must be between 1 and the {len(stages)} stages listed, got {counts}")
    cell = _parse_cell(raw.get("cell"), fail)
    for i, stage in enumerate(stages):
        _validate_stage(stage, channels, cell, f"stages[{i}]" if channels["rule"] != "regnet" else "stage_defaults", fail)
    stem = _parse_stem(raw.get("stem"), fail)
    head = {k: parse_value(v, f"head.{k}", fail, "net")
            for k, v in check_keys(raw.get("head", {}), HEAD_KEYS, "head", fail, "head").items()}
    name = raw.get("name", default_name)
    return SpaceSpec(name=str(name), source=source, description=str(raw.get("description", "")),
                     input=(channels_in, *hw), classes=classes, dataset=str(raw.get("dataset", "cifar10")),
                     constraints=dict(constraints), stem=stem, channels=channels, num_stages=num_stages,
                     stages=stages, head=head, cell=cell)


def _parse_channels(raw: Any, fail) -> dict:
    raw = check_keys(raw, CHANNEL_KEYS, "channels", fail, "channels")
    rule = raw.get("rule", "explicit")
    if rule not in RULES:
        raise fail("channels.rule", f"unknown rule {rule!r} (known: {', '.join(RULES)})")
    out = {k: parse_value(v, f"channels.{k}", fail, "net") for k, v in raw.items()}
    out.setdefault("rule", rule)
    needed = {"double": ("base",), "regnet": ("w0", "wa", "wm", "depth")}.get(rule, ())
    for key in needed:
        if key not in out:
            raise fail(f"channels.{key}", f"the {rule} rule needs {key}")
    for key, value in out.items():
        if isinstance(value, Choice) and value.per != "net":
            raise fail(f"channels.{key}", "channel-rule choices are global: use per: net")
    return out


def _parse_stem(raw: Any, fail) -> dict | None:
    if raw in (None, False, "none"):
        return None
    raw = check_keys(raw, STEM_KEYS, "stem", fail, "stem")
    style = raw.get("style", "cifar")
    if style not in STEM_STYLES:
        raise fail("stem.style", f"unknown style {style!r} (known: {', '.join(STEM_STYLES)})")
    if "channels" not in raw:
        raise fail("stem.channels", "the stem needs channels")
    merged = {**STEM_STYLES[style], **{k: v for k, v in raw.items() if k != "style"}}
    return {k: parse_value(v, f"stem.{k}", fail, "net") for k, v in merged.items()}


def _parse_stage(raw: Any, path: str, fail) -> dict:
    raw = check_keys(raw, STAGE_KEYS, path, fail, "a stage")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "block":
            if isinstance(value, dict) and "choice" in value:
                out[key] = parse_value(value, f"{path}.block", fail)
                for k, option in enumerate(out[key].options):
                    if not isinstance(option, dict) or "type" not in option:
                        raise fail(f"{path}.block.choice[{k}]", "a block variant must be a mapping with a type")
            else:
                block = check_keys(value, set(value or ()), f"{path}.block", fail, "block")
                out[key] = {k: parse_value(v, f"{path}.block.{k}", fail) for k, v in block.items()}
        elif key == "transition":
            out[key] = check_keys(value, set(value or ()), f"{path}.transition", fail, "transition")
        else:
            out[key] = parse_value(value, f"{path}.{key}", fail)
    return out


def _merge(defaults: dict, stage: dict) -> dict:
    merged = dict(defaults)
    for key, value in stage.items():
        if key == "block" and isinstance(value, dict) and isinstance(merged.get("block"), dict):
            merged["block"] = {**merged["block"], **value}
        else:
            merged[key] = value
    return merged


def _options(value: Any) -> tuple:
    return value.options if isinstance(value, Choice) else (value,)


def _validate_stage(stage: dict, channels: dict, cell: dict | None, path: str, fail) -> None:
    for key in ("depth", "stride"):
        if key not in stage and not (key == "depth" and channels["rule"] == "regnet"):
            raise fail(f"{path}.{key}", "is required (here or in stage_defaults)")
        for v in _options(stage.get(key, 1)):
            if not isinstance(v, int) or v < 1:
                raise fail(f"{path}.{key}", f"must be a positive integer, got {v!r}")
    if channels["rule"] == "explicit" and "width" not in stage:
        raise fail(f"{path}.width", "is required by the explicit channel rule")
    for v in _options(stage.get("width", 1)):
        if not isinstance(v, int) or v < 1:
            raise fail(f"{path}.width", f"must be a positive integer, got {v!r}")
    block = stage.get("block")
    if block is None:
        raise fail(f"{path}.block", "is required (here or in stage_defaults)")
    variants = block.options if isinstance(block, Choice) else (block,)
    for variant in variants:
        _validate_block(variant, f"{path}.block", cell, fail, channels["rule"] == "regnet")
    if "transition" in stage:
        _validate_block(stage["transition"], f"{path}.transition", cell, fail, True)


def _validate_block(block: dict, path: str, cell: dict | None, fail, net_only: bool) -> None:
    if "type" not in block:
        raise fail(f"{path}.type", "every block needs a type")
    types = _options(block["type"])
    for t in types:
        if t not in BLOCKS:
            raise fail(_origin(block["type"], f"{path}.type"), f"unknown block type {t!r} (known: {', '.join(BLOCKS)})")
    if "cell" in types and cell is None:
        raise fail(f"{path}.type", "cell blocks need a top-level 'cell' section")
    for key, value in block.items():
        if key == "type":
            continue
        if key in ("out", "stride", "edges"):
            raise fail(f"{path}.{key}", "is set by the stage (width, stride) or the cell section, not the block")
        allowed_types = set(types)
        field_path = _origin(value, f"{path}.{key}")
        if isinstance(value, Choice):
            if net_only and value.per != "net":
                raise fail(field_path, "here choices must be global: use per: net")
            for sibling, values in value.when:
                if sibling not in block:
                    raise fail(f"{field_path}.when", f"refers to {sibling!r}, which this block does not set")
                sib = block[sibling]
                if isinstance(sib, Choice) and SCOPE_RANK[sib.per] < SCOPE_RANK[value.per]:
                    raise fail(f"{field_path}.when", f"{sibling!r} varies per {sib.per}: make {key} per: {sib.per} too")
                if sibling == "type":
                    allowed_types &= set(values)
        for t in allowed_types:
            known = block_options(t)
            if key not in known:
                raise fail(field_path, f"block {t!r} has no option {key!r} (known: {', '.join(known) or 'none'}; add when: {{type: ...}})")
            for option in _options(value):
                _check_type(option, known[key], field_path, fail)


SCOPE_RANK = {"block": 0, "stage": 1, "net": 2}


def _origin(value: Any, fallback: str) -> str:
    """Where a value was written: a choice remembers its path; a merged static value does not."""
    return value.path if isinstance(value, Choice) and value.path else fallback


def _check_type(value: Any, default: Any, path: str, fail) -> None:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
            ok = value.is_integer()
    elif isinstance(default, str):
        ok = isinstance(value, str)
    else:
        ok = True
    if not ok:
        raise fail(path, f"expects a {type(default).__name__}, got {value!r}")


def _parse_cell(raw: Any, fail) -> dict | None:
    if raw is None:
        return None
    raw = check_keys(raw, {"nodes", "ops", "edges"}, "cell", fail, "cell")
    nodes = raw.get("nodes", 4)
    if not isinstance(nodes, int) or nodes < 2:
        raise fail("cell.nodes", f"must be an integer >= 2, got {nodes!r}")
    ops = parse_value(raw.get("ops"), "cell.ops", fail, "net")
    for op in _options(ops):
        if op not in CELL_OPS:
            raise fail("cell.ops", f"unknown cell operation {op!r} (known: {', '.join(CELL_OPS)})")
    edges = raw.get("edges", "complete")
    if edges == "complete":
        edges = [(s, d) for d in range(1, nodes) for s in range(d)]
    elif not (isinstance(edges, list) and all(isinstance(e, list) and len(e) == 2 for e in edges)):
        raise fail("cell.edges", "must be 'complete' or a list of [src, dst] pairs")
    for s, d in edges:
        if not (isinstance(s, int) and isinstance(d, int) and 0 <= s < d < nodes):
            raise fail("cell.edges", f"edge [{s}, {d}] must satisfy 0 <= src < dst < nodes")
    edges = sorted((int(s), int(d)) for s, d in edges)
    edges.sort(key=lambda e: (e[1], e[0]))  # the NAS-Bench-201 arch-string order
    return {"nodes": nodes, "ops": ops, "edges": tuple(edges)}
