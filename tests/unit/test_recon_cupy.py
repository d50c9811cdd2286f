"""CuPy kernel equals the NumPy reference (skipped without a GPU)."""

import numpy as np
import pytest

from recon_mapreduce import fdk_cupy
from recon_mapreduce.fdk_reference import backproject_reference
from recon_mapreduce.geometry import ConeBeamGeometry

pytestmark = pytest.mark.skipif(not fdk_cupy.available(), reason="no GPU/CuPy")


def test_cupy_matches_reference():
    rng = np.random.default_rng(11)
    geom = ConeBeamGeometry(90.0, 140.0, 30, 34, 1.3, 1.1, np.sort(rng.uniform(0, 6.28, 20)), 20,
                            1.0, offset_u=1.7, offset_v=-0.9)
    filtered = rng.standard_normal((geom.n_angles, geom.n_rows, geom.n_cols)).astype(np.float32)
    reference = backproject_reference(filtered, geom)
    gpu = fdk_cupy.backproject_cupy(filtered, geom, angle_chunk=7)
    assert np.sqrt(np.mean((gpu - reference) ** 2) / np.mean(reference**2)) <= 1e-5
