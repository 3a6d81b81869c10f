"""Export: the standalone file rebuilds exactly the internal module, needs only torch, and cannot be injected."""

from __future__ import annotations

import ast
import builtins
import importlib.util
import itertools
import json
import os
import py_compile
import subprocess
import symtable
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.arch import Arch, Block, Head
from nas.model.build import build_model
from nas.model.export import ExportError, export, export_source, literal
from nas.model.reference import reference
from nas.model.registries import CELL_OPS

# Every registered cell operation on the edges of a four-node cell, so TorchScript and ONNX see each of them.
ALL_OPS = tuple((src, dst, op) for (src, dst), op in zip([(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)],
                                                         itertools.cycle(CELL_OPS)))

# Whole networks: several blocks per stage, heads and references (each block type alone: test_registries.py).
ARCHS = {
    "basic": Arch((3, 16, 16), 10, (Block.make("conv", 8, 1, kernel=3),),
                  ((Block.make("basic", 8), Block.make("basic", 16, 2, se_ratio=0.25, act="silu")),),
                  Head(hidden=(16,), dropout=0.1)),
    "bottleneck_resnext": Arch((3, 16, 16), 7, (Block.make("conv", 16, 1),), (
        (Block.make("bottleneck", 16, 1, mid_ratio=0.25),
         Block.make("resnext", 32, 2, mid_ratio=0.5, groups=4),
         Block.make("resnext", 32, 1, group_width=4, se_ratio=0.25)),), Head(conv=24, norm_act=True)),
    "conv_pool_identity": Arch((1, 8, 8), 3, (), (
        (Block.make("conv", 8, 1, bn=False), Block.make("conv", 8, 1, groups=2, padding=1),
         Block.make("pool", 8, 2, mode="avg"), Block.make("identity", 8)),
        (Block.make("identity", 12, 2), Block.make("pool", 12, 1, kernel=3, padding=1))),
        Head(pool="max", pool_size=2, hidden=(32, 16), dropout=0.5, act="gelu")),
    "cells": Arch((1, 8, 8), 4, (Block.make("conv", 8, 1),), (
        (Block.make("cell", 8, edges=ALL_OPS),),
        (Block.make("nb201_residual", 16, 2), Block.make("nb201_residual", 16, 1),
         Block.make("nb201_residual", 24, 1), Block.make("cell", 24, edges=ALL_OPS[:2] + ALL_OPS[3:4]))),
        Head(norm_act=True)),
    "resnet18": reference("resnet18").with_io((3, 64, 64), 10),
    "mobilenet_v2": reference("mobilenet_v2").with_io((3, 32, 32), 10),
}


