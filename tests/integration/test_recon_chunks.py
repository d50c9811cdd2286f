"""The job's map tasks without Spark: task plan and chunk back-projection sum to the kernel.

Pure (no cluster): lives next to the Spark tests because it pins what their map stage does."""
from __future__ import annotations

import dataclasses

import numpy as np

from recon_mapreduce import projection_store as store
from recon_mapreduce.bands import band_rows
from recon_mapreduce.fdk_fast import backproject_numba
from recon_mapreduce.filters import filter_projections
from recon_mapreduce.geometry import ConeBeamGeometry
from recon_mapreduce.spark_job import backproject_chunk, job_geometry, plan_tasks


def meta_for(geom, band_size):
    bands = [{"v0": v0, "v1": min(v0 + band_size, geom.n_rows)}
             for v0 in range(0, geom.n_rows, band_size)]
    return {"geometry": store.geometry_to_dict(geom), "bands": bands}


def test_tasks_split_stored_bands_and_sum_to_the_whole_volume():
    geom = ConeBeamGeometry.for_volume(20, 18, detector_shape=(30, 26))
    geom = dataclasses.replace(geom, offset_u=0.7, offset_v=-0.9)
    projections = np.random.default_rng(4).uniform(0, 1, (18, 30, 26)).astype(np.float32)
    meta = meta_for(geom, 12)  # stored bands [0,12) [12,24) [24,30)
    tasks = plan_tasks(meta, 5, 7)  # cut into 5-row bands and 7-angle chunks
    assert {(t.v0, t.v1) for t in tasks} == {(0, 5), (5, 10), (10, 12), (12, 17), (17, 22),
                                             (22, 24), (24, 29), (29, 30)}
    assert len(tasks) == 8 * 3
    volume = np.zeros((20, 20, 20))
    for task in tasks:
        first, stop = band_rows(task.stored["v0"], task.stored["v1"], geom.n_rows)
        raw = projections[task.a0:task.a1, first:stop]
        for z0, partial in backproject_chunk(raw, geom, task, 6, "hann"):
            volume[z0:z0 + partial.shape[0]] += partial
    whole = backproject_numba(filter_projections(projections, geom, "hann"), geom)
    assert np.sqrt(np.mean((volume - whole) ** 2) / np.mean(whole**2)) <= 1e-6


def test_tasks_on_the_kernels_window_path_sum_to_the_whole_volume():
    """Under 2 detector rows per voxel the kernel takes its AVX2 window path; bands still add up."""
    geom = ConeBeamGeometry.for_volume(24, 12, detector_shape=(48, 26))
    geom = dataclasses.replace(geom, offset_v=-0.6)
    projections = np.random.default_rng(5).uniform(0, 1, (12, 48, 26)).astype(np.float32)
    volume = np.zeros((24, 24, 24))
    for task in plan_tasks(meta_for(geom, 16), 7, 5):
        first, stop = band_rows(task.stored["v0"], task.stored["v1"], geom.n_rows)
        for z0, partial in backproject_chunk(projections[task.a0:task.a1, first:stop], geom,
                                             task, 8, "ram-lak"):
            volume[z0:z0 + partial.shape[0]] += partial
    whole = backproject_numba(filter_projections(projections, geom, "ram-lak"), geom)
    assert np.sqrt(np.mean((volume - whole) ** 2) / np.mean(whole**2)) <= 1e-6


def test_size_reconstructs_the_same_field_of_view_on_another_grid():
    geom = ConeBeamGeometry.for_volume(32, 10, voxel_size=0.5)
    other = job_geometry(meta_for(geom, 16), 20)
    assert other.n_voxels == 20 and other.voxel_size * 20 == geom.voxel_size * 32
    assert job_geometry(meta_for(geom, 16), None).n_voxels == 32


def test_a_memory_budget_cuts_tasks_until_the_largest_fits():
    from recon_mapreduce.spark_job import fit_tasks, task_bytes

    geom = ConeBeamGeometry.for_volume(64, 40, detector_shape=(128, 128))
    meta = meta_for(geom, 64)
    _, _, unbounded = fit_tasks(meta, geom, None, 20, 8, 1 << 40)
    assert len(unbounded) == 2 * 2
    largest = max(task_bytes(geom, t, 8) for t in unbounded)
    band, chunk, tasks = fit_tasks(meta, geom, None, 20, 8, largest // 3)
    assert max(task_bytes(geom, t, 8) for t in tasks) <= largest // 3
    assert len(tasks) > len(unbounded) and (band is not None or chunk < 20)
    covered = np.zeros((geom.n_angles, geom.n_rows), dtype=int)  # each (angle, row) once
    for t in tasks:
        covered[t.a0:t.a1, t.v0:t.v1] += 1
    assert (covered == 1).all()
