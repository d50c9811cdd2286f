"""The pure parts of `pacs fsck`: per-file checks on in-memory batch files (one streaming read,
every problem kind), counters, the summary, key ranges, and the repair rules on an in-memory
archive (MemoryStore + MemoryFiles, written through the real Committer)."""
from __future__ import annotations

import hashlib
import os
import uuid

import pytest

from pacs_hdfs.containers import MAGIC, ContainerWriter, build_batch
from pacs_hdfs.dicom import fsck_checks as fc
from pacs_hdfs.dicom import fsck_repair as fr
from pacs_hdfs.dicom.fsck_job import Params, Scope, key_ranges, prefix_end
from pacs_hdfs.schema import row_key

PATH = "/pacs/dicom/containers/1.2/1.2.3/w-000001.pack"


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


class Streamer:
    """`stream(n)` over in-memory bytes in small chunks, counting the calls and bytes served."""

    def __init__(self, blob: bytes, chunk: int = 7):
        self.blob, self.chunk, self.calls, self.served = blob, chunk, 0, 0

    def __call__(self, n: int):
        self.calls += 1
        for i in range(0, n, self.chunk):
            part = self.blob[i:min(n, i + self.chunk)]
            self.served += len(part)
            yield part


def batch(*objs: bytes, keys=None):
    keys = keys or [f"k{i}" for i in range(len(objs))]
    return build_batch(list(zip(keys, objs)))


def entry(key: str, m, path=PATH, **kw) -> fc.IndexEntry:
    return fc.IndexEntry(key.encode(), path, kw.pop("offset", m.offset), kw.pop("length", m.length),
                         kw.pop("sha256", m.sha256), **kw)


def status(blob: bytes, age_s: float = 10_000, now: float = 1e6) -> fc.FileStatus:
    return fc.FileStatus(PATH, len(blob), int((now - age_s) * 1000))


# --- streaming hashes and the footer --------------------------------------------------------------
def test_hash_ranges_overlapping_spans_across_chunks():
    data = os.urandom(1000)
    spans = [(0, 10), (5, 300), (299, 1), (999, 1), (400, 0), (990, 20)]
    got = fc.hash_ranges((data[i:i + 13] for i in range(0, 1000, 13)), spans)
    for o, n in spans[:5]:
        assert got[(o, n)] == sha(data[o:o + n])
    assert (990, 20) not in got            # past the end of the stream


def test_hash_ranges_leaves_the_stream_when_done():
    s = Streamer(os.urandom(10_000), chunk=100)
    fc.hash_ranges(s(10_000), [(0, 150)])
    assert s.served == 200


def test_read_footer_one_request_or_two():
    blob, entries = batch(b"a" * 100, b"b" * 200)
    reads = []

    def read(o, n):
        reads.append((o, n))
        return blob[o:o + n]
    assert fc.read_footer(read, len(blob)) == entries and len(reads) == 1
    reads.clear()
    assert fc.read_footer(read, len(blob), tail_read=20) == entries and len(reads) == 2
    assert fc.read_footer(read, 10) is None
    cut = blob[:-3]
    assert fc.read_footer(lambda o, n: cut[o:o + n], len(cut)) is None
    garbled = b"x" * 50 + b"not json" + (8).to_bytes(8, "big") + MAGIC
    assert fc.read_footer(lambda o, n: garbled[o:o + n], len(garbled)) is None


# --- one file ---------------------------------------------------------------------------------
def test_check_file_every_row_kind_in_one_read():
    objs = [os.urandom(n) for n in (300, 400, 500, 600)]
    blob, m = batch(*objs)
    stream = Streamer(blob)
    entries = [entry("ok", m[0]),
               entry("uncommitted", m[1], commit=fc.NO_SOP_ROW),
               entry("badsha", m[2], sha256="0" * 64),
               entry("past", m[3], offset=len(blob) - 10)]
    rep = fc.check_file(PATH, status(blob), m, entries, stream, now_s=1e6, grace_s=3600)
    assert stream.calls == 1 and stream.served <= len(blob)
    assert rep.ok == 2 and rep.rows == 4 and rep.finished and not rep.young
    kinds = {p.key: p for p in rep.row_problems}
    assert kinds[b"badsha"].kind == "bad_sha256"
    assert kinds[b"badsha"].actual_sha256 == kinds[b"badsha"].manifest_sha256 == m[2].sha256
    assert kinds[b"past"].kind == "past_end" and kinds[b"past"].file_length == len(blob)
    assert [u.key for u in rep.uncommitted] == [b"uncommitted"] and rep.uncommitted[0].bytes_ok
    # nothing points at object 3's own span any more: an intact orphan segment
    assert [(s.offset, s.intact) for s in rep.orphan_segments] == [(m[3].offset, True)]
    assert rep.orphan_bytes == 600 and not rep.orphan_file
    assert len(rep.intact_segments) == 4