def _write(arch: Arch, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.py"
    path.write_text(export_source(arch))
    return path


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(f"exported_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # a fresh namespace: nothing shared with nas
    return module


def _internal(arch: Arch) -> torch.nn.Module:
    """The builder's model with non-trivial BN statistics, so misplaced buffers would show."""
    torch.manual_seed(0)
    model = build_model(arch)
    for name, buf in model.named_buffers():
        if name.endswith("running_var"):
            buf.uniform_(0.5, 1.5)
        elif name.endswith("running_mean"):
            buf.normal_(0, 0.1)
    return model.eval()


def _lint(source: str) -> None:
    """What ruff would flag: nas imports, unused imports, undefined global names."""
    tree = ast.parse(source)
    imported = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            assert module.split(".")[0] in {"__future__", "torch", "collections", "math", "pathlib", "typing"}, module
            for a in node.names:
                imported[a.asname or a.name.split(".")[0]] = module
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not {k for k, m in imported.items() if m != "__future__"} - used, "unused imports"
    top = symtable.symtable(source, "model.py", "exec")
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()} | set(dir(builtins))
    defined.add("__file__")  # set by the import system; load_model finds the weights beside the file with it
    missing = set()

    def walk(table: symtable.SymbolTable) -> None:
        for s in table.get_symbols():
            if s.is_referenced() and (table is top or s.is_global()) and s.get_name() not in defined:
                missing.add(s.get_name())
        for child in table.get_children():
            walk(child)
    walk(top)
    assert not missing, f"undefined names {missing}"


@pytest.mark.parametrize("name", ARCHS)
def test_export_rebuilds_the_internal_model(name, tmp_path):
    arch = ARCHS[name]
    path = _write(arch, tmp_path)
    source = path.read_text()
    py_compile.compile(str(path), doraise=True)
    _lint(source)
    assert "FLOPs are multiply-adds" in source and arch.arch_id in source
    assert not any(word in source for word in ("complexity", "register_", "def check", "nas."))
    module = _load(path, name)
    assert module.INPUT_SHAPE == arch.input and module.NUM_CLASSES == arch.classes
    internal, exported = _internal(arch), module.build_model().eval()
    a, b = internal.state_dict(), exported.state_dict()
    assert list(a) == list(b) and all(a[k].shape == b[k].shape for k in a)
    exported.load_state_dict(a, strict=True)
    x = torch.randn(2, *arch.input)
    with torch.no_grad():
        assert torch.allclose(internal(x), exported(x), atol=1e-5)


def test_exported_files_need_only_torch(tmp_path):
    paths = [str(_write(arch, tmp_path / name)) for name, arch in ARCHS.items() if "resnet18" not in name]
    script = ("import runpy, sys, torch\n"
              f"for path in {paths!r}:\n"
              "    g = runpy.run_path(path, run_name='exported')\n"
              "    y = g['build_model']().eval()(torch.randn(1, *g['INPUT_SHAPE']))\n"
              "    assert y.shape == (1, g['NUM_CLASSES'])\n"
              "assert not [m for m in sys.modules if m == 'nas' or m.startswith('nas.')]\n"
              "print('ok')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_only_needed_helpers_are_emitted():
    plain = export_source(ARCHS["conv_pool_identity"])
    for absent in ("BasicBlock", "SqueezeExcite", "CELL_OPS", "Tally", "numpy", "networkx", "se_width"):
        assert absent not in plain
    assert "def _shortcut" in plain and "class IdentityBlock" in plain
    resnext = export_source(ARCHS["bottleneck_resnext"])
    for present in ("class _Residual(", "class Bottleneck(_Residual)", "class ResNeXtBlock(Bottleneck)",
                    "def bottleneck_width", "def group_compatible", "def se_width", "class SqueezeExcite"):
        assert present in resnext
    edges = ((0, 1, "skip_connect"), (1, 2, "nor_conv_3x3"))
    cell = Arch((3, 8, 8), 2, (Block.make("conv", 8),), ((Block.make("cell", 8, edges=edges),),))
    source = export_source(cell)
    assert "'skip_connect'" in source and "'nor_conv_3x3'" in source and "def _relu_conv_bn" in source
    assert "Zero" not in source and "'none':" not in source and "avg_pool" not in source


EVIL = '"); import os; os.system("echo pwned") #\n"""\'\\'


def test_arch_text_cannot_inject_code():
    arch = Arch((3, 8, 8), 2, (Block.make("conv", 8, act=EVIL),), (), Head(act=EVIL), name=EVIL + '"""')
    tree = ast.parse(export_source(arch))
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Call) and "system" in ast.unparse(n.func)]
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "os"]
    allowed = (ast.Expr, ast.Import, ast.ImportFrom, ast.Assign, ast.FunctionDef, ast.ClassDef, ast.If)
    assert all(isinstance(node, allowed) for node in tree.body)
    assert isinstance(tree.body[0], ast.Expr) and not any(isinstance(n, ast.Expr) for n in tree.body[1:])
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "build_model")
    assert len(fn.body) == 2 and isinstance(fn.body[1], ast.Return)
    strings = {n.value for n in ast.walk(fn) if isinstance(n, ast.Constant)}
    assert EVIL in strings  # kept as an inert string, byte for byte
    name = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "ARCH_NAME")
    assert name.value.value == EVIL + '"""'
    with pytest.raises(ValueError):  # option names are checked against the class signature
        export_source(Arch((3, 8, 8), 2, (Block.make("conv", 8, **{"x=1); import os; #": 1}),), ()))


class _Sneaky(str):
    def __repr__(self) -> str:
        return "__import__('os')"


@pytest.mark.parametrize("bad", [object(), float("nan"), float("inf"), {"a": 1}, {1}, np.int64(3), _Sneaky("x"),
                                 (1, [2, object()]), b"bytes"])
def test_literal_refuses_everything_but_plain_values(bad):
    with pytest.raises(ValueError):
        literal(bad)


def test_literal_renders_plain_values():
    value = (1, -2.5, True, None, "a'\"\n", [3, (4,)], ())
    assert ast.literal_eval(literal(value)) == value


