"""`fsck`: the archive check (and `--repair`) as a job kind of the job service, on Spark.

Why here and not under `analytics_jobs/`: it checks the storage core's own invariants
(`containers.py`, `commit.py`, `compaction.py`) and imports only `pacs_hdfs`; the job service
needs no more than the `JOB_KINDS` entry (`analytics_jobs/kinds.py` maps the kind here, as it
maps `fdk` to `recon_mapreduce`). The checks themselves are pure (`fsck_checks.py`), the repair
rules are in `fsck_repair.py`; this module only distributes them.

How one check scales with the archive (every step a Spark stage; executors open their own
WebHDFS and Thrift clients through `pacs_hdfs.clients`):

1. **list**: the driver lists the study directories (one request); tasks list their series
   directories and `.pack` files;
2. **scan**: the `instance` table is split into key ranges at series boundaries (the series
   directories found, balanced by file count; the first and last range are open, so rows of a
   series without a directory are scanned too); each task pages through its range. The `sop`
   commit markers are then scanned too, split at sampled sop keys, and each of those tasks
   matches the rows partitioned to it against the markers it reads (`scan_entries`; a scoped
   check gets its few markers by key instead);
3. **verify**: rows are grouped by file (a cogroup with the listing); each file is checked on its
   own (`check_file`: footer, then one streaming read hashing every referenced range and manifest
   entry), several files per task in a few threads (a task per tiny file would cost more in
   scheduling than in reading);
4. **counters**: recount per series/study from the scanned rows, compared with the stored
   counters scanned over the same key ranges.

Rows reported bad are read again at the end: a row that moved meanwhile (a compaction) is not a
problem. With `repair`, the rules of `fsck_repair.py` are applied and the check runs again, so
`after` numbers are measured, not inferred.

The result document (`result.json`): see `RESULT_KEYS`.
"""
from __future__ import annotations

import bisect
import dataclasses
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pydantic import BaseModel, Field, model_validator

from pacs_hdfs import spark_progress
from pacs_hdfs.containers import ContainerWriter
from pacs_hdfs.dicom import fsck_checks as fc
from pacs_hdfs.dicom import fsck_repair as fr
from pacs_hdfs.dicom.commit import CONTAINER_ROOT
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.rows import instance as instance_table
from pacs_hdfs.rows import series as series_table
from pacs_hdfs.rows import sop as sop_table
from pacs_hdfs.rows import study as study_table

log = logging.getLogger(__name__)

#: the result document's top-level keys (stable; documented in README "Storage")
RESULT_KEYS = {
    "clean": "true when no problem remains (after the repair, when repairing); pending items "
             "(younger than the grace period) do not count",
    "scope": "what was checked: containers root, study, series",
    "totals": "counts of the final check (fsck_checks.TOTALS) plus `problems`, their sum",
    "pending": "orphans, unfinished files/commits and counter mismatches younger than grace_s",
    "problems": "per-problem lists of the final check, each capped at list_cap items",
    "before": "when repairing: totals, pending and problems of the check before the repair",
    "repair": "when repairing: what was repaired and what could not be",
    "timing": "seconds per phase: check_s, repair_s, recheck_s, total_s, and stages_s",
    "numbers": "the headline numbers (for the job pages)",
}


class Params(BaseModel):
    repair: bool = Field(False, description="fix what redundant copies allow")
    grace_s: float = Field(3600.0, ge=0, description="files younger than this may be in flight")
    study: str = Field("", description="check only this study (StudyInstanceUID)")
    series: str = Field("", description="check only this series of `study`")
    list_cap: int = Field(100, ge=1, le=100_000, description="items per problem list")

    @model_validator(mode="after")
    def _series_needs_study(self):
        if self.series and not self.study:
            raise ValueError("series needs study")
        for uid in (self.study, self.series):
            if any(c in uid for c in "/\x00"):
                raise ValueError("a UID cannot contain '/' or NUL")
        return self


