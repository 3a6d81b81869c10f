"""Export an Arch as a standalone PyTorch source file (needs only torch), TorchScript or ONNX.

The source file is assembled from the library's own code (inspect + ast), so there is one source of
truth: the block classes the architecture uses, Network, Head and the helpers they reference, minus
the cost twins (`complexity`), validation (`check`) and registry decorators. Values taken from an
architecture reach the file only through `literal`, and class names only from the block registry.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import keyword
import math
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.arch import Arch
from nas.jsonio import recode
from nas.model.blocks import BLOCKS
from nas.model.build import Call, build_model, plan
from nas.model.checkpoint import CheckpointError, arch_field, fit_problems, is_state_dict, load_file
from nas.model.cost import arch_cost
from nas.model.network import Head

FORMATS = ("py", "torchscript", "onnx")
# Modules whose top-level definitions may be copied, in import order (so base classes come first).
_LIBRARY = ("nas.model.channels", "nas.model.layers", "nas.model.blocks", "nas.model.cells", "nas.model.network")
_ALLOWED_IMPORTS = {"torch", "collections", "math", "typing"}  # what an exported file may import
_STRIPPED_METHODS = {"complexity", "check"}  # the cost model's and the builder's business, not the model's
_DEFAULT_NAMES = {"py": "model.py", "torchscript": "model.pt", "onnx": "model.onnx"}


class ExportError(ValueError):
    """An architecture or checkpoint that cannot be exported."""


# The input contract: what the network expects, so an exported model can be fed raw images. The trainer
# holds images as uint8 0..255 and feeds (x - 255 * mean) / (255 * std), resized to the network's input.
CONTRACT_FIELDS = ("dataset", "input_shape", "dtype", "value_range", "mean", "std", "classes")


def input_contract(input_shape, classes: int, mean, std, dataset: str | None = None) -> dict:
    """The input contract of a network trained on a data set with these per-channel mean/std (in [0,1])."""
    c = int(input_shape[0])
    mean, std = list(mean), list(std)
    # Broadcast a one-channel mean/std the way the trainer does (DeviceData), so the contract is per channel.
    mean = mean[:c] if len(mean) >= c else mean * c
    std = std[:c] if len(std) >= c else std * c
    return {"dataset": dataset, "input_shape": [int(v) for v in input_shape], "dtype": "uint8",
            "value_range": [0, 255], "mean": [float(v) for v in mean], "std": [float(v) for v in std],
            "classes": int(classes)}


def check_contract(where: str, value: Any) -> dict:
    """value as an input contract, or an ExportError naming where and the field at fault."""
    if not isinstance(value, dict):
        raise ExportError(f"{where}: input contract must be a dict, not a {type(value).__name__}")
    missing = [f for f in CONTRACT_FIELDS if f not in value]
    if missing:
        raise ExportError(f"{where}: input contract has no field {', '.join(missing)}")
    shape, c = value["input_shape"], None
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and all(type(v) is int and v > 0 for v in shape)):
        raise ExportError(f"{where}: input contract field input_shape must be 3 positive ints (C,H,W), not {shape!r}")
    c = shape[0]
    for name in ("mean", "std"):
        vals = value[name]
        if not (isinstance(vals, (list, tuple)) and len(vals) == c
                and all(type(v) in (int, float) and math.isfinite(v) for v in vals)):
            raise ExportError(f"{where}: input contract field {name} must be {c} finite numbers, not {vals!r}")
    if any(v <= 0 for v in value["std"]):
        raise ExportError(f"{where}: input contract field std must be positive, not {value['std']!r}")
    if type(value["classes"]) is not int or value["classes"] < 1:
        raise ExportError(f"{where}: input contract field classes must be a positive int, not {value['classes']!r}")
    if value["dataset"] is not None and type(value["dataset"]) is not str:
        raise ExportError(f"{where}: input contract field dataset must be a name, not {value['dataset']!r}")
    if value["dtype"] != "uint8" or list(value["value_range"]) != [0, 255]:
        raise ExportError(f"{where}: input contract fields dtype/value_range must be uint8 and [0, 255]")
    return {k: value[k] for k in CONTRACT_FIELDS}


def literal(value: Any) -> str:
    """Python source for int, finite float, bool, None, str or tuples/lists of them; anything else is refused."""
    kind = type(value)  # exact types: a subclass could override __repr__ and inject code
    if value is None or kind in (bool, int, str):
        return repr(value)
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(f"cannot export the non-finite number {value!r}")
        return repr(value)
    if kind in (tuple, list):
        items = ", ".join(literal(v) for v in value)
        if kind is list:
            return f"[{items}]"
        return f"({items},)" if len(value) == 1 else f"({items})"
    raise ValueError(f"cannot export a value of type {kind.__name__} as a literal")


def _identifier(name: Any) -> str:
    if type(name) is not str or not (name.isascii() and name.isidentifier()) or keyword.iskeyword(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


@dataclass(frozen=True)
class _Unit:
    """One top-level definition as it will appear in an exported file."""

    name: str
    module: str
    order: tuple[int, int]  # (module rank, line): library order keeps base classes before subclasses
    text: str
    names: frozenset[str]  # every name it mentions; those that are units or imports are its dependencies


def _unit(name: str, module: str, order: tuple[int, int], text: str) -> _Unit:
    names = frozenset(n.id for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Name))
    return _Unit(name, module, order, text, names)


def _is_registration(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("register_")


def _segment(node: ast.stmt, lines: list[str]) -> str:
    """The node's source lines without registry decorators and stripped methods (comments kept)."""
    drop: set[int] = set()
    for dec in getattr(node, "decorator_list", ()):
        if _is_registration(dec):
            drop.update(range(dec.lineno, dec.end_lineno + 1))
    for item in node.body if isinstance(node, ast.ClassDef) else ():
        if isinstance(item, ast.FunctionDef) and item.name in _STRIPPED_METHODS:
            first = min([item.lineno] + [d.lineno for d in item.decorator_list])
            drop.update(range(first, item.end_lineno + 1))
            if not lines[first - 2].strip():
                drop.add(first - 1)
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", ())])
    return "\n".join(line for i, line in enumerate(lines[start - 1:node.end_lineno], start) if i not in drop)