def _checkpoint(arch: Arch, path: Path, wrapped: bool = True) -> torch.nn.Module:
    model = _internal(arch)
    state = model.state_dict()
    torch.save({"state_dict": state, "arch": arch.to_json(), "metrics": {"acc": 0.5}} if wrapped else state, path)
    return model


@pytest.mark.parametrize("wrapped", [True, False])
def test_export_with_weights(tmp_path, wrapped):
    arch = ARCHS["cells"]
    trained = _checkpoint(arch, tmp_path / "ckpt.pt", wrapped)
    written = export(arch, tmp_path / "out", weights=tmp_path / "ckpt.pt")
    out = tmp_path / "out"
    assert written == [out / "model.py", out / "model.pt", out / "arch.json"]
    assert Arch.from_json((out / "arch.json").read_text()) == arch
    assert json.loads((out / "arch.json").read_text())["arch_id"] == arch.arch_id
    model = _load(out / "model.py", f"weights_{wrapped}").build_model()
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True), strict=True)
    x = torch.randn(3, *arch.input)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), trained(x), atol=1e-5)


def test_export_refuses_foreign_weights(tmp_path):
    _checkpoint(ARCHS["basic"], tmp_path / "ckpt.pt")
    with pytest.raises(ExportError, match="checkpoint is for architecture"):
        export(ARCHS["cells"], tmp_path / "out", weights=tmp_path / "ckpt.pt")
    _checkpoint(ARCHS["basic"], tmp_path / "raw.pt", wrapped=False)
    with pytest.raises(ExportError, match="do not fit"):
        export(ARCHS["cells"], tmp_path / "out", weights=tmp_path / "raw.pt")
    with pytest.raises(ValueError, match="unknown export format"):
        export(ARCHS["cells"], tmp_path / "out", format="tflite")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.load's notice
@pytest.mark.parametrize("name", ["cells", "basic"])
def test_torchscript(tmp_path, name):
    arch = ARCHS[name]
    trained = _checkpoint(arch, tmp_path / "ckpt.pt")
    (path,) = export(arch, tmp_path / "model.pt", weights=tmp_path / "ckpt.pt", format="torchscript")
    loaded = torch.jit.load(str(path))
    x = torch.randn(2, *arch.input)
    with torch.no_grad():
        assert torch.allclose(loaded(x), trained(x), atol=1e-5)


def _onnx_export(tmp_path: Path) -> tuple[Arch, torch.nn.Module, Path]:
    arch = ARCHS["cells"]
    trained = _checkpoint(arch, tmp_path / "ckpt.pt")
    (path,) = export(arch, tmp_path / "model.onnx", weights=tmp_path / "ckpt.pt", format="onnx")
    return arch, trained, path


def test_onnx(tmp_path):
    onnx = pytest.importorskip("onnx")
    _, _, path = _onnx_export(tmp_path)
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    assert [i.name for i in graph.graph.input] == ["input"] and [o.name for o in graph.graph.output] == ["logits"]
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a symbolic batch axis


def test_onnx_matches_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    arch, trained, path = _onnx_export(tmp_path)
    x = torch.randn(3, *arch.input)
    (y,) = ort.InferenceSession(str(path)).run(None, {"input": x.numpy()})
    with torch.no_grad():
        assert np.allclose(y, trained(x).numpy(), atol=1e-4)


# ---------------------------------------------------------------------------- the input contract (issue 16)

@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory):
    """A small child trained on digits with a checkpoint, as nas train --checkpoint writes it; (path, val_acc)."""
    from nas.data import load_splits
    from nas.space.search_space import load_space
    from nas.train import train_child
    from nas.train.recipe import Recipe

    splits = load_splits("digits", seed=0)
    arch = load_space("resnet_like").with_io(splits.info.input_shape, splits.info.classes).sample(np.random.default_rng(5),
                                                                                                   max_macs=4e5)
    path = tmp_path_factory.mktemp("ckpt") / "child.pt"
    result = train_child(arch, splits, Recipe(epochs=4, batch_size=64, lr=0.05, device="cpu", threads=1), checkpoint=path)
    return path, result.val_acc, splits


