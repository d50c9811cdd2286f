"""MDC ingest over STOW-RS on the real cluster: the real `pacs gateway` (mutual TLS) with an edge
certificate from `pacs certs edge`, dicomweb-client as the sender.

(a) de-identified objects stored with dicomweb-client are durable (read back by sha256 through
    `stored.read_bytes`), findable through `query`, one batch file per series, tagged with the edge;
(b) no client certificate -> refused at TLS; the HAS client certificate -> 403; nothing stored;
(c) an identified object -> FailedSOPSequence 0xC000, nothing stored (no instance/sop row, no
    batch file), a log line without PHI;
(d) an identical re-send -> 200 and no second copy; changed content -> 0xC001, first kept.
"""
from __future__ import annotations

import copy
import io
import json
import socket
import subprocess

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_testdata_file

from deid import DeidKeys, deidentify
from pacs_hdfs import clients
from pacs_hdfs.dicom import index_rows as ix
from pacs_hdfs.dicom import query
from pacs_hdfs.dicom.commit import container_dir
from pacs_hdfs.dicom.received import as_part10
from pacs_hdfs.dicom.stored import read_bytes
from pacs_hdfs.dicom.synthetic import ct_series
from pacs_hdfs.schema import row_key
from tests.integration.hl7_support import PACS, Gateway

pytestmark = pytest.mark.cluster

EDGE = "edge-stow-it"
PHI_NAME = "Stowintegration^Hermione"
PHI_ID = "MRN-STOW-8841"
BOUNDARY = "stow-it-boundary"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gateway(cluster, tmp_path_factory):
    gw = Gateway(tmp_path_factory.mktemp("stow"), free_port())
    issued = subprocess.run([PACS, "certs", "edge", EDGE, "--dir", str(gw.certs.directory),
                             "--json"], capture_output=True, text=True, check=True, timeout=120)
    gw.edge = json.loads(issued.stdout)
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def stores(settings):
    return clients.hdfs(settings), clients.hbase(settings)


def edge_session(gw: Gateway) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = str(gw.certs.ca_cert)
    s.cert = (gw.edge["cert"], gw.edge["key"])
    return s


def dicomweb(gw: Gateway) -> DICOMwebClient:
    return DICOMwebClient(url=f"{gw.url}/dicomweb", session=edge_session(gw), timeout=120)


def deidentified(datasets, keys: DeidKeys | None = None) -> list[pydicom.Dataset]:
    keys = keys or DeidKeys.generate()
    return [deidentify(ds, keys).dataset for ds in datasets]


def encoded(ds) -> bytes:
    """The bytes dicomweb-client sends for ``ds`` (dcmwrite as is), as the MDC stores them."""
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds)
    return as_part10(buf.getvalue())


def multipart(parts: list[bytes]) -> tuple[bytes, dict]:
    body = b"".join(f"\r\n--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p
                    for p in parts) + f"\r\n--{BOUNDARY}--".encode()
    return body, {"Content-Type": f'multipart/related; type="application/dicom"; '
                                  f'boundary="{BOUNDARY}"'}


def post(session: requests.Session, gw: Gateway, datasets) -> requests.Response:
    body, headers = multipart([encoded(ds) for ds in datasets])
    return session.post(f"{gw.url}/dicomweb/studies", data=body, headers=headers, timeout=120)


def instance_key(ds) -> bytes:
    return ix.instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)


def batch_files(hdfs, ds) -> list[str]:
    return sorted(f.path for f in hdfs.list_status(container_dir(ds.StudyInstanceUID,
                                                                 ds.SeriesInstanceUID)))


def assert_nothing_stored(stores, datasets) -> None:
    hdfs, hbase = stores
    for ds in datasets:
        assert hbase.get("instance", instance_key(ds)) == {}
        assert hbase.get("sop", row_key(ds.SOPInstanceUID)) == {}
        assert batch_files(hdfs, ds) == []


def failures(response) -> list[tuple[str, int]]:
    items = response.json().get("00081198", {}).get("Value", [])
    return [(i["00081155"]["Value"][0], i["00081197"]["Value"][0]) for i in items]


# --- (a) dicomweb-client with an edge certificate ----------------------------------------

