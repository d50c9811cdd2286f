"""Streaming zip writer: round trip with sha256, chunked entries, unseekable sinks, bounded memory."""
import hashlib
import io
import os
import shutil
import subprocess
import tracemalloc
import zipfile

import pytest

from analytics_jobs.export.zipstream import ZipStreamWriter, sha256_of_member, write_zip


class ForwardOnly:
    """A sink with write() only, like a socket or an HDFS output stream."""

    def __init__(self):
        self.buf = io.BytesIO()

    def write(self, b):
        return self.buf.write(b)


class Counting:
    """Discards the bytes, keeps their count and sha256 (nothing accumulates)."""

    def __init__(self):
        self.n, self.digest = 0, hashlib.sha256()

    def write(self, b):
        self.digest.update(b)
        self.n += len(b)
        return len(b)


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_round_trip_bytes_and_chunks():
    dicom = os.urandom(300_000)
    csv = b"pseudonym,visit\n" + b"RSAAAABBBBCCCCDDDD,1\n" * 5000
    chunks = [os.urandom(n) for n in (1, 0, 70_000, 1 << 20, 3)]
    sink = ForwardOnly()
    entries = write_zip(sink, [("dicom/a/1.2/3.4/5.6.dcm", dicom), ("visits/visits.csv", csv),
                               ("nifti/a/1.2/3.4.nii.gz", iter(chunks)), ("empty.txt", b"")])
    expected = {"dicom/a/1.2/3.4/5.6.dcm": dicom, "visits/visits.csv": csv,
                "nifti/a/1.2/3.4.nii.gz": b"".join(chunks), "empty.txt": b""}
    assert [e.path for e in entries] == list(expected)
    with zipfile.ZipFile(io.BytesIO(sink.buf.getvalue())) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == list(expected)
        for e in entries:
            data = zf.read(e.path)
            assert data == expected[e.path]
            assert (e.size, e.sha256) == (len(data), sha(data))
            assert sha256_of_member(zf, e.path) == (e.size, e.sha256)
        info = {i.filename: i for i in zf.infolist()}
        assert info["visits/visits.csv"].compress_type == zipfile.ZIP_DEFLATED
        assert info["visits/visits.csv"].compress_size < len(csv) // 10
        assert info["dicom/a/1.2/3.4/5.6.dcm"].compress_type == zipfile.ZIP_STORED
        assert all(i.flag_bits & 0x08 for i in zf.infolist()), "streamed: data descriptors"


def test_seekable_file_sink_and_external_unzip(tmp_path):
    path = tmp_path / "x.zip"
    with open(path, "wb") as f, ZipStreamWriter(f) as z:
        z.add("a/b.dcm", b"\x00" * 1000)
        z.add("c.json", iter([b"{", b"}"]))
    assert [e.size for e in z.entries] == [1000, 2]
    with zipfile.ZipFile(path) as zf:
        assert zf.read("c.json") == b"{}"
    if shutil.which("unzip"):   # a second, independent reader when the machine has one
        out = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "a/../../x", "a\\b"])
def test_unsafe_names_rejected(bad):
    with ZipStreamWriter(ForwardOnly()) as z, pytest.raises(ValueError, match="unsafe"):
        z.add(bad, b"x")


def test_duplicate_rejected():
    with ZipStreamWriter(ForwardOnly()) as z:
        z.add("a.txt", b"1")
        with pytest.raises(ValueError, match="duplicate"):
            z.add("a.txt", b"2")


def test_200_mb_entry_streams_in_bounded_memory():
    mib = os.urandom(1 << 20)      # allocated before tracing: the generator re-yields it
    n = 200

    def chunks():
        for _ in range(n):
            yield mib

    sink = Counting()
    tracemalloc.start()
    try:
        with ZipStreamWriter(sink) as z:
            entry = z.add("dicom/big.dcm", chunks())
            z.add("small.csv", b"a,b\n" * 1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = hashlib.sha256()
    for _ in range(n):
        expected.update(mib)
    assert entry.size == n << 20 and entry.sha256 == expected.hexdigest()
    assert sink.n > n << 20               # the data really went through the sink
    assert peak < 8 << 20, f"tracemalloc peak {peak / 2**20:.1f} MiB for a 200 MiB entry"


def test_local_headers_carry_zip64_extra():
    """force_zip64: sizes past 4 GiB fit, so no entry size needs to be known in advance."""
    import struct
    sink = ForwardOnly()
    write_zip(sink, [("a.dcm", iter([b"x" * 10]))])
    raw = sink.buf.getvalue()
    sig, *_rest, name_len, extra_len = struct.unpack("<4s5H3L2H", raw[:30])
    assert sig == b"PK\x03\x04"
    extra = raw[30 + name_len:30 + name_len + extra_len]
    assert struct.unpack("<H", extra[:2])[0] == 0x0001, "ZIP64 extended information field"
