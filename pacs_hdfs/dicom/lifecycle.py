"""Study lifecycle: delete, reject and restore objects, and reclaim their HDFS space.

Used by `pacs study delete|reject|restore|compact|notes` (pacs_hdfs/study_cli.py) and the
admin DICOMweb `DELETE` (portal/routes/dicomweb_admin.py). A scope is a study, a series of it,
or one instance.

**Remove** (`delete` or `reject`; reasons in `rejection_note.REASONS`):

1. the scope's instance rows are read; for a reject, their bytes are copied (sha256 checked)
   into the rejected store `dicom/lifecycle/rejected/<study>/<series>/` and the rows are kept in
   the record, so `restore` can bring both back;
2. the IOCM-style rejection note (a KOS with the reason code, `rejection_note.kos_note`) and the
   lifecycle record (JSON: who, when, why, every object with its sha256 and old location) are
   written under `dicom/lifecycle/notes/<study>/`, and the container files that held the
   objects are queued for compaction under `dicom/lifecycle/purge/`;
3. the index rows go, top first so Q/R, QIDO/WADO and the portal stop showing the scope at
   once: the study (or series) row, then instance, `sop` and `quarantine` rows; then the parent
   rows are brought in line with what is left (series/study counters set from the remaining
   rows, `mod.` columns, and when nothing is left the series / study / subject `s:` column /
   `search` study-accession rows are removed);
4. one audit event (`study-delete` / `study-reject`) with a PS3.15 A.5 "DICOM Instances
   Deleted" (110105) message.

No reader filters anything: what is not indexed is not found. Readers that fetched a row just
before it went may still read the bytes, which stay until compaction.

**Restore** (a study with rejected, not deleted, objects): every pending reject record of the
study is replayed through the normal group commit (`commit.Committer`): bytes verified from the
rejected store into new batch files, rows, counters. Then the record is marked restored and its
rejected-store files are deleted. Audited `study-restore` (110103, action C).

A `delete` of a study that was rejected also deletes its rejected store (then nothing can
restore it).

**Compact** runs `compaction.compact_series` on every series directory with queued files,
passing them as `released`: a file no row points into any more is deleted at once (no grace
period: the record says its bytes are deleted objects), a file still holding other objects is
rewritten without them. With `all_series`, every series directory is compacted (orphans after
the grace period, small files merged). Empty series and study directories are removed. The
returned numbers include the bytes reclaimed. Audited `study-compact`.

Crash safety: the record is written before any row goes, and every step is idempotent, so a
repeated command finishes the work; a crash after the rows went and before the purge entry
was written leaves orphan files that `compact --all` or `pacs fsck --repair` reclaim after the
grace period. The rows are deleted before the `sop` commit markers, so a crash between them
never leaves an "unfinished commit" that `fsck --repair` would complete (resurrect).
"""
from __future__ import annotations

import base64
import getpass
import io
import json
import logging
import os
import re
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from pydicom import dcmwrite

from pacs_hdfs import audit, audit_messages as am
from pacs_hdfs.containers import ContainerWriter, Location, read_object
from pacs_hdfs.dicom import index_rows as ix
from pacs_hdfs.dicom import rejection_note as rn
from pacs_hdfs.dicom.commit import CONTAINER_ROOT, Committer, Prepared
from pacs_hdfs.dicom.compaction import compact_series, series_directories
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.rows import instance as instance_table
from pacs_hdfs.rows import search as search_table
from pacs_hdfs.rows import series as series_table
from pacs_hdfs.rows import sop as sop_table
from pacs_hdfs.rows import study as study_table
from pacs_hdfs.rows import subject as subject_table
from pacs_hdfs.rows.cells import encode_counter

log = logging.getLogger(__name__)

LIFECYCLE_ROOT = "dicom/lifecycle"
NOTES = f"{LIFECYCLE_ROOT}/notes"          # notes/<study>/<note uid>.{dcm,json}[.restored|.purged]
REJECTED = f"{LIFECYCLE_ROOT}/rejected"    # rejected/<study>/<series>/*.pack
PURGE = f"{LIFECYCLE_ROOT}/purge"          # purge/<note uid>.json: files compaction may free now
SOURCE_ID = "pacs-lifecycle"
#: the audit trail's actions (listed for the admin page's filter in pacs_hdfs/audit.py)
AUDIT_ACTIONS = ("study-delete", "study-reject", "study-restore", "study-compact")
UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
#: bytes of objects copied per rejected-store batch file
STORE_BATCH_BYTES = 64 << 20


