"""C-STORE at the MDC's DIMSE service: only objects that are already de-identified.

Modalities send to the hospital edge (`deid/edge/`), which de-identifies and forwards over
STOW-RS. This C-STORE is for hospitals that run their own de-identifier: each object gets the
same decision as a STOW-RS part (`received.receive`: Part 10 reading, `validation.check`,
`deid.verify.verify_deidentified`), then the same group commit (`commit.py`). Success is
answered only after the object is durable (verified batch file on HDFS, index rows in HBase).

Re-sent SOP Instance UID: identical bytes (same sha256) -> success without a second copy;
different bytes -> 0xC001, the first version is kept. Nothing is decompressed or rewritten:
the object is stored exactly as received.
"""
from __future__ import annotations

import logging
from dataclasses import replace

from pacs_hdfs.dicom.commit import Committer, Outcome
from pacs_hdfs.dicom.received import receive

log = logging.getLogger(__name__)
#: the sender of a DIMSE C-STORE, as recorded in the instance row's `l:edge`
DIMSE_SOURCE = "dimse:{ae}"


class Ingestor:
    """Shared by all associations of one SCP process (thread-safe)."""

    def __init__(self, committer: Committer):
        self.committer = committer

    def store(self, raw: bytes, calling_ae: str = "") -> Outcome:
        """Verify and store one object given as a Part 10 stream (preamble/meta + data set)."""
        got = receive(raw, DIMSE_SOURCE.format(ae=calling_ae.strip()))
        if got.failure is not None:
            log.warning("C-STORE of %s refused 0x%04X (%s): %s", got.loggable_sop, got.failure,
                        got.kind, got.reason)
            return Outcome("invalid", code=got.failure, detail=f"{got.kind}: {got.reason}"[:64])
        outcome = self.committer.store(got.prepared)
        if got.warning and outcome.acknowledged:
            return replace(outcome, code=got.warning, detail=got.reason[:64])
        return outcome
