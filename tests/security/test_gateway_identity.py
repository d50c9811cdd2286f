"""Gateway clients (issue 15, row "gateway clients", item 5): any certificate the CA signed could
read any visit and overwrite any visit or subject row. Now each client certificate acts for one
hospital, which writes and reads only its own rows, and a certificate can be revoked.

Against a real `pacs gateway` subprocess on the running cluster, in a scratch namespace (own
HBase table prefix, HDFS root and `$PACS_HOME`), with certificates from its CA:

| certificate | issued by | hospital |
|---|---|---|
| hospital-a-has, edge-a | `pacs certs client/edge --hospital hospA` | hospA |
| hospital-b-has, edge-b, hospital-b-old | `pacs certs client/edge --hospital hospB` | hospB |
| hospital-b-denied | `pacs certs client --hospital hospB`, fingerprint in `gateway_revoked` | refused |
| hospital-c-has | CA-signed, no hospital in it; CN in `gateway_hospitals` | hospC |
| stranger | CA-signed, no hospital in it, not in `gateway_hospitals` | refused |
"""
from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import uuid

import pyarrow.parquet as pq
import pydicom
import pytest
from cryptography import x509
from pydicom.data import get_testdata_file

from deid import DeidKeys, deidentify
from hl7_gateway import visit_parquet
from hl7_gateway.ack import parse_ack
from hl7_gateway.builder import build_batch
from hl7_gateway.certs import issue_client_cert, issue_edge_cert
from hl7_gateway.hospital.has_client import GatewayClient, GatewayError
from hl7_gateway.hospital.his_export import generate_export
from hl7_gateway.hospital.samples import sample_visit, visit_token
from hl7_gateway.identity import AUDIT_ACTION, fingerprint
from pacs_hdfs import audit, clients
from pacs_hdfs.dicom.multipart import close_bytes, part_bytes
from pacs_hdfs.dicom.received import as_part10
from tests.integration.hl7_support import PACS, Gateway, run_has, unmapped_client
from tests.namespace_support import scratch_namespace
from tests.portal_support import free_port

pytestmark = pytest.mark.cluster
PSEUDONYM_A, PSEUDONYM_B, PSEUDONYM_C = ("RSABCDEFGHIJKLMNOP", "RSQRSTUVWXYZ234567",
                                         "RSCCCCDDDDEEEEFFFF")


@pytest.fixture(scope="module")
def gw(cluster, tmp_path_factory):
    """The gateway of the namespace and the sessions of every certificate in the table above."""
    work = tmp_path_factory.mktemp("gateway-identity")
    with scratch_namespace("gwid", work / "home") as (settings, env):
        gateway = Gateway(work / "gateway", free_port())
        d = gateway.certs.directory
        clients_ = {"a": issue_client_cert(d, "hospital-a-has", "hospA"),
                    "b": issue_client_cert(d, "hospital-b-has", "hospB"),
                    "b-old": issue_client_cert(d, "hospital-b-old", "hospB"),
                    "b-denied": issue_client_cert(d, "hospital-b-denied", "hospB"),
                    "c": unmapped_client(gateway.certs, "hospital-c-has"),
                    "stranger": unmapped_client(gateway.certs, "stranger")}
        edges = {"a": issue_edge_cert(d, "edge-a", hospital="hospA"),
                 "b": issue_edge_cert(d, "edge-b", hospital="hospB")}
        denied = x509.load_pem_x509_certificate(clients_["b-denied"].client_cert.read_bytes())
        gateway.env = {**env, "PACS_GATEWAY_HOSPITALS": json.dumps({"hospital-c-has": "hospC"}),
                       "PACS_GATEWAY_REVOKED": json.dumps([fingerprint(denied)])}
        gateway.start()
        try:
            sessions = {k: gateway.session(client=c) for k, c in clients_.items()}
            for k, e in edges.items():
                sessions[f"edge-{k}"] = gateway.session()
                sessions[f"edge-{k}"].cert = (str(e.cert), str(e.key))
            yield type("GW", (), dict(gateway=gateway, settings=settings, env=env,
                                      clients=clients_, s=sessions,
                                      hbase=clients.hbase(settings),
                                      hdfs=clients.hdfs(settings)))
        finally:
            gateway.stop()


def post(gw, who: str, *visits):
    r = gw.s[who].post(f"{gw.gateway.url}/hl7/v3", data=build_batch(list(visits)), timeout=120)
    return r.status_code, parse_ack(r.content)


