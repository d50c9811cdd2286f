"""Export job pieces without a cluster: the pull sink (bounded, hashed, abort/failure), staged
parts and the driver's run/cursor splitting, and the visit CSV/Parquet writer."""
from __future__ import annotations

import hashlib
import io
import threading
import time
import zipfile
from datetime import datetime

import pyarrow.parquet as pq
import pytest

from analytics_jobs.export import cohort
from types import SimpleNamespace

from analytics_jobs.export.job import Cursor, PartWriter, Staged, resumable_chunks, runs
from analytics_jobs.export.manifest import verify_zip
from analytics_jobs.export.sink import PullSink, SinkError
from analytics_jobs.export.zipstream import ZipStreamWriter
from hl7_gateway.models import Diagnosis, Exam, Visit


def test_pull_sink_streams_a_zip_in_bounded_pieces():
    got, sizes = io.BytesIO(), []

    def consume(chunks):
        for c in chunks:
            sizes.append(len(c))
            got.write(c)
    sink = PullSink(consume, chunk=64 << 10, depth=2)
    payload = bytes(range(256)) * 4096           # 1 MiB
    with ZipStreamWriter(sink) as z:
        z.add("dicom/a.dcm", [payload[i:i + 10_000] for i in range(0, len(payload), 10_000)])
        z.add("README.md", b"hello\n")
    sink.close()
    data = got.getvalue()
    assert sink.size == len(data) and sink.sha256 == hashlib.sha256(data).hexdigest()
    assert max(sizes) == 64 << 10 and len(sizes) > 16
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.read("dicom/a.dcm") == payload


def test_pull_sink_blocks_a_fast_writer():
    release, seen = threading.Event(), []

    def slow(chunks):
        release.wait(5)
        seen.extend(chunks)
    sink = PullSink(slow, chunk=10, depth=2)
    t = threading.Thread(target=lambda: sink.write(b"x" * 100))
    t.start()
    time.sleep(0.3)
    assert t.is_alive()          # at most depth pieces wait; the writer is held back
    release.set()
    t.join(5)
    sink.close()
    assert b"".join(seen) == b"x" * 100


def test_pull_sink_reports_a_failed_upload_and_abort_fails_the_stream():
    def broken(chunks):
        next(iter(chunks))
        raise OSError("datanode gone")
    sink = PullSink(broken, chunk=4, depth=1)
    with pytest.raises(SinkError, match="datanode gone"):
        for _ in range(100):
            sink.write(b"abcdefgh")
        sink.close()

    errors = []

    def consume(chunks):
        try:
            list(chunks)
        except Exception as e:  # noqa: BLE001
            errors.append(type(e).__name__)
            raise
    sink = PullSink(consume)
    sink.write(b"partial")
    sink.abort()
    assert errors == ["SinkAborted"]


class FakeHdfs:
    def __init__(self, cut_after: int | None = None):
        self.files: dict[str, bytes] = {}
        self.s = SimpleNamespace(effective_replication=3)
        self.cut_after, self.opens = cut_after, []

    def write(self, path, data, overwrite=False, replication=None):
        self.files[path] = bytes(data)

    def read_chunks(self, path, offset=0, length=None, chunk_size=7):
        from pacs_hdfs.hdfs_store import StorageError
        self.opens.append(offset)
        data = self.files[path][offset:None if length is None else offset + length]
        for i in range(0, len(data), chunk_size):
            if self.cut_after is not None and len(self.opens) == 1 and i >= self.cut_after:
                raise StorageError("connection refused (datanode restarted)")
            yield data[i:i + chunk_size]


def test_a_staged_read_cut_off_resumes_at_the_next_byte():
    hdfs = FakeHdfs(cut_after=21)
    hdfs.files["/f"] = bytes(range(100))
    got = b"".join(resumable_chunks(hdfs, "/f", 10, 80, delay_s=0))
    assert got == bytes(range(10, 90)) and hdfs.opens == [10, 31]


def test_parts_runs_and_cursor_give_every_member_back():
    hdfs = FakeHdfs()
    parts = PartWriter(hdfs, "/stage/000001", limit=50)
    blobs = {f"dicom/P/1/2/{i}.dcm": bytes([i]) * (10 + 7 * i) for i in range(8)}
    for path, data in blobs.items():
        parts.add(path, data, hashlib.sha256(data).hexdigest())
    parts.flush()
    members = list(parts.members)
    members.insert(3, Staged("nifti/x.nii.gz", "/stage/000001/file-0000", 0, 3, ""))
    hdfs.files["/stage/000001/file-0000"] = b"nii"
    assert len(hdfs.files) > 2                    # several parts of about 50 bytes
    out = {}
    for file, run in runs(members):
        cursor = Cursor(hdfs.read_chunks(file, run[0].offset, sum(m.size for m in run)))
        for m in run:
            out[m.path] = b"".join(cursor.take(m.size))
    assert out.pop("nifti/x.nii.gz") == b"nii" and out == blobs


def test_cursor_refuses_a_short_file():
    with pytest.raises(Exception, match="ended 2 bytes early"):
        b"".join(Cursor([b"abc"]).take(5))


def _visit(i: int) -> Visit:
    return Visit(visit_id=f"V{i}", patient_id="RSAAAABBBBCCCCDDDD", sex="F", age=40 + i,
                 city="Ljubljana", admission=datetime(2020, 1, 1 + i),
                 diagnoses=[Diagnosis(system="ICD10", code="C50.9", primary=True)],
                 exams=[Exam(kind="CT", accession=f"A{i}", text="no finding")])


def test_visit_files(tmp_path):
    n = cohort.write_visit_files((_visit(i) for i in range(7)), tmp_path / "v.csv",
                                 tmp_path / "v.parquet", batch=3)
    assert n == 7
    table = pq.read_table(tmp_path / "v.parquet")
    assert table.num_rows == 7 and table.column("icd10").to_pylist()[0] == ["C50.9"]
    lines = (tmp_path / "v.csv").read_text().splitlines()
    assert lines[0].startswith("visit_id,patient_id,sex,age") and len(lines) == 8
    assert '""code"":""C50.9""' in lines[1]


def test_whole_zip_verifies(tmp_path):
    buf = io.BytesIO()
    sink = PullSink(lambda chunks: [buf.write(c) for c in chunks])
    from analytics_jobs.export.manifest import build_manifest, manifest_bytes
    with ZipStreamWriter(sink) as z:
        z.add("dicom/P/1/2/3.dcm", b"DICM" * 1000)
        z.add("manifest.json", manifest_bytes(build_manifest(
            list(z.entries), selection={"pseudonyms": ["P"]}, counts={"cases": 1})))
    sink.close()
    buf.seek(0)
    assert verify_zip(buf) == []
