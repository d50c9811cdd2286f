"""The fdk job on the real cluster, submitted through the job service: equality with the
single-node kernel, phantom accuracy, the DICOM series in the PACS, and an executor killed
mid-job."""
from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pydicom
import pytest

from pacs_hdfs import clients
from pacs_hdfs.containers import read_object
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.rows import instance
from pacs_hdfs.schema import row_key
from recon_mapreduce import charts, phantom, projection_store, spark_job
from recon_mapreduce.fdk_fast import backproject_numba
from recon_mapreduce.filters import filter_projections
from recon_mapreduce.geometry import ConeBeamGeometry

pytestmark = pytest.mark.cluster

# The accuracy region and threshold of the kernel unit test, reused as is.
_spec = importlib.util.spec_from_file_location(
    "unit_fdk", Path(__file__).parents[1] / "unit" / "test_recon_fdk.py")
unit_fdk = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(unit_fdk)

# small case: 40^3 from 80 projections (the unit test's phantom case), 6 stored bands of 8 rows
PARAMS = {"size": 40, "band_rows": 8, "slab_size": 8, "angle_chunk": 4, "filter": "ram-lak"}


@pytest.fixture(scope="module")
def scan(cluster, settings):
    hdfs = clients.hdfs(settings)
    directory = f"tmp/test-recon-{uuid.uuid4().hex[:10]}"
    geom = ConeBeamGeometry.for_volume(40, 80, detector_shape=(48, 56))
    ellipsoids = phantom.shepp_logan_ellipsoids(geom)
    projections = phantom.project(ellipsoids, geom)
    truth = phantom.voxelise(ellipsoids, geom, supersample=2)
    projection_store.write_projections(hdfs, directory, projections, geom, band_size=8,
                                       truth=truth, extra={"phantom": charts.SIMULATED_PHANTOM})
    reference = backproject_numba(filter_projections(projections, geom, "ram-lak"), geom)
    yield {"dir": directory, "geom": geom, "truth": truth, "reference": reference}
    hdfs.delete(directory, recursive=True)


