"""The checks of `pacs fsck`, as pure functions: one batch file against the index rows that point
into it, and the series/study counters against the instance rows they count.

No Spark, no HDFS, no HBase here: the job (`fsck_job.py`) lists files, scans rows and hands each
file's status, footer and a way to stream its bytes to `check_file`; the same kernels are tested
on in-memory bytes (tests/unit/test_fsck_checks.py).

What one file check finds (`FileReport`):

- each index row pointing into the file is verified by sha256, all rows of a file in **one**
  streaming read of the file (never one request per object): `ok`, or a row problem
  (`ROW_PROBLEMS`): bytes that do not hash to the row's sha256, a range past the file's end, a
  missing file, a row without a location, a file that could not be read;
- rows of an *unfinished commit* (instance row written, `sop` commit marker missing or pointing
  at another instance) are listed with whether their bytes verify (`--repair` completes those);
- orphan segments: manifest entries (`containers.py` footer) no row points to, with their bytes
  and whether they are intact (an intact one is a redundant copy `--repair` may repoint a bad row
  to); a file no row points into at all is an orphan file;
- an unfinished file: no valid footer (cut off, abandoned, or still being written).

Whatever may belong to work still in flight (an orphan or unfinished file, or an unfinished
commit, in a file younger than the grace period) is flagged `young`; the summary counts it as
*pending*, not as a problem. See `Summary` for the totals and lists of the result document.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from pacs_hdfs.containers import FOOTER_TAIL, ManifestEntry, parse_footer
from pacs_hdfs.rows import instance, series, sop, study
from pacs_hdfs.rows.cells import decode_counter, encode_counter  # noqa: F401 - re-exported

#: row problem kind -> what it means (the result document's `problems` lists use these names)
ROW_PROBLEMS = {
    "bad_sha256": "the bytes at the row's location do not hash to the row's sha256",
    "past_end": "the row's range ends past the end of its file",
    "missing_file": "the row points into a file that does not exist",
    "no_location": "the instance row has no l:path (no stored location)",
    "unreadable": "the row's file exists but could not be read (see the file's error)",
}
#: commit states of an instance row (from its `sop` row)
COMMITTED, NO_SOP_ROW, SOP_ELSEWHERE = "committed", "no-sop-row", "sop-row-points-elsewhere"
#: counter columns per table, in the order of the expected tuples
COUNTER_COLUMNS = {"series": series.COUNTERS, "study": study.COUNTERS}
#: how much of a file's end is read first to find the footer (usually the whole manifest)
TAIL_READ = 64 << 10


def display_key(key: bytes) -> str:
    """An instance/series row key for people and JSON: `study/series/sop` (UIDs have no '/')."""
    return key.decode("utf-8", errors="replace").replace("\x00", "/")


# --- inputs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileStatus:
    path: str
    length: int
    modified_ms: int = 0


@dataclass(frozen=True)
class IndexEntry:
    """One instance row's location and commit state, as the scan read it."""
    key: bytes
    path: str | None
    offset: int
    length: int
    sha256: str
    commit: str = COMMITTED
    quarantined: bool = False

    @property
    def committed(self) -> bool:
        return self.commit == COMMITTED

    @property
    def span(self) -> tuple[int, int]:
        return self.offset, self.length

    def as_tuple(self) -> tuple:
        """Its fields as a plain tuple (`IndexEntry(*t)` rebuilds it): a Spark shuffle pickles
        tuples several times faster than dataclass instances."""
        return (self.key, self.path, self.offset, self.length, self.sha256, self.commit,
                self.quarantined)


def entry_from_row(key: bytes, row: dict[bytes, bytes], commit: str) -> IndexEntry:
    """An IndexEntry from an instance row's `l:` columns (missing/garbled numbers -> -1)."""
    def number(col: bytes) -> int:
        try:
            return int(row[col])
        except (KeyError, ValueError):
            return -1
    path = row.get(instance.PATH)
    return IndexEntry(key, path.decode() if path else None, number(instance.OFFSET),
                      number(instance.LENGTH),
                      row.get(instance.SHA256, b"").decode(errors="replace"),
                      commit, instance.is_quarantined(row))


def commit_state(key: bytes, sop_row: dict[bytes, bytes] | None) -> str:
    """How an instance row's `sop` row (the commit marker) stands."""
    pointed = sop.decode(sop_row)
    if pointed is None:
        return NO_SOP_ROW
    return COMMITTED if pointed == key else SOP_ELSEWHERE


