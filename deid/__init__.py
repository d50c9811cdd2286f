"""DICOM de-identification for the MDC (PS3.15 Annex E), pure functions plus the key vault.

Every attribute, at any sequence depth, gets the action of the standard's Table E.1-1
(``profile_table.csv``, resolved in ``policy.py``) under the Basic Application Level
Confidentiality Profile with three options: *Retain Longitudinal Temporal Information with
Modified Dates* (DA and DT values, including the date part of DT, move by one per-patient
offset of -1..-3650 days from a keyed hash of the patient id; TM is kept), *Retain Patient
Characteristics* (sex, age, size, weight, ethnic group, smoking and pregnancy status kept)
and *Clean Descriptors* applied conservatively (only StudyDescription and SeriesDescription
are kept; every other descriptor and comment is removed, since free text cannot be cleaned
reliably). Attributes the table does not list are kept only if they are codes, numbers or
pixel data: unlisted person names and free text are removed, unlisted dates shifted and
unlisted UIDs remapped. Private attributes are removed unless safelisted (empty by default).
PatientID and PatientName become an HMAC pseudonym ('RS' + 16 base32 chars), AccessionNumber
a keyed hash shared with the HL7 side, instance UIDs ``2.25.<HMAC>`` (well-known class and
transfer-syntax UIDs are kept) so references between objects survive. Objects likely to show
PHI in their pixels are flagged for quarantine. What re-identification needs stays on the
hospital side in :class:`deid.vault.Vault`.
"""

from deid.deidentify import DEFAULT_OPTIONS, deidentify
from deid.keys import DeidKeys
from deid.options import DeidOptions
from deid.pseudonyms import (
    date_shift_days,
    patient_pseudonym,
    pseudonymise_accession,
    remap_uid,
)
from deid.quarantine import quarantine_reason
from deid.records import DeidResult, ReidRecord
from deid.reidentify import reidentify
from deid.vault import Vault, VaultError, generate_master_key

__all__ = [
    "DEFAULT_OPTIONS",
    "DeidKeys",
    "DeidOptions",
    "DeidResult",
    "ReidRecord",
    "Vault",
    "VaultError",
    "date_shift_days",
    "deidentify",
    "generate_master_key",
    "patient_pseudonym",
    "pseudonymise_accession",
    "quarantine_reason",
    "reidentify",
    "remap_uid",
]
