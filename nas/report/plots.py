"""Report figures as PNG bytes: the accuracy-vs-MACs front, hypervolume against device-hours, run comparisons.

Figures are built on matplotlib's object API with the Agg canvas (no pyplot), so drawing them
changes no global backend or state in the caller's process. Text from a run (folder and reference
names in titles, labels and legends) is drawn with parse_math=False: a `$` in a name is a dollar,
never mathtext, which would garble the name or fail to parse.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nas.outcome import TrialStatus

if TYPE_CHECKING:
    from nas.report.state import RunState
    from nas.store.run_store import TrialRecord

MACS_LABEL = "multiply-adds (MACs)"
ACC_LABEL = "validation accuracy (%)"
HV_LABEL = "front hypervolume"
HOURS_LABEL = "device-hours spent"
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _points(trials: Sequence[TrialRecord], status: TrialStatus = TrialStatus.OK) -> np.ndarray:
    """(macs, val_acc) of the searched (non-reference) trials with this status and usable numbers."""
    pts = [(t.macs, t.val_acc) for t in trials if t.outcome.status is status and not t.reference and _usable(t)]
    return np.array(pts, float).reshape(-1, 2)


def _usable(t: TrialRecord) -> bool:
    acc, macs = t.val_acc, t.macs
    return isinstance(acc, (int, float)) and math.isfinite(acc) and isinstance(macs, (int, float)) and macs > 0


def _envelope(front: Sequence[TrialRecord]) -> np.ndarray:
    """The staircase through the front: points whose accuracy beats every cheaper one (all of a 2-D front)."""
    pts = sorted((t.macs, t.val_acc) for t in front if _usable(t))
    out, best = [], -math.inf
    for macs, acc in pts:
        if acc > best:
            out.append((macs, acc))
            best = acc
    return np.array(out, float).reshape(-1, 2)


def _legend(ax: Any, **kwargs: Any) -> None:
    """The axes' legend, its labels (run names among them) drawn as plain text."""
    for text in ax.legend(**kwargs).get_texts():
        text.set_parse_math(False)


def _draw_front(ax: Any, front: Sequence[TrialRecord], color: str, label: str, numbered: bool, right: float) -> None:
    stairs = _envelope(front)
    if len(stairs):
        # steps-post: the best accuracy reachable at a given MACs is the last front point left of it,
        # so the last step runs on to the right edge
        xs = np.append(stairs[:, 0], max(right, stairs[-1, 0]))
        ys = np.append(stairs[:, 1], stairs[-1, 1])
        ax.plot(xs, ys, drawstyle="steps-post", color=color, lw=1.6, alpha=0.9, zorder=3)
    pts = np.array([(t.macs, t.val_acc) for t in front if _usable(t)], float).reshape(-1, 2)
    ax.scatter(pts[:, 0], pts[:, 1], s=42, color=color, edgecolor="white", linewidth=0.8, zorder=4, label=label)
    if numbered:  # rank labels, skipping any that would sit on the previous one in a crowded stretch
        last = None
        for rank, t in enumerate(front):
            if not _usable(t):
                continue
            at = ax.transData.transform((t.macs, t.val_acc))
            if last is not None and np.hypot(*(at - last)) < 16:
                continue
            last = at
            ax.annotate(str(rank), (t.macs, t.val_acc), textcoords="offset points", xytext=(5, -11),
                        fontsize=8, color=color, zorder=5)


def _axes_limits(ax: Any, macs: np.ndarray, acc: np.ndarray) -> float:
    """Set the limits around the points; returns the right edge."""
    right = 1.0
    if len(macs):
        lo, hi = macs.min(), macs.max()
        right = hi * 1.6  # room for labels and the staircase's last step
        ax.set_xlim(lo / 1.4, right)
    if len(acc):
        lo, hi = acc.min(), acc.max()
        pad = max(0.5, 0.06 * (hi - lo))
        ax.set_ylim(lo - pad, min(100.0, hi + pad) if hi < 100 else hi + pad)
    return right