def sop_of(key: bytes) -> str | None:
    """The SOP Instance UID of an instance row key (None for a malformed key)."""
    return instance.sop_of(key)


# --- the footer --------------------------------------------------------------------------------
def read_footer(read_range: Callable[[int, int], bytes], length: int,
                tail_read: int = TAIL_READ) -> list[ManifestEntry] | None:
    """The file's manifest, or None when it has no valid footer (an unfinished file).

    Reads the last `tail_read` bytes in one request (the manifest is usually inside them), and
    the rest of the manifest only when it is longer."""
    if length < FOOTER_TAIL:
        return None
    n = min(length, tail_read)
    tail = read_range(length - n, n)
    where = parse_footer(tail[-FOOTER_TAIL:], length)
    if where is None:
        return None
    start, size = where
    if start >= length - n:
        raw = tail[start - (length - n):start - (length - n) + size]
    else:
        raw = read_range(start, size)
    try:
        return [ManifestEntry(str(k), int(o), int(s), str(h)) for k, o, s, h in json.loads(raw)]
    except (ValueError, TypeError):
        return None


# --- streaming hashes ----------------------------------------------------------------------------
def hash_ranges(chunks: Iterable[bytes], spans: Iterable[tuple[int, int]]
                ) -> dict[tuple[int, int], str]:
    """sha256 (hex) of every (offset, length) span, in one pass over `chunks` (the file from byte
    0 on). Spans may overlap. A span the stream does not cover completely is absent from the
    answer; the stream is left as soon as every span is done."""
    todo = sorted({s for s in spans if s[0] >= 0 and s[1] >= 0})
    out: dict[tuple[int, int], str] = {}
    active: list[tuple[tuple[int, int], object]] = []
    nxt, pos = 0, 0
    for chunk in chunks:
        view = memoryview(chunk)
        end = pos + len(view)
        while nxt < len(todo) and todo[nxt][0] < end:
            active.append((todo[nxt], hashlib.sha256()))
            nxt += 1
        still = []
        for span, h in active:
            start, stop = span[0], span[0] + span[1]
            a, b = max(start, pos) - pos, min(stop, end) - pos
            if b > a:
                h.update(view[a:b])
            if stop <= end:
                out[span] = h.hexdigest()
            else:
                still.append((span, h))
        active, pos = still, end
        if not active and nxt == len(todo):
            break
    for span in todo[nxt:]:   # empty spans at the very end of what was read
        if span[1] == 0 and span[0] <= pos:
            out[span] = hashlib.sha256(b"").hexdigest()
    return out


# --- one file ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RowProblem:
    kind: str                         # a key of ROW_PROBLEMS
    key: bytes
    path: str | None
    offset: int
    length: int
    sha256: str
    committed: bool = True
    actual_sha256: str | None = None  # bad_sha256: what the bytes hash to
    manifest_sha256: str | None = None  # the file's own manifest entry at the same span
    file_length: int | None = None

    def as_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        d["key"] = display_key(self.key)
        return d


@dataclass(frozen=True)
class Uncommitted:
    """An instance row of an unfinished commit (its `sop` row is missing or points elsewhere)."""
    key: bytes
    path: str | None
    commit: str
    quarantined: bool
    bytes_ok: bool
    young: bool

    def as_dict(self) -> dict:
        return {"key": display_key(self.key), "path": self.path, "reason": self.commit,
                "quarantined": self.quarantined, "bytes_ok": self.bytes_ok}


@dataclass(frozen=True)
class Segment:
    """A manifest entry of a batch file: where an object's bytes are, and whether they verify."""
    path: str
    offset: int
    length: int
    sha256: str
    key: str = ""
    intact: bool = True

    def as_dict(self) -> dict:
        return {**asdict(self), "key": self.key.replace("\x00", "/")}


