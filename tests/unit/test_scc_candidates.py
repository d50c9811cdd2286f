"""False candidates as the study counts them (§2.5.1), on score grids whose answer is known.

Scores are built as bumps of geodesic distance on the SO(3) grid, so "the true peak and its
neighbours", "one false peak spread over several grid points" and "a peak over the pole" are
exact constructions, not photos.
"""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from analytics_jobs.scc.candidates import LocalMaximaCollector, false_candidate_ratio
from analytics_jobs.scc.grid import (
    euler_to_matrix,
    grid_step,
    nearest_grid_index,
    poses_within,
    rotation_angle,
    so3_angles,
)

B = 6
N = 2 * B


def grid_rotations(bandwidth: int) -> Rotation:
    """Every grid pose, flattened in [a, k, c] order."""
    alpha, beta, gamma = so3_angles(bandwidth)
    a, k, c = np.meshgrid(alpha, beta, gamma, indexing="ij")
    return Rotation.from_euler("ZYZ", np.stack([a.ravel(), k.ravel(), c.ravel()], axis=1))


GRID = grid_rotations(B)


def bump(centre: np.ndarray, height: float, width: float) -> np.ndarray:
    """height · exp(−(d / width)²) over the grid, d = geodesic distance to ``centre``."""
    d = (GRID.inv() * Rotation.from_matrix(centre)).magnitude()
    return (height * np.exp(-((d / width) ** 2))).reshape(N, N, N)


def correct_score(block: np.ndarray, truth: np.ndarray) -> float:
    ball = poses_within(truth, B, grid_step(B))
    return max(float(block[:, k, :][mask].max()) for k, mask in ball.items())


def count(block: np.ndarray, threshold: float, order=None) -> LocalMaximaCollector:
    collector = LocalMaximaCollector(N, top_k=5, threshold=threshold)
    for k in order or range(N):
        collector.add(k, block[:, k, :])
    return collector


TRUTH = euler_to_matrix(1.3, 1.4, 2.2)  # off-grid, near β = π/2 like a level camera


def grid_matrix(index) -> np.ndarray:
    a, k, c = index
    alpha, beta, gamma = so3_angles(B)
    return euler_to_matrix(alpha[a], beta[k], gamma[c])


def test_poses_within_one_step_match_brute_force():
    step = grid_step(B)
    distances = (GRID.inv() * Rotation.from_matrix(TRUTH)).magnitude().reshape(N, N, N)
    ball = poses_within(TRUTH, B, step)
    found = {(a, k, c) for k, mask in ball.items() for a, c in zip(*np.nonzero(mask))}
    expected = {tuple(int(i) for i in idx) for idx in zip(*np.nonzero(distances <= step))}
    assert found == expected and len(found) > 1
    assert nearest_grid_index(TRUTH, B) in found


def test_true_peak_and_its_neighbours_are_not_false_candidates():
    # the peak sits on a grid neighbour of the nearest pose (correlation peaks are a little off
    # the truth): the old rule, "above the pose nearest the truth", counted that neighbour
    nearest = nearest_grid_index(TRUTH, B)
    ball = poses_within(TRUTH, B, grid_step(B))
    neighbour = next((a, k, c) for k, m in ball.items() for a, c in zip(*np.nonzero(m)) if (a, k, c) != nearest)
    block = bump(grid_matrix(neighbour), 2.0, grid_step(B))
    assert block[neighbour] > block[nearest]
    old = count(block, float(block[nearest]))
    assert old.count_above >= 1                                  # what the issue reported
    new = count(block, correct_score(block, TRUTH))
    assert new.count_above == 0 and new.maxima_above == 0
    assert new.candidates()[0].index == neighbour


def test_one_false_peak_over_several_grid_points_is_one_local_maximum():
    far = TRUTH @ euler_to_matrix(0.0, np.pi / 2, 0.0)           # 90° away
    assert rotation_angle(far, TRUTH) == pytest.approx(np.pi / 2)
    block = bump(TRUTH, 2.0, 0.5 * grid_step(B)) + bump(far @ euler_to_matrix(0.05, 0.0, 0.0), 3.0, 2 * grid_step(B))
    threshold = correct_score(block, TRUTH)
    collector = count(block, threshold, order=[5, 6, 4, 7, 3, 8, 2, 9, 1, 10, 0, 11])
    assert collector.count_above == int(np.count_nonzero(block > threshold)) > 3
    assert collector.maxima_above == 1
    assert rotation_angle(grid_matrix(collector.candidates()[0].index), far) < grid_step(B)
    assert false_candidate_ratio(collector.count_above, N**3) == collector.count_above / N**3


def test_two_false_peaks_count_twice_and_a_lower_one_not_at_all():
    block = bump(TRUTH, 2.0, grid_step(B))
    for turn, height in ((np.pi / 2, 3.0), (np.pi, 2.5), (3 * np.pi / 2, 1.0)):
        block = block + bump(TRUTH @ euler_to_matrix(turn, np.pi / 2, 0.3), height, 0.7 * grid_step(B))
    threshold = correct_score(block, TRUTH)
    assert 1.0 < threshold < 2.5
    collector = count(block, threshold)
    assert collector.maxima_above == 2


def test_a_peak_over_the_pole_counts_once():
    block = np.random.default_rng(3).uniform(0.0, 1.0, size=(N, N, N))
    # (a, β_0, c) and (a + B, β_0, c + B) are one β step apart, across the pole
    block[1, 0, 2], block[1 + B, 0, 2 + B] = 5.0, 6.0
    block[4, N - 1, 7], block[(4 + B) % N, N - 1, (7 + B) % N] = 8.0, 7.0
    collector = count(block, 4.0)
    assert collector.count_above == 4 and collector.maxima_above == 2
    assert [c.index for c in collector.candidates()[:2]] == [(4, N - 1, 7), (1 + B, 0, 2 + B)]


def test_nothing_above_means_zero_whatever_the_slice_order():
    block = bump(TRUTH, 2.0, grid_step(B))
    threshold = correct_score(block, TRUTH)
    rng = np.random.default_rng(0)
    for _ in range(3):
        collector = count(block, threshold, order=list(rng.permutation(N)))
        assert (collector.count_above, collector.maxima_above) == (0, 0)
        assert not collector.slices
