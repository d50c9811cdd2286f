"""Cohort export on the real cluster (issue 18 item 1), in a scratch namespace of its own
(tests/namespace_support.py: HDFS root, HBase prefix, $PACS_HOME and so its own job runner).

Three patients' CT studies arrive through the real path (modality -> `pacs edge` ->
de-identification -> STOW-RS -> gateway -> HDFS + HBase), every PHI-bearing attribute filled
with a per-patient marker; two of them get visits (C50) through the gateway's VisitStore.
An analyst exports the search `icd10=C50` from the portal ("Export this search", which resolves
the criteria to the two cases with the live index) and the job runs on Spark. Then:

* the zip checks out against its manifest (`verify_zip`), holds exactly the two cases' DICOM
  objects, each byte-identical (sha256) to what storage holds, and never the third case;
* one NIfTI volume opens with nibabel, with the series' shape, spacing and position (affine
  corners against ImagePositionPatient/PixelSpacing, LPS -> RAS);
* visits CSV and Parquet hold the two cases' three visits;
* no PHI marker is anywhere in the zip (raw or decompressed);
* the download: the owner gets the zip (sha256 as in the result) and the download is audited
  with bytes and sha256; another analyst and a teacher get 403;
* a CLI submission with criteria alone is refused with where to go instead.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import time
import uuid
import zipfile
from datetime import datetime
from types import SimpleNamespace

import numpy as np
import pytest

from tests.integration.dicom_support import DCMTK, VENV_BIN, deid_uid, scp_process, store
from tests.portal_support import make_user, portal_process, signed_in

pytestmark = pytest.mark.cluster

SLICES, SIZE, SPACING = 6, 64, 0.977
JOB_TIMEOUT_S = 1800


@pytest.fixture(scope="module")
def ns(cluster, tmp_path_factory):
    from tests.namespace_support import scratch_namespace_env
    with scratch_namespace_env("export", tmp_path_factory.mktemp("export-home")) as (s, env):
        yield SimpleNamespace(settings=s, env=env)


def _patient(tag: str, marker: str, n: int = SLICES):
    from pacs_hdfs.dicom.synthetic import add_phi_markers, ct_series
    study = f"2.25.{uuid.uuid4().int}"
    series = ct_series(n, patient_id=f"X{tag}", patient_name=f"{marker}^Name", study_uid=study,
                       size=SIZE, accession=f"A{tag}")
    for ds in series:
        add_phi_markers(ds, marker)
        px = bytearray(ds.PixelData)     # distinct pixels: identical bytes would hide a mix-up
        px[:8] = os.urandom(8)
        ds.PixelData = bytes(px)
    return study, series


def _visit(pseudonym: str, n: int, code: str, accession: str):
    from hl7_gateway.models import Diagnosis, Exam, Visit
    return Visit(visit_id=f"EXPV{uuid.uuid4().hex[:12]}", patient_id=pseudonym, sex="F",
                 age=60 + n, city="Maribor", admission=datetime(2023, 3, 1 + n, 9, 30),
                 discharge=datetime(2023, 3, 3 + n, 12, 0),
                 diagnoses=[Diagnosis(system="ICD10", code=code, primary=True)],
                 exams=[Exam(kind="CT", accession=accession, text="no focal lesion")])


@pytest.fixture(scope="module")
def world(ns, tmp_path_factory):
    if not DCMTK:
        pytest.skip("dcmtk is not installed (apt-get install -y dcmtk)")
    from hl7_gateway.store import VisitStore
    from pacs_hdfs import clients
    from pacs_hdfs.dicom import query
    from pacs_hdfs.dicom.synthetic import write_files
    from analytics_jobs.export.job import identifier
    d = tmp_path_factory.mktemp("export")
    markers = {k: f"ZQX{k}{uuid.uuid4().hex[:8].upper()}" for k in "ABC"}
    patients = {k: _patient(f"{k}{uuid.uuid4().hex[:6]}", m) for k, m in markers.items()}
    hbase = clients.hbase(ns.settings)
    port = _port()
    with scp_process(d, port, _port()) as scp:
        files = [p for k, (_s, series) in patients.items()
                 for p in write_files(series, d / k)]
        store(files, port=port)
        studies = {k: deid_uid(scp, s) for k, (s, _series) in patients.items()}
        pseudonym, accession = {}, {}
        for k, study in studies.items():
            rows = list(query.matching_rows(hbase, identifier("STUDY", StudyInstanceUID=study)))
            assert len(rows) == 1, f"study {k} not indexed"
            pseudonym[k] = rows[0][1]["PatientID"]
            accession[k] = rows[0][1].get("AccessionNumber", "")
        VisitStore(ns.settings).store(
            [_visit(pseudonym["A"], 0, "C50.9", accession["A"]),
             _visit(pseudonym["A"], 5, "C50.4", ""),
             _visit(pseudonym["B"], 1, "C50.1", accession["B"])])
        with portal_process() as portal:
            yield SimpleNamespace(
                dir=d, portal=portal.url, markers=markers, studies=studies,
                pseudonym=pseudonym, hbase=hbase, hdfs=clients.hdfs(ns.settings),
                owner=make_user(ns.settings, "analyst", "exp"),
                other=make_user(ns.settings, "analyst", "exp"),
                teacher=make_user(ns.settings, "teacher", "exp"))


def _port() -> int:
    from tests.portal_support import free_port
    return free_port()


@pytest.fixture(scope="module")
def export(world):
    """The owner exports `icd10=C50` from the search page; waits for the job."""
    s, csrf = signed_in(world.portal, *world.owner)
    deadline = time.monotonic() + 120
    while True:   # the live index tails the visits' feed rows: wait until both cases show
        page = s.get(f"{world.portal}/search", params={"icd10": "C50"}).text
        if all(world.pseudonym[k] in page for k in "AB") and 'id="export-search"' in page:
            break
        assert time.monotonic() < deadline, "the search never showed both cases"
        time.sleep(2)
    assert world.pseudonym["C"] not in page
    r = s.post(f"{world.portal}/search/export", data={"icd10": "C50", "csrf_token": csrf},
               allow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    job_id = r.headers["location"].rsplit("/", 1)[-1]
    t0 = time.monotonic()
    while True:
        rec = s.get(f"{world.portal}/api/jobs/{job_id}").json()
        if rec["final"]:
            break
        assert time.monotonic() - t0 < JOB_TIMEOUT_S, f"export job still {rec['state']}"
        time.sleep(2)
    assert rec["state"] == "succeeded", rec["error"]
    result = json.loads(s.get(f"{world.portal}/jobs/{job_id}/result.json").content)
    page = s.get(f"{world.portal}/jobs/{job_id}").text
    assert 'id="download-export"' in page
    r = s.get(f"{world.portal}/jobs/{job_id}/export.zip")
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"] == "application/zip"
    return SimpleNamespace(job_id=job_id, rec=rec, result=result, zip=r.content,
                           wall_s=time.monotonic() - t0)


def test_zip_checks_out_and_matches_storage(world, export):
    from analytics_jobs.export.manifest import verify_zip
    from pacs_hdfs.rows import instance
    data = export.zip
    assert hashlib.sha256(data).hexdigest() == export.result["export"]["sha256"]
    assert len(data) == export.result["export"]["bytes"]
    assert verify_zip(io.BytesIO(data)) == []
    zf = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(zf.read("manifest.json"))
    assert manifest["selection"]["criteria"] == {"icd10": "C50"}
    assert sorted(manifest["selection"]["pseudonyms"]) == sorted(world.pseudonym[k] for k in "AB")
    assert manifest["counts"]["cases"] == 2 and manifest["counts"]["instances"] == 2 * SLICES
    # every stored object of the two cases, byte-identical, and nothing else
    expected = {}
    for k in "AB":
        study = world.studies[k]
        for key, row in world.hbase.scan(instance.TABLE, row_prefix=instance.prefix(study)):
            _study, series, sop = instance.parse_key(key)
            path = f"dicom/{world.pseudonym[k]}/{study}/{series}/{sop}.dcm"
            loc = instance.location(row)
            stored = world.hdfs.read(loc.path, loc.offset, loc.length)
            expected[path] = hashlib.sha256(stored).hexdigest()
    got = {n: hashlib.sha256(zf.read(n)).hexdigest() for n in zf.namelist()
           if n.startswith("dicom/")}
    assert got == expected and len(got) == 2 * SLICES
    assert not any(world.pseudonym["C"] in n or world.studies["C"] in n for n in zf.namelist())
    assert {"README.md", "visits/visits.csv", "visits/visits.parquet"} <= set(zf.namelist())


def test_nifti_matches_the_series_geometry(world, export, tmp_path):
    nibabel = pytest.importorskip("nibabel", reason="nibabel is the test extra (make venv)")
    zf = zipfile.ZipFile(io.BytesIO(export.zip))
    volumes = [n for n in zf.namelist() if n.startswith(f"nifti/{world.pseudonym['A']}/")
               and n.endswith(".nii.gz")]
    assert len(volumes) == 1, (zf.namelist(), export.result.get("skipped"))
    assert f"{volumes[0][:-len('.nii.gz')]}.json" in zf.namelist()
    (tmp_path / "v.nii.gz").write_bytes(zf.read(volumes[0]))
    img = nibabel.load(tmp_path / "v.nii.gz")
    assert img.shape == (SIZE, SIZE, SLICES)
    assert np.allclose(img.header.get_zooms()[:3], (SPACING, SPACING, 1.0), atol=1e-3)
    # the corners of the voxel grid, in RAS, are the DICOM pixel centres' corners
    # (ImagePositionPatient (-250, -250, k) LPS, rows and columns along +x/+y): LPS -> RAS
    # negates x and y; dcm2niix may flip axes, so compare the sets of corners
    idx = np.array([[i, j, k, 1] for i in (0, SIZE - 1) for j in (0, SIZE - 1)
                    for k in (0, SLICES - 1)], float)
    got = sorted(map(tuple, np.round((img.affine @ idx.T).T[:, :3], 2)))
    xs = (250.0, 250.0 - SPACING * (SIZE - 1))
    want = sorted((round(x, 2), round(y, 2), float(z)) for x in xs for y in xs
                  for z in (0, SLICES - 1))
    assert np.allclose(got, want, atol=0.02), (img.affine, got, want)


def test_visits_and_no_phi(world, export):
    import pyarrow.parquet as pq
    zf = zipfile.ZipFile(io.BytesIO(export.zip))
    table = pq.read_table(io.BytesIO(zf.read("visits/visits.parquet")))
    assert table.num_rows == 3
    assert sorted(set(table.column("patient_id").to_pylist())) == sorted(
        world.pseudonym[k] for k in "AB")
    assert len(zf.read("visits/visits.csv").decode().strip().splitlines()) == 4
    for marker in world.markers.values():
        needle = marker.encode()
        assert needle not in export.zip
        for name in zf.namelist():
            assert needle not in zf.read(name), (marker, name)


def test_download_is_for_the_owner_and_admins_only_and_audited(world, export, ns):
    from pacs_hdfs import audit
    events = [e for e in audit.query(ns.settings, action="download-export", limit=50)
              if e.details.get("job") == export.job_id]
    assert len(events) == 1 and events[0].user == world.owner[0]
    assert events[0].details["sha256"] == export.result["export"]["sha256"]
    assert events[0].details["bytes"] == len(export.zip)
    for who in (world.other, world.teacher):
        s, _ = signed_in(world.portal, *who)
        r = s.get(f"{world.portal}/jobs/{export.job_id}/export.zip")
        assert r.status_code == 403, (who[0], r.status_code)
    s, csrf = signed_in(world.portal, *world.teacher)
    r = s.post(f"{world.portal}/search/export", data={"icd10": "C50", "csrf_token": csrf},
               allow_redirects=False)
    assert r.status_code == 403          # teachers search, but cannot export


def test_cli_refuses_criteria_alone(ns):
    r = subprocess.run([str(VENV_BIN / "pacs"), "job", "submit", "export", "--criteria",
                        '{"icd10": "C50"}'], env=ns.env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "Export this search" in (r.stdout + r.stderr), r.stderr[-800:]


def test_result_numbers(export):
    n = export.result["numbers"]
    assert n["cases"] == 2 and n["studies"] == 2 and n["nifti_volumes"] == 2
    assert n["zip_bytes"] == len(export.zip) and n["mb_per_s"] > 0
    print(f"\nexport: {n['zip_bytes'] / 1e6:.2f} MB in {n['seconds']} s = {n['mb_per_s']} MB/s "
          f"(stage {n['stage_seconds']} s, zip {n['zip_seconds']} s); load {os.getloadavg()}")
