"""Exact analytic cost of an Arch, per layer and in total, without building a module.

FLOPs here are multiply-adds (MACs): a K x K conv producing one value costs K*K*C_in/groups,
a linear layer in*out, a K x K pooling window K*K (the course's AlexNet table); BN, activations,
additions and SE scaling cost none. `conv_linear_macs` is what benchmarks and torchvision count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from nas.arch import Arch
from nas.model.build import plan
from nas.model.layers import LayerRow, Tally
from nas.model.network import Head


@dataclass(frozen=True)
class Cost:
    """Totals (multiply-adds, params, activation bytes at float32 and batch 1) and, if asked, rows."""

    macs: int
    params: int
    activation_bytes: int
    conv_linear_macs: int
    layers: tuple[LayerRow, ...] = field(default=(), compare=False)

    def to_dict(self, layers: bool = True) -> dict:
        out = {"params": self.params, "macs": self.macs, "conv_linear_macs": self.conv_linear_macs,
               "activation_bytes": self.activation_bytes}
        if layers:
            out["layers"] = [vars(row).copy() for row in self.layers]
        return out


@lru_cache(maxsize=1 << 16)
def _block_totals(cls: type, c_in: int, c_out: int, stride: int, kwargs: tuple, h: int, w: int) -> tuple:
    """(params, macs, conv+linear macs, act bytes, h_out, w_out) of one block; blocks repeat a lot."""
    t = Tally(detail=True)
    h2, w2 = cls.complexity(t, "", c_in, c_out, h, w, stride, **dict(kwargs))
    conv_linear = sum(r.macs for r in t.rows if r.kind in ("conv", "linear"))
    return t.params, t.macs, conv_linear, t.act_bytes, h2, w2


def arch_cost(arch: Arch, detail: bool = False) -> Cost:
    """Cost of arch; detail=True adds the per-layer table (slower, for inspect and reports)."""
    p = plan(arch)
    _, h, w = arch.input
    calls = list(p.stem) + [call for stage in p.stages for call in stage]
    if not detail:
        params = macs = conv_linear = acts = 0
        for call in calls:
            bp, bm, bc, ba, h, w = _block_totals(call.cls, call.c_in, call.c_out, call.stride, call.kwargs, h, w)
            params, macs, conv_linear, acts = params + bp, macs + bm, conv_linear + bc, acts + ba
        t = Tally(detail=True)
        Head.complexity(t, "head", p.head_c_in, p.classes, h, w, **dict(p.head_kwargs))
        head_cl = sum(r.macs for r in t.rows if r.kind in ("conv", "linear"))
        return Cost(macs + t.macs, params + t.params, acts + t.act_bytes, conv_linear + head_cl)
    t = Tally(detail=True)
    for call in calls:
        h, w = call.cls.complexity(t, call.path, call.c_in, call.c_out, h, w, call.stride, **dict(call.kwargs))
    Head.complexity(t, "head", p.head_c_in, p.classes, h, w, **dict(p.head_kwargs))
    conv_linear = sum(r.macs for r in t.rows if r.kind in ("conv", "linear"))
    return Cost(t.macs, t.params, t.act_bytes, conv_linear, tuple(t.rows))
