"""Apply the confidentiality profile to one dataset: one pass, new dataset, input untouched.

The walk builds a fresh :class:`~pydicom.dataset.Dataset`. Attributes kept unchanged are
carried over as the same immutable raw element (or a shallow copy of a decoded one), so
pixel data is never decoded or copied; only attributes whose value changes or must be checked
(dates, ages, descriptors) are decoded. (A shallow copy shares a multi-valued list with the
input: replace values, don't edit lists in place.) Sequences are rebuilt item by item with the
same rules, whatever their depth (SR content trees included).

Each attribute's rule comes from the options' plan (``deid.policy.plan_for``): computed once
per tag and options value, so the per-object cost is one dict probe per attribute. Rules are
judged by the data dictionary VR; an element that arrived with another VR takes the
``WRONG_VR_ACTIONS`` path and never has its received bytes carried.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

from pydicom import Dataset, Sequence
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element, empty_value_for_VR
from pydicom.dataset import FileMetaDataset
from pydicom.multival import MultiValue

from deid import burned_in, policy
from deid.keys import DeidKeys
from deid.options import DeidOptions
from deid.pseudonyms import (
    clean_tm,
    date_shift_days,
    patient_pseudonym,
    pseudonymise_accession,
    remap_uid,
    shift_da,
    shift_dt,
)
from deid.records import DeidResult, ReidRecord
from deid.verify import AGE_TOP_YEARS, TOP_CODED_AGE, age_years, descriptor_is_clean

log = logging.getLogger(__name__)

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

Element = DataElement | RawDataElement
Rule = policy.Rule


@dataclass
class _Context:
    """Per-call state of the walk: keys, options and their plan, the patient's replacements."""

    keys: DeidKeys
    options: DeidOptions
    plan: policy.Plan
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


def _value(ds: Dataset, tag, elem: Element):
    """The decoded value (a raw element is decoded through ``ds``, with its character set)."""
    return elem.value if isinstance(elem, DataElement) else ds[tag].value


