"""HAS -> HTTPS (mTLS) gateway -> HDFS/HBase/Parquet on the real cluster, and hostile input."""
from __future__ import annotations

import copy
import io
import json
import re
import socket
import sqlite3
import ssl
import time
import uuid
from datetime import date, datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from lxml import etree

from hl7_gateway import visit_parquet
from hl7_gateway.ack import parse_ack
from hl7_gateway.builder import build_batch_element, to_bytes
from hl7_gateway.codes import HL7_NS
from hl7_gateway.hospital.his_export import generate_records, pesel
from hl7_gateway.hospital.samples import sample_visit, visit_token
from hl7_gateway.store import ARCHIVE_ROOT
from pacs_hdfs import clients
from tests.integration.hl7_support import Gateway, has_popen, run_has

pytestmark = pytest.mark.cluster
PORT = 8444
NS = {"v3": HL7_NS}


@pytest.fixture(scope="module")
def gateway(cluster, tmp_path_factory):
    gw = Gateway(tmp_path_factory.mktemp("gateway"), PORT).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def stores(settings):
    return clients.hdfs(settings), clients.hbase(settings)


def post(gw: Gateway, body: bytes):
    response = gw.session().post(f"{gw.url}/hl7/v3", data=body, timeout=120)
    return response.status_code, parse_ack(response.content)


def visit_row(hbase, visit_id: str) -> dict:
    return hbase.get("visit", visit_id.encode())


