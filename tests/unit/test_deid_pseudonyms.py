"""Keyed pseudonyms, accession hashes, UID remapping and date shifting."""

from __future__ import annotations

import base64
import datetime as dt
import secrets

from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

from deid import date_shift_days, patient_pseudonym, pseudonymise_accession, remap_uid
from deid.pseudonyms import shift_da, shift_dt

KEY = secrets.token_bytes(32)
OTHER_KEY = secrets.token_bytes(32)


def test_patient_pseudonym_is_stable_short_and_keyed():
    value = patient_pseudonym(KEY, "12345", "HOSP")
    assert value == patient_pseudonym(KEY, "12345", "HOSP")
    assert value.startswith("RS") and len(value) == 18
    assert len(base64.b32decode(value[2:])) == 10  # 16 base32 chars = 80 bits
    assert value != patient_pseudonym(OTHER_KEY, "12345", "HOSP")
    assert value != patient_pseudonym(KEY, "12345", "OTHER")
    assert value != patient_pseudonym(KEY, "12346", "HOSP")


def test_accession_hash_fits_sh_and_differs_from_patient_pseudonym():
    value = pseudonymise_accession(KEY, "A1000")
    assert value == pseudonymise_accession(KEY, " A1000 ")
    assert len(value) <= 16 and value != pseudonymise_accession(KEY, "A1001")
    assert value[2:] not in patient_pseudonym(KEY, "A1000")


def test_uid_remap_is_valid_deterministic_and_keeps_well_known():
    original = "1.2.826.0.1.3680043.8.498.1"
    new = remap_uid(KEY, original)
    assert new == remap_uid(KEY, original) != remap_uid(OTHER_KEY, original)
    assert new.startswith("2.25.") and UID(new).is_valid and len(new) <= 64
    assert remap_uid(KEY, CTImageStorage) == CTImageStorage
    assert remap_uid(KEY, ExplicitVRLittleEndian) == ExplicitVRLittleEndian


def test_date_shift_range_and_determinism():
    shifts = {date_shift_days(KEY, f"P{n}") for n in range(200)}
    assert all(-3650 <= s <= -1 for s in shifts) and len(shifts) > 150
    assert date_shift_days(KEY, "P1") == date_shift_days(KEY, "P1")


def test_shift_da_and_dt_preserve_format():
    days = -400
    expected = (dt.date(2021, 2, 28) + dt.timedelta(days=days)).strftime("%Y%m%d")
    assert shift_da("20210228", days) == expected
    assert shift_da("garbage", days) == ""
    assert shift_dt("20210228235959.5-0500", days) == expected + "235959.5-0500"
    assert shift_dt("20210228", days) == expected
    assert shift_dt("202102", days) == (dt.date(2021, 2, 1) + dt.timedelta(days=days)).strftime("%Y%m")
    assert shift_dt("2021", days) == str((dt.date(2021, 1, 1) + dt.timedelta(days=days)).year)
