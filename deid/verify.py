"""Is this DICOM object de-identified? The pure check the data center runs on what it receives.

`verify_deidentified(ds) -> list[str]` returns the problems found (empty = verified). It is the
only part of `deid` that data-center code imports: it reads the standard's Table E.1-1
(``profile_table``) and the constants below, and nothing else of the hospital side (no vault, no
keys, no de-identifier). It cannot prove that values were replaced *correctly* (that needs the
keys); it proves the object has the shape of a de-identified one, so that an identified object -
a modality sending straight to the MDC, an edge misconfigured, another hospital's de-identifier
that skipped a step - is refused rather than stored.

Verified means (each rule is data below):

* ``PatientIdentityRemoved`` is ``YES`` and ``DeidentificationMethodCodeSequence`` lists at least
  113100 (Basic Application Confidentiality Profile, CID 7050);
* no attribute, at any sequence depth, whose Table E.1-1 Basic Profile action is ``X`` (remove),
  unless a profile option the object *declares* in that sequence keeps it and the MDC accepts
  that option (``ACCEPTED_OPTIONS``); no ``EncryptedAttributesSequence``; no private attribute
  unless its (creator, element) pair is safelisted (none by default, like the de-identifier);
  no file meta attribute that names the sending site or carries private information;
* ``PatientID`` and ``PatientName`` are pseudonyms ('RS' + 16 base32 characters), an
  ``AccessionNumber`` is empty or a keyed hash ('AC' + 14 base32 characters);
* Study, Series and SOP Instance UIDs are present and, like every other UID value in the data
  set (and the file meta's MediaStorageSOPInstanceUID), either a well-known DICOM UID (pydicom's
  UID dictionary: SOP classes, transfer syntaxes, coding schemes...) or ``2.25.<digits>`` - the
  form the de-identifier's keyed remapping produces.

The rules match what ``deid.deidentify`` produces with its default options (tests check every
pydicom test file), so an object de-identified by our own edge always verifies.

Problem texts name attributes (keyword or tag, with the sequence path) and rules, never a value:
the object may be identified, and problems are logged and returned to the sender.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary

from deid.profile_table import ProfileRow, lookup

# --------------------------------------------------------------------------------------------
# Formats of the de-identifier's replacements (deid.pseudonyms produces them; portal matches them)
# --------------------------------------------------------------------------------------------

PATIENT_PREFIX = "RS"
PATIENT_PSEUDONYM_CHARS = 16
ACCESSION_PREFIX = "AC"
ACCESSION_CHARS = 14
_B32 = "[A-Z2-7]"

#: A patient pseudonym: 'RS' + 16 base32 characters of a keyed hash.
PATIENT_PSEUDONYM = re.compile(rf"{PATIENT_PREFIX}{_B32}{{{PATIENT_PSEUDONYM_CHARS}}}\Z")
#: A de-identified accession number: 'AC' + 14 base32 characters of a keyed hash.
ACCESSION_HASH = re.compile(rf"{ACCESSION_PREFIX}{_B32}{{{ACCESSION_CHARS}}}\Z")
#: A remapped UID: '2.25.' + a 128-bit integer in decimal (PS3.5 B.2), no leading zero.
DEIDENTIFIED_UID = re.compile(r"2\.25\.(0|[1-9][0-9]{0,38})\Z")
UID_MAX_INTEGER = 2 ** 128 - 1


@dataclass(frozen=True)
class Format:
    """A top-level attribute whose value must have the form of the de-identifier's replacement."""

    keyword: str
    pattern: re.Pattern
    required: bool      # must be present and non-empty (else: empty or absent is fine)
    description: str


FORMATS: tuple[Format, ...] = (
    Format("PatientID", PATIENT_PSEUDONYM, True, "a pseudonym (RS + 16 base32 characters)"),
    Format("PatientName", PATIENT_PSEUDONYM, True, "a pseudonym (RS + 16 base32 characters)"),
    Format("AccessionNumber", ACCESSION_HASH, False,
           "empty or a keyed hash (AC + 14 base32 characters)"),
)

#: Instance UIDs every object must carry, remapped.
REQUIRED_UIDS: tuple[str, ...] = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")

# --------------------------------------------------------------------------------------------
# The declaration (PS3.15 E.1.1, PS3.3 C.7.1.1.1.4)
# --------------------------------------------------------------------------------------------

PATIENT_IDENTITY_REMOVED = 0x00120062
METHOD_CODE_SEQUENCE = 0x00120064
BASIC_PROFILE_CODE = "113100"     # DCM, Basic Application Confidentiality Profile
METHOD_SCHEME = "DCM"


