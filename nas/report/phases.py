"""The work a run did before its children, as recorded: its phases, and inherited scores beside stand-alone ones.

Data-driven: whatever phases a run recorded are listed, and the inherited-vs-stand-alone comparison
appears whenever a phase left inherited scores (today a weight-sharing run's supernet scoring).
"""

from __future__ import annotations

from nas.objectives import finite

PHASE_HEADER = ["phase", "device-hours", "detail"]


def phase_seconds(phases: dict[str, dict] | None) -> float:
    """Device-seconds of a run's phases (work charged to the budget outside the children)."""
    return float(sum(p["device_s"] for p in (phases or {}).values()))


def phase_rows(phases: dict[str, dict] | None) -> list[list[str]]:
    """One row per recorded phase, in the order they finished: name, device-hours, its scalar details."""
    return [[name, f"{p['device_s'] / 3600:.4f}", _detail(p.get("detail") or {})] for name, p in (phases or {}).items()]


def inherited_summary(inherited: list[dict], trials: list) -> dict:
    """Children scored with inherited weights, and how their ranking agrees with stand-alone training.

    Kendall's tau and Spearman's rho (scipy) between inherited and stand-alone validation accuracy
    over the children trained from scratch in this run (None below three such children).
    """
    from scipy import stats

    by_arch = {r["arch_id"]: r["metrics"] for r in inherited}
    pairs = [(by_arch[t.arch_id]["val_acc"], t.metrics["val_acc"]) for t in trials
             if t.ok and t.arch_id in by_arch and finite(t.metrics.get("val_acc"))]
    tau = rho = None
    if len(pairs) >= 3 and len({a for a, _ in pairs}) > 1 and len({b for _, b in pairs}) > 1:
        a, b = zip(*pairs)
        tau, rho = float(stats.kendalltau(a, b).statistic), float(stats.spearmanr(a, b).statistic)
    accs = [m["val_acc"] for m in by_arch.values() if finite(m.get("val_acc"))]
    return {"children": len(inherited), "best_inherited_val_acc": max(accs, default=None), "retrained": len(pairs),
            "kendall_tau": tau, "spearman_rho": rho}


def inherited_line(state) -> str | None:
    """How inherited scores ranked the children trained from scratch, in one line (None without inherited scores)."""
    summary = state.inherited  # a RunState
    if not summary:
        return None
    best = "-" if summary["best_inherited_val_acc"] is None else f"{summary['best_inherited_val_acc']:.2f}%"
    corr = "" if summary["kendall_tau"] is None else (
        f" Inherited vs stand-alone validation accuracy of the {summary['retrained']} children trained from "
        f"scratch: Kendall tau {summary['kendall_tau']:.3f}, Spearman {summary['spearman_rho']:.3f}.")
    return f"{summary['children']} children scored with inherited weights (best {best}).{corr}"


def _detail(detail: dict) -> str:
    # nested values (a recipe, a failure count) stay in the JSON state; the table shows the scalars
    items = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in detail.items()
             if isinstance(v, (int, float, str, bool))]
    text = ", ".join(items)
    return text if len(text) <= 100 else text[:99] + "…"
