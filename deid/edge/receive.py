"""The edge's receive path: received DICOM bytes -> DICOM status, durable before success.

parse -> validate -> de-identify (vault keys, the calling AE's options: `deid.profiles`) -> encode (`encode`: what pydicom writes, with
less per-element work) -> remember the re-identification record
in the vault -> quarantine decision -> durable spool (`Spool.put`: temp file, fsync, publish,
directory fsync). Only then is success (or 0xB007 for an object stored with validation
warnings) answered. Every stage is timed (`stages`).

Pixel data is never decoded: the data set is parsed lazily, unchanged elements are carried
over raw, and the object is written in the transfer syntax it arrived in.

Answers, as data (`OUTCOMES`): a refusal by validation keeps its own status and comment
(0xA900 / 0xC000, see `pacs_hdfs.dicom.validation`); duplicates (same de-identified SOP
Instance UID, identical bytes) are success without a second copy; a conflict is 0xC001 with
the first version kept. A vault or spool that cannot be written is 0xA700 (out of resources:
the modality retries later). Nothing logged names the patient: de-identified UIDs and exception
types only.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from io import BytesIO

from pydicom import config as pydicom_config
from pydicom import dcmread

from deid.deidentify import deidentify
from deid.keys import DeidKeys
from deid.profiles import DeidProfiles
from deid.vault import Vault
from deid.edge import spool as sp
from deid.edge.layout import safe_uid
from deid.edge.stages import Clock, StageStats
from pacs_hdfs.dicom import validation
from deid.edge.encode import encode

from pacs_hdfs.dicom.part10 import check_lengths

log = logging.getLogger(__name__)

#: outcome kind -> (C-STORE status, ErrorComment); "refused" carries validation's own pair
OUTCOMES: dict[str, tuple[int, str]] = {
    "stored": (0x0000, ""),
    "held": (0x0000, ""),
    "duplicate": (0x0000, ""),
    "refused": (0xA900, "Data Set does not match SOP Class"),
    "malformed": (0xC000, "Cannot understand: dataset could not be parsed"),
    "conflict": (0xC001, "SOP Instance UID already received with different content; kept first"),
    "deid_failed": (0xC002, "Cannot process: de-identification failed"),
    "vault_unavailable": (0xA700, "Out of resources: hospital vault not writable, retry later"),
    "spool_unavailable": (0xA700, "Out of resources: edge spool not writable, retry later"),
}
ACCEPTED = frozenset({"stored", "held", "duplicate"})


@dataclass
class Receipt:
    """What happened to one object. `sop_uid` is the de-identified UID (safe to log)."""
    kind: str
    sop_uid: str = ""
    size: int = 0
    hold_reason: str | None = None
    code: int | None = None          # a refusal's or warning's own status
    detail: str = ""                 # ... and its comment
    times: dict = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.kind in ACCEPTED

    @property
    def status(self) -> int:
        return self.code if self.code is not None else OUTCOMES[self.kind][0]

    @property
    def comment(self) -> str:
        return self.detail or OUTCOMES[self.kind][1]


def _attr(ds, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip()


class Receiver:
    """Shared by all associations (thread-safe: the vault locks, the spool is atomic).

    `profiles` gives the de-identification options per calling AE (resolved when the edge
    starts; per object only the AE is looked up); without it every source gets the defaults."""

    def __init__(self, keys: DeidKeys, vault: Vault | None, spool: sp.Spool,
                 stats: StageStats | None = None, profiles: DeidProfiles | None = None):
        self.keys = keys
        self.vault = vault
        self.spool = spool
        self.stats = stats or StageStats()
        self.profiles = profiles or DeidProfiles()
        # pydicom reports a value it finds invalid by logging and warning *with the value* (a
        # name typed into a date, ...): on the edge every value may be PHI, so it must not.
        pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE

    def store(self, raw: bytes, calling_ae: str = "") -> Receipt:
        """Receive one object given as a DICOM file stream (preamble/meta + data set), sent by
        the modality calling with AE title `calling_ae` (it picks the de-identification options)."""
        clock = Clock()
        receipt = self._store(raw, calling_ae, clock)
        receipt.times = clock.times
        self.stats.add(clock.times)
        return receipt

    def _store(self, raw: bytes, calling_ae: str, clock: Clock) -> Receipt:
        with clock.stage("parse"):
            try:
                ds = dcmread(BytesIO(raw), force=True)
                if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
                    raise ValueError("no transfer syntax in file meta")
                check_lengths(ds)
            except Exception as e:  # noqa: BLE001 - any parse error is the sender's problem
                log.warning("refused: malformed data set (%s)", type(e).__name__)
                return Receipt("malformed")
        with clock.stage("validate"):
            verdict = validation.check(ds)
        if verdict.refusal is not None:
            log.warning("refused 0x%04X: %s", verdict.status, verdict.comment)
            return Receipt("refused", code=verdict.status, detail=verdict.comment)
        try:
            with clock.stage("deidentify"):
                result = deidentify(ds, self.keys, self.profiles.for_ae(calling_ae))
                out = result.dataset
                sop = safe_uid(_attr(out, "SOPInstanceUID"))
            with clock.stage("encode"):
                data = encode(out)
        except Exception as e:  # noqa: BLE001 - bad values deep in the data set surface here
            log.warning("refused: cannot de-identify/encode (%s)", type(e).__name__)
            return Receipt("deid_failed")
        with clock.stage("vault"):
            try:
                if self.vault is not None:
                    self.vault.remember(result.reid_record)
            except Exception as e:  # noqa: BLE001
                log.error("vault write failed for %s (%s)", sop, type(e).__name__)
                return Receipt("vault_unavailable", sop)
        hold = None
        if result.quarantine_reason:
            hold = sp.Hold(sop, result.quarantine_reason, time.time(),
                           _attr(out, "StudyInstanceUID"), _attr(out, "SeriesInstanceUID"),
                           _attr(out, "SOPClassUID"), _attr(out, "Modality"), len(data))
        with clock.stage("fsync"):
            try:
                put = self.spool.put(sop, data, hold)
            except OSError as e:
                log.error("spool write failed for %s (%s: %s)", sop, type(e).__name__,
                          e.strerror or "")
                return Receipt("spool_unavailable", sop)
        if put == sp.CONFLICT:
            log.warning("conflict: %s already on the edge with other content, kept first", sop)
            return Receipt("conflict", sop, len(data))
        kind = "duplicate" if put == sp.DUPLICATE else ("held" if hold else "stored")
        receipt = Receipt(kind, sop, len(data), result.quarantine_reason)
        if kind == "held":
            log.info("held %s in quarantine: %s", sop, result.quarantine_reason)
        if verdict.warnings:
            log.info("accepted %s with warning 0x%04X: %s", sop, verdict.status, verdict.comment)
            receipt.code, receipt.detail = verdict.status, verdict.comment
        return receipt