def get_visit(gw, who: str, visit_id: str):
    return gw.s[who].get(f"{gw.gateway.url}/hl7/v3/visits/{visit_id}", timeout=60)


def refusals(gw) -> list[audit.Event]:
    return audit.query(gw.settings, action=AUDIT_ACTION, limit=500)


def parquet_rows(gw, visit_id: str, month: str = "2024-03") -> list[dict]:
    """Every Parquet row of the visit in its partition (no dedupe: what was written)."""
    d = visit_parquet.partition_dir(month)
    rows = []
    for name in gw.hdfs.list(d):
        table = pq.read_table(io.BytesIO(gw.hdfs.read(f"{d}/{name}")),
                              columns=["visit_id", "city"])
        rows += [r for r in table.to_pylist() if r["visit_id"] == visit_id]
    return rows


# --- writes and reads stay within a hospital ------------------------------------------------

def test_b_cannot_overwrite_or_read_a_visit_of_a(gw):
    vid = visit_token(f"a-owned-{uuid.uuid4().hex}")
    assert post(gw, "a", sample_visit(visit_id=vid, city="Wrocław"))[1].type_code == "AA"
    before = gw.hbase.get("visit", vid.encode())
    status, ack = post(gw, "b", sample_visit(visit_id=vid, city="Gdańsk",
                                             patient_id=PSEUDONYM_B))
    assert (status, ack.messages[0].type_code, ack.messages[0].details[0].code) == (
        200, "AE", "VISIT_OF_ANOTHER_HOSPITAL")
    after = gw.hbase.get("visit", vid.encode())
    assert after == before and after[b"v:hospital"] == b"hospA"
    assert parquet_rows(gw, vid) == [{"visit_id": vid, "city": "Wrocław"}]  # nothing of B's
    unknown = get_visit(gw, "b", visit_token(f"never-{uuid.uuid4().hex}"))
    theirs = get_visit(gw, "b", vid)
    assert (theirs.status_code, theirs.content) == (unknown.status_code, unknown.content) \
        and theirs.status_code == 404
    assert get_visit(gw, "a", vid).json()["city"] == "Wrocław"
    assert any(e.details.get("reason") == "VISIT_OF_ANOTHER_HOSPITAL"
               and e.details.get("hospital") == "hospB" for e in refusals(gw))
    assert "hospital hospB" in gw.gateway.logs() and "Gdańsk" not in gw.gateway.logs()


def test_b_cannot_add_a_visit_to_a_patient_of_a(gw):
    first, intruder = (visit_token(f"{n}-{uuid.uuid4().hex}") for n in ("a", "b"))
    assert post(gw, "a", sample_visit(visit_id=first))[1].type_code == "AA"
    status, ack = post(gw, "b", sample_visit(visit_id=intruder, patient_id=PSEUDONYM_A))
    assert (status, ack.messages[0].details[0].code) == (200, "SUBJECT_OF_ANOTHER_HOSPITAL")
    subject = gw.hbase.get("subject", PSEUDONYM_A.encode())
    assert subject[b"a:hospital"] == b"hospA" and f"v:{first}".encode() in subject
    assert f"v:{intruder}".encode() not in subject
    assert gw.hbase.get("visit", intruder.encode()) == {} and parquet_rows(gw, intruder) == []


def test_b_syncs_its_own_visits_with_pacs_has_and_a_cannot_read_them(gw, tmp_path):
    export = tmp_path / "his.jsonl"
    generate_export(export, patients=3, visits=6, seed=31)
    home = tmp_path / "hospital-b"
    out = run_has(home, "sync", str(export), "--url", gw.gateway.url,
                  "--certs", str(gw.clients["b"].directory))
    with sqlite3.connect(home / "hospital" / "links.sqlite") as db:
        links = db.execute("SELECT encrypted_visit_id, pseudonym, state FROM visit_link"
                           ).fetchall()
    assert len(links) == 6 and {state for *_, state in links} == {"acked"}, out.stdout
    for visit_id, pseudonym, _ in links:
        assert gw.hbase.get("visit", visit_id.encode())[b"v:hospital"] == b"hospB"
        assert gw.hbase.get("subject", pseudonym.encode())[b"a:hospital"] == b"hospB"
        assert get_visit(gw, "b", visit_id).status_code == 200
        assert get_visit(gw, "a", visit_id).status_code == 404


def test_a_cn_mapped_in_the_settings_acts_for_that_hospital(gw):
    vid = visit_token(f"c-{uuid.uuid4().hex}")
    assert post(gw, "c", sample_visit(visit_id=vid, patient_id=PSEUDONYM_C))[1].type_code == "AA"
    assert gw.hbase.get("visit", vid.encode())[b"v:hospital"] == b"hospC"
    assert get_visit(gw, "c", vid).status_code == 200
    assert get_visit(gw, "a", vid).status_code == 404


