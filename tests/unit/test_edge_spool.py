"""The edge spool: durable write protocol, duplicates and conflicts, crash leftovers."""
from __future__ import annotations

import os
import threading

import pytest

from deid.edge import durable
from deid.edge.layout import EdgePaths, safe_uid
from deid.edge.spool import CONFLICT, DUPLICATE, STORED, Hold, Spool

UID = "2.25.1234567890"


@pytest.fixture
def spool(tmp_path):
    return Spool(EdgePaths(tmp_path / "edge"))


def test_folders_are_private(spool):
    p = spool.paths
    for d in (p.root, p.tmp, p.spool, p.quarantine, p.rejected):
        assert d.is_dir() and (d.stat().st_mode & 0o777) == 0o700


def test_put_new_duplicate_conflict(spool):
    p = spool.paths
    assert spool.put(UID, b"first") == STORED
    assert (p.spool / f"{UID}.dcm").read_bytes() == b"first"
    assert spool.put(UID, b"first") == DUPLICATE
    assert spool.put(UID, b"other") == CONFLICT
    assert (p.spool / f"{UID}.dcm").read_bytes() == b"first"  # the first is kept
    assert list(p.tmp.iterdir()) == []
    assert [e.sop_uid for e in spool.scan()] == [UID]


def test_same_uid_held_and_spooled_is_one_object(spool):
    hold = Hold(UID, "modality US", 1.0)
    assert spool.put(UID, b"held", hold) == STORED
    assert (spool.paths.quarantine / f"{UID}.json").exists()
    assert spool.put(UID, b"held") == DUPLICATE          # decided otherwise, same bytes
    assert spool.put(UID, b"changed") == CONFLICT
    assert spool.scan() == []


def test_write_protocol_order(spool, monkeypatch):
    """fsync(file) before it gets its final name; the directory fsync after; answer after."""
    events = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def link(src, dst, *a, **kw):
        events.append(("link", str(dst)))
        real_link(src, dst, *a, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    spool.put(UID, b"data")
    kinds = [(k, os.path.basename(v) if k == "link" else v) for k, v in events]
    assert kinds[0][0] == "fsync" and "/tmp/" in kinds[0][1] and kinds[0][1].endswith(".part")
    assert kinds[1] == ("link", f"{UID}.dcm")
    assert kinds[2] == ("fsync", str(spool.paths.spool))


def test_concurrent_same_uid_stores_once(spool):
    results = []
    barrier = threading.Barrier(8)

    def put():
        barrier.wait()
        results.append(spool.put(UID, b"same bytes"))

    threads = [threading.Thread(target=put) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(results) == [DUPLICATE] * 7 + [STORED]
    assert list(spool.paths.tmp.iterdir()) == []


def test_dir_sync_groups_fsyncs(tmp_path, monkeypatch):
    sync = durable.DirSync(tmp_path)
    calls = []
    gate = threading.Event()

    def slow_fsync_dir(path):
        calls.append(path)
        gate.wait(0.2)

    monkeypatch.setattr(durable, "fsync_dir", slow_fsync_dir)
    threads = [threading.Thread(target=sync.sync) for _ in range(16)]
    [t.start() for t in threads]
    gate.set()
    [t.join(5) for t in threads]
    assert not any(t.is_alive() for t in threads)
    assert 1 <= len(calls) < 16 and sync.fsyncs == len(calls)


def test_dir_sync_error_reaches_caller(tmp_path, monkeypatch):
    sync = durable.DirSync(tmp_path)

    def broken(path):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(durable, "fsync_dir", broken)
    with pytest.raises(OSError):
        sync.sync()


def test_recover_cleans_crash_leftovers(spool):
    p = spool.paths
    (p.tmp / "x.part").write_bytes(b"half written")
    (p.quarantine / "2.25.9.json").write_text("{}")                # sidecar, object never came
    (p.quarantine / "2.25.8.dcm").write_bytes(b"held, sidecar lost")
    (p.quarantine / ".2.25.7.json.1.2.tmp").write_text("{")      # interrupted write_json
    spool.put(UID, b"kept")
    report = spool.recover()
    assert report == {"temp_files_removed": 1, "orphan_sidecars_removed": 1,
                      "sidecars_restored": 1}
    assert list(p.tmp.iterdir()) == []
    assert not (p.quarantine / "2.25.9.json").exists()
    assert (p.quarantine / "2.25.8.json").exists()
    assert (p.spool / f"{UID}.dcm").read_bytes() == b"kept"


def test_scan_is_oldest_first(spool):
    for i, uid in enumerate(["2.25.3", "2.25.1", "2.25.2"]):
        spool.put(uid, b"x" * (i + 1))
        os.utime(spool.paths.spool / f"{uid}.dcm", ns=(10**18 + i, 10**18 + i))
    assert [e.sop_uid for e in spool.scan()] == ["2.25.3", "2.25.1", "2.25.2"]


def test_reject_moves_with_reason(spool):
    spool.put(UID, b"refused")
    spool.reject(UID, "0xC001 already stored with different content")
    p = spool.paths
    assert not (p.spool / f"{UID}.dcm").exists()
    assert (p.rejected / f"{UID}.dcm").read_bytes() == b"refused"
    assert "0xC001" in (p.rejected / f"{UID}.json").read_text()


@pytest.mark.parametrize("bad", ["../etc/passwd", "2.25.1/../../x", "", "a" * 10, "1." * 40])
def test_uids_never_name_other_paths(bad):
    with pytest.raises(ValueError):
        safe_uid(bad)
