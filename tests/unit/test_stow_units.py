"""STOW-RS without a cluster: the response (status, dicom+json), one received object's verdict,
and the routes over the real Committer into an in-memory archive (group commit, duplicates,
conflicts, refusals that store nothing, every request-level error), plus edge identities."""
from __future__ import annotations

import io
import json
import logging
import os
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi import FastAPI
from fastapi.testclient import TestClient

from deid import DeidKeys, deidentify
from hl7_gateway.certs import create_dev_pki, issue_edge_cert
from hl7_gateway.tls_scope import with_tls
from pacs_hdfs.containers import ContainerWriter
from pacs_hdfs.dicom.commit import Committer
from pacs_hdfs.dicom.edge_identity import EDGE_ORG_UNIT, Peer, peer_from_scope
from pacs_hdfs.dicom.received import KIND_NOT_DEID, PREAMBLE, receive
from pacs_hdfs.dicom.stow import stow_router, warning_headers
from pacs_hdfs.dicom.stow_response import InstanceResult, http_status, response_json
from pacs_hdfs.dicom.synthetic import ct_series
from pacs_hdfs.hdfs_store import StorageError
from tests.memory_store import MemoryStore
from tests.memory_archive import MemoryFiles

BOUNDARY = "stow-test-boundary"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
PHI_NAME = "Stowtest^Patricia"
CT = "1.2.840.10008.5.1.4.1.1.2"


# --- helpers ------------------------------------------------------------------------------

def encode(ds, preamble: bool = True) -> bytes:
    buf = io.BytesIO()
    if preamble:
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    else:
        pydicom.dcmwrite(buf, ds)
    return buf.getvalue()


def deidentified_series(n: int, keys: DeidKeys | None = None, **kw) -> list[pydicom.Dataset]:
    keys = keys or DeidKeys.generate()
    series = ct_series(n, patient_id="MRN-4411", patient_name=PHI_NAME, size=16, **kw)
    return [deidentify(ds, keys).dataset for ds in series]


def multipart(parts: list[bytes], part_type: str = "application/dicom") -> bytes:
    out = b""
    for p in parts:
        out += (f"\r\n--{BOUNDARY}\r\nContent-Type: {part_type}\r\n\r\n").encode() + p
    return out + f"\r\n--{BOUNDARY}--".encode()


class CountingStore(MemoryStore):
    """MemoryStore that counts put_many calls per table (one HBase batch each)."""

    def __init__(self):
        super().__init__()
        self.batches: Counter = Counter()

    def put_many(self, table, rows):
        self.batches[table] += 1
        super().put_many(table, rows)


class Archive:
    def __init__(self, max_bytes: int = 8 << 20, edge: str | None = "edge-a"):
        self.hbase, self.files = CountingStore(), MemoryFiles()
        self.committer = Committer(self.hbase, ContainerWriter(self.files, writer="unit",
                                                               attempts=1))
        app = FastAPI()
        app.include_router(stow_router(self.committer, max_bytes,
                                       identify=lambda scope: Peer(edge, f"CN={edge}")))
        self.client = TestClient(app)

    def post(self, data: bytes, path: str = "/dicomweb/studies", content_type=CONTENT_TYPE):
        return self.client.post(path, content=data, headers={"content-type": content_type})

    def instance_rows(self) -> dict:
        return self.hbase.tables.get("instance", {})


def referenced(response) -> list[tuple[str, int | None]]:
    items = response.json().get("00081199", {}).get("Value", [])
    return [(i["00081155"]["Value"][0], i.get("00081196", {}).get("Value", [None])[0])
            for i in items]


def failed(response) -> list[tuple[str, int]]:
    items = response.json().get("00081198", {}).get("Value", [])
    return [(i["00081155"].get("Value", [""])[0], i["00081197"]["Value"][0]) for i in items]


# --- the response -------------------------------------------------------------------------

@pytest.mark.parametrize("results, status", [
    ([InstanceResult(CT, "2.25.1")], 200),
    ([InstanceResult(CT, "2.25.1"), InstanceResult(CT, "2.25.2", warning=0xB007)], 202),
    ([InstanceResult(CT, "2.25.1"), InstanceResult(CT, "2.25.2", failure=0xC000)], 202),
    ([InstanceResult(CT, "2.25.1", failure=0xC001)], 409),
    ([InstanceResult(CT, "2.25.1", failure=0xA700), InstanceResult(failure=0xC000)], 409),
    ([InstanceResult(CT, "2.25.1", failure=0xA700)] * 2, 503),
])
def test_http_status(results, status):
    assert http_status(results) == status


