"""Is this DICOM object de-identified? The pure check the data center runs on what it receives.

`verify_deidentified(ds) -> list[str]` returns the problems found (empty = verified). It is the
only part of `deid` that data-center code imports: it reads the standard's Table E.1-1
(``profile_table``), the descriptor vocabulary (``descriptor_vocabulary.txt``, data next to this
module) and the constants below, and nothing else of the hospital side (no vault, no keys, no
de-identifier). It cannot prove that values were replaced *correctly* (that needs the keys); it
proves the object has the shape of a de-identified one, so that an identified object - a
modality sending straight to the MDC, an edge misconfigured, another hospital's de-identifier
that skipped a step - is refused rather than stored.

The de-identifier imports its formats and grammars from here (``deid.pseudonyms``,
``deid.policy``), so both sides share one definition of what a pseudonym, a remapped UID, a
clean descriptor, a well-formed date and a top-coded age are, and of what a Table E.1-1 'C'
(clean) cell means (``CLEAN_CELLS``).

Verified means (each rule is data below):

* ``PatientIdentityRemoved`` is ``YES`` and ``DeidentificationMethodCodeSequence`` lists at least
  113100 (Basic Application Confidentiality Profile, CID 7050); the option codes it lists are the
  options the object claims (``ACCEPTED_OPTIONS``), and the rules below follow them;
* no attribute, at any sequence depth, whose Table E.1-1 Basic Profile action is ``X`` (remove),
  unless a declared option keeps it ('K' in that option's column, or a 'C' cell whose cleaning
  is accepted: ``CLEAN_CELLS``); no ``EncryptedAttributesSequence``; no private attribute unless
  its (creator, element) pair is safelisted (none by default, like the de-identifier); no file
  meta attribute that names the sending site or carries private information;
* every public attribute has its data dictionary VR (a person name sent as CS or OB could hide
  anywhere the VR is trusted);
* with Clean Descriptors (113105) or Clean Graphics (113103) declared, every descriptor those
  options clean (text VRs of their 'C' cells) has only words of the vocabulary;
* every DA, DT and TM value is a well-formed date, date-time or time (single, multi-valued or a
  range): nothing else hides in a date; ``PatientBirthDate`` has no value; an age (AS) is well
  formed and at most 90 years (older ages are top-coded to ``090Y``);
* ``PatientID`` and ``PatientName`` are pseudonyms ('RS' + 16 base32 characters), an
  ``AccessionNumber`` is empty or a keyed hash ('AC' + 14 base32 characters);
* Study, Series and SOP Instance UIDs are present and every UID value in the data set (and the
  file meta's MediaStorageSOPInstanceUID) is either a well-known DICOM UID (pydicom's UID
  dictionary: SOP classes, transfer syntaxes, coding schemes...) or ``2.25.<digits>`` - the
  form the de-identifier's keyed remapping produces -, unless a declared option keeps that
  attribute ('K' in its column: Retain UIDs 113110, Retain Device Identity 113109 for device
  UIDs).

The rules match what ``deid.deidentify`` produces under every option (tests check every pydicom
test file and every option), so an object de-identified by our own edge always verifies.

Problem texts name attributes (keyword or tag, with the sequence path) and rules, never a value:
the object may be identified, and problems are logged and returned to the sender.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

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
# Dates, times and ages (the de-identifier writes these forms; the check accepts only these)
# --------------------------------------------------------------------------------------------

#: One DT value: YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX]; groups: date digits, time, offset.
DT_VALUE = re.compile(r"(\d{4}(?:\d{2}(?:\d{2})?)?)"
                      r"((?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?)"
                      r"([+-]\d{4})?\Z")
#: One DA value: YYYYMMDD.
DA_VALUE = re.compile(r"\d{8}\Z")
#: One TM value: HH[MM[SS[.F{1,6}]]] (the ACR-NEMA form HH:MM:SS is rewritten without colons).
TM_VALUE = re.compile(r"(?:[01]\d|2[0-3])(?:[0-5]\d(?:(?:[0-5]\d|60)(?:\.\d{1,6})?)?)?\Z")
DATE_GRAMMARS: dict[str, re.Pattern] = {"DA": DA_VALUE, "DT": DT_VALUE, "TM": TM_VALUE}

#: One AS value: nnnD, nnnW, nnnM or nnnY.
AGE_VALUE = re.compile(r"(\d{3})([DWMY])\Z")
AGE_UNIT_YEARS = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}
#: Ages of this many years or more are stored as TOP_CODED_AGE ("90+", as HIPAA's Safe Harbor).
AGE_TOP_YEARS = 90
TOP_CODED_AGE = "090Y"

PATIENT_BIRTH_DATE = 0x00100030


def range_parts(value: str, grammar: re.Pattern) -> list[str] | None:
    """The parts of one DA/DT/TM value: [value] when it is a single value, [start, end] when it
    is a range (either end may be empty, not both), None when it is neither.

    A DT such as ``20010203101010-0500`` is a single value with a UTC offset; the range reading
    is tried only when the single reading fails, and every '-' is tried as the separator (a DT
    range may have offsets on both ends)."""
    value = value.strip()
    if grammar.match(value):
        return [value]
    for i, c in enumerate(value):
        if c == "-":
            start, end = value[:i], value[i + 1:]
            if (start or end) and all(not p or grammar.match(p) for p in (start, end)):
                return [start, end]
    return None


def is_date_value(vr: str, value: str) -> bool:
    """Is ``value`` one well-formed DA, DT or TM value (or range) - nothing else mixed in?"""
    return not value.strip() or range_parts(value, DATE_GRAMMARS[vr]) is not None


def age_years(value: str) -> float | None:
    """Years of an AS value, None when it is not one."""
    m = AGE_VALUE.match(value.strip())
    return int(m.group(1)) * AGE_UNIT_YEARS[m.group(2)] if m else None


# --------------------------------------------------------------------------------------------
# Descriptors: clean only when every word is clinical or technical vocabulary
# --------------------------------------------------------------------------------------------

VOCABULARY_PATH = Path(__file__).with_name("descriptor_vocabulary.txt")

#: Letters NFKD does not reduce to ASCII.
_FOLD = str.maketrans({"Ł": "L", "ł": "l", "Ø": "O", "ø": "o", "ß": "SS", "Đ": "D", "đ": "d"})
#: '.' and ',' separate words unless they sit between digits (1.25MM, 0,5).
_WORD_PUNCTUATION = re.compile(r"(?<!\d)[.,]|[.,](?!\d)")
_SEPARATORS = re.compile(r"[^A-Z0-9.,]+")
#: Six or more digits in a row, even split by spaces, dots, dashes or slashes: an identifier
#: (PESEL, MRN), a phone number or a date. Never clinical vocabulary.
NUMBER_LIKE = re.compile(r"\d(?:[ ./,:\-]?\d){5,}")
#: Short technical tokens with a number: 5MM, 1.25, 120KV, T1, T2W, B1000, 3D, L5, TH12, 0,5T.
TECHNICAL_TOKEN = re.compile(r"[A-Z]{0,3}\d{1,4}(?:[.,]\d{1,3})?[A-Z]{0,3}\Z")


def normalise_text(text: str) -> str:
    """Upper case ASCII: Polish (and other) diacritics folded, 'Głowa' -> 'GLOWA'."""
    text = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(c for c in text if not unicodedata.combining(c)).upper()


def words(text: str) -> list[str]:
    """The words of a descriptor as the vocabulary check sees them."""
    text = _WORD_PUNCTUATION.sub(" ", normalise_text(text))
    return [w for w in _SEPARATORS.split(text) if w]


@cache
def descriptor_vocabulary() -> frozenset[str]:
    """The words of ``descriptor_vocabulary.txt`` ('#' starts a comment), normalised."""
    vocabulary: set[str] = set()
    for line in VOCABULARY_PATH.read_text(encoding="utf-8").splitlines():
        vocabulary.update(words(line.split("#", 1)[0]))
    return frozenset(vocabulary)


@lru_cache(maxsize=8192)
def descriptor_is_clean(text: str) -> bool:
    """True when every word of ``text`` is vocabulary, a short technical token or one letter,
    and no run of six or more digits (an identifier, phone number or date) is present."""
    if NUMBER_LIKE.search(normalise_text(text)):
        return False
    vocabulary = descriptor_vocabulary()
    return all(len(w) == 1 or w in vocabulary or TECHNICAL_TOKEN.match(w) for w in words(text))


# --------------------------------------------------------------------------------------------
# What a Table E.1-1 'C' (clean) cell means, per option column and dictionary VR
# --------------------------------------------------------------------------------------------

ITEMS = "items"            # a sequence is kept; its items are cleaned by the same rules
DATES = "dates"            # DA/DT/TM values kept as well-formed values, shifted by the date offset
VOCABULARY = "vocabulary"  # text kept only when every word is in the descriptor vocabulary

#: VRs of descriptors cleaned against the vocabulary.
DESCRIPTOR_VRS: frozenset[str] = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "CS"})

#: Column -> {dictionary VR: meaning of 'C'}. A 'C' cell not listed here cannot be cleaned
#: reliably (AE titles under Retain Device Identity, free-text patient characteristics,
#: overlay bitmaps, binary maker notes): the Basic Profile action applies to it.
CLEAN_CELLS: dict[str, dict[str, str]] = {
    "rtn_long_modif_dates": dict.fromkeys(("DA", "DT", "TM"), DATES),
    "clean_desc": {"SQ": ITEMS, **dict.fromkeys(DESCRIPTOR_VRS, VOCABULARY)},
    "clean_graphics": {"SQ": ITEMS, **dict.fromkeys(DESCRIPTOR_VRS, VOCABULARY)},
    "clean_struct_content": {"SQ": ITEMS},
    "rtn_patient_chars": {},
    "rtn_device_id": {},
}

# --------------------------------------------------------------------------------------------
# The declaration (PS3.15 E.1.1, PS3.3 C.7.1.1.1.4)
# --------------------------------------------------------------------------------------------

PATIENT_IDENTITY_REMOVED = 0x00120062
METHOD_CODE_SEQUENCE = 0x00120064
BASIC_PROFILE_CODE = "113100"     # DCM, Basic Application Confidentiality Profile
RETAIN_UIDS_CODE = "113110"
FULL_DATES_CODE, MODIFIED_DATES_CODE = "113106", "113107"
METHOD_SCHEME = "DCM"

#: Option codes (CID 7050) the MDC accepts when an object declares them -> the Table E.1-1
#: column that option governs. Declared, an option's 'K' cells may be present and its 'C'
#: cells as ``CLEAN_CELLS`` says. Clean Pixel Data / Recognizable Visual Features (113101,
#: 113102) govern no column; Retain Safe Private (113111) is checked against the MDC's own
#: safelist (``verify_deidentified(safe_private=...)``), not against the claim.
ACCEPTED_OPTIONS: dict[str, str] = {
    "113103": "clean_graphics",
    "113104": "clean_struct_content",
    "113105": "clean_desc",
    FULL_DATES_CODE: "rtn_long_full_dates",
    MODIFIED_DATES_CODE: "rtn_long_modif_dates",
    "113108": "rtn_patient_chars",
    "113109": "rtn_device_id",
    RETAIN_UIDS_CODE: "rtn_uids",
    "113112": "rtn_institution_id",
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
        _check_file_meta(ds, options, problems)
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
    if {FULL_DATES_CODE, MODIFIED_DATES_CODE} <= codes:
        problems.append(f"DeidentificationMethodCodeSequence declares both {FULL_DATES_CODE} "
                        f"and {MODIFIED_DATES_CODE}")
    return frozenset(codes & ACCEPTED_OPTIONS.keys())


def _check_format(ds: Dataset, fmt: Format, problems: list[str]) -> None:
    value = _text(ds, fmt.keyword)
    if not value and not fmt.required:
        return
    if not fmt.pattern.match(value):
        problems.append(f"{fmt.keyword} is not {fmt.description}")


@lru_cache(maxsize=16384)
def dictionary_vrs(tag: int) -> tuple[str, ...]:
    """The VRs the data dictionary allows for ``tag`` ('US or SS' -> ('US', 'SS', 'US or SS'));
    empty when pydicom does not know the tag or gives it no VR."""
    try:
        entry = dictionary_VR(tag)
    except KeyError:
        return ()
    if not entry or entry == "UN":
        return ()
    choices = tuple(entry.split(" or "))
    return choices + ((entry,) if len(choices) > 1 else ())


@lru_cache(maxsize=16384)
def _name(tag: int) -> str:
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@dataclass(frozen=True)
class _Rule:
    """What the check does with one public tag under one set of declared options."""

    vrs: tuple[str, ...]  # dictionary VRs (first = the one the rules use); () = unknown
    removed: bool         # Basic Profile X and no declared option keeps it
    kept: bool            # a declared option's 'K' keeps its value as it was (UIDs unchecked)
    vocabulary: bool      # a declared option cleans it against the vocabulary
    read: bool            # its value is checked (sequences, UIDs, dates, ages, vocabulary)


_READ_VRS = frozenset({"SQ", "UI", "DA", "DT", "TM", "AS"})


@lru_cache(maxsize=32768)
def _rule(tag: int, options: frozenset[str]) -> _Rule:
    vrs = dictionary_vrs(tag)
    vr = vrs[0] if vrs else "UN"
    row = lookup(tag)
    columns = [ACCEPTED_OPTIONS[code] for code in options]
    removed = row is not None and row.basic == "X" and not _kept_by_option(row, vr, columns)
    kept = row is not None and any(row.action(c) == "K" for c in columns)
    vocabulary = row is not None and any(
        row.action(c) == "C" and CLEAN_CELLS.get(c, {}).get(vr) == VOCABULARY for c in columns)
    read = vocabulary or vr in _READ_VRS or tag == PATIENT_BIRTH_DATE
    return _Rule(vrs, removed, kept, vocabulary, read)


def _kept_by_option(row: ProfileRow, vr: str, columns: list[str]) -> bool:
    """Does a declared option keep this X attribute ('K', or a 'C' it can clean)?"""
    for column in columns:
        action = row.action(column)
        if action == "K" or (action == "C" and vr in CLEAN_CELLS.get(column, {})):
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
        rule = _rule(t, options)
        received = ds.get_item(tag).VR  # None: implicit VR, the dictionary's by construction
        if received and rule.vrs and received not in rule.vrs:
            problems.append(f"{where} has VR {received}, not the dictionary's {rule.vrs[-1]}")
            continue
        if rule.removed:
            problems.append(f"{where} present: the Basic Profile removes it")
            continue
        if not rule.read:
            continue
        try:
            value = ds[tag].value
        except Exception:  # noqa: BLE001
            problems.append(f"{where} cannot be read")
            continue
        if isinstance(value, Sequence):
            for i, item in enumerate(value):
                _walk(item, f"{where}[{i}].", options, safe, problems)
            continue
        _check_value(t, rule, value, where, options, problems)


def _values(value) -> list[str]:
    if value is None:
        return []
    values = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" \
        else [value]
    return [str(v).strip("\x00 ") for v in values]


def _check_value(tag: int, rule: _Rule, value, where: str, options: frozenset[str],
                 problems: list[str]) -> None:
    """The value rules: UIDs, dates, ages, the birth date and descriptors."""
    vr = rule.vrs[0] if rule.vrs else "UN"
    values = [v for v in _values(value) if v]
    if vr == "UI":
        if not rule.kept:
            _check_uids(values, where, problems)
    elif vr in DATE_GRAMMARS and not all(is_date_value(vr, v) for v in values):
        problems.append(f"{where} is not a well-formed {vr} value")
    elif vr == "AS" and values:
        years = [age_years(v) for v in values]
        if any(y is None for y in years):
            problems.append(f"{where} is not an age string")
        elif any(y > AGE_TOP_YEARS for y in years):
            problems.append(f"{where} is over {AGE_TOP_YEARS} years (must be {TOP_CODED_AGE})")
    if tag == PATIENT_BIRTH_DATE and values:
        problems.append(f"{where} has a value (the profile empties it)")
    if rule.vocabulary and not all(descriptor_is_clean(v) for v in values):
        problems.append(f"{where} is not a clean descriptor (words outside the vocabulary)")


def _check_uids(values: list[str], where: str, problems: list[str]) -> None:
    for uid in values:
        if uid not in UID_dictionary and not is_deidentified_uid(uid):
            problems.append(f"{where} is not a 2.25 UID")
            return


def _check_file_meta(ds: Dataset, options: frozenset[str], problems: list[str]) -> None:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return
    for tag, keyword in FILE_META_REMOVED.items():
        if tag in meta:
            problems.append(f"file meta {keyword} present")
    if MEDIA_STORAGE_SOP_INSTANCE_UID in meta and \
            not _rule(MEDIA_STORAGE_SOP_INSTANCE_UID, options).kept:
        _check_uids([v for v in _values(meta[MEDIA_STORAGE_SOP_INSTANCE_UID].value) if v],
                    "file meta MediaStorageSOPInstanceUID", problems)