def patiently(call, timeout: float = 120):
    """Retry a call through short HBase/HDFS outages (others run fault tests on this cluster)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except StorageError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def submit_and_wait(settings, params: dict, during=None, with_chart: bool = False):
    from analytics_jobs.service import JobService

    service = JobService(settings)
    record = patiently(lambda: service.submit("fdk", params))
    if during:
        during(service, record.id)
    deadline = time.monotonic() + 600
    while not (record := patiently(lambda: service.status(record.id))).final:
        assert time.monotonic() < deadline, f"fdk job {record.id} still {record.state}"
        time.sleep(0.3)
    assert record.state == "succeeded", record.error
    result = json.loads(patiently(lambda: service.artifact(record.id)))
    if with_chart:
        assert "chart.png" in record.artifacts
        return result, patiently(lambda: service.artifact(record.id, "chart.png"))
    return result


def volume_of(settings, result) -> np.ndarray:
    hdfs = clients.hdfs(settings)
    return spark_job.read_volume(hdfs, json.loads(hdfs.read(result["volume"]["path"])))


@pytest.fixture(scope="module")
def reference_job(scan, settings):
    result, chart = submit_and_wait(settings, {"projections": scan["dir"], **PARAMS,
                                               "dicom": True}, with_chart=True)
    return result, volume_of(settings, result), chart


def test_chart_and_numbers_table(reference_job):
    from PIL import Image

    result, _, chart = reference_job
    assert chart.startswith(b"\x89PNG\r\n\x1a\n")
    assert Image.open(io.BytesIO(chart)).size == (1100, 750)
    assert result["chart"]["compared_with"] == "phantom"   # the scan records its phantom
    numbers = {row["quantity"]: row for row in result["numbers"]}
    assert numbers["RMSE against the phantom"]["value"] == pytest.approx(
        result["accuracy"]["rmse"], abs=1e-6)
    assert numbers["volume size"]["value"] == "40 × 40 × 40"


def test_spark_volume_equals_the_single_node_kernel(scan, reference_job):
    result, volume, _ = reference_job
    reference = scan["reference"]
    assert volume.shape == reference.shape
    relative = np.sqrt(np.mean((volume - reference) ** 2) / np.mean(reference**2))
    assert relative <= 1e-6
    assert result["spark"]["map_tasks"] == 6 * 20  # 6 bands x 20 chunks of 4 angles
    assert result["spark"]["slabs"] == 5


def test_phantom_accuracy_meets_the_kernel_threshold(scan, reference_job):
    result, volume, _ = reference_job
    mask = unit_fdk.central_mask(scan["geom"])
    local_rmse = unit_fdk.rmse(volume, scan["truth"], mask)
    assert local_rmse <= unit_fdk.MAX_RMSE
    # the job's own report agrees with a computation on the assembled volume
    assert result["accuracy"]["rmse"] == pytest.approx(local_rmse, rel=1e-3)
    assert result["accuracy"]["psnr_db"] >= unit_fdk.MIN_PSNR_DB
    assert unit_fdk.rmse(volume[::-1], scan["truth"], mask) > unit_fdk.MAX_RMSE


def test_dicom_series_is_in_the_pacs(settings, scan, reference_job):
    result, volume, _ = reference_job
    series = result["dicom"]
    assert series["instances"] == 40
    hbase, hdfs = clients.hbase(settings), clients.hdfs(settings)
    study, series_uid = series["study_uid"], series["series_uid"]
    assert study.startswith("2.25.") and series_uid.startswith("2.25.")
    assert hbase.get("series", row_key(study, series_uid))[b"a:Modality"] == b"CT"
    assert hbase.get("study", row_key(study))
    rows = hbase.scan("instance", row_prefix=row_key(study, series_uid, ""))
    assert len(rows) == 40
    key, row = rows[0]
    ds = pydicom.dcmread(io.BytesIO(read_object(hdfs, instance.location(row))))
    assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert "FDK" in ds.DerivationDescription and ds.PatientID.startswith("SIM-")
    k = int(ds.InstanceNumber) - 1
    from recon_mapreduce.dicom_series import hu_of, to_hu
    assert np.abs(hu_of(ds) - to_hu(volume[k])).max() <= 0.5 + 1e-6


def _runner_executor_pids(settings) -> list[int]:
    """Executor JVMs of the job runner's application (other engineers' apps are left alone)."""
    import psutil

    runner = psutil.Process(int(settings.path("run", "job-runner.pid").read_text().strip()))
    ports = {c.laddr.port for child in runner.children(recursive=True)
             for c in child.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    out = subprocess.run(["pgrep", "-f", "CoarseGrainedExecutorBackend"], capture_output=True,
                         text=True).stdout.split()
    pids = []
    for pid in map(int, out):
        try:
            cmdline = " ".join(psutil.Process(pid).cmdline())
        except psutil.NoSuchProcess:
            continue
        if any(f"CoarseGrainedScheduler@127.0.0.1:{port} " in cmdline + " " for port in ports):
            pids.append(pid)
    return pids


def test_killed_executor_gives_the_identical_volume(settings, scan, reference_job):
    killed = []

    def kill_mid_job(service, job_id):
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            record = patiently(lambda: service.status(job_id))
            assert not record.final, "job ended before an executor could be killed"
            if 0.1 <= record.progress < 0.6:
                for pid in _runner_executor_pids(settings):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                if killed:
                    return
            time.sleep(0.1)
        pytest.fail("the job never reached the middle of its map stage")

    result = submit_and_wait(settings, {"projections": scan["dir"], **PARAMS, "dicom": False},
                             during=kill_mid_job)
    assert killed
    assert np.array_equal(volume_of(settings, result), reference_job[1])
