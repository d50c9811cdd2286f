"""C-STORE ingest: received bytes -> parse -> de-identify -> group commit -> status.

Success is answered only after the object is durable: its batch file on HDFS is closed and
verified and its index rows are in HBase (`commit.py`). Nothing is decompressed: the dataset
is parsed lazily, pixel data is carried over as the raw element and written in the received
transfer syntax.

Re-sent SOP Instance UID (the `sop` row is the commit marker): identical de-identified bytes
(same sha256) -> success without a second copy; different bytes -> the first version is kept
and the sender gets failure 0xC001 with an error comment (never silently overwritten).
Quarantined objects are stored the same way, flagged `l:quarantine` on the instance row and
listed in the `quarantine` table; their series/study/subject rows and counters are written
only when an admin releases them, so Q/R never sees them before.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from io import BytesIO

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.filewriter import dcmwrite

from deid import DeidKeys, Vault, deidentify
from pacs_hdfs.dicom import index_rows as ix
from pacs_hdfs.dicom import validation
from pacs_hdfs.dicom.commit import STATUS, Committer, Outcome, Prepared, container_dir  # noqa: F401

log = logging.getLogger("pacs.scp.ingest")
UNDEFINED_LENGTH = 0xFFFFFFFF


def check_lengths(ds) -> None:
    """Refuse a dataset whose elements hold fewer bytes than their declared length
    (truncated stream): pydicom reads such values short without complaint."""
    for elem in ds._dict.values():
        if (isinstance(elem, RawDataElement) and elem.value is not None
                and elem.length != UNDEFINED_LENGTH and len(elem.value) != elem.length):
            raise ValueError(f"element {elem.tag} truncated")


def serialize(ds) -> bytes:
    """The de-identified object as a DICOM file (preamble + meta), in its transfer syntax."""
    buf = BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


class Ingestor:
    """Shared by all associations of one SCP process (thread-safe)."""

    def __init__(self, committer: Committer, keys: DeidKeys, vault: Vault | None):
        self.committer = committer
        self.keys = keys
        self.vault = vault

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
        verdict = validation.check(ds)
        if verdict.refusal is not None:
            log.warning("store refused 0x%04X: %s", verdict.status, verdict.comment)
            return Outcome("invalid", code=verdict.status, detail=verdict.comment)
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
        outcome = self.committer.store(Prepared(data, attrs, result.quarantine_reason))
        if verdict.warnings and outcome.acknowledged:
            log.info("stored %s with warning 0x%04X: %s", sop, verdict.status, verdict.comment)
            return replace(outcome, code=verdict.status, detail=verdict.comment)
        return outcome