@cache
def _library(modules: tuple[str, ...]) -> tuple[dict[str, _Unit], dict[str, tuple], dict[str, str]]:
    """(units by name, imports by local name as (module, name, asname), cell-op factory source by op)."""
    units: dict[str, _Unit] = {}
    imports: dict[str, tuple] = {}
    ops: dict[str, str] = {}
    for rank, modname in enumerate(modules):
        source = inspect.getsource(importlib.import_module(modname))
        lines = source.splitlines()
        for node in ast.parse(source).body:
            name = None
            if isinstance(node, ast.Import):
                for a in node.names:
                    imports.setdefault(a.asname or a.name.split(".")[0], (a.name, None, a.asname))
            elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
                for a in node.names:
                    imports.setdefault(a.asname or a.name, (node.module, a.name, a.asname))
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                name = node.name
                for dec in node.decorator_list:  # @register_cell_op("op", cost) on a factory function
                    if _is_registration(dec) and dec.func.id == "register_cell_op":
                        ops[dec.args[0].value] = node.name
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                name = targets[0].id if len(targets) == 1 and isinstance(targets[0], ast.Name) else None
            elif isinstance(node, ast.Expr) and _is_registration(getattr(node.value, "func", None)):
                reg = node.value.func  # register_cell_op("op", cost)(lambda c: ...)
                if reg.func.id == "register_cell_op":
                    ops[reg.args[0].value] = ast.get_source_segment(source, node.value.args[0])
            if name:
                units[name] = _unit(name, modname, (rank, node.lineno), _segment(node, lines))
    return units, imports, ops


def _cell_ops_unit(used: list[str], factories: dict[str, str], order: tuple[int, int]) -> _Unit:
    """CELL_OPS holding only the edge operations this architecture uses (the registry fills it in nas)."""
    rows = "".join(f"    {literal(op)}: ({factories[op]}, None),\n" for op in used)
    text = ("# Edge operations of this architecture's cells: name -> (module factory, cost twin); no costs here.\n"
            f"CELL_OPS = {{\n{rows}}}" if used else "CELL_OPS = {}")
    return _unit("CELL_OPS", "nas.model.cells", order, text)