class NotFound(LookupError):
    """Nothing in the archive (or the rejected store) matches the scope."""


class Refused(ValueError):
    """The operation is not allowed on this scope (e.g. restore of a deleted study)."""


@dataclass(frozen=True)
class Scope:
    study: str
    series: str = ""
    sop: str = ""

    def __post_init__(self):
        for uid in (self.study, self.series, self.sop):
            if uid and (len(uid) > 64 or not UID_RE.match(uid)):
                raise ValueError(f"not a DICOM UID: {uid[:70]!r}")
        if not self.study or (self.sop and not self.series):
            raise ValueError("a scope is a study, a series of it, or an instance of a series")

    @property
    def level(self) -> str:
        return "instance" if self.sop else "series" if self.series else "study"

    def as_dict(self) -> dict:
        return {"level": self.level, **asdict(self)}


@dataclass
class Outcome:
    action: str
    scope: dict
    note: str = ""
    reason: tuple = ()
    objects: int = 0
    bytes: int = 0
    files_released: int = 0
    rejected_store_bytes_deleted: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _b64(row: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): base64.b64encode(v).decode() for k, v in row.items()}


def _unb64(row: dict[str, str]) -> dict[bytes, bytes]:
    return {k.encode(): base64.b64decode(v) for k, v in row.items()}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


