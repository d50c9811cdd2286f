"""Apply the confidentiality profile to one dataset: one pass, new dataset, input untouched.

The walk builds a fresh :class:`~pydicom.dataset.Dataset`. Attributes kept unchanged are
carried over as the same immutable raw element (or a shallow copy of a decoded one), so
pixel data is never decoded or copied; only attributes whose value changes are decoded.
(A shallow copy shares a multi-valued list with the input: replace values, don't edit lists
in place.) Sequences are rebuilt item by item with the same rules, whatever their depth.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import lru_cache

from pydicom import Dataset, Sequence
from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.dataset import FileMetaDataset
from pydicom.multival import MultiValue

from deid import policy
from deid.keys import DeidKeys
from deid.options import DeidOptions
from deid.pseudonyms import (
    date_shift_days,
    patient_pseudonym,
    pseudonymise_accession,
    remap_uid,
    shift_da,
    shift_dt,
)
from deid.quarantine import quarantine_reason
from deid.records import DeidResult, ReidRecord

DEFAULT_OPTIONS = DeidOptions()

#: File meta attributes dropped: they name the sending application/site.
FILE_META_DROP = frozenset({
    0x00020016,  # SourceApplicationEntityTitle
    0x00020017,  # SendingApplicationEntityTitle
    0x00020018,  # ReceivingApplicationEntityTitle
    0x00020100,  # PrivateInformationCreatorUID
    0x00020102,  # PrivateInformation
})
MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003
PRIVATE_CREATOR_MAX_ELEMENT = 0xFF

Element = DataElement | RawDataElement


@dataclass
class _Context:
    """Per-call state of the walk: keys, options, the patient's replacements, UID map."""

    keys: DeidKeys
    options: DeidOptions
    pseudonym: str
    shift_days: int
    uid_map: dict[str, str] = field(default_factory=dict)  # new -> original

    def uid(self, value: str) -> str:
        new = remap_uid(self.keys.uid, value)
        if new != value:
            self.uid_map[new] = value.strip("\x00 ")
        return new


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _values(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return [str(v) for v in value]
    return [str(value)]


def _with(tag, vr: str, values: list) -> DataElement:
    """New element holding ``values`` (one value unwrapped, none -> empty)."""
    if not values:
        return DataElement(tag, vr, empty_value_for_VR(vr))
    return DataElement(tag, vr, values[0] if len(values) == 1 else values)


# --- handlers: (source dataset, tag, element, vr, context) -> new element or None -------------

def _keep(ds, tag, elem: Element, vr, ctx):
    return elem if isinstance(elem, RawDataElement) else copy.copy(elem)


def _remove(ds, tag, elem, vr, ctx):
    return None


def _empty(ds, tag, elem, vr, ctx):
    return DataElement(tag, vr, empty_value_for_VR(vr))


def _dummy(ds, tag, elem, vr, ctx):
    if vr == "UI":
        return _uid(ds, tag, elem, vr, ctx)
    if vr not in policy.DUMMY_BY_VR:
        return _empty(ds, tag, elem, vr, ctx)
    return DataElement(tag, vr, policy.DUMMY_BY_VR[vr])


def _uid(ds, tag, elem, vr, ctx):
    if vr != "UI":
        return _remove(ds, tag, elem, vr, ctx)
    return _with(tag, vr, [ctx.uid(v) for v in _values(ds[tag].value)])


_SHIFTERS = {"DA": shift_da, "DT": shift_dt}


def _shift(ds, tag, elem, vr, ctx):
    shifter = _SHIFTERS.get(vr)
    if shifter is None:  # TM: whole-day shifts keep times of day
        return _keep(ds, tag, elem, vr, ctx)
    shifted = [shifter(v, ctx.shift_days) for v in _values(ds[tag].value)]
    return _with(tag, vr, [v for v in shifted if v])


def _pseudo(ds, tag, elem, vr, ctx):
    return DataElement(tag, vr, ctx.pseudonym)


def _accession(ds, tag, elem, vr, ctx):
    original = str(ds[tag].value or "").strip()
    value = pseudonymise_accession(ctx.keys.pseudonym, original) if original else ""
    return DataElement(tag, vr, value)


HANDLERS = {
    policy.KEEP: _keep,
    policy.REMOVE: _remove,
    policy.EMPTY: _empty,
    policy.DUMMY: _dummy,
    policy.UID: _uid,
    policy.SHIFT: _shift,
    policy.PSEUDO: _pseudo,
    policy.ACCESSION: _accession,
}

#: What a sequence becomes under each action: None = drop, "empty" = no items, else clean items.
SEQUENCE_ACTIONS = {policy.REMOVE: None, policy.EMPTY: "empty", policy.DUMMY: "empty"}


def _sequence(ds, tag, action: str, ctx) -> DataElement | None:
    outcome = SEQUENCE_ACTIONS.get(action, "clean")
    if outcome is None:
        return None
    items = [] if outcome == "empty" else [_clean(item, ctx) for item in ds[tag].value]
    return DataElement(tag, "SQ", Sequence(items))


def _private_kept(ds: Dataset, tags: list[int], safe: frozenset[tuple[str, int]]) -> set[int]:
    """Private tags to keep: safelisted (creator, element byte) pairs and their creators."""
    kept: set[int] = set()
    for t in tags:
        block = (t & 0xFFFF) >> 8
        if block < 0x10:
            continue
        creator_tag = (t & 0xFFFF0000) | block
        creator = ds.get(creator_tag)
        if creator is not None and (str(creator.value).strip(), t & 0xFF) in safe:
            kept.update((t, creator_tag))
    return kept


def _new_like(ds: Dataset, encoding: tuple) -> Dataset:
    out = Dataset()
    out.set_original_encoding(*encoding, ds.original_character_set)
    return out


def _clean(ds: Dataset, ctx: _Context, encoding: tuple | None = None) -> Dataset:
    """New dataset with every attribute of ``ds`` (recursively) given its profile action."""
    out = _new_like(ds, encoding or ds.original_encoding)
    options = ctx.options
    private: list[int] = []
    for tag in ds.keys():
        t = int(tag)
        if (t >> 16) & 1:
            private.append(t)
            continue
        if t & 0xFFFF == 0:  # group lengths: stale after cleaning
            continue
        elem = ds.get_item(tag)
        vr = elem.VR
        if not vr or vr == "UN":
            vr = policy.dictionary_vr(t)
        action = policy.action_for(t, vr, options)
        new = _sequence(ds, tag, action, ctx) if vr == "SQ" else HANDLERS[action](ds, tag, elem, vr, ctx)
        if new is not None:
            out[tag] = new
    if private and options.safe_private:
        for t in sorted(_private_kept(ds, private, options.safe_private)):
            elem = ds.get_item(t)
            if elem.VR == "SQ" or (elem.VR is None and isinstance(ds[t].value, Sequence)):
                continue  # private sequences are never safe to pass unread
            out[t] = _keep(ds, t, elem, elem.VR, ctx)
    return out


def _clean_file_meta(meta: FileMetaDataset, ctx: _Context, new_sop_uid: str | None) -> FileMetaDataset:
    out = FileMetaDataset()
    for tag in meta.keys():
        if int(tag) in FILE_META_DROP or int(tag) == 0x00020000:
            continue
        out[tag] = copy.copy(meta[tag])
    if MEDIA_STORAGE_SOP_INSTANCE_UID in meta:
        original = str(meta[MEDIA_STORAGE_SOP_INSTANCE_UID].value or "")
        out.MediaStorageSOPInstanceUID = new_sop_uid or ctx.uid(original)
    return out


@lru_cache(maxsize=32)
def _method_codes(options: DeidOptions) -> tuple[tuple[str, str], ...]:
    return tuple(options.method_codes())


def _mark(out: Dataset, options: DeidOptions) -> None:
    """Record that and how the object was de-identified (PS3.15 E.1.1 and PS3.3 C.7.1.1)."""
    codes = _method_codes(options)
    items = []
    for value, meaning in codes:
        item = Dataset()
        item.add_new(0x00080100, "SH", value)  # CodeValue
        item.add_new(0x00080102, "SH", "DCM")  # CodingSchemeDesignator
        item.add_new(0x00080104, "LO", meaning)  # CodeMeaning
        items.append(item)
    out.add_new(0x00120062, "CS", "YES")  # PatientIdentityRemoved
    out.add_new(0x00120063, "LO", [options.method_text, *(m for _, m in codes[1:])][:8])
    out.add_new(0x00120064, "SQ", Sequence(items))  # DeidentificationMethodCodeSequence
    out.add_new(0x00280303, "CS",  # LongitudinalTemporalInformationModified
                "MODIFIED" if options.retain_longitudinal_modified_dates else "REMOVED")


def _encoding(ds: Dataset) -> tuple:
    encoding = ds.original_encoding
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if None in encoding and tsyntax is not None and tsyntax.is_transfer_syntax:
        encoding = (tsyntax.is_implicit_VR, tsyntax.is_little_endian)
    return encoding


def deidentify(ds: Dataset, keys: DeidKeys, options: DeidOptions = DEFAULT_OPTIONS) -> DeidResult:
    """De-identify ``ds`` (PS3.15 Annex E Basic Profile + ``options``) without mutating it.

    Returns the new dataset with pseudonymous patient, remapped UIDs and shifted dates,
    the quarantine verdict, and the hospital-side record needed to re-identify it.
    """
    issuer = _text(ds, "IssuerOfPatientID")
    patient_id = _text(ds, "PatientID")
    identity = patient_id or f"name:{_text(ds, 'PatientName')}|{_text(ds, 'PatientBirthDate')}"
    pseudonym = patient_pseudonym(keys.pseudonym, identity, issuer)
    shift = (date_shift_days(keys.date_shift, identity, issuer)
             if options.retain_longitudinal_modified_dates else 0)
    ctx = _Context(keys, options, pseudonym, shift)

    out = _clean(ds, ctx, _encoding(ds))
    out.PatientID = pseudonym
    out.PatientName = pseudonym
    _mark(out, options)
    if getattr(ds, "file_meta", None) is not None:
        out.file_meta = _clean_file_meta(ds.file_meta, ctx, out.get("SOPInstanceUID"))

    original_study = _text(ds, "StudyInstanceUID")
    deid_study = _text(out, "StudyInstanceUID")
    record = ReidRecord(
        patient_pseudonym=pseudonym,
        patient_name=_text(ds, "PatientName"),
        patient_id=patient_id,
        issuer_of_patient_id=issuer,
        birth_date=_text(ds, "PatientBirthDate"),
        sex=_text(ds, "PatientSex"),
        date_shift_days=shift,
        original_study_uid=original_study,
        deid_study_uid=deid_study,
        accession_number=_text(ds, "AccessionNumber"),
        uid_map=ctx.uid_map,
    )
    return DeidResult(out, pseudonym, original_study, deid_study, quarantine_reason(ds), record)
