"""The edge's durable spool and quarantine folders (see `layout` and `durable`).

`Spool.put` is the last step of receiving: it makes one de-identified object durable in
`spool/` (to be forwarded) or `quarantine/` (held for review), and says whether it was new, a
duplicate (same de-identified SOP Instance UID, identical bytes: success, no second copy) or a
conflict (same UID, other bytes, still on the edge: the first is kept, the sender gets 0xC001).
The forwarder reads `spool/` oldest first (`scan`), deletes what the MDC acknowledged
(`remove`) and moves what the MDC refused for good to `rejected/` (`reject`); an admin can put
it back (`requeue`).
`recover` runs once at start, before anything is received: it clears crash leftovers.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from deid.edge import durable
from deid.edge.layout import META_SUFFIX, SUFFIX, EdgePaths

log = logging.getLogger(__name__)

STORED, DUPLICATE, CONFLICT = "stored", "duplicate", "conflict"


@dataclass(frozen=True)
class Hold:
    """Why and when an object was held, with its de-identified UIDs (no PHI): the quarantine
    sidecar `<sop>.json`."""
    sop_uid: str
    reason: str
    held_at: float
    study_uid: str = ""
    series_uid: str = ""
    sop_class_uid: str = ""
    modality: str = ""
    size: int = 0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> "Hold":
        return cls(**{k: doc[k] for k in cls.__dataclass_fields__ if k in doc})


@dataclass(frozen=True)
class Entry:
    """One spooled object as the forwarder sees it."""
    sop_uid: str
    mtime_ns: int
    size: int


class Spool:
    def __init__(self, paths: EdgePaths):
        self.paths = paths.create()
        self._sync = {paths.spool: durable.DirSync(paths.spool),
                      paths.quarantine: durable.DirSync(paths.quarantine)}

    # --- receiving -----------------------------------------------------------------------------

    def put(self, sop_uid: str, data: bytes, hold: Hold | None = None) -> str:
        """Make `data` durable under `sop_uid` (in quarantine/ if `hold`): STORED, DUPLICATE or
        CONFLICT. Returns only after the file and its directory entry are fsync'd."""
        p = self.paths
        folder, other = (p.quarantine, p.spool) if hold else (p.spool, p.quarantine)
        elsewhere = p.object(other, sop_uid)
        if elsewhere.exists():  # the same UID decided the other way: only the bytes tell
            return DUPLICATE if durable.same_content(elsewhere, data) else CONFLICT
        final = p.object(folder, sop_uid)
        if final.exists():  # cheap check first: a re-sent study costs no write
            return DUPLICATE if durable.same_content(final, data) else CONFLICT
        tmp = durable.write_temp(p.tmp, data, stem=sop_uid)
        if hold:  # the sidecar first: a held object is never without its reason
            durable.write_json(p.meta(folder, sop_uid), hold.to_json())
        if not durable.link_new(tmp, final):  # another association won the race
            return DUPLICATE if durable.same_content(final, data) else CONFLICT
        self._sync[folder].sync()
        return STORED

    # --- forwarding ---------------------------------------------------------------------------

    def backlog(self) -> dict:
        """The metrics' view of the forward backlog (read at scrape, `pacs_hdfs.metrics`):
        objects waiting and the age of the oldest, and objects held in quarantine."""
        waiting = self.scan()
        oldest = (time.time() - waiting[0].mtime_ns / 1e9) if waiting else 0.0
        held = sum(1 for f in self.paths.quarantine.glob(f"*{SUFFIX}"))
        return {"pacs_edge_spool_objects": ("objects waiting to be forwarded", (),
                                            {(): len(waiting)}),
                "pacs_edge_spool_oldest_seconds": ("age of the oldest waiting object", (),
                                                   {(): oldest}),
                "pacs_edge_quarantine_objects": ("objects held for review", (), {(): held})}

    def scan(self) -> list[Entry]:
        """Every spooled object, oldest first (by mtime, then UID)."""
        out = []
        with os.scandir(self.paths.spool) as it:
            for e in it:
                if not e.name.endswith(SUFFIX):
                    continue
                try:
                    st = e.stat()
                except FileNotFoundError:  # forwarded or rejected meanwhile
                    continue
                out.append(Entry(e.name[:-len(SUFFIX)], st.st_mtime_ns, st.st_size))
        out.sort(key=lambda x: (x.mtime_ns, x.sop_uid))
        return out

    def read(self, sop_uid: str) -> bytes | None:
        try:
            return self.paths.object(self.paths.spool, sop_uid).read_bytes()
        except FileNotFoundError:
            return None

    def remove(self, sop_uids: list[str]) -> None:
        """Delete acknowledged objects. Not fsync'd on purpose: a deletion lost in a crash
        only re-sends an object the MDC already has, which it answers as stored."""
        for uid in sop_uids:
            self.paths.object(self.paths.spool, uid).unlink(missing_ok=True)

    def reject(self, sop_uid: str, reason: str, detail: dict | None = None) -> None:
        """Move a spooled object the MDC refused for good to rejected/, with the reason."""
        p = self.paths
        durable.write_json(p.meta(p.rejected, sop_uid),
                           {"sop_uid": sop_uid, "reason": reason, "rejected_at": time.time(),
                            **(detail or {})})
        src = p.object(p.spool, sop_uid)
        if src.exists():
            durable.move(src, p.object(p.rejected, sop_uid), replace=True)

    def requeue(self, sop_uid: str) -> dict:
        """Move an object back from rejected/ to the spool (an admin fixed the cause at the
        MDC); returns its rejection record. KeyError if it is not in rejected/."""
        p = self.paths
        src = p.object(p.rejected, sop_uid)
        if not src.is_file():
            raise KeyError(sop_uid)
        record = read_json(p.meta(p.rejected, sop_uid)) or {"sop_uid": sop_uid}
        dst = p.object(p.spool, sop_uid)
        try:
            durable.move(src, dst)
        except FileExistsError:
            if not durable.same_content(dst, src.read_bytes()):
                raise
            src.unlink()
        p.meta(p.rejected, sop_uid).unlink(missing_ok=True)
        return record

    # --- start-up -----------------------------------------------------------------------------

    def recover(self) -> dict:
        """Clear what a crash left behind (call once, holding the edge lock, before receiving):
        temp files, quarantine sidecars without an object, held objects without a sidecar
        (given one saying the reason was lost, so they stay held)."""
        p = self.paths
        report = {"temp_files_removed": 0, "orphan_sidecars_removed": 0, "sidecars_restored": 0}
        for f in p.tmp.iterdir():
            if f.is_file():
                f.unlink(missing_ok=True)
                report["temp_files_removed"] += 1
        for folder in (p.quarantine, p.rejected):
            for f in folder.iterdir():
                if f.name.startswith("."):  # an interrupted write_json
                    f.unlink(missing_ok=True)
                elif f.suffix == META_SUFFIX and not f.with_suffix(SUFFIX).exists():
                    f.unlink(missing_ok=True)
                    report["orphan_sidecars_removed"] += 1
        for f in p.quarantine.glob(f"*{SUFFIX}"):
            if not f.with_suffix(META_SUFFIX).exists():
                hold = Hold(f.stem, "held (reason lost in a crash)", f.stat().st_mtime,
                            size=f.stat().st_size)
                durable.write_json(f.with_suffix(META_SUFFIX), hold.to_json())
                report["sidecars_restored"] += 1
        if any(report.values()):
            log.info("spool recovery: %s", report)
        return report


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