# --- who is refused ---------------------------------------------------------------------------

def refused(response, reason: str) -> bool:
    return response.status_code == 403 and response.json()["reason"] == reason


def test_a_ca_signed_certificate_of_no_hospital_is_refused_and_audited(gw):
    for path in ("/healthz", f"/hl7/v3/visits/{visit_token('x')}"):
        assert refused(gw.s["stranger"].get(f"{gw.gateway.url}{path}", timeout=60),
                       "no-hospital")
    answer = gw.s["stranger"].post(f"{gw.gateway.url}/hl7/v3", timeout=60,
                                   data=build_batch([sample_visit()]))
    assert refused(answer, "no-hospital")
    with pytest.raises(GatewayError, match="403, no-hospital"):  # what `pacs has sync` says
        GatewayClient(gw.gateway.url, gw.clients["stranger"], attempts=1).post(
            build_batch([sample_visit()]))
    events = [e for e in refusals(gw) if e.user == "CN=stranger"]
    assert events and {e.details["reason"] for e in events} == {"no-hospital"}
    assert "CN=stranger serial" in gw.gateway.logs()


def test_a_certificate_on_the_deny_list_is_refused(gw):
    assert refused(gw.s["b-denied"].get(f"{gw.gateway.url}/healthz", timeout=60), "revoked")
    assert any(e.user == "CN=hospital-b-denied" and e.details["why"] ==
               "fingerprint listed in gateway_revoked" for e in refusals(gw))


def test_pacs_certs_revoke_refuses_a_certificate_of_the_running_gateway(gw):
    vid = visit_token(f"b-old-{uuid.uuid4().hex}")
    assert post(gw, "b-old", sample_visit(visit_id=vid, patient_id=PSEUDONYM_B)
                )[1].type_code == "AA"
    done = subprocess.run([PACS, "certs", "revoke", "hospital-b-old", "--json", "--dir",
                           str(gw.gateway.certs.directory)], env=gw.env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    serial = format(x509.load_pem_x509_certificate(
        gw.clients["b-old"].client_cert.read_bytes()).serial_number, "x")
    assert serial in {r["serial"] for r in json.loads(done.stdout)["revoked"]}
    answer = gw.s["b-old"].get(f"{gw.gateway.url}/hl7/v3/visits/{vid}", timeout=60)
    assert refused(answer, "revoked") and "revoked" in answer.json()["detail"]
    assert get_visit(gw, "b", vid).status_code == 200  # the hospital's other certificate
    assert any(e.user == "CN=hospital-b-old" and e.details["serial"] == serial
               and e.details["why"] == "serial listed in revoked.crl" for e in refusals(gw))
    assert f"serial {serial}: revoked" in gw.gateway.logs()


# --- edges: STOW and the edge's own WADO-RS ---------------------------------------------------

def test_an_edge_of_b_cannot_fetch_a_study_of_an_edge_of_a(gw):
    ds = deidentify(pydicom.dcmread(get_testdata_file("CT_small.dcm")),
                    DeidKeys.generate()).dataset
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds)
    boundary = uuid.uuid4().hex
    body = part_bytes(boundary, "application/dicom", as_part10(buf.getvalue())) + \
        close_bytes(boundary)
    stored = gw.s["edge-a"].post(f"{gw.gateway.url}/dicomweb/studies", data=body, timeout=120,
                                 headers={"Content-Type": "multipart/related; type=\"application"
                                                          f"/dicom\"; boundary={boundary}"})
    assert stored.status_code == 200, stored.text
    url = f"{gw.gateway.url}/dicomweb/studies/{ds.StudyInstanceUID}"
    own = gw.s["edge-a"].get(url, timeout=120)
    assert own.status_code == 200 and ds.SOPInstanceUID.encode() in own.content
    other = gw.s["edge-b"].get(url, timeout=120)
    unknown = gw.s["edge-b"].get(f"{url}.999", timeout=120)
    assert other.status_code == unknown.status_code == 404
    assert ds.SOPInstanceUID.encode() not in other.content
    assert gw.s["a"].get(url, timeout=60).status_code == 403  # a HAS client is no edge
    assert gw.s["edge-a"].post(f"{gw.gateway.url}/hl7/v3", data=build_batch([sample_visit()]),
                               timeout=60).status_code == 403  # an edge sends no visits