@dataclass
class FileReport:
    path: str | None
    exists: bool
    length: int = 0
    finished: bool = False        # has a valid footer
    young: bool = False           # younger than the grace period
    age_s: float = 0.0
    rows: int = 0                 # index rows pointing into the file
    ok: int = 0                   # of which committed or not, bytes verified
    row_problems: list[RowProblem] = field(default_factory=list)
    uncommitted: list[Uncommitted] = field(default_factory=list)
    orphan_segments: list[Segment] = field(default_factory=list)
    intact_segments: list[Segment] = field(default_factory=list)  # repair sources
    bytes_read: int = 0
    error: str = ""               # why the file could not be read
    #: the recount its rows add to their series' counters: series key -> (objects, bytes)
    counts: dict = field(default_factory=dict)

    @property
    def orphan_file(self) -> bool:
        """A file no row points into (finished or not)."""
        return self.exists and self.rows == 0

    @property
    def orphan_bytes(self) -> int:
        """Bytes no row needs: the whole of an orphan file, else its orphan segments."""
        if self.orphan_file:
            return self.length
        return sum(s.length for s in self.orphan_segments)


def check_file(path: str | None, status: FileStatus | None,
               manifest: list[ManifestEntry] | None, entries: list[IndexEntry],
               stream: Callable[[int], Iterable[bytes]] | None = None,
               now_s: float = 0.0, grace_s: float = 3600.0, error: str = "") -> FileReport:
    """Check one file against the rows pointing into it (see the module docstring).

    `status` None = the file does not exist; `manifest` None = no valid footer; `stream(n)`
    yields the file's first n bytes (called at most once); `error` = the file exists but could
    not be read (its rows are reported `unreadable`)."""
    rep = FileReport(path, status is not None, rows=len(entries), counts=recount(entries))
    if status is not None:
        rep.length, rep.finished = status.length, manifest is not None
        rep.age_s = max(0.0, now_s - status.modified_ms / 1000)
        rep.young = rep.age_s < grace_s
    if status is None or path is None or error:
        kind = "no_location" if path is None else "unreadable" if error else "missing_file"
        rep.error = error
        rep.row_problems = [_problem(kind, e) for e in entries]
        rep.uncommitted = [_uncommitted(e, False, rep.young) for e in entries if not e.committed]
        return rep

    def inside(e: IndexEntry) -> bool:
        return e.offset >= 0 and e.length >= 0 and e.offset + e.length <= status.length

    segments = manifest or []
    spans = {e.span for e in entries if inside(e)} | {(s.offset, s.length) for s in segments
                                         if s.offset + s.length <= status.length}
    extent = max((o + n for o, n in spans), default=0)
    digests = hash_ranges(stream(extent), spans) if extent and stream else {}
    rep.bytes_read = extent if stream else 0
    by_span = {(s.offset, s.length): s for s in segments}

    for e in entries:
        good = inside(e) and digests.get(e.span) == e.sha256
        if good:
            rep.ok += 1
        elif not inside(e):
            rep.row_problems.append(_problem("past_end", e, file_length=status.length))
        else:
            m = by_span.get(e.span)
            rep.row_problems.append(_problem("bad_sha256", e, actual=digests.get(e.span),
                                             manifest=m.sha256 if m else None))
        if not e.committed:
            rep.uncommitted.append(_uncommitted(e, good, rep.young))

    pointed = {e.span for e in entries}
    for s in segments:
        seg = Segment(path, s.offset, s.length, s.sha256, s.key,
                      digests.get((s.offset, s.length)) == s.sha256)
        if seg.intact:
            rep.intact_segments.append(seg)
        if (s.offset, s.length) not in pointed:
            rep.orphan_segments.append(seg)
    return rep


def _problem(kind: str, e: IndexEntry, actual: str | None = None, manifest: str | None = None,
             file_length: int | None = None) -> RowProblem:
    return RowProblem(kind, e.key, e.path, e.offset, e.length, e.sha256, e.committed, actual,
                      manifest, file_length)


def _uncommitted(e: IndexEntry, bytes_ok: bool, young: bool) -> Uncommitted:
    return Uncommitted(e.key, e.path, e.commit, e.quarantined, bytes_ok, young)


