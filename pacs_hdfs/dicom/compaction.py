"""Compaction of one series directory: merge its small batch files, reclaim orphaned bytes.

Every commit writes a new immutable batch file (`containers.py`), so a series that arrived in
many commits has many small files, and a commit that failed after its file was written (HBase
down, the process killed) leaves bytes no index row points to. Compaction, per series:

1. lists the directory's files and the series' instance rows; a row counts only if its commit
   finished (its `sop` row points back at it): rows of an unfinished commit are left alone, and
   so is every file such a row points into;
2. copies the objects of small or partly unreferenced files into new batch files (up to
   `target_bytes` each), verifying every object's sha256 on the way (a bad object is skipped
   and keeps its row: `pacs fsck` reports it);
3. points the rows at their new location, then deletes each old file once no row points into
   it; readers that fetched a row before the move retry with the fresh row (`stored.py`);
4. deletes files that no row points into and that are older than `grace_s` (younger ones may
   belong to a commit still writing its rows), and at once the `released` ones: files that held
   objects the study lifecycle deleted or rejected (`lifecycle.py` removed their rows and
   recorded the files), so their space is freed without waiting for the grace period.

Safe to interrupt anywhere: the worst case is a new file nothing points to yet (an orphan,
reclaimed by the next run) or an old file still on disk (same).
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field

from pacs_hdfs.containers import FOOTER_TAIL, ContainerWriter, Location
from pacs_hdfs.dicom.commit import CONTAINER_ROOT
from pacs_hdfs.hdfs_store import FileInfo, StorageError
from pacs_hdfs.rows import instance, sop

log = logging.getLogger(__name__)


@dataclass
class SeriesReport:
    directory: str
    files_before: int = 0
    files_after: int = 0
    objects_moved: int = 0
    bytes_moved: int = 0
    orphan_files_deleted: int = 0
    orphan_bytes_reclaimed: int = 0
    bytes_deleted: int = 0         # all files deleted (merged and orphaned)
    bad_objects: list[str] = field(default_factory=list)   # row keys whose bytes did not verify
    left_young: int = 0            # unreferenced files younger than the grace period
    left_unfinished: int = 0       # files holding rows of an unfinished commit
    released_files_deleted: int = 0    # files of deleted/rejected objects only (lifecycle)
    released_bytes_reclaimed: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def series_of(directory: str) -> tuple[str, str]:
    """(study, series) of `.../dicom/containers/<study>/<series>`."""
    parts = directory.rstrip("/").split("/")
    return parts[-2], parts[-1]


def series_rows(hbase, study: str, series: str) -> tuple[dict[bytes, Location], set[bytes]]:
    """The series' instance rows with a location, and which of them are committed."""
    rows = hbase.scan("instance", row_prefix=instance.prefix(study, series),
                      columns=list(instance.LOCATION))
    located = {k: loc for k, r in rows if (loc := instance.location(r)) is not None}
    committed = set()
    keys = list(located)
    for i in range(0, len(keys), 1000):
        chunk = keys[i:i + 1000]
        refs = hbase.get_many("sop", [sop.key(instance.sop_of(k)) for k in chunk])
        pointed = {sop.decode(r) for r in refs.values()}
        committed |= {k for k in chunk if k in pointed}
    return located, committed


def compact_series(hbase, hdfs, directory: str, writer: ContainerWriter, *,
                   grace_s: float = 3600.0, target_bytes: int = 256 << 20,
                   now: float | None = None,
                   released: frozenset[str] | set[str] = frozenset()) -> SeriesReport:
    """Compact one series directory (see the module docstring); returns what it did.
    `released`: absolute paths of files whose unreferenced bytes are known to be deleted
    objects (not a commit in flight): reclaimed regardless of `grace_s`."""
    now = time.time() if now is None else now
    report = SeriesReport(hdfs.abs(directory))
    files = {f.path: f for f in hdfs.list_status(directory)
             if not f.is_dir and f.path.endswith(".pack")}
    report.files_before = len(files)
    study, series = series_of(report.directory)
    located, committed = series_rows(hbase, study, series)
    by_path: dict[str, list[bytes]] = {}
    for key, loc in located.items():
        by_path.setdefault(loc.path, []).append(key)

    unfinished = {p for p, keys in by_path.items() if any(k not in committed for k in keys)}
    report.left_unfinished = len(unfinished & set(files))
    candidates = [files[p] for p in sorted(by_path) if p in files and p not in unfinished
                  and _worth_merging(files[p], [located[k] for k in by_path[p]], target_bytes)]
    if len(candidates) >= 2 or any(_waste(f, [located[k] for k in by_path[f.path]])
                                   for f in candidates):
        _merge(hbase, hdfs, directory, writer, candidates, by_path, located, report,
               target_bytes)

    # whatever no row points into any more: merged files now, orphans once old enough
    located, _ = series_rows(hbase, study, series)
    still = {loc.path for loc in located.values()}
    merged = {f.path for f in candidates}
    for path, info in files.items():
        if path in still:
            continue
        old = (now - info.modified_ms / 1000) >= grace_s
        if path in merged or old or path in released:
            try:
                hdfs.delete(path)
            except StorageError as e:
                log.warning("could not delete %s: %s", path, e)
                continue
            report.bytes_deleted += info.length
            if path in released and path not in merged:
                report.released_files_deleted += 1
                report.released_bytes_reclaimed += info.length
            elif path not in merged:
                report.orphan_files_deleted += 1
                report.orphan_bytes_reclaimed += info.length
        else:
            report.left_young += 1
    report.files_after = len([f for f in hdfs.list_status(directory) if not f.is_dir])
    return report


def _referenced_bytes(locs: list[Location]) -> int:
    return sum(loc.length for loc in locs)


def _waste(info: FileInfo, locs: list[Location]) -> bool:
    """Does the file hold bytes no row points to (beyond a manifest footer)?"""
    return info.length - _referenced_bytes(locs) > FOOTER_TAIL + 200 * (len(locs) + 1)


def _worth_merging(info: FileInfo, locs: list[Location], target_bytes: int) -> bool:
    return info.length < target_bytes // 2 or _waste(info, locs)


def _merge(hbase, hdfs, directory: str, writer: ContainerWriter, candidates: list[FileInfo],
           by_path: dict[str, list[bytes]], located: dict[bytes, Location],
           report: SeriesReport, target_bytes: int) -> None:
    """Copy the candidates' referenced objects into new files; repoint their rows."""
    batch: list[tuple[bytes, bytes]] = []
    size = 0

    def flush():
        nonlocal size
        if not batch:
            return
        locations = writer.write(directory, [(k.decode(), d) for k, d in batch])
        hbase.put_many("instance", [(k, instance.encode_location(loc)) for (k, _d), loc
                                    in zip(batch, locations)])
        report.objects_moved += len(batch)
        report.bytes_moved += size
        batch.clear()
        size = 0

    for info in candidates:
        whole = hdfs.read(info.path)
        for key in sorted(by_path[info.path], key=lambda k: located[k].offset):
            loc = located[key]
            data = whole[loc.offset:loc.offset + loc.length]
            if len(data) != loc.length or hashlib.sha256(data).hexdigest() != loc.sha256:
                report.bad_objects.append(key.decode(errors="replace"))
                continue
            if batch and size + len(data) > target_bytes:
                flush()
            batch.append((key, data))
            size += len(data)
    flush()


def series_directories(hdfs) -> list[str]:
    """Every series directory under the container root."""
    out = []
    for study in hdfs.list_status(CONTAINER_ROOT):
        if study.is_dir:
            out += [s.path for s in hdfs.list_status(study.path) if s.is_dir]
    return out
