"""C-STORE ingest: received bytes -> de-identify -> HDFS container -> HBase rows -> status.

Success is answered only after the object is durable on HDFS and its instance and SOP rows are
in HBase: either the container append carrying it has closed, or (staging, the default) its
bytes are in the HBase `staging` table, whose write-ahead log is flushed to the HDFS pipeline
before the put returns; see `staging.py`. Nothing is decompressed: the dataset is parsed
lazily, pixel data is carried over as the raw element and written in the received transfer
syntax.

Re-sent SOP Instance UID (the `sop` row is the commit marker): identical de-identified bytes
(same sha256) -> success without a second copy; different bytes -> the first version is kept
and the sender gets failure 0xC001 with an error comment (never silently overwritten).
Quarantined objects are stored the same way, flagged `l:quarantine` on the instance row and
listed in the `quarantine` table; their series/study/subject rows and counters are written
only when an admin releases them, so Q/R never sees them before.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.filewriter import dcmwrite

from deid import DeidKeys, Vault, deidentify
from pacs_hdfs.containers import ContainerWriter
from pacs_hdfs.dicom import index_rows as ix
from pacs_hdfs.dicom.staging import STAGED, Flusher
from pacs_hdfs.hbase_store import HBaseStore
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.schema import row_key

log = logging.getLogger("pacs.scp.ingest")
UNDEFINED_LENGTH = 0xFFFFFFFF

CONTAINER_ROOT = "dicom/containers"

#: outcome -> (DICOM status, what the sender is told)
STATUS = {
    "stored": (0x0000, ""),
    "duplicate": (0x0000, ""),
    "storage_unavailable": (0xA700, "Out of resources: storage unavailable, retry later"),
    "malformed": (0xC000, "Cannot understand: dataset could not be parsed"),
    "conflict": (0xC001, "SOP Instance UID already stored with different content; kept first"),
    "deid_failed": (0xC002, "Cannot process: de-identification failed"),
}


@dataclass(frozen=True)
class Outcome:
    kind: str
    sop_uid: str = ""          # de-identified UID (safe to log)
    quarantine: str | None = None

    @property
    def status(self) -> int:
        return STATUS[self.kind][0]

    @property
    def comment(self) -> str:
        return STATUS[self.kind][1]


def check_lengths(ds) -> None:
    """Refuse a dataset whose elements hold fewer bytes than their declared length
    (truncated stream): pydicom reads such values short without complaint."""
    for elem in ds._dict.values():
        if (isinstance(elem, RawDataElement) and elem.value is not None
                and elem.length != UNDEFINED_LENGTH and len(elem.value) != elem.length):
            raise ValueError(f"element {elem.tag} truncated")


def container_dir(study: str, series: str) -> str:
    return f"{CONTAINER_ROOT}/{study}/{series}"


def serialize(ds) -> bytes:
    """The de-identified object as a DICOM file (preamble + meta), in its transfer syntax."""
    buf = BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


class Ingestor:
    """Shared by all associations of one SCP process (thread-safe)."""

    def __init__(self, hbase: HBaseStore, writer: ContainerWriter, keys: DeidKeys,
                 vault: Vault | None, flusher: Flusher | None = None):
        self.hbase = hbase
        self.writer = writer
        self.flusher = flusher  # None: append to the container before acknowledging
        self.keys = keys
        self.vault = vault
        self._written: set[tuple[str, bytes, int]] = set()  # parent rows already put
        self._lock = threading.Lock()
        # Striped locks: two concurrent sends of one SOP UID must not both pass the duplicate
        # check; different UIDs rarely share a stripe, so group commit still gathers them.
        self._sop_locks = [threading.Lock() for _ in range(64)]
        self._io = ThreadPoolExecutor(16, thread_name_prefix="ingest-io")

    def store(self, raw: bytes) -> Outcome:
        """Ingest one object given as a DICOM file stream (preamble/meta + dataset)."""
        try:
            ds = dcmread(BytesIO(raw), force=True)
            if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
                raise ValueError("no transfer syntax in file meta")
            check_lengths(ds)
        except Exception as e:  # noqa: BLE001 - any parse error is the sender's problem
            log.warning("store rejected: malformed dataset (%s)", type(e).__name__)
            return Outcome("malformed")
        try:
            result = deidentify(ds, self.keys)
            data = serialize(result.dataset)
            attrs = ix.attributes(result.dataset, ix.ALL_KEYS)
            study, series, sop = (attrs.get("StudyInstanceUID"), attrs.get("SeriesInstanceUID"),
                                  attrs.get("SOPInstanceUID"))
            if not (study and series and sop):
                raise ValueError("missing study/series/SOP instance UID")
            attrs["TransferSyntaxUID"] = str(result.dataset.file_meta.TransferSyntaxUID)
        except Exception as e:  # noqa: BLE001 - bad values deep in the dataset surface here
            log.warning("store rejected: cannot de-identify/encode (%s)", type(e).__name__)
            return Outcome("malformed")
        try:
            if self.vault is not None:
                self.vault.remember(result.reid_record)
        except Exception as e:  # noqa: BLE001
            log.error("store failed: vault write (%s)", type(e).__name__)
            return Outcome("deid_failed", sop)
        try:
            with self._sop_locks[hash(sop) % len(self._sop_locks)]:
                return self._persist(data, attrs, result.quarantine_reason)
        except StorageError as e:
            log.error("store failed for %s: %s", sop, e)
            return Outcome("storage_unavailable", sop)

    def _persist(self, data: bytes, attrs: dict[str, str], quarantine: str | None) -> Outcome:
        study, series, sop = (attrs["StudyInstanceUID"], attrs["SeriesInstanceUID"],
                              attrs["SOPInstanceUID"])
        sha = hashlib.sha256(data).hexdigest()
        known = self._known_sha(sop)
        if known is not None:
            if known == sha:
                return Outcome("duplicate", sop, quarantine)
            log.warning("store refused for %s: re-sent with different content", sop)
            return Outcome("conflict", sop)
        key = ix.instance_key(study, series, sop)
        directory = container_dir(study, series)
        if self.flusher is not None:
            where = {STAGED: b"1", b"l:sha256": sha.encode(), b"l:length": str(len(data)).encode()}
        else:
            where = self.writer.submit(directory, data).result().to_columns()
        row = {**where, **ix.columns(attrs, ix.ALL_KEYS),
               b"l:ts": attrs.get("TransferSyntaxUID", "").encode()}
        if quarantine:
            row[b"l:quarantine"] = quarantine.encode()
        # Round 1: bytes (staging) and index row; round 2: the SOP row (commit marker of the
        # duplicate check) with the Q/R rows. Each round's writes go out concurrently.
        first = [lambda: self.hbase.put("instance", key, row)]
        if self.flusher is not None:
            first.append(lambda: self.hbase.put(
                "staging", key, {b"d:data": data, b"d:dir": directory.encode()}))
        if quarantine:
            first.append(lambda: self.hbase.put("quarantine", row_key(sop), {
                b"q:reason": quarantine.encode(), b"q:state": b"held", b"q:key": key,
                b"q:time": str(int(time.time())).encode()}))
        self._together(first)
        second = [lambda: self.hbase.put("sop", row_key(sop), {b"r:key": key})]
        if not quarantine:
            second += self.publish_calls(attrs, len(data))
        self._together(second)
        if self.flusher is not None:
            self.flusher.add(key, directory, data)
        return Outcome("stored", sop, quarantine)

    def _known_sha(self, sop: str) -> str | None:
        ref = self.hbase.get("sop", row_key(sop))
        if not ref:
            return None
        row = self.hbase.get("instance", ref[b"r:key"], columns=[b"l:sha256"])
        return row[b"l:sha256"].decode() if row else None

    def _together(self, calls: list) -> None:
        """Run independent HBase writes concurrently; raise the first failure."""
        for future in [self._io.submit(c) for c in calls]:
            future.result()

    def publish_calls(self, attrs: dict[str, str], length: int) -> list:
        """Writes that make an instance visible to Q/R: parent rows (once each) and counters."""
        calls = []
        for table, (key, cols) in ix.parent_rows(attrs).items():
            mark = (table, key, hash(frozenset(cols.items())))
            with self._lock:
                if mark in self._written:
                    continue
                self._written.add(mark)  # a failed put fails the store; the re-send re-puts
            calls.append(lambda t=table, k=key, c=cols, m=mark: self._put_parent(t, k, c, m))
        study, series = attrs["StudyInstanceUID"], attrs["SeriesInstanceUID"]

        def series_count():
            if self.hbase.counter_inc("series", row_key(study, series), b"c:instances") == 1:
                self.hbase.counter_inc("study", row_key(study), b"c:series")
        return calls + [
            series_count,
            lambda: self.hbase.counter_inc("series", row_key(study, series), b"c:bytes", length),
            lambda: self.hbase.counter_inc("study", row_key(study), b"c:instances"),
            lambda: self.hbase.counter_inc("study", row_key(study), b"c:bytes", length)]

    def _put_parent(self, table: str, key: bytes, cols: dict, mark) -> None:
        try:
            self.hbase.put(table, key, cols)
        except Exception:
            with self._lock:
                self._written.discard(mark)
            raise


def publish_counters(hbase: HBaseStore, attrs: dict[str, str], length: int) -> None:
    study, series = attrs["StudyInstanceUID"], attrs["SeriesInstanceUID"]
    if hbase.counter_inc("series", row_key(study, series), b"c:instances") == 1:
        hbase.counter_inc("study", row_key(study), b"c:series")
    hbase.counter_inc("series", row_key(study, series), b"c:bytes", length)
    hbase.counter_inc("study", row_key(study), b"c:instances")
    hbase.counter_inc("study", row_key(study), b"c:bytes", length)
