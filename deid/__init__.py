"""DICOM de-identification for the MDC (PS3.15 Annex E), pure functions plus the key vault.

Every attribute, at any sequence depth (SR content trees included), gets the action of the
standard's Table E.1-1 (``profile_table.csv``, resolved in ``policy.py``) under the Basic
Application Level Confidentiality Profile and the options chosen per source
(``options.py``, ``profiles.py``: per calling AE from ``pacs.toml``). Every option column of
the table is honoured, and each object declares exactly the options applied in its
DeidentificationMethodCodeSequence. By default: *Retain Longitudinal Temporal Information
with Modified Dates* (or *Full Dates*, by ``deid_date_policy``: every DA and DT value, multi-
values and both ends of ranges included, moves by one per-patient offset of -1..-3650 days
from a keyed hash of the PatientID; TM values are kept; malformed ones dropped), *Retain
Patient Characteristics* (ages top-coded at 090Y; the birth date is emptied), *Clean
Descriptors* (a descriptor is kept only when every word is in ``descriptor_vocabulary.txt``)
and *Clean Structured Content* (content items cleaned by the same rules).

Attributes are judged by their data dictionary VR, never the received one; an element sent
with another VR never has its bytes carried. Attributes the table does not list are kept only
if they are codes, numbers or pixel data: unlisted person names and free text are removed,
unlisted dates follow the date policy and unlisted UIDs are remapped; encrypted attributes are
removed. Private attributes are removed unless safelisted (empty by default). PatientID and
PatientName become an HMAC pseudonym ('RS' + 16 base32 chars; objects naming no patient get
one of their own study), AccessionNumber a keyed hash shared with the HL7 side, instance UIDs
``2.25.<HMAC>`` (well-known class and transfer-syntax UIDs are kept) so references between
objects survive. Pixels are screened (``burned_in.py``, pydicom deid's rules): a known layout
is blanked and Clean Pixel Data declared; a risky class no rule covers is held at the edge. What
re-identification needs stays on the hospital side in :class:`deid.vault.Vault`; the data
center checks what it receives with ``verify.py`` alone. docs/DEIDENTIFICATION.md lists every
rule and the test that shows it.
"""

from deid.deidentify import DEFAULT_OPTIONS, deidentify
from deid.keys import DeidKeys
from deid.options import DeidOptions
from deid.profiles import DeidProfiles
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
    "DeidProfiles",
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
