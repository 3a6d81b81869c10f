"""Run each failure case of issue 17 as a user would and print a Markdown table of what happened.

Each case runs `python -m nas ...` in a fresh temporary folder with a hard timeout (its whole
process group is killed), and reports the exit code, the last stderr line (or the exception type
of a traceback), the wall time and what the run folder's run.sqlite holds afterwards. Ray gets its
own RAY_TMPDIR, so a cluster someone else started with `ray start` on this machine is not joined.

    python benchmarks/robustness_cases.py [--root DIR] [--only NAME ...] [--timeout S]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--dataset", "digits", "--epochs", "1", "--batch-size", "64"]
SEARCH = ["search", "--space", "nasbench_macro", *FAST]
TARGET = "nasbench_macro:0,0,0,0,0,0,0,0"
CFG = {"root": ROOT, "timeout": 90.0, "ray_tmp": None}
ROWS: list[dict] = []


def nas(*args) -> list[str]:
    """The command line of `python -m nas ARGS`."""
    return [sys.executable, "-m", "nas", *map(str, args)]


def kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL the process group (and session) a command started in, Ray's helpers included."""
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == proc.pid and int(pid) != proc.pid:  # fields[3]: session id
                os.kill(int(pid), signal.SIGKILL)
        except (OSError, IndexError, ValueError):
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    """Start a command in its own session with PYTHONPATH set to the repository under test."""
    env = {**os.environ, "PYTHONPATH": str(CFG["root"]), "PYTHONUNBUFFERED": "1", "RAY_TMPDIR": CFG["ray_tmp"]}
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace", start_new_session=True)


def finish(proc: subprocess.Popen, t0: float, timeout: float | None = None) -> dict:
    """Wait for a started command; a timeout kills its process group."""
    timeout = CFG["timeout"] if timeout is None else timeout
    try:
        out, err = proc.communicate(timeout=max(0.1, timeout - (time.monotonic() - t0)))
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        kill_session(proc)
        out, err = proc.communicate()
        rc = None
    kill_session(proc)  # leftovers of a finished command (a Ray raylet) go too
    return {"rc": rc, "out": out, "err": err, "wall": time.monotonic() - t0}


def run(args: list[str], cwd: Path, timeout: float | None = None) -> dict:
    """Run one command to completion or timeout."""
    return finish(start(args, cwd), time.monotonic(), timeout)


def last_line(res: dict) -> str:
    """The last non-empty stderr line, or `traceback (Type)` when stderr holds a Python traceback."""
    lines = [re.sub(r"^\(\S+ pid=\d+(, ip=\S+)?\)\s?", "", line) for line in res["err"].splitlines()]
    lines = [line.rstrip() for line in lines if line.strip()]
    text = lines[-1].strip() if lines else ""
    tb = [i for i, line in enumerate(lines) if "Traceback (most recent call last)" in line]
    if tb:
        found = [m for line in lines[tb[-1] + 1:] if (m := re.match(r"([A-Za-z_][\w.]*)(?::\s*(.*))?$", line))]
        text = f"traceback ({found[0].group(1)}): {found[0].group(2) or ''}" if found else "traceback (?)"
    if res["rc"] is None:
        text = f"timeout; {text}"
    return text[:157] + "..." if len(text) > 160 else text


def query(run_dir: Path, sql: str, quiet: bool = True) -> list[tuple]:
    """Rows of a read-only query on run_dir/run.sqlite ([] when it cannot be read, unless not quiet)."""
    try:
        con = sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        if quiet:
            return []
        raise


def store(run_dir: Path | None) -> str:
    """Trials by status in run_dir/run.sqlite, read read-only."""
    if run_dir is None:
        return "-"
    if not (run_dir / "run.sqlite").is_file():
        return "no run.sqlite"
    try:
        rows = query(run_dir, "SELECT status, count(*) FROM trials GROUP BY status", quiet=False)
    except sqlite3.Error as err:
        return f"unreadable ({err})"
    counts: dict[str, int] = {}
    for status, n in rows:
        key = "failed" if status.startswith("failed:") else status
        counts[key] = counts.get(key, 0) + n
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "0 trials"