def test_exported_module_preprocesses_raw_images_to_the_trainers_accuracy(digits_checkpoint, tmp_path, capsys):
    from nas.cli.app import main

    path, val_acc, splits = digits_checkpoint
    assert main(["export", str(path), "-o", str(tmp_path / "model.py")]) == 0
    assert "input contract from the checkpoint" in capsys.readouterr().err
    module = _load(tmp_path / "model.py", "exported_contract")
    assert module.INPUT_CONTRACT["mean"] == (0.3053,) and module.INPUT_CONTRACT["value_range"] == (0, 255)
    model = module.load_model()  # the weights beside it
    with torch.no_grad():
        raw = model(torch.as_tensor(splits.val_x).float()).argmax(1)
        pre = model(module.preprocess(splits.val_x)).argmax(1)
    labels = torch.as_tensor(splits.val_y)
    raw_acc, pre_acc = 100 * (raw == labels).float().mean().item(), 100 * (pre == labels).float().mean().item()
    print(f"digits val: raw {raw_acc:.2f}%  preprocess {pre_acc:.2f}%  trainer {val_acc:.2f}%")  # the issue's figure
    assert pre_acc == pytest.approx(val_acc, abs=0.5)
    assert json.loads((tmp_path / "arch.json").read_text())["input_contract"]["std"] == [0.3759]
    run = subprocess.run([sys.executable, str(tmp_path / "model.py")], capture_output=True, text=True, check=True)
    assert run.stdout.startswith("weights: ")


def test_torchscript_and_onnx_carry_the_contract(digits_checkpoint, tmp_path, capsys):
    from nas.cli.app import main

    path, _, _ = digits_checkpoint
    assert main(["export", str(path), "-o", str(tmp_path / "m.pt")]) == 0  # TorchScript from the extension
    extra = {"input_contract.json": ""}
    torch.jit.load(str(tmp_path / "m.pt"), _extra_files=extra)
    assert json.loads(extra["input_contract.json"])["dataset"] == "digits"
    assert main(["export", str(path), "-o", str(tmp_path / "m.onnx")]) == 0
    onnx = pytest.importorskip("onnx")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(props["input_contract"])["classes"] == 10


def test_export_format_mismatch_and_checkpoint_targets(digits_checkpoint, tmp_path, capsys):
    from nas.cli.app import main

    path, _, _ = digits_checkpoint
    assert main(["export", "resnet18", "-o", str(tmp_path / "m.onnx"), "--format", "py"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "m.onnx" in err and "--format onnx" in err
    assert main(["inspect", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input"] == [1, 8, 8]
    state = torch.load(path, weights_only=True)["state_dict"]
    torch.save(state, tmp_path / "raw.pt")  # a raw state_dict names no data set: no contract unless --dataset
    assert main(["export", str(path), "--weights", str(tmp_path / "raw.pt"), "-o", str(tmp_path / "a" / "m.py")]) == 0
    assert "no input contract" in capsys.readouterr().err
    assert _load(tmp_path / "a" / "m.py", "no_contract").INPUT_CONTRACT is None
    assert main(["export", str(path), "--weights", str(tmp_path / "raw.pt"), "--dataset", "digits",
                 "-o", str(tmp_path / "b" / "m.py")]) == 0
    assert "--dataset digits" in capsys.readouterr().err


from test_report import digits_run  # noqa: E402, F401  (the report tests' tiny digits run, as a fixture)


def test_retrain_never_overwrites_and_export_uses_the_newest(digits_run, tmp_path, capsys):  # noqa: F811
    from nas.cli.app import main

    saved = []
    for _ in range(2):
        assert main(["retrain", str(digits_run), "--pareto-index", "0", "--epochs", "1"]) == 0
        saved.append(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("weights saved to "))
    assert saved[0] != saved[1] and all(Path(s).is_file() for s in saved)
    assert main(["export", str(digits_run), "--pareto-index", "0", "-o", str(tmp_path / "r" / "m.py")]) == 0
    assert f"used the retrained weights {saved[1]}" in capsys.readouterr().err
    assert main(["export", str(digits_run), "--pareto-index", "0", "--proxy-weights", "-o", str(tmp_path / "p" / "m.py")]) == 0
    assert "proxy" in capsys.readouterr().err
    proxy = torch.load(tmp_path / "p" / "m.pt", weights_only=True)
    retrained = torch.load(tmp_path / "r" / "m.pt", weights_only=True)
    assert any(not torch.equal(proxy[k], retrained[k]) for k in proxy)
