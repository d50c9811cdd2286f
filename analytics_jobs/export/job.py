"""`export`: a cohort (case pseudonyms, with the search criteria that chose them) -> one zip on
HDFS (`jobs/<id>/export.zip`) with de-identified DICOM, NIfTI volumes of CT/MR series, the
cases' visits as CSV and Parquet, a README and a manifest (see README.md in this folder).

1. **cohort** (driver): the cases' studies and visit ids from their subject rows (`cohort.py`);
   pseudonyms without a row are counted, not fatal.
2. **stage** (Spark, one task per study): the study's instances through the Q/R readers
   (`query.instance_locations`, verified `stored.read_bytes`), packed back to back into staged
   part files of at most `PART_BYTES` under `jobs/<id>/staging/<study>/` (2 replicas: they
   live minutes, but must survive a DataNode restart); CT/MR series also go to a task-local folder for `nifti.convert_series`, whose
   volumes are uploaded as staged files of their own. A task returns only small rows
   (`Staged`: member path, staged file, offset, size, sha256), never bytes.
3. **zip** (driver): every staged member is streamed (one ranged read per run of members in a
   part) through `ZipStreamWriter` onto a `PullSink` feeding `HdfsStore.write_stream`, so bytes
   pass in 1 MiB pieces; each member's sha256 is checked against the index's while it streams.
   Then `visits/visits.csv` + `.parquet` (written in batches to local temp files), `README.md`,
   and `manifest.json` last. The staging folder is deleted whatever happens; a failed or
   cancelled export deletes its partial zip.

Memory: the driver holds one `Staged` row per member (~200 bytes) and zipfile's central
directory entry per member (the same order), never member bytes beyond a few 1 MiB pieces; a task
holds one part (`PART_BYTES`) and one instance. Staging doubles the HDFS space for the time of
the job (with 2 replicas).
"""
from __future__ import annotations

import functools
import hashlib
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from pydicom import Dataset

from analytics_jobs.context import JobContext
from analytics_jobs.export import cohort, layout, nifti
from analytics_jobs.export.manifest import build_manifest, manifest_bytes, readme_text, utc_now
from analytics_jobs.export.params import Params
from analytics_jobs.export.sink import PullSink
from analytics_jobs.export.zipstream import ZipStreamWriter
from pacs_hdfs import spark_progress
from pacs_hdfs.dicom import query
from pacs_hdfs.dicom.stored import read_bytes
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.rows import instance as instance_rows

log = logging.getLogger(__name__)

ZIP_NAME = "export.zip"
MANIFEST_ARTIFACT = "manifest.json"
PART_BYTES = 32 << 20          # staged part files: bounded task memory, few HDFS files
# Staged files live minutes, but a single replica made the zip phase fail when a DataNode was
# restarted under it (seen on the shared cluster); two replicas let the read move on.
STAGING_REPLICATION = 2
READ_ATTEMPTS = 6              # a staged read cut off mid-stream resumes where it stopped
SKIPPED_CAP = 1000             # skipped items listed in the result document (all in the manifest)


@dataclass(frozen=True)
class Staged:
    """One zip member waiting on HDFS: `size` bytes at `offset` of `file`."""
    path: str
    file: str
    offset: int
    size: int
    sha256: str


@dataclass
class StudyStaged:
    index: int
    members: list[Staged] = field(default_factory=list)
    series: int = 0
    instances: int = 0
    volumes: int = 0
    skipped: list[dict] = field(default_factory=list)


# --- stage: one Spark task per study -------------------------------------------------------------
_settings_seen: dict[str, object] = {}


def _stores(settings):
    """(hdfs, hbase) of this executor process (one client pool per process, not per task)."""
    from pacs_hdfs import clients
    s = _settings_seen.setdefault(settings.model_dump_json(), settings)
    return clients.hdfs(s), clients.hbase(s)


