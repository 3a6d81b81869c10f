"""Issue 17: a bad checkpoint or supernet file is one line naming the file (and field), exit 2; strict JSON; inert text."""

from __future__ import annotations

import ast
import collections
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.arch import Arch, Block, Head
from nas.cli import main
from nas.jsonio import dumps, recode
from nas.model.build import build_model
from nas.report.table import printable
from nas.store import RunStore

ARCH = Arch((1, 8, 8), 10, (Block.make("conv", 8, 1),), ((Block.make("basic", 8, 2),),), Head())
OTHER = Arch((1, 8, 8), 10, (Block.make("conv", 4, 1),), ((Block.make("basic", 8, 2),),), Head())
NOT_AN_ARCH = json.dumps({"input": [1, 8, 8], "classes": 10, "stages": [[{"type": "nope", "out": 8}]]})


class Payload:
    """An object weights_only loading refuses (any class outside torch's allow-list)."""


class Ordered(collections.OrderedDict):
    """A dict subclass: refused as well, though it holds only tensors."""


def _state(arch: Arch) -> dict:
    return build_model(arch).state_dict()


def _save(obj) -> callable:
    return lambda path: torch.save(obj, path)


def _truncated(path: Path) -> None:
    torch.save({"state_dict": _state(ARCH), "arch": ARCH.to_json()}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# name -> (writer, what the error line must say besides the file name)
BAD_FILES = {
    "payload-object": (_save({"state_dict": {}, "arch": Payload()}), "Payload"),
    "ordereddict-subclass": (_save(Ordered(_state(ARCH))), "Ordered"),
    "truncated": (_truncated, "not a readable nas checkpoint"),
    "empty": (lambda p: p.write_bytes(b""), "empty file"),
    "random-bytes": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)), "not a readable nas checkpoint"),
    "arch-not-json": (_save({"state_dict": _state(ARCH), "arch": "{not json"}), "field arch is not JSON"),
    "arch-not-an-architecture": (_save({"state_dict": _state(ARCH), "arch": NOT_AN_ARCH}),
                                 "field arch is not a valid architecture"),
    "arch-unknown-fields": (_save({"state_dict": _state(ARCH), "arch": '{"hello": 1}'}), "field arch is not a valid"),
    "state-dict-of-another-arch": (_save({"state_dict": _state(OTHER), "arch": ARCH.to_json()}), "field state_dict"),
    "state-dict-not-tensors": (_save({"state_dict": {"w": 1}, "arch": ARCH.to_json()}), "field state_dict"),
}


