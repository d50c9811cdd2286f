"""Keyed replacements shared with the DICOM de-identification (patient pseudonym, accession).

Both are the very functions ``deid`` applies to DICOM (same key from the shared hospital vault),
so the same patient gets the same research id and a visit's exams link to the imaging studies.
The HIS national id is what the DICOM side sees as PatientID (issuer empty).
"""
from __future__ import annotations

from deid.pseudonyms import patient_pseudonym, pseudonymise_accession


def pseudonym_for(key: bytes, patient_id: str) -> str:
    return patient_pseudonym(key, patient_id)


def accession_for(key: bytes, accession: str) -> str:
    return pseudonymise_accession(key, accession)