def identifier(level: str, **keys: str) -> Dataset:
    """A C-FIND identifier for the Q/R readers."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


class PartWriter:
    """Members back to back in staged part files `<dir>/part-NNNN` of about `limit` bytes."""

    def __init__(self, hdfs, directory: str, limit: int = PART_BYTES):
        self.hdfs, self.directory, self.limit = hdfs, directory, limit
        self.buf = bytearray()
        self.n = 0
        self.members: list[Staged] = []

    @property
    def _file(self) -> str:
        return f"{self.directory}/part-{self.n:04d}"

    def add(self, path: str, data: bytes, sha256: str) -> Staged:
        staged = Staged(path, self._file, len(self.buf), len(data), sha256)
        self.buf += data
        self.members.append(staged)
        if len(self.buf) >= self.limit:
            self.flush()
        return staged

    def flush(self) -> None:
        if self.buf:
            self.hdfs.write(self._file, bytes(self.buf), overwrite=True,
                            replication=min(STAGING_REPLICATION,
                                            self.hdfs.s.effective_replication))
            self.buf.clear()
            self.n += 1


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    for block in cohort.file_chunks(path):
        digest.update(block)
    return digest.hexdigest()


def _series_of(key: bytes) -> str:
    """The series UID of an instance row key."""
    return instance_rows.parse_key(key)[1]


def stage_study(settings, staging: str, dicom: bool, want_nifti: bool,
                item: tuple[int, str, str]) -> StudyStaged:
    """Stage one study's members (Spark task body); returns the rows the driver zips."""
    index, patient, study = item
    hdfs, hbase = _stores(settings)
    directory = f"{staging}/{index:06d}"
    out = StudyStaged(index)
    parts = PartWriter(hdfs, directory)
    modality = {attrs.get("SeriesInstanceUID", ""): attrs.get("Modality", "").upper()
                for _k, attrs, _r in query.matching_rows(
                    hbase, identifier("SERIES", StudyInstanceUID=study))}
    by_series: dict[str, list] = {}
    for item_ in query.instance_locations(hbase, identifier("STUDY", StudyInstanceUID=study)):
        by_series.setdefault(_series_of(item_.key), []).append(item_)
    nifti_files: list[tuple[str, Path]] = []
    with tempfile.TemporaryDirectory(prefix="pacs-export-") as tmp:
        for series, items in sorted(by_series.items()):
            out.series += 1
            convert = want_nifti and modality.get(series, "") in nifti.NIFTI_MODALITIES
            series_dir = Path(tmp, "dcm", series)
            if convert:
                series_dir.mkdir(parents=True)
            for it in items:
                data = read_bytes(hbase, hdfs, it.key, it.row)      # sha256-verified
                out.instances += 1
                if dicom:
                    parts.add(layout.dicom_path(patient, study, series, it.sop_uid), data,
                              instance_rows.location(it.row).sha256)
                if convert:
                    (series_dir / f"{layout.uid(it.sop_uid)}.dcm").write_bytes(data)
            if convert:
                nifti_files += _convert(out, patient, study, series, series_dir,
                                        Path(tmp, "nii", series))
                shutil.rmtree(series_dir)
        parts.flush()
        for n, (path, local) in enumerate(nifti_files):
            staged = f"{directory}/file-{n:04d}"
            hdfs.upload(staged, local)
            out.members.append(Staged(path, staged, 0, local.stat().st_size,
                                      _sha256_file(local)))
    out.members[:0] = parts.members
    return out


def _convert(out: StudyStaged, patient: str, study: str, series: str, series_dir: Path,
             out_dir: Path) -> list[tuple[str, Path]]:
    """dcm2niix on one series: (member path, local file) of its volumes and sidecars, or the
    series listed as skipped with the reason."""
    result = nifti.convert_series(series_dir, out_dir)
    if not result.converted:
        out.skipped.append({"what": "nifti", "study": study, "series": series,
                            "reason": result.reason})
        return []
    files = []
    for vol in result.volumes:
        out.volumes += 1
        files.append((layout.nifti_path(patient, study, series, vol.suffix), vol.nifti))
        if vol.sidecar is not None:
            files.append((layout.nifti_path(patient, study, series, vol.suffix, ".json"),
                          vol.sidecar))
    return files