def _values(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return [str(v) for v in value]
    return [str(value)]


def _strings(ds: Dataset, tag, elem: Element) -> list[str]:
    """The values of a DA/DT/TM/AS element as text. A raw element is read straight from its
    bytes (these VRs are ASCII, backslash-separated): faster than pydicom's conversion, which
    would also log and warn an invalid value with the value quoted."""
    if isinstance(elem, RawDataElement) and isinstance(elem.value, bytes):
        text = elem.value.decode("latin-1").rstrip(" \x00")
        return text.split("\\") if text else []
    return _values(_value(ds, tag, elem))


def _with(tag, vr: str, values: list) -> DataElement:
    """New element holding ``values`` (one value unwrapped, none -> empty)."""
    if not values:
        return DataElement(tag, vr, empty_value_for_VR(vr))
    return DataElement(tag, vr, values[0] if len(values) == 1 else values)


# --- handlers: (source dataset, tag, element, rule, context) -> new element or None -----------

def _keep(ds, tag, elem: Element, rule: Rule, ctx):
    return elem if isinstance(elem, RawDataElement) else copy.copy(elem)


def _remove(ds, tag, elem, rule, ctx):
    return None


def _empty(ds, tag, elem, rule, ctx):
    return DataElement(tag, rule.vr, empty_value_for_VR(rule.vr))


def _dummy(ds, tag, elem, rule, ctx):
    if rule.vr == "UI":
        return _uid(ds, tag, elem, rule, ctx)
    if rule.vr not in policy.DUMMY_BY_VR:
        return _empty(ds, tag, elem, rule, ctx)
    return DataElement(tag, rule.vr, policy.DUMMY_BY_VR[rule.vr])


def _uid(ds, tag, elem, rule, ctx):
    if rule.vr != "UI":
        return None
    return _with(tag, "UI", [ctx.uid(v) for v in _values(_value(ds, tag, elem))])


#: DA/DT values are shifted by the context's offset (0 with full dates); TM values only checked.
_DATE_REWRITERS = {"DA": shift_da, "DT": shift_dt, "TM": clean_tm}


def _shift(ds, tag, elem, rule, ctx):
    rewrite = _DATE_REWRITERS[rule.vr]
    rewritten = [rewrite(v, ctx.shift_days) for v in _strings(ds, tag, elem)]
    return _with(tag, rule.vr, [v for v in rewritten if v])


def _pseudo(ds, tag, elem, rule, ctx):
    return DataElement(tag, rule.vr, ctx.pseudonym)


def _accession(ds, tag, elem, rule, ctx):
    original = str(_value(ds, tag, elem) or "").strip()
    value = pseudonymise_accession(ctx.keys.pseudonym, original) if original else ""
    return DataElement(tag, rule.vr, value)


def _descriptor(ds, tag, elem, rule, ctx):
    """Clean Descriptors: kept when every word is vocabulary, else the basic action."""
    if all(descriptor_is_clean(v) for v in _values(_value(ds, tag, elem))):
        return _keep(ds, tag, elem, rule, ctx)
    return HANDLERS[rule.fallback](ds, tag, elem, rule, ctx)


def _age(ds, tag, elem, rule, ctx):
    """Ages kept when well formed, top-coded: 90 years or more are stored as 090Y."""
    kept = []
    for value in _strings(ds, tag, elem):
        years = age_years(value)
        if years is not None:
            kept.append(TOP_CODED_AGE if years >= AGE_TOP_YEARS else value.strip())
    return _with(tag, "AS", kept)


def _checked(ds, tag, elem, rule, ctx):
    value = _value(ds, tag, elem)
    values = [] if value is None else list(value) if isinstance(value, (list, MultiValue)) \
        else [value]
    if policy.value_is_well_formed(int(tag), rule.vr, rule.keyword, values):
        return _keep(ds, tag, elem, rule, ctx)
    return None


HANDLERS = {
    policy.KEEP: _keep,
    policy.REMOVE: _remove,
    policy.EMPTY: _empty,
    policy.DUMMY: _dummy,
    policy.UID: _uid,
    policy.SHIFT: _shift,
    policy.PSEUDO: _pseudo,
    policy.ACCESSION: _accession,
    policy.DESCRIPTOR: _descriptor,
    policy.AGE: _age,
    policy.CHECKED: _checked,
}

#: What a sequence becomes under each action: None = drop, "empty" = no items, else clean items.
SEQUENCE_ACTIONS = {policy.REMOVE: None, policy.EMPTY: "empty", policy.DUMMY: "empty"}


def _sequence(ds, tag, rule: Rule, ctx, parse: bool = True) -> DataElement | None:
    outcome = SEQUENCE_ACTIONS.get(rule.action, "clean")
    if outcome is None:
        return None
    if outcome == "empty":
        return DataElement(tag, "SQ", Sequence([]))
    if not parse:
        return None
    try:
        items = ds[tag].value
    except Exception:  # noqa: BLE001 - items that cannot be parsed are not carried
        return None
    if not isinstance(items, Sequence):
        return None
    return DataElement(tag, "SQ", Sequence([_clean(item, ctx) for item in items]))


# --- elements whose received VR is not the dictionary's -----------------------------------------

def _as_dictionary_vr(ds: Dataset, elem: Element, vr: str) -> DataElement | None:
    """The received bytes decoded under the dictionary VR, or None when they do not decode."""
    if isinstance(elem, RawDataElement):
        raw = elem._replace(VR=vr)
    else:
        value = elem.value
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, (bytes, bytearray)):
            return None
        raw = RawDataElement(elem.tag, vr, len(value), bytes(value), 0, False, True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return convert_raw_data_element(raw, encoding=ds._character_set, ds=ds)
    except Exception:  # noqa: BLE001 - bytes that are not a value of the dictionary VR
        return None


_READS_VALUE = frozenset({policy.UID, policy.ACCESSION, policy.CHECKED})


def _wrong_vr(ds, tag, elem: Element, rule: Rule, ctx) -> DataElement | None:
    """A public element that arrived with another VR than the dictionary's (a PN sent as CS, OB
    or UN, ...): its received bytes are never carried. Replacements apply as planned, a code or
    number is kept only when well formed under the dictionary VR, the rest gets its basic
    action; a sequence is cleaned item by item only when it came as UN (implicit VR items)."""
    if rule.vr == "SQ":
        return _sequence(ds, tag, rule, ctx, parse=elem.VR == "UN")
    action = policy.wrong_vr_action(rule)
    if action in _READS_VALUE or (action == policy.DUMMY and rule.vr == "UI"):
        elem = _as_dictionary_vr(ds, elem, rule.vr)
        if elem is None:
            return None
    return HANDLERS[action](ds, tag, elem, rule, ctx)


# --- the walk -------------------------------------------------------------------------------------

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
    rule_for = ctx.plan.rule
    private: list[int] = []
    for tag in ds.keys():
        t = int(tag)
        if (t >> 16) & 1:
            private.append(t)
            continue
        if t & 0xFFFF == 0:  # group lengths: stale after cleaning
            continue
        elem = ds.get_item(tag)
        rule = rule_for(t)
        received = elem.VR  # None: implicit VR, decoded with the dictionary's
        if received is not None and rule.vrs and received not in rule.vrs:
            new = _wrong_vr(ds, tag, elem, rule, ctx)
        elif rule.vr == "SQ":
            new = _sequence(ds, tag, rule, ctx)
        else:
            new = HANDLERS[rule.action](ds, tag, elem, rule, ctx)
        if new is not None:
            out[tag] = new
    safe = ctx.options.safe_private
    if private and safe:
        for t in sorted(_private_kept(ds, private, safe)):
            elem = ds.get_item(t)
            if elem.VR == "SQ" or (elem.VR is None and isinstance(ds[t].value, Sequence)):
                continue  # private sequences are never safe to pass unread
            out[t] = elem if isinstance(elem, RawDataElement) else copy.copy(elem)
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


@lru_cache(maxsize=64)
def _method_codes(options: DeidOptions, extra: tuple[tuple[str, str], ...]
                  ) -> tuple[tuple[str, str], ...]:
    codes = options.method_codes()
    return (codes[0], *sorted(set(codes[1:]) | set(extra)))


def _mark(out: Dataset, options: DeidOptions, extra: tuple[tuple[str, str], ...] = ()) -> None:
    """Record that and how the object was de-identified (PS3.15 E.1.1 and PS3.3 C.7.1.1): the
    profile and exactly the options applied, plus ``extra`` codes of per-object stages."""
    codes = _method_codes(options, extra)
    items = []
    for value, meaning in codes:
        item = Dataset()
        item.add_new(0x00080100, "SH", value)  # CodeValue
        item.add_new(0x00080102, "SH", "DCM")  # CodingSchemeDesignator
        item.add_new(0x00080104, "LO", meaning)  # CodeMeaning
        items.append(item)
    out.add_new(0x00120062, "CS", "YES")  # PatientIdentityRemoved
    out.add_new(0x00120063, "LO", [options.method_text, *(m for _, m in codes[1:])])
    out.add_new(0x00120064, "SQ", Sequence(items))  # DeidentificationMethodCodeSequence
    out.add_new(0x00280303, "CS", options.temporal_information)


def _encoding(ds: Dataset) -> tuple:
    encoding = ds.original_encoding
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if None in encoding and tsyntax is not None and tsyntax.is_transfer_syntax:
        encoding = (tsyntax.is_implicit_VR, tsyntax.is_little_endian)
    return encoding


def patient_identity(patient_id: str, name: str, birth_date: str, study_uid: str,
                     sop_uid: str) -> tuple[str, bool]:
    """(identity the pseudonym and date shift are keyed on, True when the object names nobody).

    PatientID when present - the same identity the HL7 side uses for a visit (national id) -;
    else the name and birth date; an object with neither PatientID nor PatientName gets an
    identity of its own study (or instance), so unidentified patients do not all share one
    pseudonym and one date shift."""
    if patient_id:
        return patient_id, False
    if name:
        return f"name:{name}|{birth_date}", False
    return (f"study:{study_uid}" if study_uid else f"instance:{sop_uid}"), True


@lru_cache(maxsize=1024)
def _log_unidentified(deid_study: str) -> None:
    """Once per study (while remembered): the de-identified study UID only, no PHI."""
    log.info("study %s: objects without PatientID or PatientName get a pseudonym and date "
             "shift of their own study", deid_study)


def deidentify(ds: Dataset, keys: DeidKeys, options: DeidOptions = DEFAULT_OPTIONS,
               extra_method_codes: tuple[tuple[str, str], ...] = ()) -> DeidResult:
    """De-identify ``ds`` (PS3.15 Annex E Basic Profile + ``options``) without mutating it.

    Returns the new dataset with pseudonymous patient, remapped UIDs and dates by the date
    policy, the quarantine verdict of the burned-in pixel screen (`deid.burned_in`: a known
    layout is blanked in the output and 113101 Clean Pixel Data declared; a risky object that
    no rule covers is held), and the hospital-side record needed to re-identify it.
    ``extra_method_codes`` are (code, meaning) pairs a per-object stage applied (e.g. 113101
    Clean Pixel Data), declared next to the options' codes.
    """
    issuer = _text(ds, "IssuerOfPatientID")
    patient_id = _text(ds, "PatientID")
    name = _text(ds, "PatientName")
    original_study = _text(ds, "StudyInstanceUID")
    identity, unidentified = patient_identity(patient_id, name, _text(ds, "PatientBirthDate"),
                                              original_study, _text(ds, "SOPInstanceUID"))
    pseudonym = patient_pseudonym(keys.pseudonym, identity, issuer)
    shift = (date_shift_days(keys.date_shift, identity, issuer)
             if options.retain_longitudinal_modified_dates else 0)
    ctx = _Context(keys, options, policy.plan_for(options), pseudonym, shift)

    out = _clean(ds, ctx, _encoding(ds))
    out.PatientID = pseudonym
    out.PatientName = pseudonym
    _mark(out, options, extra_method_codes)
    if getattr(ds, "file_meta", None) is not None:
        out.file_meta = _clean_file_meta(ds.file_meta, ctx, out.get("SOPInstanceUID"))

    pixels = burned_in.screen(ds, out)  # blanks a known layout in `out`, or says hold
    if pixels.cleaned and pixels.method_code is not None:
        _mark(out, options, (*extra_method_codes, pixels.method_code))

    deid_study = _text(out, "StudyInstanceUID")
    if unidentified:
        _log_unidentified(deid_study)
    record = ReidRecord(
        patient_pseudonym=pseudonym,
        patient_name=name,
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
    return DeidResult(out, pseudonym, original_study, deid_study, pixels.hold_reason, record)
