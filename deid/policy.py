"""Turn Table E.1-1 plus the chosen options into one final action per attribute.

Final actions (strings, so plans are plain data):

==============  ===============================================================================
``K``           keep the value (sequences: keep, clean the items by the same rules)
``X``           remove the attribute
``Z``           keep the attribute with an empty value (sequences: no items)
``D``           replace with a dummy value of the VR (sequences: no items)
``U``           remap UIDs with a keyed hash (sequences: keep, clean the items)
``SHIFT``       DA/DT/TM values rewritten by the date policy: well-formed values only, both ends
                of a range, dates moved by the patient's offset (0 with full dates; TM kept)
``PSEUDO``      replace with the patient pseudonym (PatientName, PatientID)
``ACCESSION``   replace with the keyed accession hash
``DESCRIPTOR``  keep only if every word is in the descriptor vocabulary, else the basic action
``AGE``         an age (AS) kept, top-coded: 90 years or more become ``090Y``
``CHECKED``     a code or number kept only if well formed for its VR and VM, else removed
==============  ===============================================================================

Every public attribute is judged by its **data dictionary VR**, never by the VR it arrived
with: a person name sent as CS or OB is a person name. An element whose received VR differs
from the dictionary's gets ``WRONG_VR_ACTIONS``: replacements that do not carry its value
(remove, empty, dummy, pseudonym, keyed hash) apply as planned, a kept code or number is kept
only when it is well formed under the dictionary VR, and anything else that would carry or
rewrite the received value (dates, ages, descriptors, text) gets the basic action instead.

Combined basic-profile actions resolve to the least destructive member that keeps IOD conformance
without carrying the original value: X/Z -> Z, X/D, Z/D, X/Z/D -> D, X/Z/U* -> U. A 'C' (clean)
cell of an option column means what ``deid.verify.CLEAN_CELLS`` says for the attribute's VR
(the data center's check reads the same table); a 'C' it does not define falls through to the
next option's cell and finally to the basic action.

Attributes the table does not list are decided by VR (``UNLISTED_BY_VR``): person names and
free text (PN, LO, SH, LT, ST, UT, UC, UR, AE, UN) are removed unless their keyword is in the
small ``SAFE_TEXT_KEYWORDS`` list of technical attributes; unlisted dates and times follow the
date policy (removed when no longitudinal option is on); unlisted UIDs are remapped unless well
known; ages are top-coded; everything else (codes and numbers: CS, DS, IS, US, FL, ..., pixel
data) is kept. ``ALWAYS_REMOVED`` attributes (encrypted original values and MAC parameters, which
the table does not list) are removed whatever the options. Public tags unknown to pydicom's
dictionary and all private tags not in the safe-private list are removed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

from pydicom.datadict import dictionary_VM, keyword_for_tag

from deid.options import DeidOptions
from deid.profile_table import ProfileRow, load_rows, lookup
from deid.verify import CLEAN_CELLS, DATES, ITEMS, VOCABULARY, dictionary_vrs

KEEP, REMOVE, EMPTY, DUMMY, UID, SHIFT, PSEUDO, ACCESSION = (
    "K", "X", "Z", "D", "U", "SHIFT", "PSEUDO", "ACCESSION",
)
DESCRIPTOR, AGE, CHECKED = "DESCRIPTOR", "AGE", "CHECKED"

#: Combined basic-profile actions -> the single action applied.
COMBO_RESOLUTION: dict[str, str] = {
    "X/Z": EMPTY,
    "X/D": DUMMY,
    "Z/D": DUMMY,
    "X/Z/D": DUMMY,
    "X/Z/U*": UID,
}

#: What a 'C' cell becomes here, by its meaning in deid.verify.CLEAN_CELLS.
CLEAN_ACTIONS: dict[str, str] = {ITEMS: KEEP, DATES: SHIFT, VOCABULARY: DESCRIPTOR}

#: Replacements that take precedence over the table (the table says Z or Z/D for these).
SPECIAL_ACTIONS: dict[str, str] = {
    "PatientName": PSEUDO,
    "PatientID": PSEUDO,
    "AccessionNumber": ACCESSION,
}

#: Attributes Table E.1-1 does not list, removed under every option: encrypted original values
#: (PS3.15 E.1.1 puts them there for re-identification) and the MAC parameters describing them.
ALWAYS_REMOVED: dict[int, str] = {
    0x04000500: "EncryptedAttributesSequence",
    0x04000510: "EncryptedContentTransferSyntaxUID",
    0x04000520: "EncryptedContent",
    0x4FFE0001: "MACParametersSequence",
}

DATE_VRS = frozenset({"DA", "DT", "TM"})

#: A kept value of these VRs goes through the action that rewrites it from parsed parts.
KEEP_BY_VR: dict[str, str] = {"DA": SHIFT, "DT": SHIFT, "TM": SHIFT, "AS": AGE}

#: Default action for attributes Table E.1-1 does not list, by dictionary VR. Missing VR -> keep.
#: (Dates and times: SHIFT when a longitudinal option is on, else removed; see unlisted_action.)
UNLISTED_BY_VR: dict[str, str] = {
    "PN": REMOVE, "LO": REMOVE, "SH": REMOVE, "LT": REMOVE, "ST": REMOVE, "UT": REMOVE,
    "UC": REMOVE, "UR": REMOVE, "AE": REMOVE, "UN": REMOVE,
    "UI": UID, "AS": AGE,
}

#: Unlisted short-text attributes known to hold technical vocabulary, kept despite their VR.
SAFE_TEXT_KEYWORDS: frozenset[str] = frozenset({
    "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "ConvolutionKernel",
    "FilterType", "SequenceName", "PulseSequenceName", "TransmitCoilName", "ReceiveCoilName",
    "ImagedNucleus",
    "ReceiveCoilManufacturerName", "ContrastBolusRoute", "RescaleType",
    "WindowCenterWidthExplanation", "PositionReferenceIndicator", "CodeValue",
    "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning", "LongCodeValue",
    "ImplementationVersionName", "LUTExplanation",
    "ReconstructionAlgorithm", "BeamName", "TreatmentMachineName",
    "FrameOfReferenceRelationship", "ScanOptions", "ProtocolContextIdentifier",
})

#: Dummy values for action D, by VR. VRs not listed get an empty value.
DUMMY_BY_VR: dict[str, object] = {
    "PN": "ANONYMIZED", "LO": "ANONYMIZED", "SH": "ANONYMIZED", "LT": "ANONYMIZED",
    "ST": "ANONYMIZED", "UT": "ANONYMIZED", "UC": "ANONYMIZED", "CS": "ANONYMIZED",
    "AE": "ANONYMIZED", "DA": "19000101", "TM": "000000", "DT": "19000101000000",
    "AS": "000Y", "IS": "0", "DS": "0",
    "US": 0, "SS": 0, "UL": 0, "SL": 0, "FL": 0.0, "FD": 0.0, "UV": 0, "SV": 0,
}

# --- elements that arrive with another VR than the dictionary's ---------------------------------

#: Planned action -> action for an element whose received VR is not the dictionary's. Actions
#: not listed (SHIFT, AGE, DESCRIPTOR, CHECKED) would carry or rewrite the untrusted value: the
#: attribute gets its basic action (``Rule.fallback``) instead.
WRONG_VR_ACTIONS: dict[str, str] = {
    KEEP: CHECKED, REMOVE: REMOVE, EMPTY: EMPTY, DUMMY: DUMMY, UID: UID,
    PSEUDO: PSEUDO, ACCESSION: ACCESSION,
}

#: Well-formed values of the text code and number VRs (one value each); CHECKED keeps these.
VALUE_PATTERNS: dict[str, re.Pattern] = {
    "CS": re.compile(r"[A-Z0-9 _]{0,16}\Z"),
    "IS": re.compile(r" *[+-]?\d{1,11} *\Z"),
    "DS": re.compile(r"(?=.{0,16}\Z) *[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)? *\Z"),
    "UI": re.compile(r"(?=.{1,64}\Z)\d+(?:\.\d+)*\Z"),
}
#: Binary number VRs: CHECKED keeps them when the value count fits the dictionary VM.
NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"})
#: Kept attributes whose value must match their own pattern (a time-zone offset, not text).
KEYWORD_PATTERNS: dict[str, re.Pattern] = {
    "TimezoneOffsetFromUTC": re.compile(r"[+-]\d{4}\Z"),
}


@dataclass(frozen=True, slots=True)
class Rule:
    """The plan for one public tag under one options value."""

    action: str
    vr: str                # dictionary VR the handlers write ('UN' when unknown)
    vrs: tuple[str, ...]   # VRs a received element may have without being distrusted
    fallback: str          # the basic action, for descriptors that fail and wrong-VR elements
    keyword: str


def basic_action(row: ProfileRow | None) -> str:
    """The Basic Profile action of a table row (combined actions resolved); X when unlisted."""
    if row is None:
        return REMOVE
    return COMBO_RESOLUTION.get(row.basic, row.basic)


def row_vr(row: ProfileRow) -> str:
    """The dictionary VR of a table row (repeating groups: their first group)."""
    return dictionary_vr(int(row.tag.replace("X", "0"), 16))


def resolve_row(row: ProfileRow, options: DeidOptions) -> str:
    """Final action for one table row under ``options``: every option column in force is read,
    in precedence order; 'K' keeps, a 'C' the column can clean for the row's VR cleans, and a
    row no option changes gets its basic action."""
    special = SPECIAL_ACTIONS.get(row.keyword)
    if special:
        return special
    vr = row_vr(row)
    for column in options.option_columns():
        action = row.action(column)
        if action == KEEP:
            return KEEP
        if action == "C":
            meaning = CLEAN_CELLS.get(column, {}).get(vr)
            if meaning is not None:
                return CLEAN_ACTIONS[meaning]
    return basic_action(row)


@lru_cache(maxsize=8192)
def dictionary_vr(tag: int) -> str:
    """VR from pydicom's dictionary ('UN' when unknown); first choice of ambiguous VRs."""
    vrs = dictionary_vrs(tag)
    return vrs[0] if vrs else "UN"


