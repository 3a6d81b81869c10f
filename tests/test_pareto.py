"""Pareto maths against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from nas.pareto import crowding_distance, dominates, hypervolume_2d, non_dominated_ranks, pareto_front


def brute_ranks(points: np.ndarray) -> np.ndarray:
    ranks, remaining, rank = np.full(len(points), -1), set(range(len(points))), 0
    while remaining:
        front = {i for i in remaining if not any(dominates(points[j], points[i]) for j in remaining)}
        for i in front:
            ranks[i] = rank
        remaining -= front
        rank += 1
    return ranks


@pytest.mark.parametrize("objectives", [1, 2, 3])
def test_ranks_and_front_match_brute_force(objectives):
    rng = np.random.default_rng(objectives)
    for _ in range(30):
        points = rng.integers(0, 5, (30, objectives)).astype(float)  # many ties on purpose
        expected = brute_ranks(points)
        assert (non_dominated_ranks(points) == expected).all()
        assert list(pareto_front(points)) == list(np.flatnonzero(expected == 0))


def test_hypervolume_of_a_staircase():
    points = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [3.5, 3.5]])  # the last is dominated
    assert hypervolume_2d(points, np.array([4.0, 4.0])) == pytest.approx(3 * 1 + 2 * 1 + 1 * 1)
    assert hypervolume_2d(np.empty((0, 2)), np.array([1.0, 1.0])) == 0.0


def test_crowding_favours_isolated_points_and_keeps_the_ends():
    points = np.array([[0.0, 4.0], [1.0, 3.0], [1.1, 2.9], [4.0, 0.0]])
    dist = crowding_distance(points)
    assert np.isinf(dist[0]) and np.isinf(dist[3])
    assert dist[1] > 0 and dist[2] > 0


def test_large_fronts_need_no_quadratic_memory():
    points = np.random.default_rng(0).random((20000, 2))
    front = pareto_front(points)
    assert len(front) >= 1
    assert not any(dominates(points[j], points[front[0]]) for j in range(0, 20000, 97))