def row(case: str, args: list[str], res: dict, run_dir: Path | None = None, note: str = "") -> None:
    """Record (and echo to stderr) one table row."""
    shown = " ".join(a if a != sys.executable else "python" for a in args)
    message = last_line(res) + (f" [{note}]" if note else "")
    rc = "-" if res["rc"] is None else str(res["rc"])
    ROWS.append({"case": case, "command": shown, "rc": rc, "message": message, "wall": res["wall"],
                 "store": store(run_dir)})
    print(f"{case}: rc={rc} {res['wall']:.1f}s {message}", file=sys.stderr, flush=True)


def finished_run(tmp: Path, name: str = "D") -> Path:
    """A quick finished one-trial run in tmp/name."""
    run_dir = tmp / name
    res = run(nas(*SEARCH, "--budget-trials", 1, "--run-dir", name), tmp)
    if res["rc"] != 0:
        print(f"setup run failed ({res['rc']}): {last_line(res)}", file=sys.stderr)
    return run_dir


def space_with_head(tmp: Path, line: str) -> Path:
    """nasbench_macro.yaml with one more line in its head section."""
    text = (CFG["root"] / "search_spaces" / "nasbench_macro.yaml").read_text()
    path = tmp / "space.yaml"
    path.write_text(text.replace("head:\n", f"head:\n  {line}\n"))
    return path


# ---------------------------------------------------------------------------- cases

def search(case: str, tmp: Path, *extra, run_dir: str = "D", timeout: float | None = None, note: str = "") -> Path:
    """`nas search` of nasbench_macro (unless extra names a --space) into tmp/run_dir, one table row."""
    args = nas(*(["search", *FAST] if "--space" in extra else SEARCH), *extra, "--run-dir", run_dir)
    row(case, args, run(args, tmp, timeout), tmp / run_dir, note)
    return tmp / run_dir


def resume(case: str, tmp: Path, run_dir: str = "D", note: str = "") -> None:
    """`nas search --resume tmp/run_dir`, one table row."""
    args = nas("search", "--resume", run_dir)
    row(case, args, run(args, tmp), tmp / run_dir, note)


def case_child_raises(tmp: Path) -> None:
    """A child whose training raises (negative learning rate), then --resume."""
    search("child_raises", tmp, "--budget-trials", 2, "--lr", -1)
    resume("child_raises_resume", tmp)


def case_child_dropout(tmp: Path) -> None:
    """A space whose head has dropout 5.0."""
    search("child_dropout", tmp, "--space", space_with_head(tmp, "dropout: 5.0").name, "--budget-trials", 2)


def case_child_oom(tmp: Path) -> None:
    """Children whose 512 GB head layer cannot be allocated: a search and `nas train`."""
    space = space_with_head(tmp, "hidden: [100000000]").name
    search("child_oom", tmp, "--space", space, "--budget-trials", 2)
    sample = run(nas("sample", space, "--input", "1x8x8"), tmp)
    (tmp / "oom.json").write_text(sample["out"])
    args = nas("train", "oom.json", *FAST)
    row("train_oom", args, run(args, tmp), None, "" if sample["rc"] == 0 else f"sample failed: {last_line(sample)}")


