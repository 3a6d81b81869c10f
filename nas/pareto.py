"""Pareto maths on objective matrices (rows = points, columns = objectives, all minimised)."""

from __future__ import annotations

import numpy as np


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """a is no worse than b everywhere and better somewhere."""
    return bool(np.all(a <= b) and np.any(a < b))


def _front_2d(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated points of an (n, 2) array, by one sorted sweep."""
    order = np.lexsort((points[:, 1], points[:, 0]))
    mask = np.zeros(len(points), bool)
    best_y, last = np.inf, None
    for i in order:
        x, y = points[i]
        if y < best_y or (last is not None and x == last[0] and y == last[1]):  # equal points tie
            mask[i] = True
            best_y, last = min(best_y, y), (x, y)
    return mask


def non_dominated_ranks(points: np.ndarray) -> np.ndarray:
    """Front index of every point (0 = the Pareto front), by repeated peeling."""
    points = np.asarray(points, float)
    n = len(points)
    ranks = np.full(n, -1)
    if n == 0:
        return ranks
    if points.shape[1] <= 2 or n > 2000:  # sweeps: no n x n matrices for big runs
        return _ranks_by_sweeps(points)
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


def _ranks_by_sweeps(points: np.ndarray) -> np.ndarray:
    ranks = np.full(len(points), -1)
    remaining = np.arange(len(points))
    rank = 0
    while len(remaining):
        mask = _front_mask(points[remaining])
        ranks[remaining[mask]] = rank
        remaining = remaining[~mask]
        rank += 1
    return ranks


def _front_mask(points: np.ndarray) -> np.ndarray:
    if points.shape[1] == 1:
        return points[:, 0] == points[:, 0].min()
    if points.shape[1] == 2:
        return _front_2d(points)
    keep = np.ones(len(points), bool)  # more objectives: compare each point against the rest in blocks
    for i in range(len(points)):
        if keep[i]:
            dominated = np.all(points[i] <= points, axis=1) & np.any(points[i] < points, axis=1)
            keep &= ~dominated
    return keep


def pareto_front(points: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points."""
    points = np.asarray(points, float)
    if len(points) == 0:
        return np.array([], int)
    return np.flatnonzero(_front_mask(points.reshape(len(points), -1)))


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