# --- scope and key ranges (pure) -----------------------------------------------------------------
def prefix_end(prefix: bytes) -> bytes | None:
    """The first key after every key starting with `prefix` (None: no end)."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return None
    p[-1] += 1
    return bytes(p)


@dataclass(frozen=True)
class Scope:
    study: str = ""
    series: str = ""

    def instance_bounds(self) -> tuple[bytes, bytes | None]:
        if not self.study:
            return b"", None
        prefix = instance_table.prefix(self.study, self.series or None)
        return prefix, prefix_end(prefix)

    def counter_ranges(self, instance_ranges: list[tuple[bytes, bytes | None]]
                       ) -> dict[str, list[tuple[bytes, bytes | None]]]:
        """table -> key ranges holding exactly the series/study rows in scope (a one-series
        scope cannot recount its study)."""
        if not self.study:
            return {"series": instance_ranges, "study": instance_ranges}
        study = study_table.key(self.study)
        if self.series:
            key = series_table.key(self.study, self.series)
            return {"series": [(key, key + b"\x00")]}
        series = series_table.study_prefix(self.study)
        return {"series": [(series, prefix_end(series))], "study": [(study, study + b"\x00")]}


def key_ranges(boundaries: list[tuple[bytes, int]], n: int, lo: bytes = b"",
               hi: bytes | None = None) -> list[tuple[bytes, bytes | None]]:
    """Split [lo, hi) into at most `n` contiguous ranges that together cover all of it, cutting
    only at the given boundary keys (series prefixes) so that their weights balance."""
    points = sorted((k, w) for k, w in boundaries if k > lo and (hi is None or k < hi))
    total = sum(w for _, w in points) + 1
    cuts, acc, step = [], 0, total / max(1, n)
    for key, weight in points:
        if acc >= step * (len(cuts) + 1) and len(cuts) < n - 1:
            cuts.append(key)
        acc += weight
    edges = [lo, *cuts, hi]
    return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


# --- executor side -------------------------------------------------------------------------------
_settings_seen: dict[str, object] = {}


def _stores(settings):
    """(hdfs, hbase) of this process for these settings (one pool per executor process)."""
    from pacs_hdfs import clients
    s = _settings_seen.setdefault(settings.model_dump_json(), settings)
    return clients.hdfs(s), clients.hbase(s)


def _list_fn(settings, root: str, series: str):
    def list_study(study: str):
        hdfs, _ = _stores(settings)
        dirs = [f"{root}/{study}/{series}"] if series else [
            d.path for d in hdfs.list_status(f"{root}/{study}") if d.is_dir]
        out = []
        for d in dirs:
            out.append((d, None))         # the series itself (a key-range boundary)
            out += [(d, fc.FileStatus(f.path, f.length, f.modified_ms))
                    for f in hdfs.list_status(d) if not f.is_dir and f.path.endswith(".pack")]
        return out
    return list_study


SCAN_COLUMNS = [*instance_table.LOCATION, instance_table.QUARANTINE]
PAGE = 5000


def _scan_pages(hbase, table: str, start: bytes, stop: bytes | None, columns: list[bytes]):
    """Rows of [start, stop) in pages (a scan materialises what it reads)."""
    while True:
        rows = hbase.scan(table, row_start=start, row_stop=stop, columns=columns, limit=PAGE)
        yield from rows
        if len(rows) < PAGE:
            return
        start = rows[-1][0] + b"\x00"


def _scan_fn(settings, look_up_sops: bool):
    """Instance rows of a key range as IndexEntries. With `look_up_sops`, their `sop` commit
    markers are fetched by batched gets (a scoped check: few rows); without, every entry is
    provisionally `committed` and `commit_states` settles it by a scan of the `sop` table."""
    def scan(bounds):
        _, hbase = _stores(settings)
        page: list[tuple[bytes, dict]] = []

        def flush():
            sops = {}
            keyed = [(k, fc.sop_of(k)) for k, _ in page]
            wanted = [sop_table.key(s) for _, s in keyed if s is not None]
            if wanted and look_up_sops:
                sops = hbase.get_many("sop", wanted, columns=sop_table.COLUMNS)
            for (key, row), (_, sop) in zip(page, keyed):
                state = fc.COMMITTED if not look_up_sops else \
                    fc.commit_state(key, sops.get(sop_table.key(sop))) if sop else fc.NO_SOP_ROW
                yield fc.entry_from_row(key, row, state)
            page.clear()

        for key, row in _scan_pages(hbase, "instance", *bounds, SCAN_COLUMNS):
            page.append((key, row))
            if len(page) >= 1000:
                yield from flush()
        yield from flush()
    return scan


def _sample_sops(entries, size: int = 256):
    """(rows in this partition, a uniform sample of their sop keys): key-range cut points."""
    rng = random.Random(7)
    sample: list[bytes] = []
    n = 0
    for e in entries:
        n += 1
        sop = fc.sop_of(e.key)
        if sop is None:
            continue
        if len(sample) < size:
            sample.append(sop_table.key(sop))
        elif (j := rng.randrange(n)) < size:
            sample[j] = sop_table.key(sop)
    yield n, sample


def _commit_join_fn(settings, sop_ranges):
    """For the task of sop key range i: its instance rows (sop key, instance key), partitioned
    there, against the `sop` rows it scans itself; yields what is wrong (no shuffle of the
    `sop` table, no join machinery: a dict per range)."""
    def join(index, pairs):
        _, hbase = _stores(settings)
        want: dict[bytes, list[bytes]] = {}
        for sop_key, key in pairs:
            want.setdefault(sop_key, []).append(key)
        for sop_key, row in _scan_pages(hbase, "sop", *sop_ranges[index], sop_table.COLUMNS):
            pointed = sop_table.decode(row)
            keys = want.pop(sop_key, None)
            if keys is None:
                yield "dangling", sop_key, pointed
                continue
            for key in keys:
                state = fc.commit_state(key, row)
                if state != fc.COMMITTED:
                    yield "state", key, state
        for keys in want.values():
            for key in keys:
                yield "state", key, fc.NO_SOP_ROW
    return join


def _range_of(cuts: list[bytes]):
    def index(key: bytes) -> int:
        return bisect.bisect_right(cuts, key)
    return index


def scan_entries(sc, settings, scope: Scope, ranges, cores: int):
    """The scope's instance rows as IndexEntries with their commit state (RDD, persisted), and
    the `sop` rows whose instance row is missing (whole-archive checks only).

    A scoped check looks the markers up by get (few rows). A whole-archive check scans the `sop`
    table instead, split by key range at sampled sop keys, and joins it with the rows: random
    gets of markers that are no longer in the memstore cost ~10x a scan."""
    from pyspark import StorageLevel
    if scope.study:
        entries = (sc.parallelize(ranges, len(ranges)).flatMap(_scan_fn(settings, True))
                   .persist(StorageLevel.MEMORY_AND_DISK))
        entries.count()
        return entries, []
    raw = (sc.parallelize(ranges, len(ranges)).flatMap(_scan_fn(settings, False))
           .persist(StorageLevel.MEMORY_AND_DISK))
    raw.setName("instance rows (commit state provisional)")
    samples = raw.mapPartitions(_sample_sops).collect()
    cuts = [(k, n / len(ks)) for n, ks in samples if ks for k in ks]
    sop_ranges = key_ranges(cuts, 4 * cores)
    findings = (raw.map(lambda e: (sop_table.key(fc.sop_of(e.key) or ""), e.key))
                .partitionBy(len(sop_ranges), _range_of([r[0] for r in sop_ranges[1:]]))
                .mapPartitionsWithIndex(_commit_join_fn(settings, sop_ranges)).collect())
    states = {key: state for kind, key, state in findings if kind == "state"}
    dangling = [(sop_key, pointed) for kind, sop_key, pointed in findings if kind == "dangling"]
    if not states:
        return raw, dangling
    marks = sc.broadcast(states)
    entries = (raw.map(lambda e: dataclasses.replace(e, commit=marks.value[e.key])
                       if e.key in marks.value else e)
               .persist(StorageLevel.MEMORY_AND_DISK))
    entries.count()
    raw.unpersist()
    return entries, dangling


#: files up to this size are read whole in one request (footer and objects); larger ones are
#: streamed after a footer read, so a task never holds a big file in memory
WHOLE_READ = 16 << 20


def _verify_fn(settings, now_s: float, grace_s: float, keep_sources: bool, threads: int = 6):
    """Check each (path, (statuses, entry tuples)) group's file; `keep_sources`: keep every
    intact segment in the reports (repair sources), else only the orphan ones."""
    def verify_one(group):
        report = check_one(group)
        if report is not None and not keep_sources:
            report.intact_segments = []
        return report

    def check_one(group):
        path, (statuses, entries) = group
        statuses, entries = list(statuses), [fc.IndexEntry(*t) for t in entries]
        hdfs, _ = _stores(settings)
        status = statuses[0] if statuses else None
        if status is None and path is not None:
            info = hdfs.info(path)          # created after the listing, or outside the scope
            if info is not None and not info.is_dir:
                status = fc.FileStatus(info.path, info.length, info.modified_ms)
        if status is None or path is None:
            return fc.check_file(path, None, None, entries, now_s=now_s, grace_s=grace_s)
        last = ""
        for attempt in range(3):
            try:
                if status.length <= WHOLE_READ:    # one request: the file, footer included
                    blob = hdfs.read(path)
                    manifest = fc.read_footer(lambda o, n: blob[o:o + n], len(blob))
                    return fc.check_file(path, status, manifest, entries,
                                         lambda n: [blob[:n]], now_s, grace_s)
                manifest = fc.read_footer(lambda o, n: hdfs.read(path, o, n), status.length)
                return fc.check_file(path, status, manifest, entries,
                                     lambda n: hdfs.read_chunks(path, 0, n), now_s, grace_s)
            except StorageError as e:
                last = str(e)
                if hdfs.info(path) is None:     # deleted since the listing (a compaction)
                    if not entries:
                        return None
                    return fc.check_file(path, None, None, entries, now_s=now_s,
                                         grace_s=grace_s)
                time.sleep(0.5 * (attempt + 1))
        return fc.check_file(path, status, None, entries, now_s=now_s, grace_s=grace_s,
                             error=last)

    def verify(groups):
        with ThreadPoolExecutor(threads) as pool:
            for report in pool.map(verify_one, groups):
                if report is not None:
                    yield report
    return verify


def _counter_scan_fn(settings):
    def scan(work):
        table, bounds = work
        _, hbase = _stores(settings)
        for key, row in _scan_pages(hbase, table, *bounds, list(fc.COUNTER_COLUMNS[table])):
            yield table, key, row
    return scan


def _compact_fn(settings, grace_s: float):
    from pacs_hdfs.dicom.compaction import compact_series

    def compact(directories):
        hdfs, hbase = _stores(settings)
        writer = ContainerWriter(hdfs, writer="fsck")
        for d in directories:
            try:
                yield compact_series(hbase, hdfs, d, writer, grace_s=grace_s).as_dict()
            except StorageError as e:
                yield {"directory": d, "error": str(e)[:300]}
    return compact


# --- driver side ---------------------------------------------------------------------------------
@dataclass
class Check:
    """One check's findings: the summary plus the full lists the repair needs."""
    summary: fc.Summary
    row_problems: list[fc.RowProblem] = field(default_factory=list)
    uncommitted: list[fc.Uncommitted] = field(default_factory=list)
    orphan_dirs: set[str] = field(default_factory=set)
    counter_mismatches: list[fc.CounterMismatch] = field(default_factory=list)
    moved: int = 0
    stages_s: dict = field(default_factory=dict)
    ranges: list = field(default_factory=list)          # the instance key ranges scanned
    young_series: set = field(default_factory=set)      # (study, series) with a young file
    reports: object = None            # the persisted RDD of FileReports (repair sources)

    def release(self) -> None:
        if self.reports is not None:
            self.reports.unpersist()

    def as_dict(self) -> dict:
        return self.summary.as_dict()