# --- hostile input -------------------------------------------------------------------------

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE PRPA_IN402001UV02 [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<PRPA_IN402001UV02 xmlns="urn:hl7-org:v3"><id extension="%s"/><x>&xxe;</x></PRPA_IN402001UV02>"""
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<PRPA_IN402001UV02 xmlns="urn:hl7-org:v3"><id extension="%s"/><x>&lol3;</x></PRPA_IN402001UV02>"""


def _batch(visit_id: str, mutate=None) -> bytes:
    root = build_batch_element([sample_visit(visit_id=visit_id)])
    enc = root.find(".//v3:encounterEvent", NS)
    if mutate:
        mutate(enc)
    return to_bytes(root)


def _drop_low(enc):
    low = enc.find("v3:effectiveTime/v3:low", NS)
    low.getparent().remove(low)


def _unknown_system(enc):
    for value in enc.iterfind(".//v3:value[@codeSystem='2.16.840.1.113883.6.3']", NS):
        value.set("codeSystem", "1.2.3.4.5")


def _discharge_first(enc):
    enc.find("v3:effectiveTime/v3:high", NS).set("value", "20200101000000")


def _with_name(enc):
    person = enc.find(".//v3:patientPerson", NS)
    name = etree.SubElement(person, f"{{{HL7_NS}}}name")
    etree.SubElement(name, f"{{{HL7_NS}}}family").text = "Nowak"


def _text_phi(enc):
    enc.find(".//v3:observation/v3:text", NS).text = "Wynik omówiono z Anną Nowak, tel. 601 234 567."


def _clear_patient_id(enc):
    enc.find("v3:subject/v3:patient/v3:id", NS).set("extension", "57030412345")


HOSTILE = {  # name -> (body builder, ack code expected, detail code expected, HTTP status)
    "xxe": (lambda vid: XXE % vid.encode(), "AR", "DOCTYPE_FORBIDDEN", 400),
    "billion-laughs": (lambda vid: LAUGHS % vid.encode(), "AR", "DOCTYPE_FORBIDDEN", 400),
    "50MB-body": (lambda vid: _batch(vid) + b" " * (50 * 1024 * 1024), "AR", "BODY_TOO_LARGE",
                  413),
    "wrong-namespace": (lambda vid: _batch(vid).replace(HL7_NS.encode(), b"urn:evil:v3"),
                        "AR", "WRONG_NAMESPACE", 400),
    "missing-admission": (lambda vid: _batch(vid, _drop_low), "AE", "MISSING_ELEMENT", 200),
    "unknown-code-system": (lambda vid: _batch(vid, _unknown_system), "AE",
                            "UNKNOWN_CODE_SYSTEM", 200),
    "discharge-before-admission": (lambda vid: _batch(vid, _discharge_first), "AE",
                                   "DISCHARGE_BEFORE_ADMISSION", 200),
    "phi-name": (lambda vid: _batch(vid, _with_name), "AE", "PHI_NAME", 200),
    "phi-in-exam-text": (lambda vid: _batch(vid, _text_phi), "AE", "PHI_TEXT_NAME", 200),
    "national-id-as-patient-id": (lambda vid: _batch(vid, _clear_patient_id), "AE",
                                  "PSEUDONYM_FORMAT", 200),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_input_is_refused_and_nothing_stored(gateway, stores, case):
    build, ack_code, detail_code, status = HOSTILE[case]
    visit_id = visit_token(f"hostile-{case}-{uuid.uuid4().hex}")
    http_status, ack = post(gateway, build(visit_id))
    assert (http_status, ack.type_code) == (status, ack_code)
    assert detail_code in {d.code for m in ack.messages for d in m.details}
    assert visit_row(stores[1], visit_id) == {}
    assert "Nowak" not in gateway.logs()


def test_bad_visit_in_batch_does_not_block_good_one(gateway, stores):
    good, bad = (visit_token(f"mixed-{uuid.uuid4().hex}") for _ in range(2))
    root = build_batch_element([sample_visit(visit_id=good), sample_visit(visit_id=bad)])
    _with_name(root.findall(".//v3:encounterEvent", NS)[1])
    status, ack = post(gateway, to_bytes(root))
    assert status == 200
    assert {m.message_id: m.type_code for m in ack.messages} == {good: "AA", bad: "AE"}
    assert visit_row(stores[1], good)[b"v:patient_id"] == b"RSABCDEFGHIJKLMNOP"
    assert visit_row(stores[1], bad) == {}
    archive = visit_row(stores[1], good)[b"v:archive"].decode().split()
    xml = stores[0].read(archive[0], int(archive[1]), int(archive[2]))
    assert good.encode() in xml and bad.encode() not in xml and b"Nowak" not in xml


def test_resend_updates_without_duplicates(gateway, stores):
    visit_id = visit_token(f"resend-{uuid.uuid4().hex}")
    first = sample_visit(visit_id=visit_id)
    second = sample_visit(visit_id=visit_id, city="Gdańsk")
    for v in (first, second):
        assert post(gateway, to_bytes(build_batch_element([v])))[1].type_code == "AA"
    assert visit_row(stores[1], visit_id)[b"v:city"] == "Gdańsk".encode()
    table = visit_parquet.read_visits(stores[0], "2024-03")
    mine = table.filter(table["visit_id"].to_numpy(zero_copy_only=False) == visit_id)
    assert mine.num_rows == 1 and mine["city"][0].as_py() == "Gdańsk"


def test_no_client_certificate_is_refused(gateway):
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        gateway.session(with_cert=False).get(f"{gateway.url}/healthz", timeout=10)


def test_plain_http_and_old_tls_are_refused(gateway):
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{PORT}/healthz", timeout=10)
    ctx = ssl.create_default_context(cafile=str(gateway.certs.ca_cert))
    ctx.load_cert_chain(str(gateway.certs.client_cert), str(gateway.certs.client_key))
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, OSError)):
        with socket.create_connection(("127.0.0.1", PORT), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                pass


# --- HAS end to end ------------------------------------------------------------------------

PHI_FIELDS = ("first_name", "last_name", "mrn", "street", "postal_code", "phone")


def free_text_markers(tag: str) -> dict[str, str]:
    """PHI that is not the patient's own record: a relative's PESEL (valid checksum), an
    inflected name, a relative's name and a phone number, unique to this test run."""
    number = int(tag, 16)
    relative_pesel = pesel(date(1950 + number % 50, 1 + number % 12, 1 + number % 28),
                           female=True, serial=number % 1000)
    return {"pesel": relative_pesel, "inflected": "Genowefie Brzozowskiej",
            "relative": "wnuczka Michalina", "phone": f"698 {number % 1000:03d} 457"}


def marked_export(path, tag: str, patients: int, visits: int, seed: int) -> list[str]:
    """A HIS export whose every PHI field carries a unique marker, and whose exam texts name
    the patient and other people (free_text_markers); returns the markers."""
    markers = set()
    free = free_text_markers(tag)
    with open(path, "w", encoding="utf-8") as out:
        for record in generate_records(patients, visits, seed):
            record = copy.deepcopy(record)
            p = record["patient"]
            idx = record["patient_index"]
            for field in PHI_FIELDS:
                p[field] = f"ZQ{tag}{field.replace('_', '')}{idx}X"
            p["national_id"] = f"9{abs(hash((tag, idx))) % 10**10:010d}"
            record["his_visit_id"] = f"ZQ{tag}visit{record['his_visit_id']}"
            for exam in record["exams"]:
                exam["text"] = (f"Patient {p['first_name']} {p['last_name']}, "
                                f"{p['street']}, tel. {p['phone']}: " + exam["text"]
                                + f" Wynik przekazano {free['inflected']} (PESEL {free['pesel']}),"
                                  f" {free['relative']}, tel. {free['phone']}.")
            markers.update(p[f] for f in PHI_FIELDS)
            markers.update((p["national_id"], record["his_visit_id"]))
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return sorted(markers | {free["pesel"], "Genowefie", "Brzozowskiej", "Michalina",
                             free["phone"]})


def links(home) -> list[tuple]:
    with sqlite3.connect(home / "hospital" / "links.sqlite") as db:
        return db.execute("SELECT his_visit_id, encrypted_visit_id, pseudonym, state"
                          " FROM visit_link").fetchall()


def test_has_sync_end_to_end_without_phi(gateway, stores, tmp_path, settings):
    hdfs, hbase = stores
    started = datetime.now(timezone.utc)
    tag = uuid.uuid4().hex[:8]
    export = tmp_path / "export.jsonl"
    markers = marked_export(export, tag, patients=30, visits=120, seed=11)
    home = tmp_path / "has"
    run_has(home, "sync", str(export), "--batch", "40", "--url", gateway.url,
            "--certs", str(gateway.certs.directory))
    rows = links(home)
    assert len(rows) == 120 and {r[3] for r in rows} == {"acked"}

    # HBase: every visit row, its subject column and its search rows; no marker anywhere
    ids = [r[1] for r in rows]
    stored = hbase.get_many("visit", [i.encode() for i in ids])
    assert len(stored) == 120
    cells = [v for row in stored.values() for v in row.values()]
    pseudonyms = {r[2] for r in rows}
    subjects = hbase.get_many("subject", [p.encode() for p in pseudonyms])
    assert all(f"v:{r[1]}".encode() in subjects[r[2].encode()] for r in rows)
    cells += [v for row in subjects.values() for v in row.values()]
    cells += [k for row in subjects.values() for k in row]
    search = hbase.scan("search", row_prefix=b"icd10\x00")
    ours = [(k, v) for k, v in search if k.split(b"\x00")[2].decode() in pseudonyms]
    assert ours, "visits must be indexed by ICD-10 category"
    cells += [k for k, _ in ours] + [c for _, v in ours for c in v.values()]

    # Parquet on HDFS (read back with pyarrow), deduplicated: one row per visit
    months = sorted({json.loads(stored[i.encode()][b"v:json"])["admission"][:7] for i in ids})
    table = pa.concat_tables([visit_parquet.read_visits(hdfs, m) for m in months])
    rows_by_id = {r["visit_id"]: r for r in table.to_pylist() if r["visit_id"] in set(ids)}
    assert len(rows_by_id) == 120
    some = rows_by_id[ids[0]]
    assert some["patient_id"] == rows[0][2] and some["visit_month"] == some["admission"].strftime("%Y-%m")

    # HDFS files written since the test started: archive containers + Parquet parts
    day_dirs = {f"{ARCHIVE_ROOT}/{started:%Y-%m-%d}", f"{ARCHIVE_ROOT}/{datetime.now(timezone.utc):%Y-%m-%d}"}
    archive_paths = {stored[i.encode()][b"v:archive"].split()[0].decode() for i in ids}
    assert all(any(d in p for d in day_dirs) for p in archive_paths)
    blobs = [hdfs.read(p) for p in archive_paths]
    for m in months:
        d = visit_parquet.partition_dir(m)
        blobs += [hdfs.read(f"{d}/{n}") for n in hdfs.list(d)
                  if (visit_parquet.file_stamp(n) or started) >= started]
    # the portal's case-search feed rows written since the test started
    feed = hbase.scan("search", row_start=b"feed\x00" + str(int(started.timestamp() * 1000)
                                                           ).zfill(13).encode(),
                      row_stop=b"feed\x01")
    cells += [v for _, row in feed for v in row.values()]
    parquet_rows = json.dumps(list(rows_by_id.values()), default=str, ensure_ascii=False)
    everything = b"\n".join(blobs + cells + [parquet_rows.encode()]) + gateway.logs().encode()
    leaked = [m for m in markers if m.encode() in everything]
    assert not leaked, f"PHI markers reached the data center: {leaked[:5]}"
    digits = re.sub(rb"\D", b"", everything)
    assert free_text_markers(tag)["pesel"].encode() not in digits
    assert b"[NAME]" in everything and b"[NATIONAL_ID]" in everything
    assert ids[0].encode() in b"".join(blobs[:len(archive_paths)])

    # the hospital can look the visit up again, with personal data re-attached locally
    his_id = rows[0][0]
    shown = json.loads(run_has(home, "visit", his_id, "--export", str(export), "--json",
                               "--url", gateway.url, "--certs", str(gateway.certs.directory)).stdout)
    assert shown["visit"]["visit_id"] == rows[0][1]
    assert shown["patient"]["last_name"].startswith(f"ZQ{tag}")


def test_sync_resumes_after_kill_without_duplicates(gateway, stores, tmp_path):
    hdfs, hbase = stores
    export = tmp_path / "export.jsonl"
    marked_export(export, uuid.uuid4().hex[:8], patients=40, visits=240, seed=12)
    home = tmp_path / "has"
    args = ("sync", str(export), "--batch", "20", "--url", gateway.url,
            "--certs", str(gateway.certs.directory))
    proc = has_popen(home, *args)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if sum(r[3] == "acked" for r in links(home)) >= 40:
                break
        except sqlite3.OperationalError:  # not created yet, or busy
            pass
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    before = links(home)
    assert 0 < sum(r[3] == "acked" for r in before) < 240, "sync must be interrupted midway"
    run_has(home, *args)
    rows = links(home)
    assert len(rows) == 240 and {r[3] for r in rows} == {"acked"}
    ids = {r[1] for r in rows}
    assert len(hbase.get_many("visit", [i.encode() for i in ids])) == 240
    months = sorted({r["admission"][:7] for r in
                     (json.loads(v[b"v:json"]) for v in
                      hbase.get_many("visit", [i.encode() for i in ids]).values())})
    for m in months:
        visit_parquet.compact_partition(hdfs, m, grace=timedelta(0))
    raw = []
    for m in months:
        d = visit_parquet.partition_dir(m)
        for n in hdfs.list(d):
            raw += pq.read_table(io.BytesIO(hdfs.read(f"{d}/{n}")),
                                 columns=["visit_id"])["visit_id"].to_pylist()
    mine = [v for v in raw if v in ids]
    assert len(mine) == 240 and set(mine) == ids, "exactly one Parquet row per visit"


# --- linkage: one date shift for a patient's visits and studies (issue 14) --------------------

def _study_of(national_id: str, study_date: date):
    """A minimal CT object of this patient (PatientID = the HIS national id, as at the edge)."""
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid
    ds = Dataset()
    ds.PatientID, ds.PatientName = national_id, "Nowak^Anna"
    ds.StudyDate, ds.StudyTime = study_date.strftime("%Y%m%d"), "101500"
    ds.Modality, ds.SOPClassUID = "CT", "1.2.840.10008.5.1.4.1.1.2"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = (generate_uid()
                                                                   for _ in range(3))
    return ds


def test_visit_and_study_of_a_patient_keep_their_true_distance(gateway, stores, tmp_path):
    """Date policy shift: the HAS shifts a visit by the offset the DICOM de-identifier gives the
    same patient's studies (same vault key, identity = national id = PatientID), so the stored
    visit and the stored study are as far apart as in reality and their difference reveals
    nothing; the stored dates themselves are shifted."""
    from deid.deidentify import deidentify
    from deid.keys import DATE_SHIFT_KEY, DeidKeys
    from deid.pseudonyms import MAX_SHIFT_DAYS, date_shift_days
    from deid.vault import Vault
    hbase = stores[1]
    export = tmp_path / "export.jsonl"
    records = list(generate_records(patients=4, visits=8, seed=21))
    export.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                      encoding="utf-8")
    home = tmp_path / "has"
    run_has(home, "sync", str(export), "--url", gateway.url,
            "--certs", str(gateway.certs.directory))
    vault = Vault.open(home / "hospital" / "vault.bin",
                       master_key_file=home / "hospital" / "master.key")
    keys = DeidKeys.from_vault(vault)
    encrypted = {row[0]: row[1] for row in links(home)}
    for record in records:
        national_id = record["patient"]["national_id"]
        admission = datetime.fromisoformat(record["admission"])
        stored = json.loads(hbase.get("visit", encrypted[record["his_visit_id"]].encode())
                            [b"v:json"])
        stored_admission = datetime.fromisoformat(stored["admission"])
        offset = date_shift_days(vault.key(DATE_SHIFT_KEY), national_id, "")
        assert -MAX_SHIFT_DAYS <= offset <= -1
        assert stored_admission == admission + timedelta(days=offset)
        assert "birth_year" not in stored and stored["age"] <= 90
        study = deidentify(_study_of(national_id, admission.date() + timedelta(days=2)),
                           keys).dataset
        study_date = datetime.strptime(study.StudyDate, "%Y%m%d").date()
        assert study_date != admission.date() + timedelta(days=2)      # shifted ...
        assert study_date - stored_admission.date() == timedelta(days=2)  # ... by the same offset