def test_dicomweb_client_stow_is_durable_findable_and_tagged_with_the_edge(gateway, stores):
    hdfs, hbase = stores
    keys = DeidKeys.generate()
    series = deidentified(ct_series(4, patient_id=PHI_ID, patient_name=PHI_NAME, size=512), keys)
    files = deidentified([pydicom.dcmread(get_testdata_file(n))
                          for n in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm")], keys)
    objs = series + files          # > 1 MB: dicomweb-client sends it chunked
    answer = dicomweb(gateway).store_instances(objs)
    assert "FailedSOPSequence" not in answer
    assert sorted(i.ReferencedSOPInstanceUID for i in answer.ReferencedSOPSequence) == \
        sorted(ds.SOPInstanceUID for ds in objs)
    assert len(batch_files(hdfs, series[0])) == 1          # the whole series: one batch file
    for ds in objs:
        key = instance_key(ds)
        row = hbase.get("instance", key)
        assert row[b"l:edge"] == EDGE.encode()
        assert read_bytes(hbase, hdfs, key, row) == encoded(ds)   # checked against l:sha256
        assert hbase.get("sop", row_key(ds.SOPInstanceUID)) == {b"r:key": key}
    study = pydicom.Dataset()
    study.QueryRetrieveLevel = "STUDY"
    study.StudyInstanceUID = series[0].StudyInstanceUID
    study.PatientID = ""
    study.NumberOfStudyRelatedInstances = ""
    found = list(query.find(hbase, study))
    assert [(f.PatientID, int(f.NumberOfStudyRelatedInstances)) for f in found] == [
        (series[0].PatientID, 4)]
    image = pydicom.Dataset()
    image.QueryRetrieveLevel = "IMAGE"
    image.StudyInstanceUID = files[1].StudyInstanceUID
    image.SOPInstanceUID = ""
    assert [f.SOPInstanceUID for f in query.find(hbase, image)] == [files[1].SOPInstanceUID]
    logs = gateway.logs()
    assert f"stow from edge {EDGE}: 7 object(s), 7 stored" in logs
    assert PHI_NAME not in logs and PHI_ID not in logs


# --- (b) who may store ---------------------------------------------------------------------

def test_without_client_certificate_tls_refuses(gateway, stores):
    objs = deidentified(ct_series(1, patient_id=PHI_ID, patient_name=PHI_NAME, size=32))
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        post(gateway.session(with_cert=False), gateway, objs)
    assert_nothing_stored(stores, objs)


def test_has_client_certificate_is_403(gateway, stores):
    objs = deidentified(ct_series(1, patient_id=PHI_ID, patient_name=PHI_NAME, size=32))
    r = post(gateway.session(with_cert=True), gateway, objs)    # the HAS client of certs init
    assert r.status_code == 403
    assert_nothing_stored(stores, objs)
    assert "is not an edge identity (403)" in gateway.logs()


# --- (c) identified objects are refused ------------------------------------------------------

def test_identified_object_is_refused_and_nothing_stored(gateway, stores):
    identified = ct_series(2, patient_id=PHI_ID, patient_name=PHI_NAME, size=32)
    r = post(edge_session(gateway), gateway, identified)
    assert r.status_code == 409
    assert sorted(failures(r)) == sorted((ds.SOPInstanceUID, 0xC000) for ds in identified)
    assert "not de-identified (0xC000)" in r.headers["Warning"]
    assert_nothing_stored(stores, identified)
    logs = gateway.logs()
    assert f"stow refused from edge {EDGE}: (unverified) 0xC000 not de-identified" in logs
    assert PHI_NAME not in logs and PHI_ID not in logs
    assert identified[0].SOPInstanceUID not in logs

    good = deidentified(ct_series(1, patient_id=PHI_ID, patient_name=PHI_NAME, size=32))
    mixed = post(edge_session(gateway), gateway, [identified[0], *good])
    assert mixed.status_code == 202
    assert failures(mixed) == [(identified[0].SOPInstanceUID, 0xC000)]
    assert_nothing_stored(stores, identified[:1])
    assert stores[1].get("instance", instance_key(good[0]))[b"l:edge"] == EDGE.encode()


# --- (d) duplicates and conflicts ------------------------------------------------------------

def test_identical_resend_is_200_without_a_second_copy_and_changed_content_conflicts(gateway,
                                                                                    stores):
    hdfs, hbase = stores
    objs = deidentified(ct_series(3, patient_id=PHI_ID, patient_name=PHI_NAME, size=64))
    assert post(edge_session(gateway), gateway, objs).status_code == 200
    files = batch_files(hdfs, objs[0])
    rows = {instance_key(ds): hbase.get("instance", instance_key(ds)) for ds in objs}
    assert len(files) == 1

    again = post(edge_session(gateway), gateway, objs)
    assert again.status_code == 200 and "00081198" not in again.json()
    assert batch_files(hdfs, objs[0]) == files
    assert {k: hbase.get("instance", k) for k in rows} == rows

    changed = copy.deepcopy(objs[0])
    changed.SeriesDescription = "CT CHEST AXIAL"  # changed after the first send (vocabulary words)
    conflict = post(edge_session(gateway), gateway, [changed])
    assert conflict.status_code == 409
    assert failures(conflict) == [(changed.SOPInstanceUID, 0xC001)]
    assert batch_files(hdfs, objs[0]) == files
    key = instance_key(objs[0])
    assert read_bytes(hbase, hdfs, key, hbase.get("instance", key)) == encoded(objs[0])