class _Progress:
    """Progress inside a window [lo, hi) of the whole job; Spark tasks counted by a poller."""

    def __init__(self, report, lo: float, hi: float):
        self.report, self.lo, self.hi = report, lo, hi

    def at(self, fraction: float, message: str) -> None:
        self.report(self.lo + (self.hi - self.lo) * fraction, message)

    def tracked(self, sc, fraction: tuple[float, float], message: str, action):
        """`action()` while its finished Spark tasks move the bar over `fraction` of the window."""
        return spark_progress.tracked(sc, self.at, *fraction, message, action)


@dataclass
class Digest:
    """What the driver needs of a partition's FileReports (one action collects them all)."""
    summary: fc.Summary
    row_problems: list = field(default_factory=list)
    uncommitted: list = field(default_factory=list)
    orphan_dirs: set = field(default_factory=set)
    counts: dict = field(default_factory=dict)      # series recount

    @classmethod
    def of(cls, reports, cap: int) -> Digest:
        d = cls(fc.Summary(cap))
        for r in reports:
            d.summary.add_file(r)
            d.row_problems += r.row_problems
            d.uncommitted += r.uncommitted
            fc.merge_counts(d.counts, r.counts)
            if r.exists and not r.young and (r.orphan_file or r.orphan_segments
                                              or not r.finished):
                d.orphan_dirs.add(r.path.rsplit("/", 1)[0])
        return d

    def merge(self, o: Digest) -> Digest:
        self.summary.merge(o.summary)
        self.row_problems += o.row_problems
        self.uncommitted += o.uncommitted
        self.orphan_dirs |= o.orphan_dirs
        fc.merge_counts(self.counts, o.counts)
        return self


