"""Read access to the DICOM archive for the viewer and DICOMweb: studies, series and instances
from the HBase index, object bytes from their HDFS batch files (verified by sha256).

Everything goes through the SCP's own Q/R code (`pacs_hdfs.dicom.query`: C-FIND matching,
`instance_locations`, `stored.read_bytes`), so the portal sees exactly what a C-FIND/C-GET
sees. Quarantined objects are invisible: they have no series/study rows until released, their
instance rows carry `l:quarantine` and are skipped here as in the SCP.
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from io import BytesIO

from fastapi import Depends, HTTPException
from pydicom import Dataset, dcmread
from pydicom.dataelem import DataElement
from pydicom.datadict import dictionary_VR, tag_for_keyword

from pacs_hdfs.dicom import index_rows as ix
from pacs_hdfs.dicom import query
from pacs_hdfs.dicom.stored import read_bytes
from pacs_hdfs.rows import attributes
from pacs_hdfs.rows import search as search_rows
from pacs_hdfs.rows import study as study_rows
from portal.deps import portal

UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
MAX_UID = 64
#: studies looked at when an accession has no index row (studies ingested before the index)
ACCESSION_FALLBACK_ROWS = 2000


def valid_uid(uid: str) -> bool:
    return len(uid) <= MAX_UID and UID_RE.match(uid) is not None


@dataclass(frozen=True)
class Entry:
    """One matching index row: its level attributes (DICOM keyword -> text)."""
    key: bytes
    attrs: dict[str, str]


def identifier(level: str, keys: dict[str, str]) -> Dataset:
    """A C-FIND identifier for `query.matching_rows` (values kept as text, ranges included)."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for kw, value in keys.items():
        ds.add(DataElement(tag_for_keyword(kw), dictionary_VR(kw), value,
                           validation_mode=0))  # C-FIND keys (ranges, wildcards) are not values
    return ds


def instance_number(attrs: dict[str, str]) -> tuple[int, str]:
    try:
        return int(float(attrs.get("InstanceNumber", ""))), attrs.get("SOPInstanceUID", "")
    except ValueError:
        return 1 << 30, attrs.get("SOPInstanceUID", "")


class Archive:
    """The portal's window on the archive; `hdfs` is built on first byte read."""

    def __init__(self, hbase, hdfs_factory, cache_bytes: int = 64 << 20):
        self.hbase = hbase
        self._hdfs_factory = hdfs_factory
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()
        self._cache_bytes, self._cached = cache_bytes, 0
        self._lock = threading.Lock()

    # --- index -------------------------------------------------------------------------------
    def search(self, level: str, keys: dict[str, str]) -> list[Entry]:
        """C-FIND semantics (wildcards, UID lists, date ranges) over the level's index rows."""
        ident = identifier(level, keys)
        out = [Entry(k, attrs) for k, attrs, _row in query.matching_rows(self.hbase, ident)]
        if level == "IMAGE":
            out.sort(key=lambda e: instance_number(e.attrs))
        return out

    def study(self, study: str) -> dict[str, str] | None:
        found = self.search("STUDY", {"StudyInstanceUID": study})
        return found[0].attrs if found else None

    def series(self, study: str) -> list[dict[str, str]]:
        found = self.search("SERIES", {"StudyInstanceUID": study})
        return sorted((e.attrs for e in found), key=instance_number_of_series)

    def instances(self, study: str, series: str) -> list[dict[str, str]]:
        return [e.attrs for e in self.search("IMAGE", {"StudyInstanceUID": study,
                                                        "SeriesInstanceUID": series})]

    def study_for_accession(self, accession: str) -> str | None:
        """Study UID of a de-identified accession: the `search` index, else a bounded scan."""
        rows = self.hbase.scan("search", row_prefix=search_rows.study_accession_key(accession),
                               limit=1)
        for key, _row in rows:
            study = search_rows.study_of(key)
            if self.study(study):
                return study
        for key, row in self.hbase.scan("study", columns=[study_rows.ACCESSION],
                                        limit=ACCESSION_FALLBACK_ROWS):
            if attributes.value(row, "AccessionNumber") == accession:
                return key.decode()
        return None

    # --- objects -----------------------------------------------------------------------------
    def locate(self, study: str, series: str | None = None,
               sop: str | None = None) -> list[query.Stored]:
        """The non-quarantined stored objects under a study / series / instance."""
        keys = {"StudyInstanceUID": study}
        level = "STUDY"
        if series is not None:
            keys["SeriesInstanceUID"], level = series, "SERIES"
        if sop is not None:
            keys["SOPInstanceUID"], level = sop, "IMAGE"
        items = query.instance_locations(self.hbase, identifier(level, keys))
        return sorted(items, key=lambda s: (s.key.split(b"\x00")[1],
                                            instance_number(ix.decode_attributes(s.row))))

    def read(self, item: query.Stored) -> bytes:
        """The object's bytes exactly as stored (verified), cached briefly."""
        with self._lock:
            if item.key in self._cache:
                self._cache.move_to_end(item.key)
                return self._cache[item.key]
        data = read_bytes(self.hbase, self._hdfs_factory(), item.key, item.row)
        with self._lock:
            if len(data) <= self._cache_bytes // 4 and item.key not in self._cache:
                self._cache[item.key] = data
                self._cached += len(data)
                while self._cached > self._cache_bytes:
                    _k, old = self._cache.popitem(last=False)
                    self._cached -= len(old)
        return data

    def dataset(self, item: query.Stored) -> Dataset:
        return dcmread(BytesIO(self.read(item)))

    def one(self, study: str, series: str, sop: str) -> query.Stored | None:
        found = self.locate(study, series, sop)
        return found[0] if found else None


def instance_number_of_series(attrs: dict[str, str]) -> tuple[int, str]:
    try:
        return int(float(attrs.get("SeriesNumber", ""))), attrs.get("SeriesInstanceUID", "")
    except ValueError:
        return 1 << 30, attrs.get("SeriesInstanceUID", "")


def archive_of(state) -> Archive:
    """The portal state's Archive (built once, on the state's store and HDFS client)."""
    got = getattr(state, "_dicom_archive", None)
    if got is None:
        got = Archive(state.store, lambda: state.hdfs)
        state._dicom_archive = got
    return got



def archive(state=Depends(portal)) -> Archive:
    """FastAPI dependency: the portal's Archive."""
    return archive_of(state)


def require_uids(*uids: str) -> None:
    """400 unless every argument is a well-formed DICOM UID."""
    for uid in uids:
        if not valid_uid(uid):
            raise HTTPException(400, f"not a DICOM UID: {uid[:80]!r}")