def _block_call(call: Call) -> str:
    """`Class(c_in, c_out, stride, key=value, ...)`: the class from the registry, every value a literal."""
    if call.cls not in BLOCKS.values():
        raise ExportError(f"{call.path}: {call.cls.__name__} is not a registered block class")
    args = [literal(call.c_in), literal(call.c_out), literal(call.stride)]
    args += [f"{_identifier(k)}={literal(v)}" for k, v in call.kwargs]
    return f"{_identifier(call.cls.__name__)}({', '.join(args)})"


def _imports(names: set[str], imports: dict[str, tuple]) -> str:
    """Import lines for the names used: stdlib first, then torch, `from` lines grouped by module."""
    plain, froms = set(), {}
    for name in names:
        module, attr, asname = imports[name]
        if module.split(".")[0] not in _ALLOWED_IMPORTS:
            raise ExportError(f"'{name}' comes from {module}, which a torch-only file cannot import")
        alias = f" as {asname}" if asname else ""
        if attr is None:
            plain.add((module, f"import {module}{alias}"))
        else:
            froms.setdefault(module, []).append(f"{attr}{alias}")
    lines = sorted(plain) + [(m, f"from {m} import {', '.join(sorted(a))}") for m, a in froms.items()]
    key = lambda m_line: (m_line[0].split(".")[0] == "torch", m_line[0], m_line[1].startswith("from"))  # noqa: E731
    stdlib = [line for m, line in sorted(lines, key=key) if m.split(".")[0] != "torch"]
    third = [line for m, line in sorted(lines, key=key) if m.split(".")[0] == "torch"]
    return "\n\n".join("\n".join(group) for group in (stdlib, third) if group)


_FEED = {True: "Feed raw images through preprocess().",
         False: "No input contract was recorded: normalise inputs as in training."}


def _contract_source(contract: dict | None) -> str:
    """The constants and preprocess() of the input contract (every value through literal)."""
    if contract is None:
        return ("# No input contract was recorded (the data set the weights were trained on is unknown):\n"
                "# feed inputs normalised as they were in training.\nINPUT_CONTRACT = None\n")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in contract.items()}
    return f'''# The input contract: the network was trained on {literal(values["dataset"])} images as uint8 0..255,
# normalised per channel as (x - 255 * mean) / (255 * std). preprocess() does exactly that.
INPUT_CONTRACT = {{
    "dataset": {literal(values["dataset"])},
    "input_shape": {literal(values["input_shape"])},
    "dtype": {literal(values["dtype"])},
    "value_range": {literal(values["value_range"])},
    "mean": {literal(values["mean"])},
    "std": {literal(values["std"])},
    "classes": {literal(values["classes"])},
}}


def preprocess(x) -> torch.Tensor:
    """Images (uint8 or float on the 0..255 scale; N,C,H,W or C,H,W) as the normalised batch the network expects."""
    x = torch.as_tensor(x)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    c, h, w = INPUT_CONTRACT["input_shape"]
    if tuple(x.shape[-2:]) != (h, w):  # resized as the trainer resizes (bilinear, antialiased, back to uint8 levels)
        x = torch.nn.functional.interpolate(x.float(), size=(h, w), mode="bilinear", antialias=True,
                                            align_corners=False).round().clamp(0, 255)
    mean = torch.tensor(INPUT_CONTRACT["mean"]).view(1, c, 1, 1) * 255
    std = torch.tensor(INPUT_CONTRACT["std"]).view(1, c, 1, 1) * 255
    return (x.float() - mean) / std
'''


