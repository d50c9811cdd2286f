"""Per-hospital identity at the gateway (issue 15, item 5), without a cluster: which hospital a
certificate acts for, revocation (deny list and CRL), the identity gate in front of the app, and
visit/subject ownership through the real `VisitStore` row code over an in-memory HBase."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509
from fastapi.testclient import TestClient

from hl7_gateway import certs as pki
from hl7_gateway.ack import parse_ack
from hl7_gateway.app import create_app
from hl7_gateway.builder import build_batch
from hl7_gateway.certs import (client_cert_paths, create_dev_pki, issue_client_cert,
                               issue_edge_cert, revoke)
from hl7_gateway.hospital.samples import sample_visit, visit_token
from hl7_gateway.identity import (AUDIT_ACTION, AUDIT_INTERVAL, Identities, IdentityGate,
                                  Refusal, Revocations, fingerprint, parse_deny_list,
                                  route)
from hl7_gateway.ownership import SUBJECT_OWNER, VISIT_OWNER, OWNED, Owners, row_owner
from hl7_gateway.store import StoreReport, VisitStore
from hl7_gateway.tls_scope import with_tls
from pacs_hdfs.containers import Location
from pacs_hdfs.dicom.edge_identity import (DEFAULT_HOSPITAL, PEER_SCOPE_KEY, Peer,
                                           certificate_hospital, peer_from_scope)
from pacs_hdfs.settings import Settings
from tests.integration.hl7_support import unmapped_client

PSEUDONYM_A, PSEUDONYM_B = "RSABCDEFGHIJKLMNOP", "RSQRSTUVWXYZ234567"


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def scope_of(path: Path | None) -> dict:
    """The ASGI scope `tls_scope` gives a request made with this certificate."""
    chain = [path.read_text()] if path else []
    return {"type": "http", "extensions": {"tls": {"client_cert_chain": chain}}}


def unmapped_cert(directory: Path, name: str) -> Path:
    """A certificate our CA signed that names no hospital (`hl7_support.unmapped_client`)."""
    return unmapped_client(pki.CertPaths(directory), name).client_cert


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    paths = create_dev_pki(directory)
    return directory, paths


def identities(paths, hospitals=None, from_certificate=True, deny=(), crl=None) -> Identities:
    return Identities(hospitals or {}, from_certificate,
                      Revocations(deny, crl or paths.crl, load(paths.ca_cert)))


# --- issuing: the hospital is in the certificate -----------------------------------------------

def test_pacs_certs_writes_the_hospital_into_every_client_certificate(ca):
    directory, paths = ca
    assert certificate_hospital(load(paths.client_cert)) == DEFAULT_HOSPITAL
    edge = issue_edge_cert(directory, "edge-h", hospital="hospB")
    client = issue_client_cert(directory, "hospital-b-has", "hospB")
    assert certificate_hospital(load(edge.cert)) == "hospB"
    assert certificate_hospital(load(client.client_cert)) == "hospB"
    assert load(client.ca_cert) == load(paths.ca_cert)  # the folder a hospital's HAS uses
    assert certificate_hospital(load(paths.server_cert)) is None


def test_a_name_keeps_its_hospital_unless_forced(ca):
    directory, _ = ca
    first = issue_edge_cert(directory, "edge-keep", hospital="hospA").cert.read_bytes()
    assert issue_edge_cert(directory, "edge-keep").cert.read_bytes() == first
    with pytest.raises(ValueError, match="issued for hospital hospA"):
        issue_edge_cert(directory, "edge-keep", hospital="hospB")
    issue_client_cert(directory, "client-keep", "hospA")
    with pytest.raises(ValueError, match="issued for hospital hospA"):
        issue_client_cert(directory, "client-keep", "hospB")
    again = issue_edge_cert(directory, "edge-keep", hospital="hospB", force=True)
    assert certificate_hospital(load(again.cert)) == "hospB"
    with pytest.raises(ValueError, match="already issued as an edge"):
        issue_client_cert(directory, "edge-keep", "hospB")
    with pytest.raises(ValueError, match="hospital id"):
        issue_client_cert(directory, "bad-hospital", "no/slashes")


def test_certificates_from_before_hospitals_are_reissued_for_the_default(tmp_path):
    paths = create_dev_pki(tmp_path)
    old = unmapped_client(paths, "old-has")
    old.client_cert.replace(paths.client_cert)
    old.client_key.replace(paths.client_key)
    ca_before = paths.ca_cert.read_bytes()
    create_dev_pki(tmp_path)  # what `pacs up` runs
    assert certificate_hospital(load(paths.client_cert)) == DEFAULT_HOSPITAL
    assert paths.ca_cert.read_bytes() == ca_before
    with pytest.raises(ValueError, match="pacs certs client"):
        create_dev_pki(tmp_path, hospital="hospZ")
    edge = pki.edge_cert_paths(tmp_path, "old-edge")
    old_edge = unmapped_client(paths, "old-edge")
    edge.cert.parent.mkdir(exist_ok=True)
    old_edge.client_cert.replace(edge.cert)
    old_edge.client_key.replace(edge.key)
    offline = paths.ca_key.rename(tmp_path / "elsewhere.key")  # the CA key kept offline
    assert certificate_hospital(load(issue_edge_cert(tmp_path, "old-edge").cert)) is None
    offline.rename(paths.ca_key)
    assert certificate_hospital(load(issue_edge_cert(tmp_path, "old-edge").cert)) == \
        DEFAULT_HOSPITAL


def test_settings_default_owner_is_the_default_hospital():
    assert Settings().gateway_unowned_rows_hospital == DEFAULT_HOSPITAL


# --- resolving: certificate -> hospital ---------------------------------------------------------

def test_the_table_wins_then_the_certificate_then_nobody(ca):
    directory, paths = ca
    bare = unmapped_cert(directory, "hospital-c-has")
    ids = identities(paths, {"hospital-c-has": "hospC", "pacs-mdc HAS client": "hospZ"})
    assert ids.resolve(scope_of(bare)) == Peer(None, "CN=hospital-c-has", "hospC")
    assert ids.resolve(scope_of(paths.client_cert)).hospital == "hospZ"
    edge = issue_edge_cert(directory, "edge-r", hospital="hospR")
    assert ids.resolve(scope_of(edge.cert)) == Peer("edge-r", "OU=pacs-mdc edge,CN=edge-r",
                                                    "hospR")
    refused = identities(paths).resolve(scope_of(bare))
    assert isinstance(refused, Refusal) and (refused.code, refused.status) == ("no-hospital",
                                                                               403)
    strict = identities(paths, from_certificate=False).resolve(scope_of(paths.client_cert))
    assert strict.code == "no-hospital"
    assert identities(paths).resolve(scope_of(None)).code == "no-certificate"
    garbled = {"type": "http", "extensions": {"tls": {"client_cert_chain": ["not a cert"]}}}
    assert identities(paths).resolve(garbled).code == "unreadable-certificate"
    with pytest.raises(ValueError, match="malformed hospital"):
        identities(paths, {"x": "a b"})


def test_deny_list_entries_are_serials_or_fingerprints():
    fp = "AB:" * 31 + "CD"
    assert parse_deny_list(["0x1F", " 0a:0b ", fp]) == (
        frozenset({0x1F, 0x0A0B}), frozenset({fp.replace(":", "").lower()}))
    for bad in ("xyz", "", "1" * 41):
        with pytest.raises(ValueError, match="gateway_revoked"):
            parse_deny_list([bad])


def test_deny_list_refuses_by_serial_and_by_fingerprint(ca):
    directory, paths = ca
    a = issue_client_cert(directory, "deny-a", "hospA").client_cert
    b = issue_client_cert(directory, "deny-b", "hospA").client_cert
    ids = identities(paths, deny=[format(load(a).serial_number, "x"), fingerprint(load(b))])
    for path, why in ((a, "serial listed in gateway_revoked"),
                      (b, "fingerprint listed in gateway_revoked")):
        refused = ids.resolve(scope_of(path))
        assert (refused.code, refused.status, refused.why) == ("revoked", 403, why)
    assert ids.resolve(scope_of(paths.client_cert)).hospital == DEFAULT_HOSPITAL


def test_crl_written_by_revoke_is_picked_up_on_the_next_request(tmp_path):
    paths = create_dev_pki(tmp_path)
    victim = issue_client_cert(tmp_path, "victim", "hospA").client_cert
    ids = identities(paths)
    assert ids.resolve(scope_of(victim)).hospital == "hospA"
    listed = revoke(tmp_path, [load(victim).serial_number])
    assert [r.serial for r in listed] == [load(victim).serial_number]
    refused = ids.resolve(scope_of(victim))
    assert (refused.code, refused.why) == ("revoked", "serial listed in revoked.crl")
    assert ids.resolve(scope_of(paths.client_cert)).hospital == DEFAULT_HOSPITAL
    crl = x509.load_pem_x509_crl(paths.crl.read_bytes())
    revoke(tmp_path, [load(paths.client_cert).serial_number])  # a second revocation adds up
    again = x509.load_pem_x509_crl(paths.crl.read_bytes())
    assert len(again) == 2 and again.extensions.get_extension_for_class(
        x509.CRLNumber).value.crl_number == crl.extensions.get_extension_for_class(
        x509.CRLNumber).value.crl_number + 1


def test_an_unusable_crl_refuses_everyone_until_fixed(tmp_path):
    paths = create_dev_pki(tmp_path)
    other = create_dev_pki(tmp_path / "other")
    revoke(other.directory, [12345])
    ids = identities(paths)
    for content in (b"garbage", other.crl.read_bytes()):  # unreadable; another CA's
        paths.crl.write_bytes(content)
        refused = ids.resolve(scope_of(paths.client_cert))
        assert (refused.code, refused.status) == ("revocation-list-unusable", 503)
    paths.crl.unlink()
    assert ids.resolve(scope_of(paths.client_cert)).hospital == DEFAULT_HOSPITAL


def test_pacs_certs_revoke_names_resolve_to_the_issued_files(ca):
    directory, paths = ca
    edge = issue_edge_cert(directory, "edge-n", hospital="hospN")
    client = issue_client_cert(directory, "client-n", "hospN")
    assert pki.issued_certificate(directory, "client") == paths.client_cert
    assert pki.issued_certificate(directory, "edge-n") == edge.cert
    assert pki.issued_certificate(directory, "client-n") == client.client_cert
    assert pki.issued_certificate(directory, str(edge.cert)) == edge.cert
    with pytest.raises(FileNotFoundError):
        pki.issued_certificate(directory, "nobody")


# --- the gate in front of the app -------------------------------------------------------------

class MemoryHBase:
    """The HBase calls `VisitStore` makes (get, get_many, put_many, delete), in memory."""

    def __init__(self):
        self.tables: dict[str, dict[bytes, dict[bytes, bytes]]] = {}

    def _pick(self, row, columns):
        if columns is None:
            return dict(row)
        return {c: v for c, v in row.items()
                if any(c == w or (b":" not in w and c.startswith(w + b":")) for w in columns)}

    def get(self, table, key, columns=None):
        return self._pick(self.tables.get(table, {}).get(key, {}), columns)

    def get_many(self, table, keys, columns=None):
        found = {k: self.get(table, k, columns) for k in keys}
        return {k: v for k, v in found.items() if v}

    def put_many(self, table, rows):
        for key, cols in rows:
            self.tables.setdefault(table, {}).setdefault(key, {}).update(cols)

    def delete(self, table, key, columns=None):
        self.tables.get(table, {}).pop(key, None)


class RowStore(VisitStore):
    """`VisitStore` with HDFS left out: a commit writes only the HBase rows (real row code)."""

    def __init__(self, memory: MemoryHBase):
        super().__init__(Settings())
        self.memory = memory

    @property
    def hbase(self):
        return self.memory

    def _write(self, group):
        loc = Location("hl7/archive/test", 0, 1, "0" * 64)
        self._put_rows([(v, loc, r.hospital) for r in group for v in r.visits],
                       datetime(2024, 1, 1), {})
        return [StoreReport(len(r.visits), loc, []) for r in group]


@pytest.fixture
def gateway(ca):
    """A client per certificate against the app behind its identity gate; the audit calls."""
    directory, paths = ca
    a = issue_client_cert(directory, "gate-a", "hospA")
    b = issue_client_cert(directory, "gate-b", "hospB")
    edge = issue_edge_cert(directory, "gate-edge", hospital="hospA")
    memory, audited = MemoryHBase(), []
    app = create_app(RowStore(memory), identities(paths),
                     audit=lambda *args, **kw: audited.append((args, kw)))

    def client(cert: Path) -> TestClient:
        return TestClient(with_tls(app, {"client_cert_chain": [cert.read_text()]}))
    return {"a": client(a.client_cert), "b": client(b.client_cert),
            "edge": client(edge.cert), "bare": client(unmapped_cert(directory, "gate-bare")),
            "memory": memory, "audited": audited}


def send(client: TestClient, *visits):
    response = client.post("/hl7/v3", content=build_batch(list(visits)))
    return response.status_code, parse_ack(response.content)


def test_a_hospital_cannot_overwrite_or_read_another_hospitals_visit(gateway):
    a, b, memory = gateway["a"], gateway["b"], gateway["memory"]
    vid = visit_token("owned-by-a")
    assert send(a, sample_visit(visit_id=vid, city="Wrocław"))[1].type_code == "AA"
    status, ack = send(b, sample_visit(visit_id=vid, city="Gdańsk",
                                       patient_id=PSEUDONYM_B))
    assert (status, ack.messages[0].type_code, ack.messages[0].details[0].code) == (
        200, "AE", "VISIT_OF_ANOTHER_HOSPITAL")
    row = memory.tables["visit"][vid.encode()]
    assert row[b"v:city"] == "Wrocław".encode() and row[VISIT_OWNER] == b"hospA"
    assert PSEUDONYM_B.encode() not in memory.tables["subject"]
    unknown = b.get(f"/hl7/v3/visits/{visit_token('never-sent')}")
    other = b.get(f"/hl7/v3/visits/{vid}")
    assert (other.status_code, other.content) == (unknown.status_code, unknown.content)
    assert other.status_code == 404
    assert a.get(f"/hl7/v3/visits/{vid}").json()["city"] == "Wrocław"
    (user, action, target), details = gateway["audited"][-1]
    assert (action, target, details["reason"], details["hospital"]) == (
        AUDIT_ACTION, "/hl7/v3", "VISIT_OF_ANOTHER_HOSPITAL", "hospB")


def test_a_pseudonym_of_another_hospital_is_refused_not_merged(gateway):
    a, b, memory = gateway["a"], gateway["b"], gateway["memory"]
    assert send(a, sample_visit(visit_id=visit_token("a-1")))[1].type_code == "AA"
    mine, theirs = visit_token("b-own"), visit_token("b-onto-a")
    status, ack = send(b, sample_visit(visit_id=mine, patient_id=PSEUDONYM_B),
                       sample_visit(visit_id=theirs, patient_id=PSEUDONYM_A))
    assert {m.message_id: (m.type_code, [d.code for d in m.details]) for m in ack.messages} == {
        mine: ("AA", []), theirs: ("AE", ["SUBJECT_OF_ANOTHER_HOSPITAL"])}
    subject_a = memory.tables["subject"][PSEUDONYM_A.encode()]
    assert subject_a[SUBJECT_OWNER] == b"hospA" and f"v:{theirs}".encode() not in subject_a
    assert theirs.encode() not in memory.tables["visit"]
    assert memory.tables["subject"][PSEUDONYM_B.encode()][SUBJECT_OWNER] == b"hospB"
    assert b.get(f"/hl7/v3/visits/{mine}").status_code == 200
    assert a.get(f"/hl7/v3/visits/{mine}").status_code == 404


def test_revoked_unmapped_and_edge_certificates_are_refused_and_audited(gateway, ca):
    directory, paths = ca
    refused = gateway["bare"].get("/healthz")
    assert refused.status_code == 403 and refused.json()["reason"] == "no-hospital"
    assert gateway["bare"].get("/healthz").status_code == 403
    audits = [kw for (_, action, _), kw in gateway["audited"] if action == AUDIT_ACTION]
    assert [kw["reason"] for kw in audits] == ["no-hospital"]  # once, not per retry
    edge = gateway["edge"].post("/hl7/v3", content=build_batch([sample_visit()]))
    assert edge.status_code == 403
    assert gateway["edge"].get(f"/hl7/v3/visits/{visit_token('x')}").status_code == 403
    b_cert = client_cert_paths(directory, "gate-b").client_cert
    revoke(directory, [load(b_cert).serial_number])
    try:
        answer = gateway["b"].get("/healthz")
        assert (answer.status_code, answer.json()["reason"]) == (403, "revoked")
        (user, action, target), kw = gateway["audited"][-1]
        assert (user, action, target, kw["reason"]) == ("CN=gate-b", AUDIT_ACTION, "/healthz",
                                                        "revoked")
        assert gateway["a"].get("/healthz").status_code == 200
    finally:
        paths.crl.unlink()


def test_refusals_name_the_route_not_the_ids_in_it():
    assert route("/hl7/v3/visits/SECRETISH") == "/hl7/v3/visits/{visit_id}"
    assert route("/dicomweb/studies/1.2.3") == "/dicomweb/studies/{study}"
    assert route("/healthz") == "/healthz" and len(route("/x" * 500)) == 100


def test_audit_of_a_refusal_repeats_only_after_the_interval():
    now, audited = [0.0], []
    gate = IdentityGate(None, None, audit=lambda *a, **k: audited.append(a), clock=lambda: now[0])
    refusal = Refusal("revoked", "CN=x", "1f")
    assert [gate._should_audit(refusal) for _ in range(3)] == [True, False, False]
    assert gate._should_audit(Refusal("revoked", "CN=y", "20"))
    now[0] += AUDIT_INTERVAL
    assert gate._should_audit(refusal)


def test_routes_see_the_resolved_peer_and_bare_routers_still_read_the_certificate(ca):
    _, paths = ca
    peer = Peer(None, "CN=x", "hospA")
    assert peer_from_scope({PEER_SCOPE_KEY: peer}) is peer
    assert peer_from_scope(scope_of(paths.client_cert)) == Peer(None, "CN=pacs-mdc HAS client")


# --- ownership rules ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind, row, owner", [
    (OWNED[0], {}, None),
    (OWNED[0], {b"v:received": b"t"}, "legacy"),
    (OWNED[0], {b"v:received": b"t", VISIT_OWNER: b"hospA"}, "hospA"),
    (OWNED[1], {}, None),
    (OWNED[1], {b"s:1.2.3": b"1"}, None),              # only DICOM studies: free
    (OWNED[1], {b"v:VID": b"2024-01-01"}, "legacy"),    # visits from before owners
    (OWNED[1], {b"v:VID": b"x", SUBJECT_OWNER: b"hospB"}, "hospB"),
])
def test_row_owner(kind, row, owner):
    assert row_owner(kind, row, "legacy") == owner


def test_rows_from_before_owners_belong_to_the_configured_hospital_or_nobody():
    memory = MemoryHBase()
    memory.put_many("visit", [(b"OLD", {b"v:received": b"t", b"v:json": b"{}"})])
    old = sample_visit(visit_id="OLD")
    assert Owners("hospital1").claim(memory, [old], "hospital1") == {}
    assert Owners("hospital1").claim(memory, [old], "hospB")["OLD"].code == \
        "VISIT_OF_ANOTHER_HOSPITAL"
    assert "OLD" in Owners("").claim(memory, [old], "hospital1")


def test_racing_claims_of_one_new_row_let_only_the_first_hospital_in():
    owners, memory = Owners("hospital1"), MemoryHBase()
    new = sample_visit(visit_id=visit_token("brand-new"))
    assert owners.claim(memory, [new], "hospA") == {}  # not written yet: remembered
    assert owners.claim(memory, [new], "hospB")[new.visit_id].code == "VISIT_OF_ANOTHER_HOSPITAL"
    assert owners.claim(memory, [new], "hospA") == {}
