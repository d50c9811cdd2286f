"""Synthetic photo against its panorama: the true pose ranks high; stages are timed and measured."""

import numpy as np
import pytest

from analytics_jobs.scc.candidates import LocalMaximaCollector
from analytics_jobs.scc.grid import euler_to_matrix, grid_pose, nearest_grid_index, rotation_angle, so3_angles
from analytics_jobs.scc.measure import host_facts
from analytics_jobs.scc.pipeline import run_pair
from analytics_jobs.scc.sht import ducc_available
from analytics_jobs.scc.synthetic import (
    camera_rotation,
    make_scene,
    random_pose,
    render_panorama,
    render_photo,
)

STAGES = {"cylmap", "projmap", "setup", "forward", "correlation", "finalisation"}
FOV = np.deg2rad(60)


@pytest.fixture(scope="module")
def pair_result():
    scene = make_scene(seed=0)
    rotation = camera_rotation(*random_pose(np.random.default_rng(0)))
    photo = render_photo(scene, rotation, FOV, seed=0)
    return run_pair(render_panorama(scene), photo, FOV, 64, 64, rotation), rotation


def test_true_pose_ranks_high(pair_result):
    result, rotation = pair_result
    assert result["grid_poses"] == 128**3
    # issue 19: the best pose here is the truth's grid neighbour 2.1° away — the correct
    # solution, not a false candidate
    assert result["false_candidates"] == 0 and result["false_peaks"] == 0
    assert result["false_candidate_ratio"] == 0.0
    assert result["candidates"][0]["index"] == result["correct_index"]
    assert result["correct_score"] >= result["true_score"]
    correct = euler_to_matrix(*grid_pose(tuple(result["correct_index"]), 64))
    assert np.degrees(rotation_angle(rotation, correct)) <= result["correct_radius_deg"] == pytest.approx(180 / 64)


def test_best_candidate_is_near_true_pose(pair_result):
    result, rotation = pair_result
    errors = [c["error_deg"] for c in result["candidates"]]
    scores = [c["score"] for c in result["candidates"]]
    assert scores == sorted(scores, reverse=True)
    assert min(errors[:3]) < 5.0
    assert result["true_index"] == list(nearest_grid_index(rotation, 64))


def test_every_stage_reports_time_and_memory(pair_result):
    stages = pair_result[0]["stages"]
    assert set(stages) == STAGES
    for stage in stages.values():
        assert stage["seconds"] > 0
        assert stage["peak_rss_mib"] >= stage["rss_start_mib"] - 1.0
        assert stage["peak_delta_mib"] >= 0


def test_wrong_pose_ranks_much_lower_than_true_pose():
    # level poses all score fairly well on horizontal ridges, so compare against a wrong level pose
    scene = make_scene(seed=1)
    panorama = render_panorama(scene)
    true_rotation = camera_rotation(4.0, 0.0, 0.1)
    wrong_rotation = camera_rotation(1.0, 0.05, 0.0)
    photo = render_photo(scene, true_rotation, FOV, seed=1)
    true_ratio = run_pair(panorama, photo, FOV, 32, 32, true_rotation)["false_candidate_ratio"]
    wrong_ratio = run_pair(panorama, photo, FOV, 32, 32, wrong_rotation)["false_candidate_ratio"]
    assert wrong_ratio > 5 * true_ratio


def test_synthetic_data_is_seeded_and_camera_convention_holds():
    assert np.array_equal(render_panorama(make_scene(3), 256, 64), render_panorama(make_scene(3), 256, 64))
    level = camera_rotation(0.0, 0.0, 0.0)
    np.testing.assert_allclose(level @ [0, 0, 1], [1, 0, 0], atol=1e-12)  # optical axis → +x
    assert (camera_rotation(0.0, 0.2, 0.0) @ [0, 0, 1])[2] > 0  # positive pitch looks up
    yawed = camera_rotation(np.pi / 2, 0.0, 0.0) @ [0, 0, 1]
    np.testing.assert_allclose(yawed, [0, 1, 0], atol=1e-12)


def test_nearest_grid_index_matches_brute_force():
    bandwidth = 4
    alpha, beta, gamma = so3_angles(bandwidth)
    rng = np.random.default_rng(9)
    for angles in [(0.3, 0.01, 1.0), (2.0, 1.0, 4.0), (1.0, np.pi - 0.02, 0.2), tuple(rng.uniform(0, 3, 3))]:
        rotation = euler_to_matrix(*angles)
        distances = {
            (a, k, c): rotation_angle(rotation, euler_to_matrix(alpha[a], beta[k], gamma[c]))
            for a in range(8) for k in range(8) for c in range(8)
        }
        found = nearest_grid_index(rotation, bandwidth)
        assert distances[found] == pytest.approx(min(distances.values()), abs=1e-12)
        assert grid_pose(found, bandwidth)[1] == beta[found[1]]


def test_collector_finds_planted_maxima_in_any_order():
    rng = np.random.default_rng(1)
    block = rng.uniform(0, 1, size=(8, 6, 8))  # (α, β, γ)
    planted = [(2, 0, 5), (6, 3, 1), (0, 5, 7)]
    for rank, index in enumerate(planted):
        block[index] = 10.0 - rank
    order = [3, 2, 4, 1, 5, 0]
    collector = LocalMaximaCollector(n_beta=6, top_k=3, threshold=0.5)
    for k in order:
        collector.add(k, block[:, k, :])
    assert [c.index for c in collector.candidates()] == planted
    assert collector.count_above == int(np.count_nonzero(block > 0.5))
    assert len(collector.slices) == 0  # every slice released once evaluated


def test_numpy_and_ducc_backends_give_the_same_answer(pair_result):
    scene = make_scene(seed=0)
    rotation = camera_rotation(*random_pose(np.random.default_rng(0)))
    photo = render_photo(scene, rotation, FOV, seed=0)
    numpy_run = run_pair(render_panorama(scene), photo, FOV, 32, 32, rotation, sht_backend="numpy")
    assert numpy_run["sht_backend"] == "numpy"
    if not ducc_available():
        pytest.skip("ducc0 not installed")
    ducc_run = run_pair(render_panorama(scene), photo, FOV, 32, 32, rotation, sht_backend="ducc0")
    assert [c["index"] for c in ducc_run["candidates"]] == [c["index"] for c in numpy_run["candidates"]]
    # real edge maps are not band-limited; the two quadratures differ only on aliased content
    assert ducc_run["true_score"] == pytest.approx(numpy_run["true_score"], rel=1e-3)


def test_host_facts_name_the_machine():
    facts = host_facts()
    assert facts["cpu_cores"] >= 1 and facts["memory_total_mib"] > 0
    assert facts["numpy"] == np.__version__
