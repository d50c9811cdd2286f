"""Geometry conventions and the analytic phantom's exact projections."""

import numpy as np
import pytest

from recon_mapreduce import phantom
from recon_mapreduce.geometry import ConeBeamGeometry


@pytest.fixture(scope="module")
def geom():
    return ConeBeamGeometry.for_volume(24, 8, detector_shape=(40, 44))


def test_uniform_scan_angle_weights_are_half_the_step(geom):
    assert np.allclose(geom.angle_weights(), np.pi / geom.n_angles)
    assert geom.uniform_angle_weight == pytest.approx(np.pi / geom.n_angles)


def test_uneven_angle_weights_cover_half_the_circle():
    angles = np.sort(np.random.default_rng(1).uniform(0, 2 * np.pi, 17))
    geom = ConeBeamGeometry(400, 600, 8, 8, 1, 1, angles, 8, 1.0)
    weights = geom.angle_weights()
    assert weights.sum() == pytest.approx(np.pi)
    assert np.all(weights > 0)


def test_detector_covers_the_volume(geom):
    corners = [(sx * 12, sy * 12, sz * 12) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]
    for beta in np.linspace(0, 2 * np.pi, 13):
        for corner in corners:
            row, col = geom.project_point(np.array(corner), beta)
            assert 0 <= row <= geom.n_rows - 1 and 0 <= col <= geom.n_cols - 1


def test_pixel_positions_agree_with_project_point(geom):
    beta = 0.7
    pixels = geom.pixel_positions(beta)
    source = geom.source_position(beta)
    # a point two thirds of the way from the source to pixel (row 5, col 30) projects back there
    point = source + (pixels[5, 30] - source) * 2 / 3
    assert geom.project_point(point, beta) == pytest.approx((5.0, 30.0), abs=1e-9)


def test_rotation_is_counter_clockwise_and_rows_follow_z(geom):
    row_center, col_center = (geom.n_rows - 1) / 2, (geom.n_cols - 1) / 2
    point = np.array([0.0, 5.0, 3.0])  # +y and +z
    row, col = geom.project_point(point, 0.0)
    assert col > col_center and row > row_center  # +y is along e_u at beta = 0
    _, col_quarter = geom.project_point(point, np.pi / 2)
    assert col_quarter == pytest.approx(col_center)  # source now on +y: the point is on the axis


def test_sphere_chord_length_matches_geometry():
    radius = 3.0
    sphere = phantom.sphere_ellipsoids((1.0, 2.0, 0.0), radius)[0]
    origin = np.array([[-10.0, 2.0, 0.0], [-10.0, 2.0 + 2.0, 0.0], [-10.0, 9.0, 0.0]])
    direction = np.tile([1.0, 0.0, 0.0], (3, 1))
    expected = [2 * radius, 2 * np.sqrt(radius**2 - 4.0), 0.0]
    assert np.allclose(phantom.chord_lengths(sphere, origin, direction), expected)


def test_projection_of_point_object_peaks_where_the_geometry_says(geom):
    centre = (5.0, -3.0, 4.0)
    projections = phantom.project(phantom.sphere_ellipsoids(centre, 1.2), geom)
    for index, beta in enumerate(geom.angles):
        row, col = geom.project_point(np.array(centre), beta)
        peak = np.unravel_index(np.argmax(projections[index]), projections[index].shape)
        assert abs(peak[0] - row) <= 1 and abs(peak[1] - col) <= 1


def test_projection_sum_equals_volume_integral_for_central_ray_bundle():
    # In parallel-ish geometry (huge DSO) the sum of a projection times pixel area equals the
    # ellipsoid's integral: value * 4/3 pi abc. Checks chord lengths and units together.
    geom = ConeBeamGeometry(1e6, 1e6 + 1, 96, 96, 0.5, 0.5, np.array([0.3]), 24, 1.0)
    ellipsoid = np.array([[0.5, 6.0, 4.0, 5.0, 1.0, -2.0, 3.0, 20.0]])
    integral = phantom.project(ellipsoid, geom)[0].sum() * geom.du * geom.dv
    assert integral == pytest.approx(0.5 * 4 / 3 * np.pi * 6 * 4 * 5, rel=1e-2)


def test_voxelised_shepp_logan_has_the_modified_levels(geom):
    volume = phantom.voxelise(phantom.shepp_logan_ellipsoids(geom), geom)
    n = geom.n_voxels
    assert volume[n // 2, n // 2, n // 2] == pytest.approx(0.2)  # brain: 1 - 0.8
    assert volume.max() <= 1.0 + 1e-12 and volume[0, 0, 0] == 0.0