@dataclass(frozen=True)
class AcceptedOption:
    """A profile option (CID 7050 code) the MDC accepts when an object declares it: the Table
    E.1-1 column it governs and which of that column's 'C' (clean) cells are acceptable - the MDC
    cannot check that a value was cleaned, so it accepts only what cleaning demonstrably means
    for that option."""

    column: str
    clean_vrs: frozenset[str] = frozenset()        # 'C' accepted for these VRs
    clean_keywords: frozenset[str] = frozenset()   # 'C' accepted for these attributes


#: Options other than these (Retain UIDs, Retain Full Dates, Retain Device or Institution
#: Identity, ...) are not accepted: the attributes they would keep are refused as usual.
ACCEPTED_OPTIONS: dict[str, AcceptedOption] = {
    # Retain Longitudinal Temporal Information with Modified Dates: dates and times kept
    # (shifted by the edge; the shift itself cannot be checked without its key).
    "113107": AcceptedOption("rtn_long_modif_dates", clean_vrs=frozenset({"DA", "DT", "TM"})),
    # Retain Patient Characteristics: its 'K' cells (age, size, weight, ethnic group, smoking,
    # pregnancy); its 'C' cells (allergies, special needs, pre-medication) are free text.
    "113108": AcceptedOption("rtn_patient_chars"),
    # Clean Descriptors: only the two descriptors the portal searches on and that sites are
    # asked to keep free of identifiers (deid.options.DEFAULT_KEPT_DESCRIPTORS); every other
    # comment or description is free text that cannot be verified as cleaned.
    "113105": AcceptedOption("clean_desc",
                             clean_keywords=frozenset({"StudyDescription", "SeriesDescription"})),
}

# --------------------------------------------------------------------------------------------
# Attributes that must not be present
# --------------------------------------------------------------------------------------------

#: Refused at any depth whatever the table and options say.
FORBIDDEN: dict[int, str] = {
    0x04000500: "present (encrypted original values)",
}

#: File meta attributes that name the sending site or carry private data (the de-identifier
#: drops them: deid.deidentify.FILE_META_DROP).
FILE_META_REMOVED: dict[int, str] = {
    0x00020016: "SourceApplicationEntityTitle",
    0x00020017: "SendingApplicationEntityTitle",
    0x00020018: "ReceivingApplicationEntityTitle",
    0x00020100: "PrivateInformationCreatorUID",
    0x00020102: "PrivateInformation",
}
MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003

#: Private (creator, element byte) pairs accepted; empty like deid.options.DEFAULT_SAFE_PRIVATE.
DEFAULT_SAFE_PRIVATE: frozenset[tuple[str, int]] = frozenset()

#: At most this many problems are listed (an object with a private tag in every item of a long
#: sequence is refused just the same).
MAX_PROBLEMS = 20


# --------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------

def verify_deidentified(ds: Dataset,
                        safe_private: frozenset[tuple[str, int]] = DEFAULT_SAFE_PRIVATE
                        ) -> list[str]:
    """Problems that make ``ds`` not verifiably de-identified; empty when it verifies.

    ``ds`` may be read lazily (pixel data is never decoded). Never raises for a malformed value:
    an attribute that cannot be read is itself a problem."""
    problems: list[str] = []
    try:
        options = _declaration(ds, problems)
        for fmt in FORMATS:
            _check_format(ds, fmt, problems)
        for keyword in REQUIRED_UIDS:
            if not _text(ds, keyword):
                problems.append(f"{keyword} missing")
        _walk(ds, "", options, safe_private, problems)
        _check_file_meta(ds, problems)
    except Exception as e:  # noqa: BLE001 - hostile input: unverifiable is not verified
        problems.append(f"cannot be checked ({type(e).__name__})")
    if len(problems) > MAX_PROBLEMS:
        problems[MAX_PROBLEMS:] = [f"... and {len(problems) - MAX_PROBLEMS} more"]
    return problems


def is_deidentified_uid(value: str) -> bool:
    """True for '2.25.<digits>' with a 128-bit integer (the de-identifier's remapped form)."""
    return bool(DEIDENTIFIED_UID.match(value)) and int(value[5:]) <= UID_MAX_INTEGER


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a value pydicom cannot convert
        return ""
    return "" if value is None else str(value).strip(" \x00")


