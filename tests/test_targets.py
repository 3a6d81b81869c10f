"""Targets: every form that names an architecture, and the one-line errors for the ones that do not."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from nas.cli.targets import TargetError, iter_labeled, iter_targets, parse_io, resolve_target
from nas.model.cost import arch_cost
from nas.model.reference import reference
from nas.space import load_space

NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
MACRO = [2, 2, 2, 1, 2, 2, 2, 0]


def test_reference_name():
    assert resolve_target("resnet18") == reference("resnet18")
    small = resolve_target("resnet18", input=(3, 32, 32), classes=10)
    assert small.input == (3, 32, 32) and small.classes == 10


def test_space_indices_with_and_without_commas():
    expected = load_space("nasbench_macro").decode(MACRO)
    assert resolve_target("nasbench_macro:2,2,2,1,2,2,2,0") == expected
    assert resolve_target("nasbench_macro: 2, 2, 2, 1, 2, 2, 2, 0 ") == expected
    assert resolve_target("nasbench_macro:22212220") == expected
    assert load_space("nasbench_macro").encode(expected) == MACRO


def test_space_io_override_decodes_in_the_overridden_space():
    arch = resolve_target("nasbench_macro:22212220", input=(1, 28, 28), classes=7)
    assert arch.input == (1, 28, 28) and arch.classes == 7
    assert arch == load_space("nasbench_macro").with_io((1, 28, 28), 7).decode(MACRO)


def test_digit_string_needs_commas_when_a_decision_has_more_than_ten_options(tmp_path):
    path = tmp_path / "wide.yaml"
    path.write_text("stem: {style: cifar, channels: {range: [8, 96], step: 8}}\n"
                    "channels: {rule: explicit}\nstages: [{depth: 1, stride: 1, width: 16, block: {type: conv}}]\n")
    space = load_space(path)
    assert len(space.decisions[0].options) == 12
    assert resolve_target(f"{path}:11") == space.decode([11])  # one decision: the number is its index
    path2 = tmp_path / "wide2.yaml"
    path2.write_text(path.read_text().replace("width: 16", "width: {choice: [16, 32]}"))
    with pytest.raises(TargetError, match="commas"):
        resolve_target(f"{path2}:111")
    assert resolve_target(f"{path2}:11,1") == load_space(path2).decode([11, 1])


def test_nasbench201_cell_string():
    space = load_space("nasbench201")
    ops = ["nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_1x1"]
    expected = space.decode([space.decisions[k].options.index(op) for k, op in enumerate(ops)])
    assert resolve_target("nasbench201:" + NB201) == expected
    assert resolve_target(NB201) == expected  # a bare cell string means nasbench201
    cell = next(b for _, b in expected.blocks() if b.type == "cell")
    assert [op for _, _, op in cell.get("edges")] == ops


@pytest.mark.parametrize("text, message", [
    ("|nor_conv_3x3~0|+|conv_7x7~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
     "unknown operation 'conv_7x7' on edge 0->2"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|", "gives 5 of 6 edges"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|+|none~0|",
     "no edge 0->4"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|", "given twice"),
    ("|nor_conv_3x3|+|", "malformed"),
])
def test_bad_cell_strings(text, message):
    with pytest.raises(TargetError, match=message):
        resolve_target("nasbench201:" + text)


def test_json_forms(tmp_path):
    arch = load_space("resnet_like").sample(np.random.default_rng(0))
    path = tmp_path / "arch.json"
    path.write_text(arch.to_json() + "\n")
    assert resolve_target(str(path)) == arch
    assert resolve_target(arch.to_json()) == arch
    record = json.dumps({"trial_id": 3, "arch_id": arch.arch_id, "arch": arch.to_dict(), "metrics": {}})
    assert resolve_target(record) == arch


@pytest.mark.parametrize("text, message", [
    ("resnet19", "unknown target 'resnet19'.*resnet18"),
    ("nasbench_macro", "is a space; name one architecture in it as nasbench_macro:i,j,k"),
    ("nasbench_macro:2221222", "expected 8 decisions, got 7"),
    ("nasbench_macro:22212223", "has 3 options, got index 3"),
    ("nasbench_macro:x,y", "must be integers"),
    ("nasbench_macro:-", "expected decision indices"),
    ("missing/arch.json", "missing/arch.json: no such file"),
    ('{"input": [3, 32', "invalid JSON"),
    ('{"input": [3, 32, 32], "classes": 10}', "needs field 'stages'"),
    ('{"input": [3, 32, 32], "classes": 10, "stages": [[{"type": "nope", "out": 8}]]}', "s1.b1: unknown block type 'nope'"),
    ("", "empty target"),
])
def test_errors_are_one_line_value_errors(text, message):
    with pytest.raises(ValueError, match=message) as info:
        resolve_target(text)
    assert "\n" not in str(info.value)


def test_unknown_space_file_is_a_space_error(tmp_path):
    with pytest.raises(ValueError, match="nope.yaml: no such space"):
        resolve_target(str(tmp_path / "nope.yaml") + ":1,2")


def test_json_file_with_several_lines_suggests_stdin(tmp_path):
    path = tmp_path / "archs.jsonl"
    path.write_text(resolve_target("alexnet").to_json() + "\n" + resolve_target("vgg16").to_json() + "\n")
    with pytest.raises(TargetError, match="nas inspect - < FILE"):
        resolve_target(str(path))


def test_iter_targets_expands_stdin_in_order_and_names_the_bad_line():
    stdin = io.StringIO("# comment\n\nalexnet\n" + resolve_target("vgg16").to_json() + "\nnasbench_macro:0,0,0,0,0,0,0,0\n")
    archs = list(iter_targets(["resnet18", "-", "mobilenet_v2"], stdin))
    assert [a.name for a in archs[:3]] == ["resnet18", "alexnet", "vgg16"]
    assert archs[3] == load_space("nasbench_macro").decode([0] * 8)
    assert archs[4].name == "mobilenet_v2"
    labels = [label for label, _ in iter_labeled(["-"], io.StringIO("alexnet\n" + archs[2].to_json() + "\n"))]
    assert labels == ["alexnet", "stdin line 2"]
    with pytest.raises(TargetError, match=r"^stdin line 3: unknown target 'resnet19'"):
        list(iter_targets(["-"], io.StringIO("alexnet\n\nresnet19\n")))


def test_iter_targets_is_lazy():
    stream = iter_targets(["-"], io.StringIO("alexnet\nresnet19\n"))
    assert next(stream).name == "alexnet"
    with pytest.raises(TargetError):
        next(stream)


def test_io_override_is_validated():
    with pytest.raises(TargetError, match="^alexnet: .*window"):
        resolve_target("alexnet", input=(3, 8, 8))
    arch = resolve_target("alexnet", input=(3, 227, 227))
    assert arch_cost(arch).params == arch_cost(reference("alexnet")).params


def test_parse_io():
    assert parse_io("3x32x32") == (3, 32, 32)
    assert parse_io("1,28,28") == (1, 28, 28)
    for bad in ("3x32", "3x0x32", "axbxc", ""):
        with pytest.raises(TargetError, match="CxHxW"):
            parse_io(bad)