# --- totals and lists --------------------------------------------------------------------------
#: the `totals` keys of the result document -> what they count
TOTALS = {
    "files": "batch files (.pack) listed",
    "bytes": "their bytes",
    "objects_checked": "instance rows checked",
    "objects_ok": "rows whose bytes verify by sha256",
    "objects_bad": "rows whose bytes do not verify (bad_sha256)",
    "rows_past_end": "rows whose range ends past their file's end",
    "rows_missing_file": "rows pointing into a missing file, or with no location",
    "rows_unreadable": "rows in files that could not be read",
    "orphan_files": "files no row points into",
    "orphan_segments": "manifest entries no row points to (in any file)",
    "orphan_bytes": "bytes of orphan files plus orphan segments of referenced files",
    "unfinished_files": "files without a valid footer",
    "unfinished_commits": "instance rows without a matching sop row",
    "dangling_sop_rows": "sop rows (commit markers) whose instance row is missing or has no "
                         "location: an acknowledged object the index lost (whole-archive "
                         "checks only)",
    "counter_mismatches": "series/study counter cells that differ from the recount",
    "bytes_read": "bytes read to verify",
    "moved_during_check": "rows found bad that had moved when read again (a compaction "
                          "meanwhile): not problems",
}
#: totals that make an archive unclean (`problems` = their sum)
PROBLEM_TOTALS = ("objects_bad", "rows_past_end", "rows_missing_file", "rows_unreadable",
                  "orphan_files", "orphan_segments", "unfinished_files", "unfinished_commits",
                  "dangling_sop_rows", "counter_mismatches")
#: the `problems` lists of the result document (each capped)
LISTS = ("bad_objects", "rows_past_end", "rows_missing_file", "rows_unreadable",
         "orphan_files", "orphan_segments", "unfinished_files", "unfinished_commits",
         "dangling_sop_rows", "counter_mismatches", "unreadable_files")
#: row problem kind -> (totals key, list name)
ROW_PROBLEM_SLOTS = {"bad_sha256": ("objects_bad", "bad_objects"),
                     "past_end": ("rows_past_end", "rows_past_end"),
                     "missing_file": ("rows_missing_file", "rows_missing_file"),
                     "no_location": ("rows_missing_file", "rows_missing_file"),
                     "unreadable": ("rows_unreadable", "rows_unreadable")}
#: what may be work in flight: counted under `pending` while young
PENDING = ("orphan_files", "orphan_segments", "orphan_bytes", "unfinished_files",
           "unfinished_commits", "counter_mismatches")


@dataclass
class Summary:
    """Totals, pending counts and capped problem lists; mergeable (one per Spark partition)."""
    cap: int = 100
    totals: dict = field(default_factory=lambda: dict.fromkeys(TOTALS, 0))
    pending: dict = field(default_factory=lambda: dict.fromkeys(PENDING, 0))
    lists: dict = field(default_factory=lambda: {k: [] for k in LISTS})

    def _list(self, name: str, item: dict) -> None:
        if len(self.lists[name]) < self.cap:
            self.lists[name].append(item)

    def add_file(self, r: FileReport) -> Summary:
        """A file's own findings (not its rows: see add_row_problem / add_uncommitted)."""
        if not r.exists:
            return self
        t = self.totals
        t["files"] += 1
        t["bytes"] += r.length
        t["objects_ok"] += r.ok
        t["bytes_read"] += r.bytes_read
        if r.error:
            self._list("unreadable_files", {"path": r.path, "error": r.error[:300]})
        where = self.pending if r.young else t
        if r.orphan_file:
            where["orphan_files"] += 1
            if not r.young:
                self._list("orphan_files", {"path": r.path, "length": r.length,
                                            "finished": r.finished, "age_s": round(r.age_s)})
        where["orphan_segments"] += len(r.orphan_segments)
        where["orphan_bytes"] += r.orphan_bytes
        if not r.young:
            for s in r.orphan_segments:
                self._list("orphan_segments", s.as_dict())
        if not r.finished:
            where["unfinished_files"] += 1
            if not r.young:
                self._list("unfinished_files", {"path": r.path, "length": r.length,
                                                "rows": r.rows, "age_s": round(r.age_s)})
        return self

    def add_row_problem(self, p: RowProblem) -> Summary:
        total, name = ROW_PROBLEM_SLOTS[p.kind]
        self.totals[total] += 1
        self._list(name, p.as_dict())
        return self

    def add_uncommitted(self, u: Uncommitted) -> Summary:
        if u.young:
            self.pending["unfinished_commits"] += 1
        else:
            self.totals["unfinished_commits"] += 1
            self._list("unfinished_commits", u.as_dict())
        return self

    def add_dangling_sop(self, sop_key: bytes, pointed: bytes | None) -> Summary:
        self.totals["dangling_sop_rows"] += 1
        self._list("dangling_sop_rows", {"sop": sop_key.decode(errors="replace"),
                                         "key": display_key(pointed or b"")})
        return self

    def add_counter_mismatch(self, m: CounterMismatch, pending: bool) -> Summary:
        if pending:
            self.pending["counter_mismatches"] += 1
        else:
            self.totals["counter_mismatches"] += 1
            self._list("counter_mismatches", m.as_dict())
        return self

    def merge(self, other: Summary) -> Summary:
        for k, v in other.totals.items():
            self.totals[k] += v
        for k, v in other.pending.items():
            self.pending[k] += v
        for k, items in other.lists.items():
            for item in items:
                self._list(k, item)
        return self

    @property
    def problems(self) -> int:
        return sum(self.totals[k] for k in PROBLEM_TOTALS)

    def as_dict(self) -> dict:
        totals = {**self.totals, "objects_checked": self.totals["objects_ok"]
                  + self.totals["objects_bad"] + self.totals["rows_past_end"]
                  + self.totals["rows_missing_file"] + self.totals["rows_unreadable"],
                  "problems": self.problems}
        return {"clean": self.problems == 0, "totals": totals, "pending": dict(self.pending),
                "problems": {k: list(v) for k, v in self.lists.items()}}