def test_check_file_detects_corrupted_bytes_and_orphan_files():
    objs = [os.urandom(1000), os.urandom(1000)]
    blob, m = batch(*objs)
    broken = bytearray(blob)
    broken[1500] ^= 0xFF
    rep = fc.check_file(PATH, status(blob), m, [entry("a", m[0]), entry("b", m[1])],
                        Streamer(bytes(broken)), now_s=1e6)
    assert rep.ok == 1 and rep.row_problems[0].kind == "bad_sha256"
    assert rep.row_problems[0].manifest_sha256 == m[1].sha256 != rep.row_problems[0].actual_sha256
    assert [s.intact for s in rep.intact_segments] == [True]
    orphan = fc.check_file(PATH, status(blob), m, [], Streamer(blob), now_s=1e6)
    assert orphan.orphan_file and orphan.orphan_bytes == len(blob)
    assert len(orphan.orphan_segments) == 2


def test_check_file_missing_unfinished_unreadable_and_no_location():
    blob, m = batch(os.urandom(100))
    e = entry("a", m[0])
    missing = fc.check_file(PATH, None, None, [e, entry("u", m[0], commit=fc.NO_SOP_ROW)])
    assert [p.kind for p in missing.row_problems] == ["missing_file"] * 2
    assert not missing.exists and missing.uncommitted[0].bytes_ok is False
    cut = blob[:60]
    unfinished = fc.check_file(PATH, status(cut), None, [], Streamer(cut), now_s=1e6)
    assert unfinished.orphan_file and not unfinished.finished and unfinished.orphan_bytes == 60
    with_rows = fc.check_file(PATH, status(blob), None, [e], Streamer(blob), now_s=1e6)
    assert with_rows.ok == 1 and not with_rows.finished and not with_rows.orphan_file
    bad = fc.check_file(PATH, status(blob), None, [e], None, now_s=1e6, error="boom")
    assert bad.row_problems[0].kind == "unreadable" and bad.error == "boom"
    nowhere = fc.check_file(None, None, None, [fc.IndexEntry(b"x", None, -1, -1, "")])
    assert nowhere.row_problems[0].kind == "no_location"


def test_entry_from_row_and_commit_state():
    key = row_key("1", "2", "3")
    e = fc.entry_from_row(key, {b"l:path": b"/p", b"l:offset": b"5", b"l:length": b"x",
                                b"l:sha256": b"ab", b"l:quarantine": b"burned-in"}, fc.COMMITTED)
    assert (e.path, e.offset, e.length, e.quarantined) == ("/p", 5, -1, True)
    assert fc.commit_state(key, {b"r:key": key}) == fc.COMMITTED
    assert fc.commit_state(key, {}) == fc.NO_SOP_ROW
    assert fc.commit_state(key, {b"r:key": b"other"}) == fc.SOP_ELSEWHERE
    assert fc.sop_of(key) == "3" and fc.sop_of(b"bad") is None
    assert fc.display_key(key) == "1/2/3"


# --- summary ----------------------------------------------------------------------------------
def test_summary_counts_caps_merges_and_keeps_young_things_pending():
    blob, m = batch(os.urandom(100), os.urandom(100))
    old = fc.check_file(PATH, status(blob), m, [entry("a", m[0], sha256="0" * 64)],
                        Streamer(blob), now_s=1e6)
    young = fc.check_file(PATH, status(blob, age_s=5), m,
                          [entry("u", m[0], commit=fc.NO_SOP_ROW)], Streamer(blob), now_s=1e6)
    s = fc.summarize([old], cap=1).merge(fc.summarize([young, young], cap=1))
    for r in (old, young, young):
        for p in r.row_problems:
            s.add_row_problem(p)
        for u in r.uncommitted:
            s.add_uncommitted(u)
    d = s.as_dict()
    assert d["totals"]["files"] == 3 and d["totals"]["objects_bad"] == 1
    assert d["totals"]["orphan_segments"] == 1 and d["pending"]["orphan_segments"] == 2
    assert d["pending"]["unfinished_commits"] == 2 and d["totals"]["unfinished_commits"] == 0
    assert d["totals"]["objects_checked"] == 3 and d["totals"]["problems"] == 2
    assert len(d["problems"]["orphan_segments"]) == 1 and not d["clean"]
    assert d["problems"]["bad_objects"][0]["key"] == "a"
    assert set(d["problems"]) == set(fc.LISTS) and set(fc.TOTALS) <= set(d["totals"])