def _declaration(ds: Dataset, problems: list[str]) -> frozenset[str]:
    """Check PatientIdentityRemoved and the method codes; the declared option codes."""
    if _text(ds, "PatientIdentityRemoved") != "YES":
        problems.append("PatientIdentityRemoved is not YES")
    try:
        items = ds.get(METHOD_CODE_SEQUENCE)
        items = list(items.value) if items is not None and items.value else []
        codes = frozenset(_text(item, "CodeValue") for item in items
                          if _text(item, "CodingSchemeDesignator") == METHOD_SCHEME)
    except Exception:  # noqa: BLE001
        problems.append("DeidentificationMethodCodeSequence cannot be read")
        return frozenset()
    if not items:
        problems.append("DeidentificationMethodCodeSequence missing or empty")
    elif BASIC_PROFILE_CODE not in codes:
        problems.append(f"DeidentificationMethodCodeSequence lacks {BASIC_PROFILE_CODE} "
                        "(Basic Application Confidentiality Profile)")
    return codes & ACCEPTED_OPTIONS.keys()


def _check_format(ds: Dataset, fmt: Format, problems: list[str]) -> None:
    value = _text(ds, fmt.keyword)
    if not value and not fmt.required:
        return
    if not fmt.pattern.match(value):
        problems.append(f"{fmt.keyword} is not {fmt.description}")


@lru_cache(maxsize=16384)
def _vr(tag: int) -> str:
    try:
        return dictionary_VR(tag).split(" or ")[0]
    except KeyError:
        return "UN"


@lru_cache(maxsize=16384)
def _name(tag: int) -> str:
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@lru_cache(maxsize=16384)
def _removal_row(tag: int) -> ProfileRow | None:
    """The Table E.1-1 row when its Basic Profile action is X (remove), else None."""
    row = lookup(tag)
    return row if row is not None and row.basic == "X" else None


def _kept_by_option(row: ProfileRow, vr: str, options: frozenset[str]) -> bool:
    """Does a declared, accepted option keep this X attribute?"""
    for code in options:
        option = ACCEPTED_OPTIONS[code]
        action = row.action(option.column)
        if action == "K":
            return True
        if action == "C" and (vr in option.clean_vrs or row.keyword in option.clean_keywords):
            return True
    return False


def _private_allowed(ds: Dataset, tag: int, safe: frozenset[tuple[str, int]]) -> bool:
    """A safelisted private element (creator, element byte), or the creator of one."""
    if not safe:
        return False
    element = tag & 0xFFFF
    if 0x10 <= element <= 0xFF:  # a private creator element: allowed if it reserves a safe pair
        try:
            creator = str(ds[tag].value).strip()
        except Exception:  # noqa: BLE001
            return False
        return any(c == creator for c, _ in safe)
    block = element >> 8
    if block < 0x10:
        return False
    creator_elem = ds.get((tag & 0xFFFF0000) | block)
    return creator_elem is not None and (str(creator_elem.value).strip(), tag & 0xFF) in safe


def _walk(ds: Dataset, path: str, options: frozenset[str],
          safe: frozenset[tuple[str, int]], problems: list[str]) -> None:
    """Check every attribute of ``ds`` and, recursively, of its sequence items."""
    for tag in list(ds.keys()):
        t = int(tag)
        where = f"{path}{_name(t)}"
        if (t >> 16) & 1:
            if not _private_allowed(ds, t, safe):
                problems.append(f"private attribute {where} present")
            continue
        if t & 0xFFFF == 0:  # group length
            continue
        if t in FORBIDDEN:
            problems.append(f"{where} {FORBIDDEN[t]}")
            continue
        raw_vr = ds.get_item(tag).VR
        vr = raw_vr if raw_vr and raw_vr != "UN" else _vr(t)
        row = _removal_row(t)
        if row is not None and not _kept_by_option(row, vr, options):
            problems.append(f"{where} present: the Basic Profile removes it")
            continue
        if vr == "SQ" or vr == "UI":
            try:
                value = ds[tag].value
            except Exception:  # noqa: BLE001
                problems.append(f"{where} cannot be read")
                continue
            if isinstance(value, Sequence):
                for i, item in enumerate(value):
                    _walk(item, f"{where}[{i}].", options, safe, problems)
            elif vr == "UI":
                _check_uids(value, where, problems)


def _uid_values(value) -> list[str]:
    if value is None:
        return []
    values = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" \
        else [value]
    return [str(v).strip("\x00 ") for v in values]


def _check_uids(value, where: str, problems: list[str]) -> None:
    for uid in _uid_values(value):
        if uid and uid not in UID_dictionary and not is_deidentified_uid(uid):
            problems.append(f"{where} is not a 2.25 UID")
            return


def _check_file_meta(ds: Dataset, problems: list[str]) -> None:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return
    for tag, keyword in FILE_META_REMOVED.items():
        if tag in meta:
            problems.append(f"file meta {keyword} present")
    if MEDIA_STORAGE_SOP_INSTANCE_UID in meta:
        _check_uids(meta[MEDIA_STORAGE_SOP_INSTANCE_UID].value,
                    "file meta MediaStorageSOPInstanceUID", problems)