def pareto_png(state: RunState, title: str) -> bytes:
    """All finished children in grey, the front highlighted as a numbered staircase, references labelled."""
    fig = Figure(figsize=(10.0, 5.0))
    ax = fig.add_subplot()
    # fixed: tight_layout costs 0.15 s a figure; the right margin holds the legend, clear of every point
    fig.subplots_adjust(left=0.07, right=0.74, bottom=0.11, top=0.93)
    ok, stopped = _points(state.trials), _points(state.trials, TrialStatus.STOPPED)
    refs = [t for t in state.references if _usable(t)]
    every = np.vstack([ok, stopped, np.array([(t.macs, t.val_acc) for t in refs], float).reshape(-1, 2)])
    ax.set_xscale("log")  # before anything is placed: label spacing is measured on screen
    right = _axes_limits(ax, every[:, 0], every[:, 1])
    if len(ok):
        few = len(ok) < 500  # thousands of points need to be small and faint to show their density
        ax.scatter(ok[:, 0], ok[:, 1], s=18 if few else 6, color="#888888", alpha=0.7 if few else 0.3, linewidth=0,
                   label=f"trials ({len(ok):,})", rasterized=True, zorder=1)
    if len(stopped):
        ax.scatter(stopped[:, 0], stopped[:, 1], s=10, marker="x", color="#c8c8c8", linewidth=0.8,
                   label=f"stopped early ({len(stopped):,}, low fidelity)", zorder=1)
    front = state.pareto_front
    if front:
        _draw_front(ax, front, COLORS[0], f"Pareto front ({len(front)})", len(front) <= 40, right)
    for t in refs:
        ax.scatter([t.macs], [t.val_acc], marker="*", s=130, color="black", zorder=6)
        ax.annotate(str(t.reference), (t.macs, t.val_acc), textcoords="offset points",
                    xytext=(6, 4), fontsize=8, zorder=6, parse_math=False)
    if refs:
        ax.scatter([], [], marker="*", s=130, color="black", label="reference architectures, same recipe")
    ax.set_xlabel(MACS_LABEL)
    ax.set_ylabel(ACC_LABEL)
    ax.set_title(title, fontsize=11, parse_math=False)
    ax.grid(True, which="both", alpha=0.25)
    if len(every):
        _legend(ax, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8)
    else:
        ax.text(0.5, 0.5, "no finished trials yet", ha="center", va="center", transform=ax.transAxes)
    return _png(fig)


def _draw_volume(ax: Any, runs: list[tuple[str, np.ndarray, np.ndarray]], legend: bool) -> None:
    for k, (label, hours, volume) in enumerate(runs):
        if len(hours):
            xs, ys = np.concatenate([[0.0], hours]), np.concatenate([[0.0], volume])
            color = COLORS[k % len(COLORS)]
            ax.plot(xs, ys, drawstyle="steps-post", color=color, lw=1.6, label=label)
            ax.plot(xs[-1:], ys[-1:], "o", color=color, ms=5)  # the end stays visible for a much shorter run
    if not any(len(h) for _, h, _ in runs):
        ax.text(0.5, 0.5, "no finished trials yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(HOURS_LABEL)
    ax.set_ylabel(HV_LABEL)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.25)
    if legend and any(len(h) for _, h, _ in runs):
        _legend(ax, loc="lower right", fontsize=8)


def hypervolume_png(runs: list[tuple[str, np.ndarray, np.ndarray]], reference: str) -> bytes:
    """Front hypervolume after each finished child against the device-hours spent so far.

    reference: the box's reference point in words (`nas.report.state.hypervolume_reference`).
    """
    fig = Figure(figsize=(8.0, 3.6))
    ax = fig.add_subplot()
    _draw_volume(ax, runs, legend=len(runs) > 1)
    ax.set_title(f"hypervolume of the accuracy-vs-MACs front\nreference point: {reference}", fontsize=9,
                 parse_math=False)
    fig.subplots_adjust(left=0.09, right=0.96, bottom=0.15, top=0.84)
    return _png(fig)


def compare_png(runs: list[dict]) -> bytes:
    """Left: every run's front (and its trials, faint); right: their hypervolumes on one device-hours axis."""
    fig = Figure(figsize=(13.0, 5.0))
    ax, ax_hv = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    points = [_points(run["state"].trials) for run in runs]
    allpts = np.vstack(points) if points else np.zeros((0, 2))
    ax.set_xscale("log")
    right = _axes_limits(ax, allpts[:, 0], allpts[:, 1])
    for k, (run, pts) in enumerate(zip(runs, points)):
        color = COLORS[k % len(COLORS)]
        if len(pts):
            ax.scatter(pts[:, 0], pts[:, 1], s=7, color=color, alpha=0.15, linewidth=0, rasterized=True, zorder=1)
        if run["state"].pareto_front:
            _draw_front(ax, run["state"].pareto_front, color, f"{run['label']} ({len(run['state'].pareto_front)})",
                        False, right)
    ax.set_xlabel(MACS_LABEL)
    ax.set_ylabel(ACC_LABEL)
    ax.set_title("Pareto fronts", fontsize=11)
    ax.grid(True, which="both", alpha=0.25)
    if len(allpts):  # "best": the corner with fewest points, framed see-through so none hides
        _legend(ax, loc="best", fontsize=8, framealpha=0.6)
    _draw_volume(ax_hv, [(r["label"], r["hours"], r["volume"]) for r in runs], legend=True)
    ax_hv.set_title("hypervolume (one reference point for all runs)", fontsize=11)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.11, top=0.93, wspace=0.18)
    return _png(fig)