def case_two_searches(tmp: Path) -> None:
    """Two searches started at once on the same run folder."""
    d, args = tmp / "D", nas(*SEARCH, "--budget-trials", 4, "--run-dir", "D")
    t0 = time.monotonic()
    procs = [start(args, tmp), start(args, tmp)]
    a, b = (finish(p, t0, 2 * CFG["timeout"]) for p in procs)  # two searches share the cores
    res = {**b, "rc": None if None in (a["rc"], b["rc"]) else b["rc"], "err": b["err"] or a["err"],
           "wall": max(a["wall"], b["wall"])}
    rows = query(d, "SELECT arch, metrics FROM trials")
    check = ("import json, sys\nfrom nas.arch import Arch\nfrom nas.model.cost import arch_cost\n"
             "bad = 0\nfor arch, metrics in json.load(sys.stdin):\n"
             "    m = json.loads(metrics or '{}').get('macs')\n"
             "    bad += m is not None and m != arch_cost(Arch.from_json(arch)).macs\nprint(bad)")
    env = {**os.environ, "PYTHONPATH": str(CFG["root"])}
    bad = subprocess.run([sys.executable, "-c", check], input=json.dumps(rows), env=env, capture_output=True,
                         text=True).stdout.strip() or "?"

    def rc(r):
        return "-" if r["rc"] is None else r["rc"]

    row("two_searches", args + ["(x2)"], res, d, f"exit codes {rc(a)}/{rc(b)}; {len(rows)} rows; macs disagree: {bad}")


def case_rerun_existing(tmp: Path) -> None:
    """A search into a folder that already holds a finished run."""
    search("rerun_existing", tmp, "--budget-trials", 1, note=f"store before: {store(finished_run(tmp))}")


def case_foreign_dir(tmp: Path) -> None:
    """A search into an existing folder of unrelated files."""
    (d := tmp / "D").mkdir()
    files = {d / "thesis.tex": "\\documentclass{article}\n", d / "data.csv": "a,b\n1,2\n"}
    for path, text in files.items():
        path.write_text(text)
    search("foreign_dir", tmp, "--budget-trials", 1)
    intact = all(p.is_file() and p.read_text() == t for p, t in files.items())
    ROWS[-1]["message"] += f" [files intact: {'yes' if intact else 'no'}; folder now: " \
                           f"{', '.join(sorted(p.name for p in d.iterdir()))}]"


def case_budgets(tmp: Path) -> None:
    """Budgets of inf, nan and 1e308 device-hours."""
    for name, value in (("budget_inf", "inf"), ("budget_nan", "nan"), ("budget_huge", "1e308")):
        search(name, tmp, "--budget-gpu-hours", value, run_dir=name, timeout=min(60.0, CFG["timeout"]))


def case_report_json(tmp: Path) -> None:
    """A child that diverges (lr 1e6 stores val_loss NaN), then `nas report --json`: strict JSON or not."""
    d = search("report_json_diverged", tmp, "--budget-trials", 1, "--lr", "1e6", run_dir="diverged")
    args = nas("report", "diverged", "--json")
    res = run(args, tmp)
    try:
        json.loads(res["out"], parse_constant=lambda name: json.loads("not JSON"))  # NaN, Infinity raise
        strict = "yes"
    except ValueError:
        strict = "no" if res["out"].strip() else "no output"
    row("report_json_nan", args, res, d, f"strict JSON: {strict}")


def case_sigkill_charge(tmp: Path) -> None:
    """SIGKILL a search while a child runs, resume, and compare the charge with the lost wall time."""
    d, args = tmp / "D", nas("search", "--space", "nasbench_macro", "--dataset", "digits", "--epochs", 3,
                             "--batch-size", 64, "--budget-trials", 3, "--run-dir", "D")
    t0, proc = time.monotonic(), start(args, tmp)
    seen, started, killed_at = None, {}, None
    while time.monotonic() - t0 < CFG["timeout"] and proc.poll() is None:
        running = query(d, "SELECT trial_id, started FROM trials WHERE status = 'running'")
        seen = seen or (time.monotonic() if running else None)
        started.update({tid: s for tid, s in running if tid not in started})
        if seen is not None and time.monotonic() - seen >= 4:
            killed_at = time.time()
            kill_session(proc)
            break
        time.sleep(0.5)
    res = finish(proc, t0)
    row("sigkill_charge_kill", args, res, d, "killed while a child ran" if killed_at else "not killed: no child seen")
    resume("sigkill_charge", tmp)
    retried = (query(d, "SELECT trial_id, attempts, device_s, lost_device_s FROM trials WHERE attempts >= 2")
               or [(t, a, s, None) for t, a, s in query(d, "SELECT trial_id, attempts, device_s FROM trials WHERE attempts >= 2")])
    facts = [f"trial {t}: attempts {a}, last attempt {s:.1f} s, killed attempt charged "
             + ("nothing" if lost is None else f"{lost:.1f} s")
             + (f" of {killed_at - started[t]:.1f} s run before the kill" if killed_at and t in started else "")
             for t, a, s, lost in retried]
    ROWS[-1]["message"] += f" [{'; '.join(facts) or 'no trial with attempts >= 2'}]"