# --- zip: the driver streams the staged members ---------------------------------------------
class Cursor:
    """Hands out consecutive byte runs of one chunk stream: `take(n)` yields exactly n bytes."""

    def __init__(self, chunks):
        self._it = iter(chunks)
        self._buf = memoryview(b"")

    def take(self, n: int):
        while n:
            if not self._buf:
                nxt = next(self._it, None)
                if nxt is None:
                    raise StorageError(f"staged file ended {n} bytes early")
                self._buf = memoryview(nxt)
            piece = self._buf[:n]
            self._buf = self._buf[len(piece):]
            n -= len(piece)
            yield piece


def resumable_chunks(hdfs, path: str, offset: int, length: int, attempts: int = READ_ATTEMPTS,
                     delay_s: float = 1.0):
    """`length` bytes of `path` from `offset` as chunks; a stream cut off (a DataNode stopped
    mid-read) is reopened at the first byte not yet handed out, so the consumer never sees it.
    Raises StorageError after `attempts` failures in a row."""
    done, failures = 0, 0
    while done < length:
        try:
            for chunk in hdfs.read_chunks(path, offset + done, length - done):
                done += len(chunk)
                failures = 0
                yield chunk
            if done < length:
                raise StorageError(f"{path}: stream ended {length - done} bytes early")
        except StorageError as e:
            failures += 1
            if failures >= attempts:
                raise
            log.warning("staged read of %s cut off at +%d (%s); resuming", path, done,
                        str(e)[:200])
            time.sleep(delay_s * failures)


def runs(members: list[Staged]):
    """Members grouped into runs that lie back to back in one staged file (one read each)."""
    for file, group in groupby(members, key=lambda m: m.file):
        run: list[Staged] = []
        for m in group:
            if run and run[-1].offset + run[-1].size != m.offset:
                yield file, run
                run = []
            run.append(m)
        if run:
            yield file, run


def run(ctx: JobContext, p: Params) -> dict:
    t0 = time.monotonic()
    ctx.progress(0.01, "resolving the cohort")
    links = cohort.subject_links(ctx.hbase, p.pseudonyms)
    missing = [x for x in p.pseudonyms if x not in links]
    studies = [(i, patient, study) for i, (patient, study) in enumerate(
        (pt, st) for pt in p.pseudonyms if pt in links for st in links[pt].studies)]
    staging = ctx.hdfs.abs(f"{ctx.output_dir}/staging")
    zip_path = ctx.hdfs.abs(f"{ctx.output_dir}/{ZIP_NAME}")
    try:
        staged: list[StudyStaged] = []
        if studies and (p.dicom or p.nifti):
            sc = ctx.spark.sparkContext
            task = functools.partial(stage_study, ctx.settings, staging, p.dicom, p.nifti)
            rdd = sc.parallelize(studies, len(studies)).map(task)
            staged = sorted(spark_progress.tracked(sc, ctx.progress, 0.05, 0.5, "staging studies",
                                                   rdd.collect, unit="studies"),
                            key=lambda s: s.index)
        stage_s = time.monotonic() - t0
        doc = _write_zip(ctx, p, zip_path, links, missing, studies, staged)
    finally:
        try:
            ctx.hdfs.delete(staging, recursive=True)
        except StorageError as e:
            log.warning("export %s: staging not deleted (%s)", ctx.job_id, e)
    total_s = time.monotonic() - t0
    n = doc["numbers"]
    n.update(stage_seconds=round(stage_s, 3), zip_seconds=round(total_s - stage_s, 3),
             seconds=round(total_s, 3),
             mb_per_s=round(n["zip_bytes"] / 1e6 / total_s, 3) if total_s else None)
    ctx.progress(1.0, f"{n['files']} files, {n['zip_bytes'] / 1e6:.1f} MB")
    return doc