def test_response_json_is_ps318_dicom_json():
    body = response_json([InstanceResult(CT, "2.25.1", warning=0xB007),
                          InstanceResult(CT, "2.25.2"), InstanceResult(failure=0xC000),
                          InstanceResult(CT, "2.25.3", failure=0xC001)])
    assert body == {
        "00081198": {"vr": "SQ", "Value": [
            {"00081150": {"vr": "UI"}, "00081155": {"vr": "UI"},
             "00081197": {"vr": "US", "Value": [0xC000]}},
            {"00081150": {"vr": "UI", "Value": [CT]}, "00081155": {"vr": "UI", "Value": ["2.25.3"]},
             "00081197": {"vr": "US", "Value": [0xC001]}}]},
        "00081199": {"vr": "SQ", "Value": [
            {"00081150": {"vr": "UI", "Value": [CT]}, "00081155": {"vr": "UI", "Value": ["2.25.1"]},
             "00081196": {"vr": "US", "Value": [0xB007]}},
            {"00081150": {"vr": "UI", "Value": [CT]},
             "00081155": {"vr": "UI", "Value": ["2.25.2"]}}]},
    }
    ds = pydicom.Dataset.from_json(body)   # what dicomweb-client does with it
    assert ds.FailedSOPSequence[1].FailureReason == 0xC001
    assert ds.ReferencedSOPSequence[0].WarningReason == 0xB007
    assert response_json([InstanceResult(CT, "2.25.2")]).keys() == {"00081199"}


def test_warning_headers_name_kinds_and_codes():
    assert warning_headers(Counter({("not de-identified", 0xC000): 2, ("malformed", 0xC000): 1})) \
        == ['299 - "1 object(s) malformed (0xC000)"',
            '299 - "2 object(s) not de-identified (0xC000)"']


# --- one received object ------------------------------------------------------------------

def test_received_deidentified_object_is_prepared_with_its_edge():
    ds = deidentified_series(1)[0]
    r = receive(encode(ds), "edge-a")
    assert r.failure is None and r.prepared is not None
    assert r.prepared.source == "edge-a" and r.prepared.sop == ds.SOPInstanceUID
    assert r.prepared.attrs["TransferSyntaxUID"] == ds.file_meta.TransferSyntaxUID
    assert r.loggable_sop == ds.SOPInstanceUID


def test_missing_preamble_is_added_and_nothing_else_changes():
    ds = deidentified_series(1)[0]
    bare = encode(ds, preamble=False)
    assert bare[128:132] != b"DICM"
    r = receive(bare, "edge-a")
    assert r.prepared is not None and r.prepared.data == PREAMBLE + bare


@pytest.mark.parametrize("mutate, code, kind", [
    (lambda b: b"not dicom at all" * 20, 0xC000, "malformed"),
    (lambda b: b[:-100], 0xC000, "malformed"),                     # truncated pixel data
    (lambda b: encode(_set(pydicom.dcmread(io.BytesIO(b)), Rows=17)), 0xA900, "invalid"),
])
def test_unreadable_or_invalid_objects_are_refused(mutate, code, kind):
    r = receive(mutate(encode(deidentified_series(1)[0])), "edge-a")
    assert (r.failure, r.kind, r.prepared) == (code, kind, None)