@lru_cache(maxsize=8192)
def _keyword(tag: int) -> str:
    return keyword_for_tag(tag)


def _dates_kept(options: DeidOptions) -> bool:
    return options.retain_longitudinal_modified_dates or options.retain_longitudinal_full_dates


def unlisted_action(tag: int, vr: str, options: DeidOptions) -> str:
    """Action for a public attribute that Table E.1-1 does not list (by dictionary VR)."""
    keyword = _keyword(tag)
    if not keyword:
        return REMOVE
    if keyword in SAFE_TEXT_KEYWORDS:
        return KEEP
    if vr in DATE_VRS:
        return SHIFT if _dates_kept(options) else REMOVE
    return UNLISTED_BY_VR.get(vr, KEEP)


def _rule(tag: int, options: DeidOptions) -> Rule:
    vrs = dictionary_vrs(tag)
    vr = vrs[0] if vrs else "UN"
    row = lookup(tag)
    keyword = _keyword(tag)
    if tag in ALWAYS_REMOVED:
        action = REMOVE
    elif row is None:
        action = unlisted_action(tag, vr, options)
    else:
        action = resolve_row(row, options)
    if action == KEEP:
        action = CHECKED if keyword in KEYWORD_PATTERNS else KEEP_BY_VR.get(vr, KEEP)
    return Rule(action, vr, vrs, basic_action(row), keyword)


