"""HBase rows of a visit: flat columns, search index keys, stale index detection."""
import json

from hl7_gateway.models import Diagnosis
from hl7_gateway.hospital.samples import sample_visit
from hl7_gateway.store_rows import (icd10_category, search_rows, stale_index_keys,
                                    subject_column, visit_row)
from pacs_hdfs.containers import Location

LOC = Location("/pacs/hl7/archive/2024-03-05/h-1-0001.pack", 10, 20, "ab" * 32)


def test_category_is_three_characters():
    assert [icd10_category(c) for c in ("C50.9", "I10", "r51")] == ["C50", "I10", "R51"]


def test_search_rows_index_icd10_categories_and_accessions():
    visit = sample_visit(diagnoses=[Diagnosis(system="ICD10", code="C50.9", primary=True),
                                    Diagnosis(system="ICD10", code="C50.1"),
                                    Diagnosis(system="ICD9CM", code="250.00")])
    rows = search_rows(visit)
    key = f"icd10\x00C50\x00{visit.patient_id}\x00{visit.visit_id}".encode()
    assert rows[key][b"i:code"] == b"C50.9,C50.1"
    assert f"accession\x00ACQ2V7X4K6M3P5TZ\x00{visit.patient_id}\x00{visit.visit_id}".encode() in rows
    assert not any(k.startswith(b"icd10\x00250") for k in rows)


def test_visit_row_has_flat_columns_json_and_owned_index():
    visit = sample_visit()
    keys = list(search_rows(visit))
    row = visit_row(visit, LOC, "2024-03-05T13:00:00.000+00:00", keys)
    assert row[b"v:primary"] == b"I10" and row[b"v:icd10"] == b"I10"
    assert row[b"v:archive"].split()[1:3] == [b"10", b"20"]
    assert json.loads(row[b"v:json"])["visit_id"] == visit.visit_id
    assert stale_index_keys(row, keys) == []
    changed = sample_visit(diagnoses=[Diagnosis(system="ICD10", code="J18.9", primary=True)])
    stale = stale_index_keys(row, list(search_rows(changed)))
    assert stale == [k for k in keys if k.startswith(b"icd10\x00I10")]


def test_subject_column_links_visit():
    visit = sample_visit()
    assert subject_column(visit) == (visit.patient_id.encode(),
                                     {f"v:{visit.visit_id}".encode(): b"2024-03-01T08:15:00"})


def test_rows_of_a_hospital_record_it_and_no_hospital_records_nothing():
    visit = sample_visit()
    row = visit_row(visit, LOC, "2024-03-05T13:00:00.000+00:00", [], "hospA")
    assert row[b"v:hospital"] == b"hospA"
    assert b"v:hospital" not in visit_row(visit, LOC, "t", [])
    assert subject_column(visit, "hospA")[1][b"a:hospital"] == b"hospA"


def test_sub_locations_split_one_append_into_its_requests():
    from hl7_gateway.store import sub_locations
    parts = [b"<a/>", b"<bb/>"]
    whole = Location("/x.pack", 100, 9, "")
    found = sub_locations(whole, parts)
    assert [(loc.offset, loc.length) for loc in found] == [(100, 4), (104, 5)]
    import hashlib
    assert found[1].sha256 == hashlib.sha256(b"<bb/>").hexdigest()