# --- counters -----------------------------------------------------------------------------------
def test_counter_recount_and_comparison():
    k = row_key("st", "se", "sop")
    assert fc.series_contribution(fc.IndexEntry(k, "/p", 0, 10, "x")) == (row_key("st", "se"),
                                                                           (1, 10))
    assert fc.series_contribution(fc.IndexEntry(k, "/p", 0, 10, "x", quarantined=True)) is None
    assert fc.series_contribution(fc.IndexEntry(k, "/p", 0, 10, "x", fc.NO_SOP_ROW)) is None
    assert fc.study_contribution(row_key("st", "se"), (3, 30)) == (b"st", (3, 30, 1))
    assert fc.add_counts((1, 2, 3), (1, 1, 1)) == (2, 3, 4)
    stored = {b"c:instances": fc.encode_counter(3), b"c:bytes": b"\x01"}
    mism = fc.compare_counters("series", b"st\x00se", (3, 30), stored)
    assert [(x.column, x.stored, x.expected) for x in mism] == [("c:bytes", None, 30)]
    assert fc.compare_counters("study", b"st", None, {}) == []
    assert [x.column for x in fc.compare_counters("study", b"st", (1, 5, 1), None)] == [
        "c:instances", "c:bytes", "c:series"]
    assert fc.decode_counter(fc.encode_counter(-7)) == -7


# --- scope and key ranges ------------------------------------------------------------------------
def test_key_ranges_cover_everything_and_cut_at_boundaries():
    bounds = [(row_key(f"2.25.{i}", "s") + b"\x00", 1 + i % 3) for i in range(50)]
    ranges = key_ranges(bounds, 8)
    assert ranges[0][0] == b"" and ranges[-1][1] is None and len(ranges) <= 8
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert {r[0] for r in ranges[1:]} <= {k for k, _ in bounds}
    assert key_ranges([], 8, b"a", b"b") == [(b"a", b"b")]
    lo, hi = Scope("1.2").instance_bounds()
    assert lo == b"1.2\x00" and hi == b"1.2\x01"
    assert key_ranges(bounds, 4, lo, hi) == [(lo, hi)]
    assert prefix_end(b"a\xff") == b"b" and prefix_end(b"\xff") is None
    assert Scope("1", "2").counter_ranges([]) == {"series": [(b"1\x002", b"1\x002\x00")]}


def test_params_validation():
    assert Params().grace_s == 3600 and not Params().repair
    with pytest.raises(ValueError):
        Params(series="1.2")
    with pytest.raises(ValueError):
        Params(study="a/b")


# --- repair rules on an in-memory archive ---------------------------------------------------------
@pytest.fixture
def archive():
    from pacs_hdfs.dicom.commit import Committer, Prepared
    from tests.memory_store import MemoryStore
    from tests.memory_archive import MemoryFiles
    hbase, files = MemoryStore(), MemoryFiles()
    study, series = f"2.25.{uuid.uuid4().int}", f"2.25.{uuid.uuid4().int}"

    def obj(n):
        sop = f"2.25.{uuid.uuid4().int}"
        return Prepared(os.urandom(n), {"StudyInstanceUID": study, "SeriesInstanceUID": series,
                                        "SOPInstanceUID": sop, "Modality": "OT",
                                        "PatientID": "FSCK", "TransferSyntaxUID": "1.2"})
    committer = Committer(hbase, ContainerWriter(files, writer="unit"))
    objs = [obj(100 + i) for i in range(3)]
    assert all(o.acknowledged for o in committer.store_many(objs))
    return hbase, files, objs, committer


def test_plan_repoints_prefers_unreferenced_same_directory_copies():
    key = row_key("st", "se", "sop")
    home = "/pacs/dicom/containers/st/se"
    p = fc.RowProblem("bad_sha256", key, f"{home}/a.pack", 0, 10, "h")
    same_ref = fc.Segment(f"{home}/b.pack", 0, 10, "h")
    same_orphan = fc.Segment(f"{home}/c.pack", 5, 10, "h")
    other = fc.Segment("/pacs/dicom/containers/x/y/d.pack", 0, 10, "h")
    plans, bad = fr.plan_repoints([p], [other, same_ref, same_orphan],
                                  {(same_orphan.path, 5, 10), (other.path, 0, 10)},
                                  "/pacs/dicom/containers")
    assert plans[0].source == same_orphan and not plans[0].copy and not bad
    plans, _ = fr.plan_repoints([p], [other], set(), "/pacs/dicom/containers")
    assert plans[0].copy
    p2 = fc.RowProblem("bad_sha256", key, f"{home}/a.pack", 0, 10, "h", True, "m", "m")
    plans, bad = fr.plan_repoints([p2], [fc.Segment(home + "/z", 0, 11, "h")], set(),
                                  "/pacs/dicom/containers")
    assert not plans and "manifest" in bad[0]["reason"]