def _write_zip(ctx: JobContext, p: Params, zip_path: str, links, missing, studies,
               staged: list[StudyStaged]) -> dict:
    total = sum(m.size for s in staged for m in s.members) or 1
    skipped = [{"what": "case", "pseudonym": x, "reason": "no such case in the archive"}
               for x in missing] + [k for s in staged for k in s.skipped]
    counts = {"cases": len(links), "cases_not_found": len(missing), "studies": len(studies),
              "series": sum(s.series for s in staged),
              "instances": sum(s.instances for s in staged),
              "nifti_volumes": sum(s.volumes for s in staged),
              "nifti_series_skipped": sum(1 for k in skipped if k["what"] == "nifti")}
    sink = PullSink(lambda chunks: ctx.hdfs.write_stream(zip_path, chunks, overwrite=True))
    done = False
    try:
        with tempfile.TemporaryDirectory(prefix="pacs-export-") as tmp:
            z = ZipStreamWriter(sink)
            written = 0
            for study in staged:
                for file, run_ in runs(study.members):
                    length = sum(m.size for m in run_)
                    cursor = Cursor(resumable_chunks(ctx.hdfs, file, run_[0].offset, length))
                    for m in run_:
                        entry = z.add(m.path, cursor.take(m.size))
                        if (entry.size, entry.sha256) != (m.size, m.sha256):
                            raise StorageError(f"staged member {m.path} does not match the "
                                               "archive's checksum")
                        written += m.size
                    ctx.progress(0.5 + 0.45 * written / total,
                                 f"zipping: {written / 1e6:.0f} of {total / 1e6:.0f} MB")
            if p.visits:
                ctx.progress(0.96, "visits")
                csv_file, parquet_file = Path(tmp, "visits.csv"), Path(tmp, "visits.parquet")
                ids = [v for pt in p.pseudonyms if pt in links for v in links[pt].visits]
                counts["visits"] = cohort.write_visit_files(cohort.visits(ctx.hbase, ids),
                                                            csv_file, parquet_file)
                z.add(layout.VISITS_CSV, cohort.file_chunks(csv_file))
                z.add(layout.VISITS_PARQUET, cohort.file_chunks(parquet_file))
            created = utc_now()
            z.add(layout.README, readme_text(selection=p.selection(), counts=counts,
                                             created=created).encode())
            manifest = build_manifest(z.entries, selection=p.selection(), counts=counts,
                                      created=created, skipped=skipped)
            z.add(layout.MANIFEST, manifest_bytes(manifest))
            z.close()
        sink.close()
        done = True
    finally:
        if not done:
            sink.abort()
            try:
                ctx.hdfs.delete(zip_path)
            except StorageError as e:
                log.warning("export %s: partial zip not deleted (%s)", ctx.job_id, e)
    ctx.record.artifacts[ZIP_NAME] = zip_path
    ctx.store.update(ctx.record, "artifacts")
    ctx.write_artifact(MANIFEST_ARTIFACT, manifest_bytes(manifest))
    numbers = {**counts, "files": manifest["totals"]["files"] + 1,
               "content_bytes": manifest["totals"]["bytes"], "zip_bytes": sink.size,
               "zip_sha256": sink.sha256}
    return {"numbers": numbers,
            "export": {"artifact": ZIP_NAME, "path": zip_path, "bytes": sink.size,
                       "sha256": sink.sha256, "format": manifest["format"],
                       "code_version": manifest["code_version"]},
            "skipped": skipped[:SKIPPED_CAP], "skipped_total": len(skipped)}


JOB_KINDS = {"export": (Params, run)}