def summarize(reports: Iterable[FileReport], cap: int = 100) -> Summary:
    s = Summary(cap)
    for r in reports:
        s.add_file(r)
    return s


# --- counters ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CounterMismatch:
    table: str
    key: bytes
    column: str
    stored: int | None        # None: a cell that is not an 8-byte counter
    expected: int

    def as_dict(self) -> dict:
        return {"table": self.table, "key": display_key(self.key), "column": self.column,
                "stored": self.stored, "expected": self.expected}


def series_contribution(e: IndexEntry) -> tuple[bytes, tuple[int, int]] | None:
    """(series row key, (1 object, its bytes)) for a row the counters count: committed and not
    quarantined (what `commit.add_counters` and a quarantine release add)."""
    if not e.committed or e.quarantined:
        return None
    parts = e.key.split(b"\x00")
    if len(parts) != 3:
        return None
    return parts[0] + b"\x00" + parts[1], (1, max(e.length, 0))


def study_contribution(series_key: bytes, counts: tuple[int, int]
                       ) -> tuple[bytes, tuple[int, int, int]]:
    """A series' recount as its study's share: (instances, bytes, 1 series if it has objects)."""
    n, size = counts
    return series_key.split(b"\x00")[0], (n, size, 1 if n else 0)


def add_counts(a: tuple, b: tuple) -> tuple:
    return tuple(x + y for x, y in zip(a, b))


def recount(entries: Iterable[IndexEntry], into: dict | None = None) -> dict:
    """series key -> (objects, bytes) the series counters should hold for these rows."""
    out = {} if into is None else into
    for e in entries:
        c = series_contribution(e)
        if c:
            out[c[0]] = add_counts(out.get(c[0], (0, 0)), c[1])
    return out


def merge_counts(into: dict, other: dict) -> dict:
    for k, v in other.items():
        into[k] = add_counts(into[k], v) if k in into else v
    return into


def study_counts(series_counts: dict) -> dict:
    """study key -> (objects, bytes, series) from the series recount."""
    out: dict = {}
    for key, counts in series_counts.items():
        study, share = study_contribution(key, counts)
        out[study] = add_counts(out.get(study, (0, 0, 0)), share)
    return out


def counter_mismatches(series_counts: dict, stored: dict[str, dict[bytes, dict]],
                       tables: Iterable[str] = ("series", "study")) -> list[CounterMismatch]:
    """Every counter cell of the stored rows (`stored[table][key]`) and of the recounted series
    and studies that differs from the recount."""
    expected = {"series": series_counts, "study": study_counts(series_counts)}
    out = []
    for table in tables:
        have = stored.get(table, {})
        for key in sorted(set(expected[table]) | set(have)):
            out += compare_counters(table, key, expected[table].get(key), have.get(key))
    return out


def compare_counters(table: str, key: bytes, expected: tuple | None,
                     stored: dict[bytes, bytes] | None) -> list[CounterMismatch]:
    """The counter cells of one series/study row that differ from the recount."""
    columns = COUNTER_COLUMNS[table]
    expected = expected or (0,) * len(columns)
    stored = stored or {}
    out = []
    for column, want in zip(columns, expected):
        have = decode_counter(stored.get(column))
        if have != want:
            out.append(CounterMismatch(table, key, column.decode(), have, want))
    return out