def test_repair_repoints_copies_completes_and_sets_counters(archive):
    hbase, files, objs, committer = archive
    root = "/pacs/dicom/containers"
    a, b, c = objs
    loc_a = fc.entry_from_row(a.key, hbase.get("instance", a.key), fc.COMMITTED)
    # a second copy of a's bytes in another series directory; a's row points nowhere useful
    writer = ContainerWriter(files, writer="copy")
    spare = writer.write("dicom/containers/9/9", [("spare", a.data)])[0]
    hbase.put("instance", a.key, {b"l:offset": b"999999"})
    problem = fc.RowProblem("past_end", a.key, loc_a.path, 999999, loc_a.length, loc_a.sha256)
    plans, bad = fr.plan_repoints([problem], [fc.Segment(spare.path, spare.offset, spare.length,
                                                         spare.sha256)], set(), root)
    done = fr.apply_repoints(hbase, files, writer, plans, root)
    assert done["keys"] == {a.key} and not bad and plans[0].copy
    row = hbase.get("instance", a.key)
    assert row[b"l:path"].decode().startswith(f"{root}/{a.attrs['StudyInstanceUID']}/")
    from pacs_hdfs.dicom.stored import read_bytes
    assert read_bytes(hbase, files, a.key, row) == a.data
    # a row that moved since the check is left alone
    again = fr.apply_repoints(hbase, files, writer, plans, root)
    assert again["moved_meanwhile"] == 1 and not again["keys"]

    # an unfinished commit: b's sop row is gone, its series row too
    hbase.delete("sop", row_key(b.sop))
    hbase.delete("series", row_key(b.attrs["StudyInstanceUID"], b.attrs["SeriesInstanceUID"]))
    u = fc.Uncommitted(b.key, None, fc.NO_SOP_ROW, False, True, False)
    young = fc.Uncommitted(c.key, None, fc.NO_SOP_ROW, False, True, True)
    elsewhere = fc.Uncommitted(c.key, None, fc.SOP_ELSEWHERE, False, True, False)
    ok, other = fr.completable([u, young, elsewhere], set())
    assert ok == [u] and len(other) == 1
    assert fr.complete_commits(hbase, ok)["completed"] == [fc.display_key(b.key)]
    assert hbase.get("sop", row_key(b.sop)) == {b"r:key": b.key}
    series_key = row_key(b.attrs["StudyInstanceUID"], b.attrs["SeriesInstanceUID"])
    assert hbase.get("series", series_key)[b"a:Modality"] == b"OT"

    mism = fc.compare_counters("series", series_key, (3, 303), hbase.get("series", series_key))
    assert mism                         # the series row lost its counters above
    puts = fr.plan_counter_puts(mism)
    assert fr.apply_counter_puts(hbase, puts) == 2
    assert fc.compare_counters("series", series_key, (3, 303),
                               hbase.get("series", series_key)) == []


def test_job_helpers_tuples_ranges_samples_digest():
    from pacs_hdfs.dicom import fsck_job
    e = fc.IndexEntry(row_key("a", "b", "c"), "/p", 1, 2, "h", fc.NO_SOP_ROW, True)
    assert fc.IndexEntry(*e.as_tuple()) == e
    index = fsck_job._range_of([b"b", b"d"])
    assert [index(k) for k in (b"a", b"b", b"c", b"d", b"z")] == [0, 1, 1, 2, 2]
    entries = [fc.IndexEntry(row_key("s", "x", f"2.25.{i}"), "/p", 0, 1, "h") for i in range(1000)]
    [(n, sample)] = list(fsck_job._sample_sops(iter(entries), size=50))
    assert n == 1000 and len(sample) == 50 and all(k.startswith(b"2.25.") for k in sample)
    blob, m = batch(os.urandom(100), os.urandom(100))
    rep = fc.check_file(PATH, status(blob), m, [entry("a", m[0], sha256="0" * 64)],
                        Streamer(blob), now_s=1e6)
    d = fsck_job.Digest.of([rep, rep], cap=5).merge(fsck_job.Digest.of([rep], cap=5))
    assert len(d.row_problems) == 3 and d.summary.totals["files"] == 3
    assert d.orphan_dirs == {PATH.rsplit("/", 1)[0]}
