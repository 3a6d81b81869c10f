"""Every registry's contract: one parametrized test per registered name, and the registries' own rules."""

from __future__ import annotations

import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nas.arch import Arch, Block
from nas.model.build import build_model
from nas.model.cost import arch_cost
from nas.model.export import export_source
from nas.model.registries import BLOCKS, CELL_OPS, block_options
from nas.registry import Registry, UnknownName

ROOT = Path(__file__).resolve().parents[1]

# Block type -> (output channels, stride, options) of one example that exercises its options.
BLOCK_EXAMPLES = {
    "basic": (16, 2, {"se_ratio": 0.25, "act": "silu"}),
    "bottleneck": (16, 1, {"mid_ratio": 0.5}),
    "resnext": (32, 2, {"groups": 4}),
    "dwsep": (16, 1, {"kernel": 5, "se_ratio": 0.25}),
    "mbconv": (24, 2, {"expansion": 4, "se_ratio": 0.25, "act": "hardswish"}),
    "conv": (16, 1, {"groups": 2, "bn": False}),
    "pool": (8, 2, {"mode": "avg"}),
    "identity": (12, 2, {}),
    "cell": (8, 1, {"edges": ((0, 1, "nor_conv_3x3"), (0, 2, "skip_connect"), (1, 2, "avg_pool_3x3"))}),
    "nb201_residual": (16, 2, {}),
}


def _one_block(block: Block) -> Arch:
    return Arch((8, 8, 8), 3, (), ((block,),))


def _assert_contract(arch: Arch, tmp_path: Path) -> None:
    """Builds, its parameters are its cost twin's, and the exported file rebuilds the same outputs."""
    torch.manual_seed(0)
    model = build_model(arch).eval()
    assert sum(p.numel() for p in model.parameters()) == arch_cost(arch).params
    path = tmp_path / "model.py"
    path.write_text(export_source(arch))
    spec = importlib.util.spec_from_file_location("exported_contract", path)
    exported = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exported)
    rebuilt = exported.build_model().eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, *arch.input, generator=torch.Generator().manual_seed(1))
    assert torch.equal(rebuilt(x), model(x))


@pytest.mark.parametrize("name", list(BLOCKS))
def test_every_block_builds_costs_and_exports(name, tmp_path):
    assert name in BLOCK_EXAMPLES, f"block type {name!r} has no example in BLOCK_EXAMPLES"
    out, stride, options = BLOCK_EXAMPLES[name]
    assert set(options) <= set(block_options(name))
    _assert_contract(_one_block(Block.make(name, out, stride, **options)), tmp_path)


@pytest.mark.parametrize("op", list(CELL_OPS))
def test_every_cell_operation_builds_costs_and_exports(op, tmp_path):
    edges = ((0, 1, op), (0, 2, "nor_conv_1x1"), (1, 2, op))
    _assert_contract(_one_block(Block.make("cell", 8, 1, edges=edges)), tmp_path)


@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_options_read_without_torch_are_the_class_signature(name):
    from nas.model.registries import _declared_options

    params = inspect.signature(BLOCKS[name].__init__).parameters
    assert _declared_options(name) == {k: p.default for k, p in params.items() if k not in ("self", "c_in", "c_out", "stride")}


def test_a_duplicate_name_fails_and_a_miss_lists_the_known_names():
    registry: Registry[int] = Registry("widget")
    registry.add("a", 1)
    registry.declare("json", "b")
    with pytest.raises(ValueError, match="widget 'a' is registered twice"):
        registry.add("a", 2)
    with pytest.raises(ValueError, match="widget 'b' is registered twice"):
        registry.declare("json", "b")
    with pytest.raises(UnknownName) as miss:
        registry["c"]
    assert str(miss.value) == "unknown widget 'c' (known: a, b)" and isinstance(miss.value, ValueError)
    with pytest.raises(ImportError, match="json does not register the widget 'b'"):
        registry["b"]
    with registry.temporary("c", 3):
        assert registry["c"] == 3
    assert "c" not in registry and list(registry) == ["a", "b"]


@pytest.mark.parametrize("first", ["nas.model.blocks", "nas.model.cells", "nas.controllers.base", "nas.space"])
def test_registries_are_complete_whatever_was_imported_first(first):
    code = (f"import {first}\nfrom nas.model.registries import BLOCKS, CELL_OPS\nfrom nas.controllers import CONTROLLERS\n"
            "print(len(BLOCKS), len(dict(BLOCKS.items())), len(CELL_OPS), len(CONTROLLERS))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.stdout.split() == [str(len(BLOCK_EXAMPLES)), str(len(BLOCK_EXAMPLES)), "5", "6"]


@pytest.mark.parametrize("argv", [["--help"], ["spaces"], ["sample", "nasbench_macro"]])
def test_first_commands_import_neither_torch_ray_nor_optuna(argv):
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "nas", *argv], cwd=ROOT, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "nas.cli.app" in imported  # the check reads real importtime output
    assert {m.split(".")[0] for m in imported} & {"torch", "ray", "optuna"} == set()