def _set(ds, **kw):
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def test_identified_object_is_refused_as_not_deidentified_without_phi():
    ds = ct_series(1, patient_id="MRN-4411", patient_name=PHI_NAME, size=16)[0]
    r = receive(encode(ds), "edge-a")
    assert (r.failure, r.kind, r.prepared) == (0xC000, KIND_NOT_DEID, None)
    assert "PatientName is not a pseudonym" in r.reason
    assert "Stowtest" not in r.reason and "MRN-4411" not in r.reason
    assert r.loggable_sop == "(unverified)"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_receive_never_raises_on_hostile_bytes():
    """The 50 ingest mutations (identified: all refused) and 200 seeded byte flips and cuts of a
    de-identified object: always a verdict, never an exception."""
    import random

    from tests.dicom_mutations import mutations
    for m in mutations():
        r = receive(m.data, "edge-a")
        assert r.prepared is None and r.failure in (0xA900, 0xC000)
    good = encode(deidentified_series(1)[0])
    rng = random.Random(7)
    for _ in range(200):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(132, len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[:rng.randrange(132, len(data))]
        r = receive(bytes(data), "edge-a")
        assert (r.prepared is None) == (r.failure is not None)


def test_validation_warning_is_carried():
    ds = deidentified_series(1)[0]
    del ds.SeriesNumber
    r = receive(encode(ds), "edge-a")
    assert r.prepared is not None and r.warning == 0xB007


# --- the routes ---------------------------------------------------------------------------

def test_one_request_is_one_group_commit_and_records_the_edge():
    archive = Archive()
    keys = DeidKeys.generate()
    first = ct_series(3, patient_id="MRN-4411", patient_name=PHI_NAME, size=16)
    second = ct_series(2, patient_id="MRN-4411", patient_name=PHI_NAME, size=16,
                       study_uid=first[0].StudyInstanceUID)          # same study, two series
    objs = [deidentify(ds, keys).dataset for ds in first + second]
    r = archive.post(multipart([encode(ds) for ds in objs]))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/dicom+json"
    assert sorted(referenced(r)) == sorted((ds.SOPInstanceUID, None) for ds in objs)
    assert len(archive.files.files) == 2                     # one batch file per series
    # one HBase batch per table; `instance` gets a second one: the counted marks, written
    # after the counters (commit.py)
    assert archive.hbase.batches["instance"] == 2
    assert archive.hbase.batches["sop"] == 1
    rows = archive.instance_rows()
    assert len(rows) == 5 and all(row[b"l:edge"] == b"edge-a" for row in rows.values())


def test_identical_resend_is_stored_once_and_changed_content_conflicts():
    archive = Archive()
    ds = deidentified_series(1)[0]
    data = encode(ds)
    assert archive.post(multipart([data])).status_code == 200
    files = dict(archive.files.files)
    again = archive.post(multipart([data]))
    assert again.status_code == 200 and referenced(again) == [(ds.SOPInstanceUID, None)]
    assert archive.files.files == files                      # no second copy
    ds.SeriesDescription = "CT CHEST AXIAL"  # changed (vocabulary words: still verifies)
    changed = archive.post(multipart([encode(ds)]))
    assert changed.status_code == 409
    assert failed(changed) == [(ds.SOPInstanceUID, 0xC001)]
    assert archive.files.files == files


def test_identified_object_is_refused_and_nothing_is_stored(caplog):
    archive = Archive()
    good = deidentified_series(1)[0]
    identified = ct_series(1, patient_id="MRN-4411", patient_name=PHI_NAME, size=16)[0]
    with caplog.at_level(logging.INFO, logger="pacs_hdfs.dicom.stow"):
        r = archive.post(multipart([encode(identified)]))
    assert r.status_code == 409
    assert failed(r) == [(identified.SOPInstanceUID, 0xC000)]
    assert 'not de-identified (0xC000)' in r.headers["warning"]
    assert archive.files.files == {} and archive.instance_rows() == {}
    assert archive.hbase.tables.get("sop", {}) == {}
    refusals = [m for m in caplog.messages if m.startswith("stow refused")]
    assert len(refusals) == 1
    assert "edge-a" in refusals[0] and "(unverified)" in refusals[0]
    assert "Stowtest" not in caplog.text and "MRN-4411" not in caplog.text
    assert identified.SOPInstanceUID not in caplog.text
    mixed = archive.post(multipart([encode(identified), encode(good)]))
    assert mixed.status_code == 202
    assert referenced(mixed) == [(good.SOPInstanceUID, None)]
    assert len(archive.instance_rows()) == 1


def test_target_study_refuses_objects_of_other_studies():
    archive = Archive()
    keys = DeidKeys.generate()
    a, b = deidentified_series(1, keys)[0], deidentified_series(1, keys)[0]
    r = archive.post(multipart([encode(a), encode(b)]),
                     path=f"/dicomweb/studies/{a.StudyInstanceUID}")
    assert r.status_code == 202
    assert referenced(r) == [(a.SOPInstanceUID, None)]
    assert failed(r) == [(b.SOPInstanceUID, 0xA900)]


def test_storage_unavailable_for_all_is_503_with_a700():
    archive = Archive()

    def down(path, data):
        raise StorageError("HDFS down")
    archive.files.create = down
    objs = deidentified_series(2)
    r = archive.post(multipart([encode(ds) for ds in objs]))
    assert r.status_code == 503
    assert sorted(failed(r)) == sorted((ds.SOPInstanceUID, 0xA700) for ds in objs)
    assert archive.instance_rows() == {}


def test_warning_is_202_with_warning_reason():
    archive = Archive()
    ds = deidentified_series(1)[0]
    del ds.SeriesNumber
    r = archive.post(multipart([encode(ds)]))
    assert r.status_code == 202 and referenced(r) == [(ds.SOPInstanceUID, 0xB007)]


@pytest.mark.parametrize("content_type, body, status", [
    ("application/dicom", None, 415),
    ('multipart/related; type="application/dicom+json"; boundary=' + BOUNDARY, None, 415),
    ('multipart/related; type="application/dicom"', None, 400),
    (CONTENT_TYPE, b"garbage without boundary", 400),
    (CONTENT_TYPE, b"\r\n--" + BOUNDARY.encode() + b"--", 400),         # no parts
    (CONTENT_TYPE, multipart([b"x"])[:-4], 400),                        # unterminated
    (CONTENT_TYPE, multipart([b"x"], part_type="application/pdf"), 415),
])
def test_request_level_errors_store_nothing(content_type, body, status):
    archive = Archive()
    data = body if body is not None else multipart([encode(deidentified_series(1)[0])])
    r = archive.post(data, content_type=content_type)
    assert r.status_code == status, r.text
    assert archive.instance_rows() == {} and archive.files.files == {}


def test_too_large_is_413_and_stores_nothing():
    archive = Archive(max_bytes=4096)
    r = archive.post(multipart([encode(ds) for ds in deidentified_series(3)]))
    assert r.status_code == 413
    assert archive.instance_rows() == {}


def test_a_client_that_is_not_an_edge_is_403():
    archive = Archive(edge=None)
    r = archive.post(multipart([encode(deidentified_series(1)[0])]))
    assert r.status_code == 403 and archive.instance_rows() == {}


# --- edge identities ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    paths = create_dev_pki(directory)
    return paths, issue_edge_cert(directory, "edge-a")


def _scope(pem: str | None) -> dict:
    return {"extensions": {"tls": {"client_cert_chain": [pem] if pem else []}}}


def test_edge_certificate_is_an_edge_identity_and_the_has_client_is_not(pki):
    paths, edge = pki
    assert peer_from_scope(_scope(edge.cert.read_text())).edge == "edge-a"
    has = peer_from_scope(_scope(paths.client_cert.read_text()))
    assert has.edge is None and "HAS client" in has.described
    assert peer_from_scope(_scope(None)) == Peer(None, "(no client certificate)")
    assert peer_from_scope({}).edge is None
    assert peer_from_scope(_scope("garbage")).edge is None


def test_edge_certificate_files(pki):
    paths, edge = pki
    cert = x509.load_pem_x509_certificate(edge.cert.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "edge-a"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value \
        == EDGE_ORG_UNIT
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    assert stat.S_IMODE(os.stat(edge.key).st_mode) == 0o600
    assert edge.cert == paths.directory / "edges" / "edge-a.pem"
    assert issue_edge_cert(paths.directory, "edge-a").cert.read_bytes() == edge.cert.read_bytes()
    with pytest.raises(ValueError):
        issue_edge_cert(paths.directory, "../evil")


def test_tls_extension_reaches_the_routes(pki):
    """with_tls (what tls_scope's protocol wraps the app in) + the real identity check."""
    paths, edge = pki
    archive = Archive()
    app = FastAPI()
    app.include_router(stow_router(archive.committer, 8 << 20))
    data = multipart([encode(deidentified_series(1)[0])])
    headers = {"content-type": CONTENT_TYPE}
    as_edge = TestClient(with_tls(app, {"client_cert_chain": [edge.cert.read_text()]}))
    as_has = TestClient(with_tls(app, {"client_cert_chain": [paths.client_cert.read_text()]}))
    assert as_has.post("/dicomweb/studies", content=data, headers=headers).status_code == 403
    assert TestClient(app).post("/dicomweb/studies", content=data,
                                headers=headers).status_code == 403
    assert as_edge.post("/dicomweb/studies", content=data, headers=headers).status_code == 200
    assert [r[b"l:edge"] for r in archive.instance_rows().values()] == [b"edge-a"]


def test_pacs_certs_edge_cli(tmp_path):
    pacs = str(Path(sys.executable).parent / "pacs")
    no_ca = subprocess.run([pacs, "certs", "edge", "edge-b", "--dir", str(tmp_path), "--json"],
                           capture_output=True, text=True, timeout=120)
    said = " ".join((no_ca.stdout + no_ca.stderr).split())     # the console wraps long lines
    assert no_ca.returncode != 0 and "pacs certs init" in said
    create_dev_pki(tmp_path)
    done = subprocess.run([pacs, "certs", "edge", "edge-b", "--dir", str(tmp_path), "--json"],
                          capture_output=True, text=True, timeout=120, check=True)
    out = json.loads(done.stdout)
    assert out == {"name": "edge-b", "cert": str(tmp_path / "edges" / "edge-b.pem"),
                   "key": str(tmp_path / "edges" / "edge-b.key"),
                   "ca_cert": str(tmp_path / "ca.pem")}
    assert peer_from_scope(_scope(Path(out["cert"]).read_text())).edge == "edge-b"