class Plan:
    """Rules per tag for one options value, computed on first use of each tag."""

    def __init__(self, options: DeidOptions):
        self.options = options
        self._rules: dict[int, Rule] = {}

    def rule(self, tag: int) -> Rule:
        rule = self._rules.get(tag)
        if rule is None:
            rule = self._rules[tag] = _rule(tag, self.options)
        return rule


@lru_cache(maxsize=64)
def plan_for(options: DeidOptions) -> Plan:
    """The plan for ``options`` (one per distinct options value: per profile, not per object)."""
    return Plan(options)


def action_for(tag: int, options: DeidOptions) -> str:
    """Final action for a public (even-group) attribute, judged by its dictionary VR."""
    return plan_for(options).rule(tag).action


def wrong_vr_action(rule: Rule) -> str:
    """Action for an element of ``rule``'s tag that arrived with another VR."""
    action = WRONG_VR_ACTIONS.get(rule.action)
    if action is None:
        action = WRONG_VR_ACTIONS.get(rule.fallback, REMOVE)
    return REMOVE if action == CHECKED and rule.action != KEEP else action


@lru_cache(maxsize=4096)
def _vm_bounds(tag: int) -> tuple[int, float, int]:
    """(minimum, maximum, step) of the dictionary VM ('1-n' -> (1, inf, 1), '2-2n' -> step 2)."""
    try:
        vm = dictionary_VM(tag)
    except KeyError:
        return 1, 1, 1
    low, _, high = vm.partition("-")
    if not high:
        return int(low), int(low), 1
    if high.endswith("n"):
        return int(low), float("inf"), int(high[:-1] or 1)
    return int(low), int(high), 1


def value_is_well_formed(tag: int, vr: str, keyword: str, values: list) -> bool:
    """CHECKED: do ``values`` (decoded under the dictionary VR) form a valid code or number?"""
    low, high, step = _vm_bounds(tag)
    if values and not (low <= len(values) <= high and len(values) % step == 0):
        return False
    pattern = KEYWORD_PATTERNS.get(keyword) or VALUE_PATTERNS.get(vr)
    if pattern is not None:
        return all(isinstance(v, str) and pattern.match(v) for v in values)
    if vr in NUMBER_VRS:
        return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
    return False


def table_actions(options: DeidOptions) -> dict[str, str]:
    """Table tag pattern -> final action (documentation and tests)."""
    return {row.tag: resolve_row(row, options) for row in load_rows()}
