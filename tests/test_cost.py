"""The analytic cost model against the built module, for every registered block type.

Independent counters: parameters from `model.parameters()`, conv/linear multiply-adds from
`torch.utils.flop_counter.FlopCounterMode` (which counts 2 FLOPs per multiply-add), and real
layer shapes from forward hooks. Every detail row must name a real module of the built network.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import nas.model.build  # noqa: F401  (registers the cell block types before BLOCKS is read)
import nas.model.cost
from nas.arch import Arch, ArchError, Block, Head
from nas.model.blocks import BLOCKS
from nas.model.build import build_model
from nas.model.cells import CELL_OPS
from nas.model.cost import arch_cost
from nas.model.layers import BYTES_PER_VALUE

NB201_CELL = ((0, 1, "nor_conv_3x3"), (0, 2, "nor_conv_1x1"), (1, 2, "avg_pool_3x3"),
              (0, 3, "skip_connect"), (1, 3, "none"), (2, 3, "nor_conv_3x3"))

# Example option sets per block type: (out, stride, options). The stem gives 8 channels.
CASES: dict[str, list[tuple[int, int, dict]]] = {
    "basic": [
        (8, 1, {}), (16, 1, {}), (16, 2, {}), (8, 2, {}),
        (8, 1, {"se_ratio": 0.25}), (16, 2, {"se_ratio": 0.5, "act": "silu"}),
    ],
    "bottleneck": [
        (32, 1, {}), (32, 2, {}), (8, 1, {"mid_ratio": 1.0}), (32, 1, {"groups": 2}),
        (32, 2, {"group_width": 4}), (16, 1, {"mid_ratio": 1.0, "se_ratio": 0.25}),
        (64, 2, {"mid_ratio": 0.5, "groups": 4, "se_ratio": 0.25, "act": "hardswish"}),
    ],
    "resnext": [
        (32, 1, {}), (64, 2, {}), (32, 1, {"groups": 4, "mid_ratio": 1.0}),
        (32, 2, {"group_width": 4, "se_ratio": 0.25}), (8, 1, {"groups": 3}),  # groups=3 re-rounds mid
        (24, 1, {"group_width": 5, "mid_ratio": 0.5}),
    ],
    "dwsep": [
        (16, 1, {}), (16, 2, {"kernel": 5}), (8, 1, {"kernel": 7, "se_ratio": 0.25}),
        (24, 2, {"kernel": 3, "se_ratio": 0.5, "act": "relu6"}),
    ],
    "mbconv": [
        (8, 1, {"expansion": 1}), (16, 2, {"expansion": 3, "kernel": 5}), (8, 1, {"expansion": 6, "kernel": 7}),
        (8, 1, {"expansion": 6, "se_ratio": 0.25}), (16, 2, {"expansion": 1, "se_ratio": 0.25}),
        (12, 1, {"expansion": 3, "kernel": 3, "act": "silu"}),
    ],
    "conv": [
        (16, 1, {}), (16, 2, {"kernel": 5}), (16, 1, {"bn": False}), (16, 1, {"kernel": 7, "padding": 0, "bn": False}),
        (16, 2, {"kernel": 3, "padding": 2}), (16, 1, {"groups": 4}), (8, 1, {"groups": 8, "act": "none"}),
        (16, 2, {"kernel": 1, "padding": 0, "act": "gelu"}), (8, 4, {"kernel": 11, "padding": 5, "bn": False}),
    ],
    "pool": [
        (8, 2, {}), (8, 2, {"mode": "avg"}), (8, 2, {"kernel": 3, "padding": 1}),
        (8, 1, {"kernel": 3, "padding": 1, "mode": "avg"}), (8, 2, {"kernel": 3}),
    ],
    "identity": [(8, 1, {}), (16, 1, {}), (8, 2, {}), (16, 2, {})],
    "cell": [(8, 1, {"edges": ((0, 1, op),)}) for op in CELL_OPS] + [
        (8, 1, {"edges": NB201_CELL}),
        (8, 1, {"edges": ((0, 1, "nor_conv_3x3"), (1, 2, "nor_conv_1x1"), (0, 2, "skip_connect"),
                          (0, 2, "avg_pool_3x3"))}),  # a parallel edge: two adds into node 2
    ],
    "nb201_residual": [(16, 2, {}), (16, 1, {}), (8, 1, {})],
}

INPUTS = [(3, 16, 16), (8, 15, 15)]  # an odd size exercises floor/ceil rounding of strided layers


def _cases():
    for kind in sorted(BLOCKS):
        for i, case in enumerate(CASES.get(kind, [None])):
            for shape in INPUTS:
                yield pytest.param(kind, case, shape, id=f"{kind}-{i}-{shape[0]}x{shape[1]}")


def _arch(kind: str, case, shape) -> Arch:
    out, stride, opts = case
    block = Block.make(kind, out, stride, **opts)
    repeat = Block.make(kind, out, 1, **opts)  # the same type again from its own output (cached twice)
    return Arch(shape, 10, (Block.make("conv", 8, 1),), ((block, repeat),), Head())


POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
ROW_MODULES = {"conv": nn.Conv2d, "linear": nn.Linear, "bn": nn.BatchNorm2d, "pool": POOLS}


def _chw(t: torch.Tensor) -> tuple[int, int, int]:
    shape = tuple(t.shape[1:])
    return shape if len(shape) == 3 else (shape[0], 1, 1)


def check_arch(arch: Arch) -> None:
    """Every cross-check of arch_cost against the built module (shared by block and head tests)."""
    nas.model.cost._block_totals.cache_clear()
    detail = arch_cost(arch, detail=True)
    cold = arch_cost(arch)
    warm = arch_cost(arch)
    for fast in (cold, warm):  # the cached per-block fast path equals the detailed path
        assert (fast.params, fast.macs, fast.conv_linear_macs, fast.activation_bytes) == \
            (detail.params, detail.macs, detail.conv_linear_macs, detail.activation_bytes)
        assert fast.layers == ()

    rows = detail.layers
    assert rows
    names = [r.name for r in rows]
    assert len(names) == len(set(names)), "duplicate layer names"
    assert sum(r.params for r in rows) == detail.params
    assert sum(r.macs for r in rows) == detail.macs
    assert sum(r.act_bytes for r in rows) == detail.activation_bytes
    assert sum(r.macs for r in rows if r.kind in ("conv", "linear")) == detail.conv_linear_macs
    assert detail.activation_bytes == sum(r.c_out * r.h_out * r.w_out * BYTES_PER_VALUE for r in rows)
    assert detail.macs >= detail.conv_linear_macs

    model = build_model(arch).eval()
    assert detail.params == sum(p.numel() for p in model.parameters())

    # Rows of parameterised or pooling layers name real modules of the right type and size.
    by_name = {r.name: r for r in rows}
    for r in rows:
        if r.kind in ROW_MODULES:
            module = model.get_submodule(r.name)
            assert isinstance(module, ROW_MODULES[r.kind]), (r.name, type(module))
            assert sum(p.numel() for p in module.parameters()) == r.params, r.name
        elif r.kind == "act":
            module = model.get_submodule(r.name)
            assert not isinstance(module, nn.Identity) and not list(module.parameters()), r.name
        if r.kind == "conv":
            module = model.get_submodule(r.name)
            assert (module.in_channels, module.out_channels, module.kernel_size[0], module.stride[0],
                    module.padding[0], module.groups) == (r.c_in, r.c_out, r.kernel, r.stride, r.padding, r.groups)
    # ... and every conv / linear / BN module of the network has its row.
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
            assert name in by_name, f"module {name} has no cost row"

    # Real input/output shapes of each row's layer, and the independent MAC count.
    seen: dict[str, tuple] = {}
    hooks = []
    for name, module in model.named_modules():
        if name in by_name and isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d) + POOLS):
            hooks.append(module.register_forward_hook(
                lambda m, inp, out, name=name: seen.__setitem__(name, (_chw(inp[0]), _chw(out)))))
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            logits = model(torch.randn(1, *arch.input))
    finally:
        for h in hooks:
            h.remove()
    assert logits.shape == (1, arch.classes)
    flops = counter.get_total_flops()
    assert flops % 2 == 0 and flops // 2 == detail.conv_linear_macs
    for name, (shape_in, shape_out) in seen.items():
        r = by_name[name]
        assert shape_out == (r.c_out, r.h_out, r.w_out), f"{name}: module output {shape_out} vs row"
        assert shape_in == (r.c_in, r.h_in, r.w_in), f"{name}: module input {shape_in} vs row"
    expected = {r.name for r in rows if r.kind in ("conv", "linear", "bn", "pool")}
    assert set(seen) == expected, f"layers never run in forward: {sorted(expected - set(seen))}"


def test_every_block_type_has_examples():
    assert set(CASES) == set(BLOCKS), (
        f"block types without cost test cases: {sorted(set(BLOCKS) - set(CASES))}; "
        f"cases for unknown types: {sorted(set(CASES) - set(BLOCKS))}")
    used = {op for _, _, opts in CASES["cell"] for _, _, op in opts["edges"]}
    assert used == set(CELL_OPS), f"cell ops without a test: {sorted(set(CELL_OPS) - used)}"


@pytest.mark.parametrize("kind,case,shape", list(_cases()))
def test_block_cost_matches_module(kind, case, shape):
    assert case is not None, f"block type '{kind}' is registered but has no example in CASES"
    if kind == "nb201_residual" and case[1] == 2 and shape[1] % 2:
        with pytest.raises(ArchError, match="needs an even input size"):  # its shortcut would not line up
            arch_cost(_arch(kind, case, shape))
        return
    check_arch(_arch(kind, case, shape))


def test_a_window_larger_than_the_input_is_refused():
    arch = Arch((3, 8, 8), 10, (), ((Block.make("conv", 8, 1, kernel=11, padding=0),),))
    with pytest.raises(ArchError, match="does not fit"):
        arch_cost(arch)


HEADS = [
    Head(),
    Head(dropout=0.3),
    Head(hidden=(32,), dropout=0.5),
    Head(hidden=(32, 16), dropout=0.2, act="silu"),
    Head(pool_size=7, hidden=(24,), dropout=0.5),  # feature map 8x8: uneven adaptive windows
    Head(pool_size=6, hidden=(24, 24), dropout=0.5),
    Head(pool="max", pool_size=2),
    Head(norm_act=True),
    Head(conv=40, act="relu6", dropout=0.2),
    Head(conv=24, norm_act=True, hidden=(12,)),
]


@pytest.mark.parametrize("head", HEADS, ids=lambda h: "-".join(f"{k}={v}" for k, v in h.to_dict().items()
                                                              if v != Head().to_dict()[k]) or "default")
@pytest.mark.parametrize("shape", [(3, 16, 16), (3, 8, 8)])  # 8x8 -> 4x4 maps: pool_size 6/7 upsample
def test_head_cost_matches_module(head, shape):
    stages = ((Block.make("basic", 16, 2),), (Block.make("mbconv", 16, 1, expansion=3),))
    check_arch(Arch(shape, 7, (Block.make("conv", 8, 1),), stages, head))


def test_flop_counter_counts_two_per_multiply_add():
    conv = nn.Conv2d(3, 8, 3, padding=1, groups=1)
    with FlopCounterMode(display=False) as counter:
        conv(torch.randn(1, 3, 16, 16))
    assert counter.get_total_flops() == 2 * (8 * 16 * 16) * (3 * 3 * 3)


def test_mixed_network_cost_matches_module():
    """Many block types in one network: channels and sizes flow between different types."""
    stem = (Block.make("conv", 16, 2, kernel=5), Block.make("pool", 16, 1, kernel=3, padding=1, mode="avg"))
    stages = (
        (Block.make("basic", 16, 1, se_ratio=0.25), Block.make("cell", 16, 1, edges=NB201_CELL)),
        (Block.make("nb201_residual", 32, 2), Block.make("bottleneck", 64, 1, groups=2)),
        (Block.make("resnext", 64, 2, group_width=8), Block.make("mbconv", 48, 1, expansion=6, kernel=5),
         Block.make("dwsep", 64, 1, se_ratio=0.25), Block.make("identity", 96, 1)),
    )
    check_arch(Arch((3, 32, 32), 10, stem, stages, Head(conv=128, hidden=(64,), dropout=0.1)))