def export_source(arch: Arch, contract: dict | None = None, weights_name: str = "model.pt") -> str:
    """Standalone PyTorch source defining build_model() (and preprocess() given an input contract) for arch."""
    p = plan(arch)
    calls = [*p.stem, *(call for stage in p.stages for call in stage)]
    classes = {call.cls for call in calls}
    extra = sorted({cls.__module__ for cls in classes} - set(_LIBRARY))  # blocks registered elsewhere
    units, imports, factories = _library(_LIBRARY + tuple(extra))
    units = dict(units)
    used_ops = sorted({e[2] for c in calls for e in dict(c.kwargs).get("edges", ())}, key=list(factories).index)
    cells_rank = (_LIBRARY + tuple(extra)).index("nas.model.cells")
    units["CELL_OPS"] = _cell_ops_unit(used_ops, factories, (cells_rank, 1 << 30))
    for cls in classes:
        if cls.__name__ not in units or units[cls.__name__].module != cls.__module__:
            raise ExportError(f"block class {cls.__name__} has no top-level source in {cls.__module__}")
    need, todo = set(), [cls.__name__ for cls in classes] + ["Network", "Head"]
    while todo:  # dependency closure: every unit a needed unit mentions by name
        name = todo.pop()
        if name not in need:
            need.add(name)
            todo += [n for n in units[name].names if n in units]
    chosen = sorted((units[n] for n in need), key=lambda u: u.order)
    mentioned = {"torch", "nn"}.union(*(u.names for u in chosen))  # build_model and __main__ use torch, nn
    import_block = _imports({n for n in mentioned if n in imports and n not in units}, imports)

    if contract is not None:
        contract = check_contract("input contract", contract)
    cost = arch_cost(arch)
    head_defaults = inspect.signature(Head.__init__).parameters
    head_args = [literal(p.head_c_in), "NUM_CLASSES"] + [
        f"{_identifier(k)}={literal(v)}" for k, v in p.head_kwargs if v != head_defaults[k].default]
    stem = "".join(f"            {_block_call(c)},\n" for c in p.stem)
    stages = "".join(f"            [  # s{i}\n" + "".join(f"                {_block_call(c)},\n" for c in stage)
                     + "            ],\n" for i, stage in enumerate(p.stages, 1))
    body = [("" if i and chosen[i - 1].module == u.module else f"# From {u.module.replace('.', '/')}.py\n") + u.text
            for i, u in enumerate(chosen)]
    return f'''"""Standalone PyTorch model exported by nas: architecture {arch.arch_id}.

Input {literal(tuple(arch.input))}, {arch.classes} classes; {cost.params:,} parameters and {cost.macs:,} multiply-adds
per image (FLOPs are multiply-adds). Needs only torch; parameter names match nas checkpoints, so
`build_model().load_state_dict(torch.load("model.pt", weights_only=True))` restores trained weights,
and `load_model()` does so from the weights file beside this one. {_FEED[contract is not None]}
"""

from __future__ import annotations

{import_block}

ARCH_ID = {literal(arch.arch_id)}
ARCH_NAME = {literal(arch.name)}
INPUT_SHAPE = {literal(tuple(arch.input))}
NUM_CLASSES = {literal(arch.classes)}
WEIGHTS_FILE = {literal(weights_name)}  # beside this file; written when the export had weights

{_contract_source(contract)}

{''.join(text + chr(10) * 3 for text in body)}def build_model() -> nn.Module:
    """The network, freshly initialised (call .eval() and load weights for inference)."""
    return Network(
        stem=[{chr(10) + stem + " " * 8 if stem else ""}],
        stages=[{chr(10) + stages + " " * 8 if stages else ""}],
        head=Head({", ".join(head_args)}),
    )


def load_model() -> nn.Module:
    """The network in eval mode, with the weights beside this file when they are there (else untrained)."""
    import pathlib

    model = build_model().eval()
    path = pathlib.Path(__file__).resolve().with_name(WEIGHTS_FILE)
    if path.is_file():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model


if __name__ == "__main__":
    import pathlib

    here = pathlib.Path(__file__).resolve().with_name(WEIGHTS_FILE)
    model = load_model()
    print(f"weights: {{here}}" if here.is_file() else "no weights beside this file: untrained")
    print(model(torch.randn(1, *INPUT_SHAPE)).shape)
'''


