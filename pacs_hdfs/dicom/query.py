"""Query/Retrieve over the HBase index: C-FIND answers and the instances a C-MOVE/C-GET sends.

Only de-identified attributes are indexed; quarantined instances have no series/study/subject
rows and are skipped at IMAGE level and in retrieves.
"""
from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from typing import Iterator

from pydicom import Dataset, dcmread
from pydicom.dataelem import DataElement
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from pacs_hdfs.dicom.stored import read_bytes
from pacs_hdfs.dicom import index_rows as ix
from pacs_hdfs.dicom.matching import row_matches
from pacs_hdfs.rows import attributes, instance, sop, subject
from pacs_hdfs.rows.cells import decode_counter
from pacs_hdfs.schema import row_key

SKIP_KEYS = {"QueryRetrieveLevel", "SpecificCharacterSet"}
PREFIX_KEYS = {"PATIENT": (), "STUDY": ("StudyInstanceUID",),
               "SERIES": ("StudyInstanceUID", "SeriesInstanceUID"),
               "IMAGE": ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")}


class QueryError(ValueError):
    """The identifier cannot be answered (bad level)."""


def level_of(identifier: Dataset) -> str:
    level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    if level not in ix.LEVEL_TABLE:
        raise QueryError(f"unsupported QueryRetrieveLevel {level!r}")
    return level


def query_keys(identifier: Dataset) -> dict[str, tuple[str, str]]:
    """keyword -> (query text, VR) for every non-sequence key of the identifier."""
    out = {}
    for elem in identifier:
        kw = elem.keyword or keyword_for_tag(elem.tag)
        if not kw or kw in SKIP_KEYS or elem.VR == "SQ":
            continue
        value = elem.value
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            text = "\\".join(str(v) for v in value)
        else:
            text = "" if value is None else str(value)
        out[kw] = (text, elem.VR)
    return out


def _single_uids(q: tuple[str, str] | None) -> list[str] | None:
    """The UIDs of a UID-list key, or None if the key is absent/universal."""
    if not q or not q[0].strip() or "*" in q[0] or "?" in q[0]:
        return None
    return [u.strip() for u in q[0].split("\\") if u.strip()]


def _rows(hbase, level: str, keys) -> Iterator[tuple[bytes, dict]]:
    """Candidate rows of the level's table, narrowed by unique keys where given."""
    table = ix.LEVEL_TABLE[level][0]
    prefix_kw = PREFIX_KEYS[level]
    if level == "IMAGE" and (sops := _single_uids(keys.get("SOPInstanceUID"))):
        refs = hbase.get_many("sop", [sop.key(s) for s in sops])
        got = hbase.get_many("instance", [sop.decode(r) for r in refs.values()])
        yield from got.items()
        return
    uids = [_single_uids(keys.get(k)) for k in prefix_kw]
    prefixes: list[tuple[str, ...]] = [()]
    for u in uids:
        if not u:
            break
        prefixes = [p + (x,) for p in prefixes for x in u]
    for p in prefixes:
        if len(p) == len(prefix_kw) and p:
            got = hbase.get_many(table, [row_key(*p)])
            yield from got.items()
        else:
            prefix = (row_key(*p) + b"\x00") if p else None
            yield from hbase.scan(table, row_prefix=prefix)


def _attrs(level: str, row: dict[bytes, bytes]) -> dict[str, str]:
    attrs = ix.decode_attributes(row)
    for kw, col in ix.COUNTERS.get(level, {}).items():
        if col in row:
            attrs[kw] = str(decode_counter(row[col]))
    if level == "STUDY":
        attrs["ModalitiesInStudy"] = "\\".join(ix.modalities(row))
    if level == "PATIENT":
        attrs["NumberOfPatientRelatedStudies"] = str(len(subject.studies(row)))
    return attrs


#: Keys a series row does not hold but its study row does (patient and study attributes). A
#: SERIES query carrying one - Patient Root's hierarchical PatientID, say - is matched and
#: answered from the study row (series rows alone matched nothing then).
STUDY_ONLY_KEYS = frozenset(ix.STUDY_KEYS) - frozenset(ix.SERIES_KEYS)


def matching_rows(hbase, identifier: Dataset) -> Iterator[tuple[bytes, dict[str, str], dict]]:
    level = level_of(identifier)
    keys = query_keys(identifier)
    wanted = {k: v for k, v in keys.items() if v[0].strip()}
    inherit = level == "SERIES" and not STUDY_ONLY_KEYS.isdisjoint(keys)
    studies: dict[bytes, dict[str, str]] = {}
    for key, row in _rows(hbase, level, keys):
        if level == "IMAGE" and instance.is_quarantined(row):
            continue
        attrs = _attrs(level, row)
        if inherit:
            study_key = instance.study_key_of(key)
            if study_key not in studies:
                studies[study_key] = {k: v for k, v in ix.decode_attributes(
                    hbase.get("study", study_key)).items() if k in STUDY_ONLY_KEYS}
            attrs = {**studies[study_key], **attrs}
        if row_matches(wanted, attrs):
            yield key, attrs, row


#: VRs whose values are binary numbers: index text must become int / float for them.
INT_VRS = frozenset({"US", "UL", "SS", "SL", "UV", "SV", "AT"})
FLOAT_VRS = frozenset({"FL", "FD"})


def response_vr(keyword: str, asked_vr: str) -> str:
    """The VR of a response element: the dictionary's (the peer may have sent UN, implicit VR),
    the first choice of an ambiguous one ("US or SS" -> "US")."""
    try:
        vr = dictionary_VR(keyword)
    except KeyError:
        vr = asked_vr or "UN"
    return vr.split(" or ")[0]


def _element(keyword: str, vr: str, value: str) -> DataElement:
    """A response element from index text. Binary numeric VRs (Rows and Columns are US) get
    numbers, not text: a str value for US made the whole C-FIND response unencodable. Text
    that is not a number of that VR is answered as an empty value rather than failing the
    query."""
    vr = response_vr(keyword, vr)
    tag = tag_for_keyword(keyword)
    texts = value.split("\\") if value else []
    if not texts:
        return DataElement(tag, vr, None)
    try:
        if vr in INT_VRS:
            values = [int(float(t)) for t in texts]
        elif vr in FLOAT_VRS:
            values = [float(t) for t in texts]
        elif vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
            return DataElement(tag, vr, value.encode())
        else:
            values = texts
    except ValueError:
        return DataElement(tag, vr, None)
    return DataElement(tag, vr, values if len(values) > 1 else values[0])


def find(hbase, identifier: Dataset) -> Iterator[Dataset]:
    """C-FIND: one response identifier per matching row, with the requested keys filled."""
    level = level_of(identifier)
    keys = query_keys(identifier)
    for _key, attrs, _row in matching_rows(hbase, identifier):
        out = Dataset()
        out.QueryRetrieveLevel = level
        for kw, (_q, vr) in keys.items():
            out.add(_element(kw, vr, attrs.get(kw, "")))
        for kw in PREFIX_KEYS[level] or ("PatientID",):
            if kw not in keys and attrs.get(kw):
                out.add(_element(kw, "", attrs[kw]))
        yield out


@dataclass(frozen=True)
class Stored:
    """One retrievable object: its instance row and what a sub-association must offer."""
    key: bytes
    row: dict
    sop_class: str
    transfer_syntax: str

    @property
    def sop_uid(self) -> str:
        """The (de-identified) SOP Instance UID: the last part of the instance row key."""
        return self.key.rsplit(b"\x00", 1)[-1].decode(errors="replace")


def instance_locations(hbase, identifier: Dataset) -> list[Stored]:
    """The non-quarantined instances a C-MOVE/C-GET of this identifier sends."""
    level = level_of(identifier)
    if level == "IMAGE":
        rows = [(k, row) for k, _a, row in matching_rows(hbase, identifier)]
    else:
        prefixes = []
        for key, _attrs, row in matching_rows(hbase, identifier):
            if level == "PATIENT":
                prefixes += [instance.prefix(s.decode()) for s in subject.studies(row)]
            else:
                prefixes.append(key + b"\x00")
        rows = [kr for p in prefixes for kr in hbase.scan("instance", row_prefix=p)]
    return [Stored(k, r, attributes.value(r, "SOPClassUID"), instance.transfer_syntax(r))
            for k, r in rows if not instance.is_quarantined(r)]


def load(hbase, hdfs, item: Stored) -> Dataset:
    """One stored object (verified read) as a dataset (pixel data not decoded)."""
    return dcmread(BytesIO(read_bytes(hbase, hdfs, item.key, item.row)))
