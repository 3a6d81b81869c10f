"""The `nas` command line: spaces, sample, inspect, export and its one-line errors (exit 2)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nas.cli import build_parser, main, parse_number
from nas.model.cost import arch_cost
from nas.model.reference import reference

ROOT = Path(__file__).resolve().parents[1]
NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
LAYER_KEYS = ["name", "kind", "c_in", "h_in", "w_in", "c_out", "h_out", "w_out", "kernel", "stride", "padding",
              "groups", "params", "macs", "act_bytes"]


def run(capsys, *argv, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def nas(*argv: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("NAS_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "nas", *argv], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout)


# ---------------------------------------------------------------------------- spaces

def test_spaces_lists_every_builtin_with_exact_sizes(capsys):
    code, out, _ = run(capsys, "spaces", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json_lines(out)}
    assert set(rows) == {"nasbench201", "nasbench_macro", "resnet_like", "mobilenet_like", "vgg_like"}
    assert rows["nasbench201"]["size"] == 15625 and rows["nasbench201"]["decisions"] == 6
    assert rows["nasbench_macro"]["size"] == 6561 and rows["nasbench_macro"]["decisions"] == 8
    assert all(r["dataset"] and r["description"] for r in rows.values())

    code, out, _ = run(capsys, "spaces")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["space", "architectures", "decisions", "dataset"]
    table = {line.split()[0]: line.split() for line in lines[2:]}
    assert table["nasbench201"][1:4] == ["15,625", "6", "cifar10"]
    assert table["nasbench_macro"][1:3] == ["6,561", "8"]
    assert len(table) == 5


def test_spaces_one_space_lists_its_decisions_in_encode_order(capsys):
    code, out, _ = run(capsys, "spaces", "nasbench201", "--json")
    assert code == 0
    rows = json_lines(out)
    assert [r["name"] for r in rows] == ["cell.1<-0", "cell.2<-0", "cell.2<-1", "cell.3<-0", "cell.3<-1", "cell.3<-2"]
    assert rows[0]["options"][3] == "nor_conv_3x3"
    code, out, _ = run(capsys, "spaces", "vgg_like")
    assert code == 0 and "8,424 architectures" in out and "num_stages in {4, 5}" in out


# ---------------------------------------------------------------------------- sample

def test_sample_is_deterministic_and_parses_as_archs(capsys):
    _, first, _ = run(capsys, "sample", "resnet_like", "-n", "5", "--seed", "7")
    _, again, _ = run(capsys, "sample", "resnet_like", "-n", "5", "--seed", "7")
    _, other, _ = run(capsys, "sample", "resnet_like", "-n", "5", "--seed", "8")
    assert first == again != other
    rows = json_lines(first)
    assert len(rows) == 5 and all(len(r["arch_id"]) == 12 for r in rows)


def test_sample_honours_cost_limits_and_io(capsys):
    from nas.arch import Arch

    code, out, _ = run(capsys, "sample", "resnet_like", "-n", "8", "--max-macs", "30M", "--max-params", "2e5",
                       "--input", "1x28x28", "--classes", "7")
    assert code == 0
    for line in out.splitlines():
        arch = Arch.from_json(line)
        cost = arch_cost(arch)
        assert cost.macs <= 30e6 and cost.params <= 2e5
        assert arch.input == (1, 28, 28) and arch.classes == 7
        assert json.loads(line)["arch_id"] == arch.arch_id


def test_samples_at_a_small_input_all_pass_inspect(capsys, monkeypatch):
    code, out, err = run(capsys, "sample", "vgg_like", "--input", "1x8x8", "-n", "20")
    assert code == 0 and err == "" and len(out.splitlines()) == 20
    code, table, err = run(capsys, "inspect", "-", stdin=out, monkeypatch=monkeypatch)
    assert code == 0 and err == "" and table.count("arch_id") == 20
    code, out, err = run(capsys, "sample", "vgg_like", "--input", "1x2x2", "-n", "20")
    assert code == 2 and out == ""
    assert err.startswith("nas: error: vgg_like: no architecture fits a 1x2x2 input after 1000 tries (")
    assert err.endswith("; use a larger --input or fewer downsampling stages\n") and len(err.splitlines()) == 1


def test_help_shows_every_default(capsys):
    code, out, _ = run(capsys, "search", "--help")
    assert code == 0
    text = " ".join(out.split())  # argparse wraps help text anywhere
    assert "--epochs EPOCHS (default: 10)" in text and "--lr LR (default: 0.1)" in text
    assert "(default: accuracy,macs)" in text and "(default: None)" not in text and "(default: False)" not in text
    for command in ("sample", "search", "report", "train", "retrain", "inspect", "export", "bench", "spaces"):
        assert run(capsys, command, "--help")[0] == 0
    code, out, _ = run(capsys, "sample", "--help")
    text = " ".join(out.split())
    assert "(default: 1)" in text and "(default: 0)" in text and "(default: None)" not in text
    assert "(default 1)" not in text  # no doubled, hand-written defaults left


@pytest.mark.parametrize("text, value", [("2e8", 200_000_000), ("300M", 300_000_000), ("1.5G", 1_500_000_000),
                                         ("50k", 50_000), ("1_000", 1000), ("12", 12), ("0.5", 0.5)])
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", "M", "3Q", "-5", "0", "1e"])
def test_parse_number_rejects(text):
    with pytest.raises(Exception, match="positive number"):
        parse_number(text)


# ---------------------------------------------------------------------------- inspect

def test_inspect_reference_human_table(capsys):
    code, out, _ = run(capsys, "inspect", "alexnet")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("alexnet") and reference("alexnet").arch_id in lines[0]
    header = lines[1].split()
    assert header[:2] == ["layer", "kind"] and header[-6:] == ["H/W", "memory", "KB", "params", "k", "MFLOP"]
    conv1 = next(line.split() for line in lines if line.startswith("stem.b1.conv"))
    # layer kind inC inHW filters kernel stride pad outC outHW memKB params_k MFLOP (the course's AlexNet row)
    assert conv1[:10] == ["stem.b1.conv", "conv", "3", "224", "64", "11", "4", "2", "64", "55"]
    assert conv1[10:] == ["756.2", "23.3", "70.3"]
    total = next(line.split() for line in lines if line.startswith("total"))
    cost = arch_cost(reference("alexnet"))
    assert total[-2] == f"{cost.params / 1000:,.0f}"
    assert f"params {cost.params:,}" in out
    assert lines[-1] == "FLOPs are multiply-adds (MACs); memory is the layer output at float32, batch 1"


def test_inspect_macro_digit_string(capsys):
    code, out, _ = run(capsys, "inspect", "nasbench_macro:22212220", "--json")
    assert code == 0
    (row,) = json_lines(out)
    assert row["params"] == 1_985_514 and row["conv_linear_macs"] == 85_164_544
    assert row["input"] == [3, 32, 32] and row["classes"] == 10
    assert list(row)[:7] == ["arch_id", "input", "classes", "params", "macs", "conv_linear_macs", "activation_bytes"]
    assert all(list(layer) == LAYER_KEYS for layer in row["layers"])
    assert sum(layer["params"] for layer in row["layers"]) == row["params"]
    assert sum(layer["macs"] for layer in row["layers"]) == row["macs"]
    assert sum(layer["act_bytes"] for layer in row["layers"]) == row["activation_bytes"]
    _, commas, _ = run(capsys, "inspect", "nasbench_macro:2,2,2,1,2,2,2,0", "--json")
    assert commas == out


def test_inspect_nasbench201_arch_string_matches_the_benchmark_closed_form(capsys):
    code, out, _ = run(capsys, "inspect", "nasbench201:" + NB201, "--json")
    assert code == 0
    (row,) = json_lines(out)
    n1, n3 = 1, 4  # nor_conv_1x1 and nor_conv_3x3 edges
    flops = 7.78305 + 3.93216 * n1 + 35.38944 * n3  # MFLOPs as the benchmark reports them
    params = 0.073306 + 0.028 * n1 + 0.24304 * n3  # M
    assert row["conv_linear_macs"] + 10 == round(flops * 1e6)  # the benchmark also counts the 10 fc biases
    assert row["params"] == round(params * 1e6)


def test_inspect_io_override(capsys):
    _, out, _ = run(capsys, "inspect", "resnet18", "--input", "3x32x32", "--classes", "10", "--json")
    (row,) = json_lines(out)
    assert row["input"] == [3, 32, 32] and row["classes"] == 10
    assert row["layers"][-1]["c_out"] == 10


def test_inspect_json_from_stdin_mixed_forms(capsys, monkeypatch):
    vgg = reference("vgg16").with_io((3, 32, 32), 10)
    stdin = "\n".join(["nasbench_macro:22212220", "# a comment", "", vgg.to_json(), "resnet18",
                       "nasbench201:" + NB201, "nasbench_macro:0,0,0,0,0,0,0,0"]) + "\n"
    code, out, err = run(capsys, "inspect", "alexnet", "-", "mobilenet_v2", "--json", stdin=stdin, monkeypatch=monkeypatch)
    assert code == 0, err
    rows = json_lines(out)
    assert len(rows) == 7
    assert rows[0]["arch_id"] == reference("alexnet").arch_id
    assert rows[1]["params"] == 1_985_514
    assert rows[2]["arch_id"] == vgg.arch_id and rows[2]["input"] == [3, 32, 32]
    assert rows[3]["arch_id"] == reference("resnet18").arch_id
    assert rows[4]["conv_linear_macs"] + 10 == round((7.78305 + 3.93216 + 35.38944 * 4) * 1e6)
    assert rows[6]["arch_id"] == reference("mobilenet_v2").arch_id


def test_sample_to_file_to_inspect_round_trip(capsys, tmp_path):
    _, out, _ = run(capsys, "sample", "mobilenet_like", "--seed", "3")
    path = tmp_path / "arch.json"
    path.write_text(out)
    code, inspected, _ = run(capsys, "inspect", str(path), "--json")
    assert code == 0
    assert json_lines(inspected)[0]["arch_id"] == json.loads(out)["arch_id"]


def test_thousand_targets_from_stdin_in_one_process(capsys):
    # how long it takes is measured by benchmarks/bench_inspect_stdin.py, not asserted here
    lines = [f"nasbench_macro:{i % 3}{i // 3 % 3}{i // 9 % 3}{i // 27 % 3}{i // 81 % 3}{i // 243 % 3}{i // 729 % 3}1"
             for i in range(1000)]
    done = nas("inspect", "-", "--json", stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    rows = json_lines(done.stdout)
    assert len(rows) == 1000 and len({r["arch_id"] for r in rows}) == 1000
    for i in (0, 999):  # in input order
        assert rows[i]["arch_id"] == json_lines(run(capsys, "inspect", lines[i], "--json")[1])[0]["arch_id"]


# ---------------------------------------------------------------------------- errors

@pytest.mark.parametrize("argv, message", [
    (["inspect", "resnet19"], "unknown target 'resnet19'"),
    (["inspect", "nasbench_macro:2221222"], "expected 8 decisions, got 7"),
    (["inspect", "missing.json"], "missing.json: no such file"),
    (["sample", "no_such_space"], "no_such_space: no such space"),
    (["sample", "nasbench201", "--max-macs", "lots"], "argument --max-macs"),
    (["inspect", "resnet18", "--input", "3x32"], "argument --input: input shape must be CxHxW"),
    (["inspect", "nasbench201:" + NB201.replace("skip_connect", "skip")], "unknown operation 'skip'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("nas: error: ") and message in err, err
    assert "Traceback" not in err


def test_bad_json_file_names_the_file(capsys, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"input": [3, 32, 32], ')
    code, _, err = run(capsys, "inspect", str(path))
    assert code == 2 and err.startswith(f"nas: error: {path}: invalid JSON")
    path.write_text(json.dumps({"input": [3, 32, 32], "classes": 10, "stages": [[{"type": "botleneck", "out": 8}]]}))
    code, _, err = run(capsys, "inspect", str(path))
    assert code == 2 and "s1.b1: unknown block type 'botleneck'" in err


def test_stdin_errors_name_the_line(capsys, monkeypatch):
    code, out, err = run(capsys, "inspect", "-", "--json", stdin="alexnet\nnasbench_macro:9\n", monkeypatch=monkeypatch)
    assert code == 2
    assert len(out.splitlines()) == 1  # what came before the bad line is still printed
    assert err == "nas: error: stdin line 2: nasbench_macro: expected 8 decisions, got 1\n"


def test_space_file_error_names_file_and_field_in_a_real_process(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nstem: {style: cifar, channels: 16}\nchannels: {rule: double, base: 16}\n"
                    "stage_defaults: {depth: 1, stride: 2, block: {type: basic}}\n"
                    "stages:\n  - {stride: 1}\n  - {}\n  - {block: {type: botleneck}}\n")
    for argv in (["sample", str(path)], ["inspect", f"{path}:0"]):
        done = nas(*argv)
        assert done.returncode == 2
        assert done.stdout == ""
        assert done.stderr.startswith("nas: error: bad.yaml: stages[2].block.type: unknown block type 'botleneck' (known: ")
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_programming_errors_keep_their_traceback(capsys, monkeypatch):
    import nas.cli.app

    def broken(args):
        raise TypeError("a bug")

    monkeypatch.setattr(nas.cli.app, "COMMANDS", [lambda sub: sub.add_parser("spaces").set_defaults(run=broken)])
    with pytest.raises(TypeError, match="a bug"):
        main(["spaces"])


def test_broken_pipe_exits_quietly():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "nas", "sample", "nasbench_macro", "-n", "20000"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b'{"arch_id"')
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and err == b""


def test_parser_has_one_subcommand_per_command():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"spaces", "sample", "inspect", "export"} <= set(sub.choices)


# ---------------------------------------------------------------------------- export

def test_export_macro_arch(capsys, tmp_path):
    code, out, err = run(capsys, "export", "nasbench_macro:22212220", "-o", str(tmp_path / "model.py"))
    assert code == 0, err
    paths = [Path(p) for p in out.splitlines()]
    assert paths == [tmp_path / "model.py", tmp_path / "arch.json"] and all(p.exists() for p in paths)
    _, inspected, _ = run(capsys, "inspect", str(tmp_path / "arch.json"), "--json")  # the same network
    assert json_lines(inspected)[0]["params"] == 1_985_514
    code, _, err = run(capsys, "export", "nasbench_macro:22212220", "-o", str(tmp_path / "m.py"), "--format", "tf")
    assert code == 2 and "invalid choice" in err


def test_train_command_reports_json(capsys):
    from nas.cli import main

    assert main(["train", "nasbench_macro:1,0,1,0,0,1,0,0", "--dataset", "digits", "--epochs", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "ok" and result["epochs"] == 1 and result["params"] > 0


def test_train_without_the_data_set_is_one_line_exit_2(tmp_path, capsys):
    from nas.cli import main

    code = main(["train", "resnet18", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and str(tmp_path) in err


def test_bench_command_on_a_generated_table(tmp_path, capsys):
    import itertools

    from nas.cli import main

    rows = ["arch,mean_test_acc,std,test_acc_run1,test_acc_run2,test_acc_run3,params,flops"]
    for digits in itertools.product("012", repeat=8):
        acc = 80 + sum(int(d) for d in digits) * 0.7
        rows.append(f"{''.join(digits)},{acc},0,{acc},{acc},{acc},{1000 + sum(map(int, digits))},{5000 + sum(map(int, digits))}")
    table = tmp_path / "macro.csv"
    table.write_text("\n".join(rows) + "\n")
    assert main(["bench", "--space", "nasbench_macro", "--table", str(table), "--controller", "evolution",
                 "--queries", "60", "--seeds", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["seeds"] in (3, [0, 1, 2]) and result["queries"] == 60
    assert 80 < result["mean_test_acc"] <= 80 + 16 * 0.7 + 1e-9


def test_search_help_lists_each_controllers_options(capsys):
    from nas.controllers import CONTROLLERS
    from nas.controllers.base import controller_options

    assert main(["search", "--help"]) == 0
    out = capsys.readouterr().out
    assert "controller options (--controller-option KEY=VALUE):" in out
    assert "evolution: population: int = 20, tournament: int = 5" in out
    for name in CONTROLLERS:
        line = next(x for x in out.splitlines() if x.startswith(f"  {name}: "))
        for option in controller_options(name):
            assert option in line or option in ("seed", "objectives", "max_macs", "max_params")