def _load_weights(model: nn.Module, arch: Arch, weights: str | Path | dict) -> None:
    """Load a checkpoint ({"state_dict": ..., "arch": ...} or a raw state_dict; a path or in memory) strictly,
    refusing another architecture's."""
    if isinstance(weights, dict):
        data, where = weights, "the given state_dict"  # (named so in the errors below)
    else:
        data, where = load_file(weights), str(weights)
    if isinstance(data, dict) and "state_dict" in data:  # a nas checkpoint, not a raw state_dict
        trained = arch_field(where, data["arch"]).arch_id if "arch" in data else arch.arch_id
        if trained != arch.arch_id:
            raise ExportError(f"{where}: checkpoint is for architecture {trained} (field arch), not {arch.arch_id}; "
                              "export its own architecture or give weights trained for this one")
        data, where = data["state_dict"], f"{where}: field state_dict"
    if not is_state_dict(data):
        raise CheckpointError(f"{where}: not a state_dict (parameter names to tensors) or a nas checkpoint holding one")
    problems = fit_problems(model.state_dict(), data)
    if problems:
        raise ExportError(f"{where}: weights do not fit architecture {arch.arch_id} ({problems})")
    try:
        model.load_state_dict(data, strict=True)
    except RuntimeError as err:  # names and shapes fit, yet a value does not (a dtype torch cannot convert)
        raise ExportError(f"{where}: weights do not fit architecture {arch.arch_id}: {err}") from None


def _torchscript(model: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """Scripted when TorchScript compiles the model, else traced on an example input."""
    try:
        return torch.jit.script(model)
    except Exception:  # Network's getattr(self, f"s{i}") and Cell's node list defeat the compiler; tracing works
        return torch.jit.trace(model, example)


def export(arch: Arch, out_path: str | Path, *, weights: str | Path | dict | None = None, format: str = "py",
           contract: dict | None = None) -> list[Path]:
    """Write arch as a .py file (+ model.pt with weights, + arch.json), TorchScript or ONNX; returns the paths.

    contract (see input_contract) is recorded in every format: constants and preprocess() in the .py and its
    arch.json, an extra file input_contract.json in TorchScript, metadata_props input_contract in ONNX.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r} (known: {', '.join(FORMATS)})")
    if contract is not None:
        contract = check_contract("input contract", contract)
        if tuple(contract["input_shape"])[0] != arch.input[0] or contract["classes"] != arch.classes:
            raise ExportError(f"input contract ({contract['input_shape']}, {contract['classes']} classes) does not fit "
                              f"architecture {arch.arch_id} ({list(arch.input)}, {arch.classes} classes)")
        contract = {**contract, "input_shape": list(arch.input)}  # the network's own input (a proxy resolution)
    out = Path(out_path)
    if out.is_dir() or not out.suffix:
        out = out / _DEFAULT_NAMES[format]
    weights_path = out.with_suffix(".pt")
    source = export_source(arch, contract, weights_path.name) if format == "py" else None  # validate before writing
    model = build_model(arch).eval() if weights is not None or format != "py" else None
    if weights is not None:
        _load_weights(model, arch, weights)
    out.parent.mkdir(parents=True, exist_ok=True)
    contract_json = json.dumps(contract, sort_keys=True)
    if format == "py":
        out.write_text(source)
        written = [out]
        if weights is not None:
            state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
            torch.save(state, weights_path)
            written.append(weights_path)
        # arch.json stays a loadable architecture target (Arch.from_dict ignores input_contract).
        data = {**json.loads(arch.to_json()), "input_contract": contract}
        out.with_name("arch.json").write_text(recode(json.dumps(data)) + "\n")
        return written + [out.with_name("arch.json")]
    example = torch.randn(1, *arch.input)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's and the legacy ONNX exporter's deprecation notices
        if format == "torchscript":
            torch.jit.save(_torchscript(model, example), str(out), _extra_files={"input_contract.json": contract_json})
        else:
            torch.onnx.export(model, (example,), str(out), dynamo=False, opset_version=17,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
            import onnx  # present: torch.onnx.export needs it

            proto = onnx.load(str(out))
            entry = proto.metadata_props.add()
            entry.key, entry.value = "input_contract", contract_json
            onnx.save(proto, str(out))
    return [out]
