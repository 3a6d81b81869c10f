"""The model's registries, importable without torch: block types and cell operations by name.

The names are declared here with the module that defines them, so the space language validates
a spec without importing torch; the modules (nas.model.blocks, nas.model.cells) load on first lookup.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Callable
from functools import cache
from typing import Any

from nas.registry import Registry

BLOCKS: Registry[type] = Registry("block type")
BLOCKS.declare("nas.model.blocks", "basic", "bottleneck", "resnext", "dwsep", "mbconv", "conv", "pool", "identity")
BLOCKS.declare("nas.model.cells", "cell", "nb201_residual")

# name -> (module factory f(channels), cost twin f(tally, name, channels, h, w))
CELL_OPS: Registry[tuple[Callable, Callable]] = Registry("cell operation")
CELL_OPS.declare("nas.model.cells", "none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

_SHAPE_ARGUMENTS = ("self", "c_in", "c_out", "stride")


@cache
def block_options(name: str) -> dict[str, Any]:
    """Option names of a block type with their defaults (everything after c_in, c_out, stride)."""
    cls = BLOCKS.loaded(name)
    if cls is None and name in BLOCKS:
        return _declared_options(name)
    import inspect

    params = inspect.signature(BLOCKS[name].__init__).parameters
    return {k: p.default for k, p in params.items() if k not in _SHAPE_ARGUMENTS}


def _declared_options(name: str) -> dict[str, Any]:
    """block_options read from the source of the class that `@register_block(name)` decorates (no import)."""
    module = BLOCKS.declared_module(name)
    origin = importlib.util.find_spec(module).origin
    with open(origin, encoding="utf-8") as source:
        tree = ast.parse(source.read(), origin)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(_registers(d, name) for d in node.decorator_list):
            init = next(f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
            args = init.args.args
            defaults = dict(zip([a.arg for a in args[len(args) - len(init.args.defaults):]], init.args.defaults))
            return {a.arg: ast.literal_eval(defaults[a.arg]) for a in args if a.arg not in _SHAPE_ARGUMENTS}
    raise ImportError(f"{module} has no class decorated with @register_block({name!r})")


def _registers(decorator: ast.expr, name: str) -> bool:
    """Whether a decorator is a call register_block(name)."""
    return (isinstance(decorator, ast.Call) and decorator.args and isinstance(decorator.args[0], ast.Constant)
            and decorator.args[0].value == name)