def case_sqlite(tmp: Path) -> None:
    """A truncated run.sqlite and another program's SQLite file: report and resume."""
    db = finished_run(tmp) / "run.sqlite"
    size = db.stat().st_size
    for extra in ("run.sqlite-wal", "run.sqlite-shm"):  # only the main file, cut in half
        (tmp / "D" / extra).unlink(missing_ok=True)
    with open(db, "r+b") as f:
        f.truncate(size // 2)
    args = nas("report", "D")
    row("sqlite_truncated_report", args, run(args, tmp), tmp / "D", f"{size} -> {size // 2} bytes")
    resume("sqlite_truncated_resume", tmp, note=f"{size} -> {size // 2} bytes")
    (tmp / "F").mkdir()
    with sqlite3.connect(tmp / "F" / "run.sqlite") as con:
        con.executescript("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT); INSERT INTO notes VALUES (1, 'milk');")
    con.close()

    def digest() -> str:
        return hashlib.sha256((tmp / "F" / "run.sqlite").read_bytes()).hexdigest()

    for name, args in (("report", nas("report", "F")), ("resume", nas("search", "--resume", "F"))):
        before, res = digest(), run(args, tmp)
        row(f"sqlite_foreign_{name}", args, res, tmp / "F", f"sha256 changed: {'yes' if digest() != before else 'no'}")


EVIL = ("import pathlib\nclass Evil:  # unpickling it writes a marker: did a checkpoint's code run?\n"
        "    def __setstate__(self, state):\n        pathlib.Path('PAYLOAD_RAN').write_text('yes')\n")


def case_checkpoints(tmp: Path) -> None:
    """`nas export --weights W` with a blocked, a truncated, an empty and a non-JSON-arch checkpoint."""
    (tmp / "evil.py").write_text(EVIL)
    (tmp / "D").mkdir()
    make = ("import torch, evil\ntorch.save({'state_dict': {'x': evil.Evil()}}, 'blocked.pt')\n"
            "torch.save({'state_dict': {}, 'arch': 'not json'}, 'arch_not_json.pt')\nopen('empty.pt', 'wb').close()")
    env = {**os.environ, "PYTHONPATH": f"{tmp}{os.pathsep}{CFG['root']}"}
    subprocess.run([sys.executable, "-c", make], cwd=tmp, env=env, check=True)
    real = run(nas("train", TARGET, "--input", "1x8x8", *FAST, "--checkpoint", "real.pt"), tmp)
    if real["rc"] == 0:
        data = (tmp / "real.pt").read_bytes()
        (tmp / "truncated.pt").write_bytes(data[:len(data) // 2])
    else:
        print(f"setup train failed ({real['rc']}): {last_line(real)}", file=sys.stderr)
    for name in ("blocked", "truncated", "empty", "arch_not_json"):
        args = nas("export", TARGET, "--input", "1x8x8", "-o", "D/m.py", "--weights", f"{name}.pt")
        res = run(args, tmp)
        note = f"m.py written: {'yes' if (tmp / 'D' / 'm.py').exists() else 'no'}"
        if name == "blocked":
            note += f"; payload ran: {'yes' if (tmp / 'PAYLOAD_RAN').exists() else 'no'}"
        (tmp / "D" / "m.py").unlink(missing_ok=True)
        row(f"ckpt_{name}", args, res, None, note)


def case_ray(tmp: Path) -> None:
    """A trial that asks for 100 CPUs, and an unreachable Ray address."""
    limit = min(60.0, CFG["timeout"])
    search("cpus_100", tmp, "--budget-trials", 1, "--cpus-per-trial", 100, run_dir="cpus_100", timeout=limit)
    search("ray_unreachable", tmp, "--budget-trials", 1, "--ray-address", "127.0.0.1:1", run_dir="ray_unreachable",
           timeout=limit)


def case_options(tmp: Path) -> None:
    """Bad controller options: unknown, wrong type, and one that only fails once the run has started."""
    for name, option in (("option_unknown", "nosuch=1"), ("option_type", "population=abc")):
        search(name, tmp, "--budget-trials", 1, "--controller-option", option, run_dir=name)
    search("option_late", tmp, "--budget-trials", 5, "--controller-option", "population=2",
           "--controller-option", "tournament=1.5", run_dir="option_late")
    resume("option_late_resume", tmp, "option_late")


def case_report(tmp: Path) -> None:
    """Reports of a run in a folder named like mathtext, and of a status holding control characters."""
    d = finished_run(tmp, "a$x^2$b")
    args = nas("report", d.name)
    res = run(args, tmp)
    row("report_dollar", args, res, d, f"png: {', '.join(sorted(p.name for p in d.glob('*.png'))) or 'none'}")
    with sqlite3.connect(finished_run(tmp, "C") / "run.sqlite") as con:
        con.execute("UPDATE trials SET status = ? WHERE trial_id = (SELECT min(trial_id) FROM trials)",
                    ("failed: \x1b[2J\x1b[31mred\nsecond line",))
    con.close()
    args = nas("report", "C")
    res = run(args, tmp)
    raw = "yes" if "\x1b" in res["out"] or "red\nsecond" in res["out"] else "no"
    row("report_ctrl", args, res, tmp / "C", f"raw control characters on stdout: {raw}")


GROUPS = {case_child_raises: "child_raises child_raises_resume", case_child_dropout: "child_dropout",
          case_child_oom: "child_oom train_oom", case_two_searches: "two_searches",
          case_rerun_existing: "rerun_existing", case_foreign_dir: "foreign_dir",
          case_budgets: "budget_inf budget_nan budget_huge", case_report_json: "report_json_diverged report_json_nan",
          case_sigkill_charge: "sigkill_charge sigkill_charge_kill",
          case_sqlite: "sqlite_truncated_report sqlite_truncated_resume sqlite_foreign_report sqlite_foreign_resume",
          case_checkpoints: "ckpt_blocked ckpt_truncated ckpt_empty ckpt_arch_not_json",
          case_ray: "cpus_100 ray_unreachable", case_options: "option_unknown option_type option_late option_late_resume",
          case_report: "report_dollar report_ctrl"}
NAMES = {name: group for group, names in GROUPS.items() for name in names.split()}


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell (no pipes, newlines or control characters)."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return text.replace("|", "\\|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository whose code runs (default: this one)")
    parser.add_argument("--only", action="append", choices=sorted(NAMES), metavar="NAME",
                        help="run only this case and those it needs or comes with (repeatable)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds per command (default 90)")
    args = parser.parse_args()
    CFG.update(root=args.root.resolve(), timeout=args.timeout)
    wanted = {NAMES[name] for name in args.only or NAMES}
    with tempfile.TemporaryDirectory(prefix="nas-ray-", dir="/tmp") as ray_tmp:  # short: Ray's socket paths
        CFG["ray_tmp"] = ray_tmp
        for group in [g for g in GROUPS if g in wanted]:
            with tempfile.TemporaryDirectory(prefix=f"nas-{group.__name__}-") as tmp:
                group(Path(tmp))
    print("| case | command | exit | last stderr line | wall s | store |\n|---|---|---|---|---|---|")
    for r in ROWS:
        print(f"| {r['case']} | `{cell(r['command'])}` | {r['rc']} | {cell(r['message'])} | {r['wall']:.1f} | {cell(r['store'])} |")
    print()
    for r in ROWS:
        print(f"{r['case']}_rc={r['rc']}")


if __name__ == "__main__":
    main()