def _one_error_line(capsys, path: Path, expected: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nas: error: "), err
    assert str(path) in err and expected in err, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("name", [*BAD_FILES, "plain-state-dict-of-another-arch"])
def test_export_weights_refuses_bad_files_in_one_line(name, tmp_path, capsys):
    target = tmp_path / "arch.json"
    target.write_text(ARCH.to_json())
    weights = tmp_path / f"{name}.pt"
    write, expected = BAD_FILES.get(name, (_save(_state(OTHER)), "weights do not fit"))
    write(weights)
    assert main(["export", str(target), "--weights", str(weights), "-o", str(tmp_path / "out")]) == 2
    _one_error_line(capsys, weights, expected)
    assert not (tmp_path / "out").exists()  # nothing written for a refused checkpoint


def _run_with_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    """A run folder whose one child kept a checkpoint (and whose space has a supernet), both paths returned."""
    run = tmp_path / "run"
    store = RunStore(run, create=True)
    store.save_settings({"search": {"space": "resnet_like", "objectives": ["accuracy", "macs"]}})
    checkpoint = run / "checkpoints" / "trial_0.pt"
    store.start_trial(0, ARCH.to_json(), ARCH.arch_id, [0])
    store.finish_trial(0, "ok", {"val_acc": 50.0, "macs": 1000, "params": 10}, 1.0, {}, str(checkpoint))
    store.close()
    return run, checkpoint


@pytest.mark.parametrize("name", [*BAD_FILES, "plain-state-dict"])
def test_export_from_a_run_refuses_a_bad_kept_checkpoint(name, tmp_path, capsys):
    run, checkpoint = _run_with_checkpoint(tmp_path)
    write, expected = BAD_FILES.get(name, (_save(_state(ARCH)), "not a nas checkpoint: no field state_dict, arch"))
    write(checkpoint)
    assert main(["export", str(run), "--pareto-index", "0", "-o", str(tmp_path / "out")]) == 2
    _one_error_line(capsys, checkpoint, expected)


def test_export_from_a_run_with_a_good_checkpoint(tmp_path, capsys):
    run, checkpoint = _run_with_checkpoint(tmp_path)
    torch.save({"state_dict": _state(ARCH), "arch": ARCH.to_json(), "metrics": {}}, checkpoint)
    assert main(["export", str(run), "--pareto-index", "0", "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "model.pt").exists()


SUPERNET_FILES = {
    **{name: BAD_FILES[name] for name in ("payload-object", "ordereddict-subclass", "truncated", "empty", "random-bytes")},
    "a-checkpoint": (_save({"state_dict": _state(ARCH), "arch": ARCH.to_json()}), "no field format"),
    "another-format": (_save({"format": "nas-supernet-0"}), "field format is 'nas-supernet-0'"),
    "missing-fields": (_save({"format": "nas-supernet-1", "space": "resnet_like"}), "no field input, classes"),
}


@pytest.mark.parametrize("name", [*SUPERNET_FILES, "state-of-other-shapes"])
def test_export_from_supernet_refuses_bad_supernet_files(name, tmp_path, capsys):
    from nas.oneshot.supernet import Supernet
    from nas.space import load_space

    run, _ = _run_with_checkpoint(tmp_path)
    path = run / "supernet.pt"
    if name in SUPERNET_FILES:
        write, expected = SUPERNET_FILES[name]
        write(path)
    else:
        Supernet(load_space("resnet_like").with_io((1, 8, 8), 10), pool=4).save(path)
        data = torch.load(path, weights_only=True)
        torch.save({**data, "state": {k: torch.zeros(1) for k in data["state"]}}, path)
        expected = "damaged supernet file"
    assert main(["export", str(run), "--pareto-index", "0", "--from-supernet", "-o", str(tmp_path / "out")]) == 2
    _one_error_line(capsys, path, expected)


def test_every_torch_load_goes_through_the_one_loader():
    calls = []
    for module in Path(__file__).parents[1].joinpath("nas").rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                calls.append((module.name, {k.arg: ast.unparse(k.value) for k in node.keywords}))
    assert calls == [("checkpoint.py", {"map_location": "'cpu'", "weights_only": "True"})]


def test_error_lines_show_control_characters_as_escapes(tmp_path, capsys):
    target = tmp_path / "arch.json"
    target.write_text(ARCH.to_json())
    missing = tmp_path / "a\x1b[31mb\x07.pt"
    assert main(["export", str(target), "--weights", str(missing), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and r"a\x1b[31mb\x07.pt: no such file" in err


# ---------------------------------------------------------------------------- helpers

def _strict(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def test_dumps_writes_non_finite_numbers_as_null():
    value = {"nan": math.nan, "list": [np.float32("inf"), np.float64(1.5), np.int64(3), -math.inf, (2.5,)],
             "path": Path("a/b"), "flag": np.bool_(True), "nested": {"x": [float("nan")]}}
    assert _strict(dumps(value, indent=1)) == {"nan": None, "list": [None, 1.5, 3, None, [2.5]], "path": "a/b",
                                               "flag": True, "nested": {"x": [None]}}
    assert dumps({"a": 1.5}) == json.dumps({"a": 1.5})  # finite values: exactly what json writes
    assert recode('{"b":NaN,"a":[1,Infinity]}') == '{"b":null,"a":[1,null]}'


def test_printable_escapes_controls_and_keeps_text():
    assert printable("a\x1b[31mb\r\nc\x07\td\u202ee\x7f\x85") == r"a\x1b[31mb\r\nc\x07\td\u202ee\x7f\x85"
    assert printable("plain é 中 $x^2$ <b>") == "plain é 中 $x^2$ <b>"
