"""report.html and compare.html: one self-contained file each (inline CSS, PNGs as data URIs, no script).

Every value that comes from a run (architectures, failure reasons, settings, paths) goes through
`_e` (control characters shown as escapes, then html.escape with quotes) on its way into the page, and a Content-Security-Policy forbids
scripts and any network access, so a hostile run folder cannot make the page do anything.
"""

from __future__ import annotations

import base64
import html
import shlex
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nas.jsonio import dumps
from nas.outcome import TrialStatus
from nas.report.phases import PHASE_HEADER, inherited_line, phase_rows
from nas.report.state import hypervolume_reference, run_phase
from nas.report.table import COST_NOTE, cell, cost_rows, printable

if TYPE_CHECKING:
    from nas.arch import Arch
    from nas.report.state import RunState
    from nas.store.run_store import TrialRecord

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
main{max-width:1180px;margin:0 auto;padding:20px 28px 48px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #d8dce3;padding-bottom:4px}
.sub{color:#5b6474;margin:0 0 14px;word-break:break-all}
.stats{display:flex;flex-wrap:wrap;gap:10px}.stat{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:8px 14px;min-width:120px}
.stat b{display:block;font-size:18px}.stat span{color:#5b6474;font-size:12px}
figure{margin:10px 0;background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:8px}
figure img{display:block;max-width:100%;height:auto;margin:0 auto}figcaption{color:#5b6474;font-size:12px;margin-top:4px}
table{border-collapse:collapse;background:#fff;font-size:13px}th,td{border:1px solid #dde1e8;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#eef0f4;font-weight:600;white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.wide{overflow-x:auto}code,pre,.arch{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace;font-size:12px}
.arch{word-break:break-word}pre{background:#1d2330;color:#e8ebf0;padding:7px 10px;border-radius:4px;overflow-x:auto;margin:6px 0}
.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:10px 14px;margin:10px 0}
.card h3{font-size:15px;margin:0 0 4px}.muted{color:#5b6474}.warn{color:#9a3b00}
details summary{cursor:pointer;color:#1f5fa8;margin:4px 0}
"""


def _e(value: Any) -> str:
    """Escape anything for HTML text and attribute values (quotes and control characters included)."""
    return html.escape(printable("" if value is None else str(value)), quote=True)


def _td(value: Any, numeric: bool = False) -> str:
    return f'<td class="n">{_e(value)}</td>' if numeric else f"<td>{_e(value)}</td>"


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]], numeric: str = "") -> str:
    """numeric: one character per column, 'n' for right-aligned numbers."""
    header = list(header)
    if numeric and len(numeric) != len(header):  # a short string would misalign every column after it
        raise ValueError(f"numeric has {len(numeric)} letters, the header {len(header)} columns")
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_td(v, numeric[i:i + 1] == "n") for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _img(data: bytes, alt: str, caption: str) -> str:
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return f'<figure><img src="{uri}" alt="{_e(alt)}"><figcaption>{_e(caption)}</figcaption></figure>'


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n<body><main>\n{body}\n</main></body></html>\n")


def si(value: float | None, unit: str = "") -> str:
    """1234567 -> '1.23M' (k, M, G, T: powers of 1000)."""
    if value is None:
        return "-"
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}{unit}"
    return f"{value:.3g}{unit}"


def size(n_bytes: float | None) -> str:
    """Bytes as KB or MB (powers of 1024, as the cost table's memory column)."""
    if n_bytes is None:
        return "-"
    return f"{n_bytes / 1024:,.1f} KB" if n_bytes < 1024 ** 2 else f"{n_bytes / 1024 ** 2:,.2f} MB"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def final(row: dict) -> str:
    """'val / test' of the latest retraining, or '-'."""
    if row.get("final_val_acc") is None:
        return "-"
    return f"{pct(row['final_val_acc'])} / {pct(row.get('final_test_acc'))}"


def front_table(rows: list[dict]) -> tuple[list[str], list[list[Any]], str]:
    """Header, cells and column kinds (n numeric, l text) of front rows; optional columns only when filled."""
    inherited = any(r.get("inherited_val_acc") is not None for r in rows)
    retrained = any(r.get("final_val_acc") is not None for r in rows)
    header = ["rank", "trial", "arch id", *(["inherited val %"] if inherited else []), "proxy val %",
              *(["final val / test %"] if retrained else []), "test %", "MACs", "params", "act. memory", "device-s",
              "architecture"]
    cells = [[r["rank"], r["trial_id"], r["arch_id"], *([pct(r.get("inherited_val_acc"))] if inherited else []),
              pct(r["val_acc"]), *([final(r)] if retrained else []), pct(r["test_acc"]), si(r["macs"]), si(r["params"]),
              size(r.get("activation_bytes")), f"{r['device_s']:.1f}", r["summary"]] for r in rows]
    return header, cells, "nnl" + "n" * (inherited + 1 + retrained) + "nnnnnl"


def _stats(state: RunState) -> str:
    c, b = state.counts, state.budget
    spent = f"{b.spent_device_hours:.3f}" + (f" / {b.gpu_hours:g}" if b.gpu_hours else "")
    hv = "-" if state.hypervolume is None else f"{state.hypervolume:.4f}"
    items = [(c.ok, "trials finished"), (c.failed, "failed"), (c.stopped, "stopped early"),
             (c.running, "running"), (spent, "device-hours spent"), (len(state.pareto_front), "on the front"),
             (hv, "hypervolume")]
    over = b.overspent_line()
    return ('<div class="stats">' + "".join(f"<div class=\"stat\"><b>{_e(v)}</b><span>{_e(k)}</span></div>"
                                            for v, k in items) + "</div>"
            + (f'<p class="warn overspent">{_e(over)}</p>' if over else ""))


def _phases(state: RunState) -> str:
    """The work recorded before the children, and how inherited scores ranked them, when the run has either."""
    rows, line = phase_rows(state.phases), inherited_line(state)
    table = _table(PHASE_HEADER, rows, "lnl") if rows else ""
    return ("<h2>Phases before the children</h2>" + table if rows else "") + (f"<p>{_e(line)}</p>" if line else "")


def _cost_table(arch: Arch | None) -> str:
    from nas.model.cost import arch_cost

    try:
        if arch is None:
            raise ValueError("the stored record holds no architecture")
        cost = arch_cost(arch, detail=True)
    except (ValueError, KeyError, TypeError) as err:
        return f'<p class="warn">no cost table: {_e(err)}</p>'
    header, layers = cost_rows(cost)
    rows = [["" if v is None else cell(v) if isinstance(v, float) else v for v in row] for row in layers]
    rows.append(["total", *[""] * (len(header) - 4), cell(cost.activation_bytes / 1024), cell(cost.params / 1000), cell(cost.macs / 1e6)])
    table = _table(header, rows, "ll" + "n" * (len(header) - 2))
    return (f"<details><summary>per-layer cost ({len(cost.layers)} layers)</summary>{table}"
            f'<p class="muted">{_e(COST_NOTE)}; params {cost.params:,}, MACs {cost.macs:,}</p></details>')


def _card(state: RunState, row: dict, record: TrialRecord) -> str:
    run = shlex.quote(state.run_dir)
    name = f" · {row['arch_name']}" if row.get("arch_name") else ""
    weights = (f"trained weights kept: {row['checkpoint']}" if row.get("checkpoint")
               else "no trained weights kept (export writes the architecture untrained)")
    retrained = f"; final {final(row)} after {row['final_epochs']} epochs" if row.get("final_val_acc") is not None else ""
    device = f"{row['device_s']:.1f}"
    return (f'<div class="card" id="k{_e(row["rank"])}"><h3>K={_e(row["rank"])} · trial {_e(row["trial_id"])} · '
            f"arch {_e(row['arch_id'])}{_e(name)}</h3>"
            f'<div class="arch">{_e(row["summary"])}</div>'
            f'<p>proxy val {_e(pct(row["val_acc"]))}%{_e(retrained)} · {_e(si(row["macs"]))} MACs · '
            f'{_e(si(row["params"]))} params · {_e(size(row.get("activation_bytes")))} activations · '
            f"{_e(device)} device-s</p>"
            f'<p class="muted">{_e(weights)}</p>'
            f"<pre>nas export {_e(run)} --pareto-index {_e(row['rank'])} -o model.py</pre>"
            f"{_cost_table(record.arch)}</div>")


def _failures(state: RunState) -> str:
    failed = [t for t in state.trials if t.outcome.unusable]
    if not failed:
        return "<p>None.</p>"
    by_reason: dict[str, list[int]] = {}
    for t in failed:
        by_reason.setdefault(t.status, []).append(t.trial_id)
    rows = []
    for reason, ids in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(str(i) for i in ids[:20]) + (f", ... ({len(ids) - 20} more)" if len(ids) > 20 else "")
        rows.append([reason, len(ids), shown])
    return _table(["reason", "trials", "trial ids"], rows, "lnl")


def _running(state: RunState, now: float) -> str:
    from nas.model.summary import summarize

    rows = []
    for t in state.trials:
        if t.outcome.status is TrialStatus.RUNNING:
            try:
                text = summarize(t.arch) if t.arch is not None else "(unreadable architecture)"
            except (ValueError, KeyError, TypeError):
                text = "(unreadable architecture)"
            since = f"{(now - t.started) / 60:.1f} min ago" if t.started else "-"
            rows.append([t.trial_id, t.arch_id, since, t.attempts, text])
    return _table(["trial", "arch id", "started", "attempts", "architecture"], rows, "nllnl")


def _settings(state: RunState) -> str:
    rows = [[k, v if isinstance(v, str) else dumps(v)] for k, v in sorted(state.settings.items())]
    return _table(["setting", "value"], rows)


def report_html(state: RunState, rows: list[dict], images: dict[str, bytes], now: float | None = None) -> str:
    """The whole report page of one run."""
    now = time.time() if now is None else now
    header, cells, numeric = front_table(rows)
    s = state.settings
    parts = [f"<h1>nas run report</h1><p class=\"sub\">{_e(state.run_dir)}</p>",
             f"<p>{_e(s.get('space', '?'))} space · {_e(s.get('controller', '?'))} controller · "
             f"{_e(s.get('dataset', '?'))} · objectives {_e(', '.join(state.objectives))} · {_e(run_phase(state))}</p>",
             _stats(state), _phases(state), "<h2>Accuracy vs multiply-adds</h2>",
             _img(images["pareto"], "accuracy vs multiply-adds of every trial, the Pareto front highlighted",
                  "Grey: finished trials. Blue: the Pareto front, numbered by rank K. Stars: reference "
                  "architectures trained with the same recipe (when the run has them). FLOPs are multiply-adds."),
             _img(images["hypervolume"], "front hypervolume against device-hours",
                  "Reference point: " + hypervolume_reference(s.get("max_macs"), state.hypervolume_macs) + "."),
             f"<h2>Pareto front ({len(rows)})</h2>",
             _table(header, cells, numeric) if rows else "<p>No finished trials yet.</p>",
             '<p class="muted">inherited val: scored with inherited weights in a phase before the children (e.g. a supernet); '
             'proxy val: the search\'s short training from scratch; final: <code>nas retrain</code>. '
             "MACs are multiply-adds; activation memory is every layer output at float32, batch 1.</p>"]
    refs = state.references
    if refs:
        parts += ["<h2>Reference architectures</h2>",
                  _table(["reference", "trial", "val %", "MACs", "params"],
                         [[t.reference, t.trial_id, pct(t.val_acc), si(t.macs), si(t.params)]
                          for t in refs], "lnnnn")]
    parts.append("<h2>Front architectures</h2>")
    parts += [_card(state, row, record) for row, record in zip(rows, state.pareto_front)]
    if state.counts.running:
        parts += [f"<h2>Running ({state.counts.running})</h2>", _running(state, now)]
    parts += [f"<h2>Failures ({state.counts.failed})</h2>", _failures(state), "<h2>Settings</h2>", _settings(state),
              f'<p class="muted">Generated {_e(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)))} by nas report.</p>']
    return _page(f"nas report: {state.run_dir}", "\n".join(parts))


def different_settings_line(differences: list[str]) -> str:
    """The one-line warning that compared runs used different settings."""
    return ("warning: these runs used different settings (" + "; ".join(differences)
            + "); their accuracies and costs may not be comparable")


def compare_html(runs: list[dict], scale: float | None, image: bytes, differences: Iterable[str] = ()) -> str:
    """Several runs' fronts and hypervolumes (one reference point) on one page; differences: settings that differ."""
    summary = []
    for r in runs:
        s = r["state"]
        best = max((t.val_acc for t in s.pareto_front if t.val_acc is not None), default=None)
        summary.append([r["label"], s.settings.get("controller", "?"), s.counts.ok, s.counts.failed,
                        f"{s.budget.spent_device_hours:.3f}", len(s.pareto_front), pct(best),
                        "-" if r["hypervolume"] is None else f"{r['hypervolume']:.4f}"])
    parts = ["<h1>nas run comparison</h1>",
             f'<p class="sub">{_e(" · ".join(r["state"].run_dir for r in runs))}</p>',
             _img(image, "Pareto fronts and hypervolume against device-hours of the compared runs",
                  f"Hypervolume reference point, common to every run: 0% accuracy and {si(scale)} MACs."),
             "<h2>Runs</h2>",
             _table(["run", "controller", "finished", "failed", "device-hours", "front", "best val %", "hypervolume"],
                    summary, "llnnnnnn")]
    differences = list(differences)
    if differences:
        parts.append(f'<p class="warn settings-differ">{_e(different_settings_line(differences))}</p>')
    for r in runs:
        header, cells, numeric = front_table(r["rows"])
        parts += [f"<h2>{_e(r['label'])}: front ({len(r['rows'])})</h2>", _table(header, cells, numeric)]
    return _page("nas run comparison", "\n".join(parts))
