"""Plain-text tables for the terminal: aligned columns, a rule under the header, optional footer rows."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_NUMERIC = re.compile(r"^[-+<]?[\d,.]+(x\d+)*[kMG%]?$")
# C0 and C1 controls and DEL (terminal escapes, carriage returns, bells) and the bidirectional
# overrides that reorder what a reader sees: text from a run folder must not act on the terminal
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """text with control characters written as escapes (\\x1b, \\n, \\u202e): one inert line to print."""
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)


def number(value: float | int) -> str:
    """A compact human number: integers with thousands separators, fractions to ~3 significant digits."""
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    v = abs(value)
    if v < 0.0005:
        return "<0.001"
    for limit, digits in ((1, 3), (10, 2), (1000, 1)):
        if round(v, digits) < limit:
            return f"{value:,.{digits}f}"
    return f"{value:,.0f}"


def cell(value: Any) -> str:
    """How a table shows one value: None is blank, numbers go through `number`."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return printable(str(value))
    return number(value)


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, footer: Sequence[Sequence[Any]] = (),
                 align: str | None = None, gap: int = 2) -> str:
    """Rows under a header and a rule; footer rows under a second rule.

    align is one character per column, 'l' or 'r'; by default a column is right-aligned when every
    non-blank body cell looks like a number (``1,234``, ``0.5``, ``32x32``).
    """
    body = [[cell(v) for v in row] for row in rows]
    foot = [[cell(v) for v in row] for row in footer]
    head = [printable(str(h)) for h in header]
    n = len(head)
    for row in body + foot:
        if len(row) != n:
            raise ValueError(f"table row has {len(row)} cells, the header {n}")
    if align is None:
        align = "".join("r" if any(r[i] for r in body) and all(not r[i] or _NUMERIC.match(r[i]) for r in body) else "l"
                        for i in range(n))
    if len(align) != n:  # zip() would silently drop the columns past the end of a short align string
        raise ValueError(f"align has {len(align)} letters, the header {n} columns")
    widths = [max(len(r[i]) for r in [head, *body, *foot]) for i in range(n)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(cells, widths, align)]
        return (" " * gap).join(parts).rstrip()

    rule = (" " * gap).join("-" * w for w in widths)
    out = [line(head), rule, *(line(r) for r in body)]
    if foot:
        out += [rule, *(line(r) for r in foot)]
    return "\n".join(out)


COST_NOTE = "FLOPs are multiply-adds (MACs); memory is the layer output at float32, batch 1"


def _hw(h: int, w: int) -> str:
    return str(h) if h == w else f"{h}x{w}"


def cost_rows(cost: Any) -> tuple[list[str], list[list]]:
    """Header and per-layer rows of the course's cost table (None where a column does not apply to a layer)."""
    grouped = any(r.groups > 1 for r in cost.layers)
    header = ["layer", "kind", "in C", "in H/W", "filters", "kernel", "stride", "pad", *(["groups"] if grouped else []),
              "out C", "out H/W", "memory KB", "params k", "MFLOP"]
    rows = []
    for r in cost.layers:
        spatial, window = r.kind != "linear", r.kind in ("conv", "pool")
        rows.append([r.name, r.kind, r.c_in, _hw(r.h_in, r.w_in) if spatial else None,
                     r.c_out if r.kind in ("conv", "linear") else None,
                     *((r.kernel, r.stride, r.padding) if window else (None,) * 3),
                     *([r.groups if r.kind == "conv" else None] if grouped else []),
                     r.c_out, _hw(r.h_out, r.w_out) if spatial else None,
                     r.act_bytes / 1024, r.params / 1000, r.macs / 1e6])
    return header, rows


def cost_table(cost: Any) -> str:
    """The course's per-layer table of a `nas.model.cost.Cost` (computed with detail=True), totals and a note.

    Filters are shown for conv and linear layers; kernel, stride and padding for conv and pooling
    windows; a groups column appears when some conv is grouped.
    """
    header, rows = cost_rows(cost)
    total = ["total", *[None] * (len(header) - 4), cost.activation_bytes / 1024, cost.params / 1000, cost.macs / 1e6]
    align = "ll" + "r" * (len(header) - 2)
    summary = (f"params {cost.params:,}   MACs {cost.macs:,} (conv+linear {cost.conv_linear_macs:,})   "
               f"activations {cost.activation_bytes / 1024:,.1f} KB")
    return "\n".join([format_table(header, rows, footer=[total], align=align), summary, COST_NOTE])
