"""Projection layout on HDFS: band files with the halo row, ranged reads of an angle run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import numpy as np
import pytest

from pacs_hdfs import clients
from recon_mapreduce import projection_store as store
from recon_mapreduce.geometry import ConeBeamGeometry

pytestmark = pytest.mark.cluster


def test_band_files_hold_rows_plus_halo_and_read_by_angle_range(cluster, settings):
    hdfs = clients.hdfs(settings)
    directory = f"tmp/test-recon-store-{uuid.uuid4().hex[:10]}"
    geom = ConeBeamGeometry.for_volume(8, 10, detector_shape=(13, 6))
    projections = np.random.default_rng(1).standard_normal((10, 13, 6)).astype(np.float32)
    try:
        meta = store.write_projections(hdfs, directory, projections, geom, band_size=5)
        assert [(b["v0"], b["v1"]) for b in meta["bands"]] == [(0, 5), (5, 10), (10, 13)]
        again = store.read_meta(hdfs, directory)
        assert store.geometry_from_dict(again["geometry"]).angles.tolist() == geom.angles.tolist()
        layout = store.band_layout(again)
        middle = store.read_band(hdfs, hdfs.abs(directory), layout[1], geom.n_cols, 3, 7)
        assert np.array_equal(middle, projections[3:7, 5:11])  # rows 5..10: one halo row
        last = store.read_band(hdfs, hdfs.abs(directory), layout[2], geom.n_cols, 0, 10)
        assert np.array_equal(last, projections[:, 10:13])  # no halo past the detector
    finally:
        hdfs.delete(directory, recursive=True)


def test_simulate_command_writes_bands_geometry_and_truth(cluster, settings):
    hdfs = clients.hdfs(settings)
    directory = f"tmp/test-recon-sim-{uuid.uuid4().hex[:10]}"
    try:
        out = subprocess.run([sys.executable, "-m", "pacs_cli", "recon", "simulate", "--size",
                              "16", "--angles", "12", "--out", directory, "--json"],
                             capture_output=True, text=True, timeout=300, env=os.environ.copy())
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout)
        assert summary["detector"] == [32, 32] and summary["bands"] == 2
        meta = store.read_meta(hdfs, directory)
        truth = store.read_truth(hdfs, directory, meta)
        assert truth.shape == (16, 16, 16) and truth.max() == pytest.approx(1.0)
    finally:
        hdfs.delete(directory, recursive=True)
