"""Turn Table E.1-1 plus the chosen options into one final action per attribute.

Final actions (strings, so plans are plain data):

===========  ===============================================================
``K``        keep the value
``X``        remove the attribute
``Z``        keep the attribute with an empty value (sequences: no items)
``D``        replace with a dummy value of the VR (sequences: no items)
``U``        remap UIDs with a keyed hash (sequences: keep, clean the items)
``SHIFT``    shift DA/DT values by the patient's date offset; keep TM
``PSEUDO``   replace with the patient pseudonym (PatientName, PatientID)
``ACCESSION``  replace with the keyed accession hash
===========  ===============================================================

Combined basic actions resolve to the least destructive member that keeps IOD conformance
without carrying the original value: X/Z -> Z, X/D, Z/D, X/Z/D -> D, X/Z/U* -> U.

Attributes the table does not list are decided by VR (``UNLISTED_BY_VR``): person names and
free text (PN, LO, SH, LT, ST, UT, UC, UR, AE, UN) are removed unless their keyword is in the
small ``SAFE_TEXT_KEYWORDS`` list of technical attributes; unlisted dates are shifted like
listed ones; unlisted UIDs are remapped unless well known; everything else (codes and numbers:
CS, DS, IS, US, FL, ..., pixel data) is kept. Public tags unknown to pydicom's dictionary and
all private tags not in the safe-private list are removed.
"""

from __future__ import annotations

from functools import cache, lru_cache

from pydicom.datadict import dictionary_VR, keyword_for_tag

from deid.options import DeidOptions
from deid.profile_table import ProfileRow, load_rows, lookup

KEEP, REMOVE, EMPTY, DUMMY, UID, SHIFT, PSEUDO, ACCESSION = (
    "K", "X", "Z", "D", "U", "SHIFT", "PSEUDO", "ACCESSION",
)

#: Combined basic-profile actions -> the single action applied.
COMBO_RESOLUTION: dict[str, str] = {
    "X/Z": EMPTY,
    "X/D": DUMMY,
    "Z/D": DUMMY,
    "X/Z/D": DUMMY,
    "X/Z/U*": UID,
}

#: What an option column's 'C' (clean) means here. None: no cleaning possible, so the basic
#: action applies; "listed": keep only if the keyword is in ``DeidOptions.kept_descriptors``.
CLEAN_MEANING: dict[str, str | None] = {
    "rtn_long_modif_dates": SHIFT,
    "clean_desc": "listed",
    "rtn_patient_chars": None,
}

#: Replacements that take precedence over the table (the table says Z or Z/D for these).
SPECIAL_ACTIONS: dict[str, str] = {
    "PatientName": PSEUDO,
    "PatientID": PSEUDO,
    "AccessionNumber": ACCESSION,
}

#: Default action for attributes Table E.1-1 does not list, by VR. Missing VR -> keep.
UNLISTED_BY_VR: dict[str, str] = {
    "PN": REMOVE, "LO": REMOVE, "SH": REMOVE, "LT": REMOVE, "ST": REMOVE, "UT": REMOVE,
    "UC": REMOVE, "UR": REMOVE, "AE": REMOVE, "UN": REMOVE,
    "DA": SHIFT, "DT": SHIFT,
    "UI": UID,
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


def resolve_row(row: ProfileRow, options: DeidOptions) -> str:
    """Final action for one table row under ``options``."""
    special = SPECIAL_ACTIONS.get(row.keyword)
    if special:
        return special
    for column in options.option_columns():
        action = row.action(column)
        if action == KEEP:
            return KEEP
        if action == "C":
            meaning = CLEAN_MEANING.get(column)
            if meaning == "listed":
                if row.keyword in options.kept_descriptors:
                    return KEEP
            elif meaning is not None:
                return meaning
    return COMBO_RESOLUTION.get(row.basic, row.basic)


@cache
def _plan(options: DeidOptions) -> dict[str, str]:
    """Table tag pattern -> final action, computed once per options value."""
    return {row.tag: resolve_row(row, options) for row in load_rows()}


@lru_cache(maxsize=8192)
def dictionary_vr(tag: int) -> str:
    """VR from pydicom's dictionary ('UN' when unknown); first choice of ambiguous VRs."""
    try:
        return dictionary_VR(tag).split(" or ")[0]
    except KeyError:
        return "UN"


@lru_cache(maxsize=8192)
def _keyword(tag: int) -> str:
    return keyword_for_tag(tag)


def unlisted_action(tag: int, vr: str) -> str:
    """Action for a public attribute that Table E.1-1 does not list."""
    keyword = _keyword(tag)
    if not keyword:
        return REMOVE
    if keyword in SAFE_TEXT_KEYWORDS:
        return KEEP
    if vr == "UN":
        vr = dictionary_vr(tag)
    return UNLISTED_BY_VR.get(vr, KEEP)


@lru_cache(maxsize=16384)
def action_for(tag: int, vr: str, options: DeidOptions) -> str:
    """Final action for a public (even-group) attribute with value representation ``vr``."""
    row = lookup(tag)
    if row is None:
        return unlisted_action(tag, vr)
    action = _plan(options)[row.tag]
    if action == SHIFT and vr not in ("DA", "DT", "TM"):
        return COMBO_RESOLUTION.get(row.basic, row.basic)
    return action
