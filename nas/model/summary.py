"""One-line, human-readable architecture summaries for reports: `stem c32 | s1 basic x2 c64 | s2 basic/2 x2 c128`.

Reading a summary: stages are `s1`, `s2`, ... (the module paths' names); within a stage, consecutive
identical blocks collapse to `TYPE OPTIONS xN cOUT`, where `/2` after the type marks a first block
with stride 2. Options are abbreviated: k kernel, e expansion, g groups, gw group width, m bottleneck
ratio, se squeeze-excitation ratio (shown only when on), p padding, nobn; an activation is named only
when it is not the block's default. Cells show their edge operations per node: `cell[c3|skip,c1|...]`.
"""

from __future__ import annotations

from typing import Any

from nas.arch import Arch, Block, Head

TYPE_NAMES = {"bottleneck": "bneck", "mbconv": "mb", "dwsep": "dw", "identity": "id", "nb201_residual": "res"}
CELL_OPS = {"none": "none", "skip_connect": "skip", "nor_conv_1x1": "c1", "nor_conv_3x3": "c3", "avg_pool_3x3": "avg3"}
# Options that define the block's shape are always shown, so two summaries of one space line up.
ALWAYS = {"mbconv": ("kernel", "expansion"), "dwsep": ("kernel",), "conv": ("kernel",), "pool": ("kernel",),
          "resnext": ("groups", "mid_ratio"), "bottleneck": ("mid_ratio",)}
ABBREVIATIONS = {"kernel": "k", "expansion": "e", "groups": "g", "group_width": "gw", "mid_ratio": "m",
                 "se_ratio": "se", "padding": "p"}
_HEAD_DEFAULT = Head()


def _num(value: Any) -> str:
    """6.0 -> '6', 0.25 -> '0.25'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _defaults(block_type: str) -> dict[str, Any]:
    try:
        import nas.model.cells  # noqa: F401  (registers the cell block types)
        from nas.model.blocks import block_options  # torch-backed registry; summaries of unknown types still work

        return block_options(block_type)
    except (ImportError, ValueError):
        return {}


def _cell(edges: Any) -> str:
    """cell[ops into node 1 | ops into node 2 | ...], each node's inputs in source order."""
    by_dst: dict[int, list[tuple[int, str]]] = {}
    for src, dst, op in edges:
        by_dst.setdefault(int(dst), []).append((int(src), CELL_OPS.get(str(op), str(op))))
    return "cell[" + "|".join(",".join(op for _, op in sorted(by_dst[d])) for d in sorted(by_dst)) + "]"


def block_label(block: Block) -> str:
    """A block without its channels: type (/stride) and its abbreviated options."""
    opts = block.kwargs
    if block.type == "cell":
        name = _cell(opts.pop("edges", ()))
    elif block.type == "pool":
        name = f"{opts.pop('mode', 'max')}pool"
    else:
        name = TYPE_NAMES.get(block.type, block.type)
    if block.stride > 1:
        name += f"/{block.stride}"
    defaults, always = _defaults(block.type), ALWAYS.get(block.type, ())
    parts = [name]
    for key in sorted(opts, key=lambda k: (k not in always, always.index(k) if k in always else 0, k)):
        value = opts[key]
        if key == "se_ratio":
            if value:
                parts.append(f"se{_num(value)}")
        elif key == "act":
            if value != defaults.get("act", "relu"):
                parts.append("noact" if value == "none" else str(value))
        elif key == "bn":
            if not value:
                parts.append("nobn")
        elif key in always or (key in defaults and value != defaults[key]) or key not in defaults:
            parts.append(f"{ABBREVIATIONS.get(key, key + '=')}{_num(value)}")
    return " ".join(parts)


def _runs(blocks: tuple[Block, ...], show_channels_of_pool: bool = False) -> list[str]:
    """Consecutive identical blocks (all but the first at stride 1) collapsed into `label xN cOUT`."""
    out: list[str] = []
    i = 0
    while i < len(blocks):
        first = blocks[i]
        j = i + 1
        while j < len(blocks) and blocks[j].stride == 1 and (blocks[j].type, blocks[j].options, blocks[j].out) == (
                first.type, first.options, first.out):
            j += 1
        text = block_label(first) + (f" x{j - i}" if j - i > 1 else "")
        if first.type != "pool" or show_channels_of_pool:  # pooling keeps its input's channels
            text += f" c{first.out}"
        out.append(text)
        i = j
    return out


def _stem(stem: tuple[Block, ...]) -> str:
    # Stems are mostly one conv: lead with its width (`stem c32`, `stem c64/2 k7`) and drop the usual k3.
    parts = []
    for text in _runs(stem):
        if text.startswith("conv"):
            words = [w for w in text.split() if w != "k3"]
            stride = words[0][len("conv"):]
            text = " ".join([words[-1] + stride] + words[1:-1])
        parts.append(text)
    return "stem " + ", ".join(parts)


def _head(head: Head) -> str:
    if head == _HEAD_DEFAULT:
        return ""
    parts = []
    if head.norm_act:
        parts.append("bn-act")
    if head.conv:
        parts.append(f"c{head.conv}")
    if head.pool != "avg" or head.pool_size != 1:
        parts.append(f"{head.pool}pool" + (f"{head.pool_size}x{head.pool_size}" if head.pool_size != 1 else ""))
    if head.hidden:
        parts.append("fc" + ",".join(str(h) for h in head.hidden))
    if head.dropout:
        parts.append(f"drop{_num(head.dropout)}")
    if head.act != "relu":
        parts.append(head.act)
    return "head " + " ".join(parts)


def summarize(arch: Arch) -> str:
    """A compact one-line description of arch (see the module docstring for how to read it)."""
    parts = [_stem(arch.stem)] if arch.stem else []
    parts += [f"s{i} " + ", ".join(_runs(stage)) for i, stage in enumerate(arch.stages, 1) if stage]
    head = _head(arch.head)
    return " | ".join(parts + ([head] if head else []))
