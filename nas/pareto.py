"""Pareto maths on objective matrices (rows = points, columns = objectives, all minimised)."""

from __future__ import annotations

import numpy as np


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """a is no worse than b everywhere and better somewhere."""
    return bool(np.all(a <= b) and np.any(a < b))


def non_dominated_ranks(points: np.ndarray) -> np.ndarray:
    """Front index of every point (0 = the Pareto front), by repeated peeling."""
    points = np.asarray(points, float)
    n = len(points)
    ranks = np.full(n, -1)
    if n == 0:
        return ranks
    # dominated[i, j]: j dominates i
    le = np.all(points[None, :, :] <= points[:, None, :], axis=2)
    lt = np.any(points[None, :, :] < points[:, None, :], axis=2)
    dominated_by = le & lt
    remaining = np.ones(n, bool)
    rank = 0
    while remaining.any():
        front = remaining & ~np.any(dominated_by & remaining[None, :], axis=1)
        ranks[front] = rank
        remaining &= ~front
        rank += 1
    return ranks


def pareto_front(points: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points."""
    return np.flatnonzero(non_dominated_ranks(points) == 0)


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance within one front (boundary points get infinity)."""
    points = np.asarray(points, float)
    n, m = points.shape if points.ndim == 2 else (len(points), 1)
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(points[:, k], kind="stable")
        span = points[order[-1], k] - points[order[0], k]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (points[order[2:], k] - points[order[:-2], k]) / span
    return dist


def hypervolume_2d(points: np.ndarray, reference: np.ndarray) -> float:
    """Area dominated by points (2 minimised objectives) and bounded by the reference point."""
    points = np.asarray(points, float)
    if len(points) == 0:
        return 0.0
    inside = points[np.all(points < reference, axis=1)]
    if len(inside) == 0:
        return 0.0
    front = inside[pareto_front(inside)]
    front = front[np.argsort(front[:, 0])]
    area, prev_y = 0.0, reference[1]
    for x, y in front:
        area += (reference[0] - x) * (prev_y - y)
        prev_y = y
    return float(area)