def run_check(spark, settings, hdfs, hbase, p: Params, progress: _Progress) -> Check:
    """List, scan, verify, recount (module docstring); nothing is changed."""
    from pyspark import StorageLevel

    from pacs_hdfs.clients import executor_python
    sc = spark.sparkContext
    cores = max(2, int(sc.defaultParallelism))
    scope = Scope(p.study, p.series)
    root = hdfs.abs(CONTAINER_ROOT)
    now = time.time()
    stages: dict[str, float] = {}
    t = time.perf_counter()
    progress.at(0.0, "listing")
    studies = [p.study] if p.study else sorted(
        d.path.rsplit("/", 1)[1] for d in hdfs.list_status(root) if d.is_dir)
    with executor_python(sc):
        listing = (sc.parallelize(studies, max(1, min(len(studies), 4 * cores)))
                   .flatMap(_list_fn(settings, root, p.series)).collect()) if studies else []
    files = [f for _, f in listing if f is not None]
    weight: dict[bytes, int] = {}
    for d, f in listing:
        study, series = d.rsplit("/", 2)[-2:]
        k = instance_table.prefix(study, series)
        weight[k] = weight.get(k, 0) + 1      # the series and each of its files
    young_series = {tuple(f.path.rsplit("/", 3)[-3:-1]) for f in files
                    if now - f.modified_ms / 1000 < p.grace_s}
    stages["list_s"] = round(time.perf_counter() - t, 3)

    lo, hi = scope.instance_bounds()
    ranges = key_ranges(list(weight.items()), 4 * cores, lo, hi)
    parts = max(1, min(len(files) + 1, 4 * cores))
    t = time.perf_counter()
    cap = p.list_cap
    with executor_python(sc):
        entries, dangling = progress.tracked(sc, (0.05, 0.25), "scanning the index",
                                             lambda: scan_entries(sc, settings, scope, ranges,
                                                                  cores))
        stages["scan_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        by_file = (sc.parallelize([(f.path, f) for f in files], parts)
                   .cogroup(entries.map(lambda e: (e.path, e.as_tuple())),
                            numPartitions=parts))
        reports = by_file.mapPartitions(_verify_fn(settings, now, p.grace_s, p.repair))
        if p.repair:          # the repair looks for copies among their intact segments
            reports.persist(StorageLevel.MEMORY_AND_DISK)
        digests = progress.tracked(sc, (0.25, 0.8), f"verifying {len(files)} files",
                                   reports.mapPartitions(lambda it: [Digest.of(it, cap)]).collect)
    digest = Digest(fc.Summary(cap))
    for d in digests:
        digest.merge(d)
    summary = digest.summary
    entries.unpersist()
    stages["verify_s"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    progress.at(0.8, "re-reading rows reported bad")
    row_problems, moved = _still_bad(hbase, digest.row_problems)
    uncommitted, moved_u = _still_uncommitted(hbase, digest.uncommitted)
    for prob in row_problems:
        summary.add_row_problem(prob)
    for u in uncommitted:
        summary.add_uncommitted(u)
    lost, moved_d = _still_dangling(hbase, dangling)
    for sop_key, pointed in lost:
        summary.add_dangling_sop(sop_key, pointed)

    progress.at(0.85, "recounting series and study counters")
    settled = []
    for m in _counter_mismatches(sc, settings, digest.counts, scope, ranges):
        pending = _in_young_series(m, young_series)
        summary.add_counter_mismatch(m, pending)
        if not pending:
            settled.append(m)
    stages["counters_s"] = round(time.perf_counter() - t, 3)
    progress.at(1.0, "checked")
    return Check(summary, row_problems, uncommitted, digest.orphan_dirs, settled,
                 moved=moved + moved_u + moved_d, stages_s=stages, ranges=ranges,
                 young_series=young_series, reports=reports)


def _in_young_series(m: fc.CounterMismatch, young_series: set[tuple[str, str]]) -> bool:
    """Does a counter belong to a series (or study) that a commit may still be adding to?"""
    parts = m.key.decode(errors="replace").split("\x00")
    if m.table == "series":
        return tuple(parts) in young_series
    return any(study == parts[0] for study, _ in young_series)


def _counter_mismatches(sc, settings, series_counts: dict, scope: Scope, ranges
                        ) -> list[fc.CounterMismatch]:
    """Stored counters (scanned by key range on executors) against the recount."""
    from pacs_hdfs.clients import executor_python
    tables = scope.counter_ranges(ranges)
    work = [(table, r) for table, trs in tables.items() for r in trs]
    with executor_python(sc):
        rows = sc.parallelize(work, len(work)).flatMap(_counter_scan_fn(settings)).collect()
    stored: dict[str, dict[bytes, dict]] = {t: {} for t in tables}
    for table, key, row in rows:
        stored[table][key] = row
    return fc.counter_mismatches(series_counts, stored, tables)


def _recount(sc, settings, scope: Scope, ranges) -> dict:
    """The series recount alone (rows scanned again, no file read)."""
    from pacs_hdfs.clients import executor_python
    with executor_python(sc):
        entries, _ = scan_entries(sc, settings, scope, ranges, max(2, sc.defaultParallelism))
        parts = entries.mapPartitions(lambda it: [fc.recount(it)]).collect()
        entries.unpersist()
    counts: dict = {}
    for c in parts:
        fc.merge_counts(counts, c)
    return counts


def _still_bad(hbase, problems: list[fc.RowProblem]) -> tuple[list[fc.RowProblem], int]:
    """The problems whose row still points where it was checked (not moved meanwhile)."""
    current = fr._locations(hbase, [p.key for p in problems])
    keep = [p for p in problems if p.kind == "no_location" and p.key in current
            or current.get(p.key) == (p.path, p.offset, p.length, p.sha256)]
    return keep, len(problems) - len(keep)


def _still_dangling(hbase, items: list[tuple[bytes, bytes | None]]
                    ) -> tuple[list[tuple[bytes, bytes | None]], int]:
    """The sop rows whose instance row is still missing (a commit between the two scans wrote
    its instance row after the instance scan passed it)."""
    keys = [k for _, k in items if k]
    found = {}
    for i in range(0, len(keys), 1000):
        found.update(hbase.get_many("instance", keys[i:i + 1000],
                                    columns=[instance_table.PATH]))
    keep = [(s, k) for s, k in items if not (k and found.get(k, {}).get(instance_table.PATH))]
    return keep, len(items) - len(keep)


def _still_uncommitted(hbase, items: list[fc.Uncommitted]) -> tuple[list[fc.Uncommitted], int]:
    """The unfinished commits that are still unfinished (an in-flight commit ends meanwhile)."""
    sops = {}
    keyed = [(u, fc.sop_of(u.key)) for u in items]
    wanted = [sop_table.key(s) for _, s in keyed if s]
    for i in range(0, len(wanted), 1000):
        sops.update(hbase.get_many("sop", wanted[i:i + 1000], columns=sop_table.COLUMNS))
    keep = [u for u, s in keyed
            if not s or fc.commit_state(u.key, sops.get(sop_table.key(s))) != fc.COMMITTED]
    return keep, len(items) - len(keep)


def _copies(r: fc.FileReport, wanted: set) -> list[tuple[fc.Segment, bool]]:
    """The intact segments of a file holding wanted (sha256, length) content, and whether each
    is unreferenced."""
    orphan = {(o.offset, o.length) for o in r.orphan_segments}
    return [(s, (s.offset, s.length) in orphan) for s in r.intact_segments
            if (s.sha256, s.length) in wanted]


def run_repair(spark, settings, hdfs, hbase, p: Params, check: Check,
               progress: _Progress) -> dict:
    """Apply the rules of fsck_repair.py to one check's findings; returns what was done."""
    from pacs_hdfs.clients import executor_python
    sc = spark.sparkContext
    root = hdfs.abs(CONTAINER_ROOT)
    out: dict = {}
    cap = p.list_cap

    progress.at(0.0, "looking for intact copies of bad rows")
    wanted = {(x.sha256, x.length) for x in check.row_problems}
    sources, unreferenced = [], set()
    if wanted:
        with executor_python(sc):
            found = check.reports.flatMap(lambda r: _copies(r, wanted)).collect()
        sources = [s for s, _ in found]
        unreferenced = {(s.path, s.offset, s.length) for s, orphan in found if orphan}
    plans, unrepairable = fr.plan_repoints(check.row_problems, sources, unreferenced, root)
    writer = ContainerWriter(hdfs, writer="fsck")
    applied = fr.apply_repoints(hbase, hdfs, writer, plans, root) if plans else {
        "repointed": [], "moved_meanwhile": 0, "failed": [], "keys": set()}
    out["rows"] = {"repointed": len(applied["repointed"]),
                   "unrepairable": len(unrepairable) + len(applied["failed"]),
                   "moved_meanwhile": applied["moved_meanwhile"],
                   "repointed_list": applied["repointed"][:cap],
                   "unrepairable_list": (unrepairable + applied["failed"])[:cap]}

    progress.at(0.25, "completing unfinished commits")
    ok, not_ok = fr.completable(check.uncommitted, applied["keys"])
    done = fr.complete_commits(hbase, ok) if ok else {"completed": [], "skipped": []}
    out["commits"] = {"completed": len(done["completed"]),
                      "unrepairable": len(not_ok) + len(done["skipped"]),
                      "completed_list": done["completed"][:cap],
                      "unrepairable_list": (not_ok + done["skipped"])[:cap]}

    progress.at(0.45, "compacting series with orphans")
    dirs = set(check.orphan_dirs) | {p_.problem.path.rsplit("/", 1)[0]
                                     for p_ in plans if p_.problem.path}
    dirs = sorted(d for d in dirs if d.startswith(root + "/"))
    compacted: list[dict] = []
    if dirs:
        with executor_python(sc):
            parts = max(1, min(len(dirs), 4 * int(sc.defaultParallelism)))
            compacted = (sc.parallelize(dirs, parts)
                         .mapPartitions(_compact_fn(settings, p.grace_s)).collect())
    keys = ("files_before", "files_after", "objects_moved", "bytes_moved",
            "orphan_files_deleted", "orphan_bytes_reclaimed", "bytes_deleted", "left_young",
            "left_unfinished")
    out["compaction"] = {"series": len(dirs),
                         **{k: sum(c.get(k, 0) for c in compacted) for k in keys},
                         "errors": [c for c in compacted if "error" in c][:cap],
                         "bad_objects": sum(len(c.get("bad_objects", [])) for c in compacted)}

    progress.at(0.7, "setting counters")
    mismatches = check.counter_mismatches
    if done["completed"]:       # completed commits change the recount: count again
        counts = _recount(sc, settings, Scope(p.study, p.series), check.ranges)
        mismatches = [m for m in _counter_mismatches(sc, settings, counts,
                                                     Scope(p.study, p.series), check.ranges)
                      if not _in_young_series(m, check.young_series)]
    puts = fr.plan_counter_puts(mismatches)
    out["counters"] = {"set": fr.apply_counter_puts(hbase, puts) if puts else 0,
                       "set_list": [m.as_dict() for m in mismatches][:cap],
                       "left_pending": check.summary.pending["counter_mismatches"]}
    progress.at(1.0, "repaired")
    return out


def run(ctx, params: Params) -> dict:
    """The job: check; with `repair`, repair and check again."""
    t0 = time.perf_counter()
    spark = ctx.spark
    scope = {"containers": ctx.hdfs.abs(CONTAINER_ROOT), "study": params.study or None,
             "series": params.series or None}
    span = (0.0, 0.45) if params.repair else (0.0, 1.0)
    first = run_check(spark, ctx.settings, ctx.hdfs, ctx.hbase, params,
                      _Progress(ctx.progress, *span))
    timing = {"check_s": round(time.perf_counter() - t0, 3), "stages_s": first.stages_s}
    result: dict = {"scope": scope, "before": None, "repair": None}
    final = first
    try:
        if params.repair:
            t = time.perf_counter()
            result["repair"] = run_repair(spark, ctx.settings, ctx.hdfs, ctx.hbase, params, first,
                                          _Progress(ctx.progress, 0.45, 0.6))
            timing["repair_s"] = round(time.perf_counter() - t, 3)
            first.summary.totals["moved_during_check"] = first.moved
            result["before"] = {k: v for k, v in first.as_dict().items() if k != "clean"}
            t = time.perf_counter()
            first.release()
            final = run_check(spark, ctx.settings, ctx.hdfs, ctx.hbase, params,
                              _Progress(ctx.progress, 0.6, 1.0))
            timing["recheck_s"] = round(time.perf_counter() - t, 3)
    finally:
        final.release()
        first.release()
    final.summary.totals["moved_during_check"] = final.moved
    doc = final.as_dict()
    timing["total_s"] = round(time.perf_counter() - t0, 3)
    totals = doc["totals"]
    check_s = timing.get("recheck_s", timing["check_s"])
    numbers = {"objects_checked": totals["objects_checked"], "objects_ok": totals["objects_ok"],
               "problems": totals["problems"], "files": totals["files"],
               "bytes": totals["bytes"], "seconds": timing["total_s"],
               "objects_per_s": round(totals["objects_checked"] / max(check_s, 1e-9), 1)}
    if params.repair:
        numbers["problems_before"] = result["before"]["totals"]["problems"]
    return {"clean": doc["clean"], **result, "totals": totals, "pending": doc["pending"],
            "problems": doc["problems"], "timing": timing, "numbers": numbers}


JOB_KINDS = {"fsck": (Params, run)}