class Lifecycle:
    """Delete, reject, restore and compact, on the clients given (see the module docstring)."""

    def __init__(self, settings, hbase=None, hdfs=None):
        from pacs_hdfs import clients
        self.settings = settings
        self.hbase = hbase if hbase is not None else clients.hbase(settings)
        self.hdfs = hdfs if hdfs is not None else clients.hdfs(settings)

    # --- remove --------------------------------------------------------------------------------
    def remove(self, action: str, scope: Scope, user: str, address: str = "") -> Outcome:
        """Delete or reject (`action` a key of `rejection_note.REASONS`) the scope's objects."""
        t0 = time.monotonic()
        reason = rn.REASONS[action]
        rows = self._instance_rows(scope)
        study_row = self.hbase.get("study", study_table.key(scope.study))
        pending = self._pending_rejections(scope.study) if not reason.keeps_bytes else []
        if scope.level != "study":
            pending = [n for n in pending if _covers(scope, n)]
        if not rows and not pending:
            raise NotFound(f"nothing stored under {scope.level} {scope.sop or scope.series or scope.study}")
        out = Outcome(action, scope.as_dict(), reason=reason.code)
        if rows:
            record = self._record(action, scope, rows, study_row, user)
            out.note, out.objects = record["note"], len(rows)
            out.bytes = sum(o["length"] for o in record["objects"])
            out.files_released = len(record["released"])
            self._unindex(scope, rows, study_row)
        for note in pending:   # a delete of rejected objects: their kept bytes go too
            out.rejected_store_bytes_deleted += self._drop_rejected_store(note, "purged", user)
            out.objects += len(note["kept"])
            out.extra.setdefault("rejections_deleted", []).append(note["note"])
        out.seconds = round(time.monotonic() - t0, 3)
        self._audit(user, address, f"study-{action.split('-')[0]}", "instances_deleted",
                    "delete", scope, study_row, out, rows)
        return out

    def _instance_rows(self, scope: Scope) -> list[tuple[bytes, dict]]:
        if scope.sop:
            key = ix.instance_key(scope.study, scope.series, scope.sop)
            row = self.hbase.get("instance", key)
            return [(key, row)] if row else []
        return self.hbase.scan("instance",
                               row_prefix=instance_table.prefix(scope.study, scope.series))

    def _record(self, action: str, scope: Scope, rows, study_row: dict, user: str) -> dict:
        """Write the note, the record and the purge entry (and, for a reject, the kept bytes)."""
        reason = rn.REASONS[action]
        study_attrs = ix.decode_attributes(study_row)
        refs, objects = [], []
        for key, row in rows:
            attrs = ix.decode_attributes(row)
            refs.append(rn.Ref(scope.study, attrs.get("SeriesInstanceUID", ""),
                               attrs.get("SOPInstanceUID", ""), attrs.get("SOPClassUID", "")))
            loc = instance_table.location(row)
            objects.append({"series": refs[-1].series, "sop": refs[-1].sop,
                            "sop_class": refs[-1].sop_class,
                            "sha256": loc.sha256 if loc else "", "length": loc.length if loc else 0,
                            "path": loc.path if loc else "", "offset": loc.offset if loc else 0})
        note = rn.kos_note(action, refs, study_attrs.get("PatientID", ""),
                           study_attrs.get("PatientName", ""),
                           study_attrs.get("AccessionNumber", ""))
        uid = note.SOPInstanceUID
        record = {"note": uid, "action": action, "reason": list(reason.code),
                  "restorable": reason.restorable, "user": user, "time": _now(),
                  "scope": scope.as_dict(), "patient": study_attrs.get("PatientID", ""),
                  "objects": objects, "released": sorted({o["path"] for o in objects if o["path"]}),
                  "kept": []}
        if reason.keeps_bytes:
            record["kept"] = self._keep(scope.study, rows)
        buf = io.BytesIO()
        dcmwrite(buf, note, enforce_file_format=True)
        base = f"{NOTES}/{scope.study}/{uid}"
        self.hdfs.create(f"{base}.dcm", buf.getvalue())
        self.hdfs.create(f"{base}.json", json.dumps(record, indent=1).encode())
        if record["released"]:
            self.hdfs.create(f"{PURGE}/{uid}.json", json.dumps(
                {"note": uid, "study": scope.study, "released": record["released"]}).encode())
        return record

    def _keep(self, study: str, rows) -> list[dict]:
        """Copy the objects' verified bytes into the rejected store; their rows and new places."""
        writer = ContainerWriter(self.hdfs, writer="rejected")
        kept, batch, size = [], [], 0

        def flush():
            nonlocal size
            by_series = defaultdict(list)
            for key, row, data in batch:
                by_series[instance_table.parse_key(key)[1]].append((key, row, data))
            for series, items in by_series.items():
                locs = writer.write(f"{REJECTED}/{study}/{series}",
                                    [(k.decode(), d) for k, _r, d in items])
                kept.extend({"row": _b64(r), "at": asdict(loc)}
                            for (_k, r, _d), loc in zip(items, locs))
            batch.clear()
            size = 0

        for key, row in rows:
            data = read_object(self.hdfs, instance_table.location(row))   # sha256 checked
            batch.append((key, row, data))
            size += len(data)
            if size >= STORE_BATCH_BYTES:
                flush()
        flush()
        return kept

    def _unindex(self, scope: Scope, rows, study_row: dict) -> None:
        """Remove the rows (top first), then bring the parents in line with what is left."""
        hb = self.hbase
        series = sorted({instance_table.parse_key(k)[1] for k, _r in rows})
        if scope.level == "study":
            hb.delete("study", study_table.key(scope.study))
        if scope.level in ("study", "series"):
            for s in series:
                hb.delete("series", series_table.key(scope.study, s))
        keys = [k for k, _r in rows]
        for k in keys:
            hb.delete("instance", k)
        for k in keys:       # commit markers last (see the module docstring)
            sop = instance_table.sop_of(k)
            hb.delete("sop", sop_table.key(sop))
            hb.delete("quarantine", sop_table.key(sop))
        self._refresh_parents(scope.study, series, study_row)

    def _refresh_parents(self, study: str, series: list[str], study_row: dict) -> None:
        """Series/study counters and columns from the rows that are left; rows of emptied
        series and studies removed (with the subject's `s:` column and the accession row)."""
        hb = self.hbase
        for s in series:
            left = hb.scan("instance", row_prefix=instance_table.prefix(study, s),
                           columns=[instance_table.LENGTH, instance_table.QUARANTINE,
                                    instance_table.COUNTED])
            shown = [r for _k, r in left
                     if not instance_table.is_quarantined(r) and instance_table.is_counted(r)]
            if not shown:
                hb.delete("series", series_table.key(study, s))
            else:
                hb.put("series", series_table.key(study, s), {
                    series_table.INSTANCES: encode_counter(len(shown)),
                    series_table.BYTES: encode_counter(sum(instance_table.length(r)
                                                           for r in shown))})
        remaining = hb.scan("series", row_prefix=series_table.study_prefix(study),
                            columns=[series_table.MODALITY, *series_table.COUNTERS])
        attrs = ix.decode_attributes(study_row)
        if not remaining:
            hb.delete("study", study_table.key(study))
            if attrs.get("AccessionNumber"):
                hb.delete("search", search_table.study_accession_key(attrs["AccessionNumber"],
                                                                     study))
            if attrs.get("PatientID"):
                subject = subject_table.key(attrs["PatientID"])
                hb.delete("subject", subject, columns=[subject_table.study_column(study)])
                left = hb.get("subject", subject)
                if not subject_table.studies(left):
                    hb.delete("subject", subject, columns=subject_table.attribute_columns(left))
            return
        n = sum(series_table.instances(r) for _k, r in remaining)
        size = sum(series_table.size(r) for _k, r in remaining)
        hb.put("study", study_table.key(study), {
            study_table.INSTANCES: encode_counter(n), study_table.BYTES: encode_counter(size),
            study_table.SERIES: encode_counter(len(remaining))})
        still = {r[series_table.MODALITY] for _k, r in remaining if series_table.MODALITY in r}
        gone = [c for c in study_table.modality_columns(study_row)
                if c[len(study_table.MODALITY_PREFIX):] not in still]
        if gone:
            hb.delete("study", study_table.key(study), columns=gone)

    # --- records ---------------------------------------------------------------------------------
    def notes(self, study: str) -> list[dict]:
        """The study's lifecycle records, oldest first, each with `state`: removed (rows gone,
        bytes may wait for compaction), restored or purged (a rejected store deleted)."""
        Scope(study)
        out = []
        for f in self.hdfs.list_status(f"{NOTES}/{study}"):
            if not f.path.endswith(".json"):
                continue
            rec = json.loads(self.hdfs.read(f.path))
            rec["state"] = "removed"
            for mark in ("restored", "purged"):
                if self.hdfs.exists(f"{NOTES}/{study}/{rec['note']}.{mark}"):
                    rec["state"] = mark
            out.append(rec)
        return sorted(out, key=lambda r: r["time"])

    def _pending_rejections(self, study: str) -> list[dict]:
        return [r for r in self.notes(study) if r["state"] == "removed" and r["kept"]]

    def _drop_rejected_store(self, record: dict, mark: str, user: str) -> int:
        """Mark the record (restored/purged), then delete the rejected-store files it kept."""
        study = record["scope"]["study"]
        self.hdfs.write(f"{NOTES}/{study}/{record['note']}.{mark}",
                        json.dumps({"time": _now(), "user": user}).encode(), overwrite=True)
        freed = 0
        paths = sorted({k["at"]["path"] for k in record["kept"]})
        for path in paths:
            info = self.hdfs.info(path)
            if info is not None and self.hdfs.delete(path):
                freed += info.length
        for d in sorted({p.rsplit("/", 1)[0] for p in paths}):
            _remove_empty_dirs(self.hdfs, d, up_to=REJECTED)
        return freed

    # --- restore ---------------------------------------------------------------------------------
    def restore(self, study: str, user: str, address: str = "") -> Outcome:
        """Bring back every rejected (not deleted) object of the study."""
        t0 = time.monotonic()
        scope = Scope(study)
        records = self.notes(study)
        pending = [r for r in records if r["state"] == "removed" and r["kept"]]
        if not pending:
            if any(r["state"] == "removed" and not r["restorable"] for r in records):
                raise Refused(f"study {study} was deleted, not rejected: it cannot be restored")
            raise NotFound(f"study {study} has no rejected objects to restore")
        out = Outcome("restore", scope.as_dict())
        committer = Committer(self.hbase, ContainerWriter(self.hdfs, writer="restore"))
        try:
            for record in pending:
                objs = []
                for kept in record["kept"]:
                    row = _unb64(kept["row"])
                    data = read_object(self.hdfs, Location(**kept["at"]))  # sha256 checked
                    attrs = ix.decode_attributes(row)
                    attrs["TransferSyntaxUID"] = instance_table.transfer_syntax(row)
                    q = row.get(instance_table.QUARANTINE)
                    objs.append(Prepared(data, attrs, q.decode() if q else None,
                                         source=instance_table.edge(row)))
                outcomes = committer.store_many(objs)
                failed = [o for o in outcomes if not o.acknowledged]
                if failed:
                    raise StorageError(f"{len(failed)} object(s) of note {record['note']} not "
                                       f"restored: {failed[0].comment}")
                out.objects += len(objs)
                out.bytes += sum(len(o.data) for o in objs)
                out.rejected_store_bytes_deleted += self._drop_rejected_store(
                    record, "restored", user)
                out.extra.setdefault("notes", []).append(record["note"])
        finally:
            committer._io.shutdown(wait=False)
        out.seconds = round(time.monotonic() - t0, 3)
        self._audit(user, address, "study-restore", "instances_accessed", "create", scope,
                    self.hbase.get("study", study_table.key(study)), out, [])
        return out

    # --- compact ---------------------------------------------------------------------------------
    def compact(self, user: str, all_series: bool = False, grace_s: float = 3600.0) -> dict:
        """Reclaim the space of removed objects (and, with `all_series`, compact everything)."""
        t0 = time.monotonic()
        queued = []
        for f in self.hdfs.list_status(PURGE):
            if f.path.endswith(".json"):
                queued.append((f.path, json.loads(self.hdfs.read(f.path))))
        released_by_dir: dict[str, set[str]] = defaultdict(set)
        for _p, entry in queued:
            for path in entry["released"]:
                released_by_dir[path.rsplit("/", 1)[0]].add(path)
        dirs = set(released_by_dir)
        if all_series:
            dirs |= {self.hdfs.abs(d) for d in series_directories(self.hdfs)}
        writer = ContainerWriter(self.hdfs, writer="compact")
        totals = Counter()
        for d in sorted(dirs):
            if self.hdfs.info(d) is None:
                continue
            rep = compact_series(self.hbase, self.hdfs, d, writer, grace_s=grace_s,
                                 released=frozenset(released_by_dir.get(d, ())))
            totals.update({k: v for k, v in rep.as_dict().items() if isinstance(v, int)})
            totals["series"] += 1
            totals["bad_objects"] += len(rep.bad_objects)
            _remove_empty_dirs(self.hdfs, d, up_to=CONTAINER_ROOT)
        done = 0
        for path, entry in queued:
            if not any(self.hdfs.exists(p) for p in entry["released"]):
                self.hdfs.delete(path)
                done += 1
        result = {**{k: int(v) for k, v in totals.items()}, "purge_entries": len(queued),
                  "purge_entries_done": done, "seconds": round(time.monotonic() - t0, 3)}
        result.setdefault("bytes_deleted", 0)
        result.setdefault("released_bytes_reclaimed", 0)
        audit.record(self.settings, user, "study-compact", "dicom/containers",
                     store=self.hbase, **result)
        return result

    # --- audit -----------------------------------------------------------------------------------
    def _audit(self, user: str, address: str, action: str, event_id: str, event_action: str,
               scope: Scope, study_row: dict, out: Outcome, rows) -> None:
        classes = Counter(ix.decode_attributes(r).get("SOPClassUID", "") for _k, r in rows)
        pid = ix.decode_attributes(study_row).get("PatientID", "")
        objects = [am.study(scope.study, {k: v for k, v in classes.items() if k},
                            anonymized=True)]
        if pid:
            objects.append(am.patient(pid))
        msg = am.message(am.Event(event_id, event_action,
                                  description=f"{out.action} {scope.level}: "
                                              f"{' '.join(out.reason) if out.reason else ''}"
                                              f" note {out.note}".strip()),
                         [am.Participant(user or "-", True, address=address),
                          am.Participant(SOURCE_ID, False, "application")],
                         SOURCE_ID, objects)
        details = out.as_dict()
        details["operation"] = details.pop("action")
        audit.record(self.settings, user, action, scope.study, store=self.hbase,
                     **details, xml=am.to_bytes(msg).decode())


def _covers(scope: Scope, record: dict) -> bool:
    """Does a removal of `scope` include the objects of this (study-level or narrower) record?"""
    s = record["scope"]
    if scope.sop:
        return s.get("sop") == scope.sop
    return s.get("series") == scope.series


def _remove_empty_dirs(hdfs, directory: str, up_to: str = "") -> None:
    """Delete `directory` if empty, then its parent if that is empty too (not above `up_to`)."""
    d = hdfs.abs(directory).rstrip("/")
    stop = hdfs.abs(up_to).rstrip("/") if up_to else hdfs.abs(LIFECYCLE_ROOT)
    for _ in range(2):
        if d == stop or not d.startswith(stop):
            return
        try:
            if hdfs.info(d) is None or hdfs.list_status(d):
                return
            hdfs.delete(d)
        except StorageError as e:
            log.warning("could not remove empty directory %s: %s", d, e)
            return
        d = d.rsplit("/", 1)[0]

