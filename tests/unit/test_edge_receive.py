"""The edge's receive path: de-identified, durable, and every answer as a DICOM status."""
from __future__ import annotations

from io import BytesIO

import pytest
from pydicom import dcmread

from deid.edge.receive import Receiver
from deid.edge.stages import STAGES
from deid.pseudonyms import remap_uid
from pacs_hdfs.dicom.synthetic import add_phi_markers, ct_series
from tests.edge_support import edge_in

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

MARKER = "ZZPHIMARK"


def encode(ds) -> bytes:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture
def edge(tmp_path):
    return edge_in(tmp_path)


@pytest.fixture
def ct():
    return ct_series(3, patient_id="PID-EDGE-1", patient_name="Doe^Jane", size=16)


def test_stored_object_is_deidentified_and_durable(edge, ct):
    ds = add_phi_markers(ct[0], MARKER)
    r = edge.receiver.store(encode(ds))
    assert (r.kind, r.status, r.accepted) == ("stored", 0, True)
    assert r.sop_uid == remap_uid(edge.keys.uid, ds.SOPInstanceUID)
    path = edge.paths.spool / f"{r.sop_uid}.dcm"
    data = path.read_bytes()
    assert MARKER.encode() not in data and b"Doe^Jane" not in data and b"PID-EDGE-1" not in data
    out = dcmread(path)
    assert out.PatientIdentityRemoved == "YES" and out.SOPInstanceUID.startswith("2.25.")
    assert out.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    assert out.PixelData == ds.PixelData  # stored as received, not decoded
    assert edge.vault.lookup_study(str(out.StudyInstanceUID))["original_study_uid"] == \
        ds.StudyInstanceUID
    assert set(r.times) == set(STAGES)


def test_resend_identical_is_a_duplicate_and_other_bytes_a_conflict(edge, ct):
    raw = encode(ct[0])
    first = edge.receiver.store(raw)
    again = edge.receiver.store(raw)
    assert (again.kind, again.status) == ("duplicate", 0x0000)
    ct[0].PixelData = bytes(len(ct[0].PixelData))
    conflict = edge.receiver.store(encode(ct[0]))
    assert (conflict.kind, conflict.status) == ("conflict", 0xC001)
    assert [e.sop_uid for e in edge.spool.scan()] == [first.sop_uid]


def test_malformed_bytes_are_refused(edge):
    r = edge.receiver.store(b"\x00" * 132 + b"not dicom at all")
    assert (r.kind, r.status) == ("malformed", 0xC000)
    assert edge.spool.scan() == []


def test_validation_refusal_keeps_its_status(edge, ct):
    del ct[0].Rows
    r = edge.receiver.store(encode(ct[0]))
    assert r.kind == "refused" and r.status in (0xA900, 0xC000) and r.comment
    assert edge.spool.scan() == [] and list(edge.paths.quarantine.iterdir()) == []


def test_warning_is_answered_after_the_object_is_safe(edge, ct):
    del ct[0].Modality
    r = edge.receiver.store(encode(ct[0]))
    assert r.kind == "stored" and r.status == 0xB007 and "Modality" in r.comment
    assert (edge.paths.spool / f"{r.sop_uid}.dcm").exists()


def test_burned_in_suspects_are_held_not_spooled(edge, ct):
    ct[0].Modality = "US"
    r = edge.receiver.store(encode(ct[0]))
    assert (r.kind, r.status) == ("held", 0x0000) and "US" in r.hold_reason
    q = edge.paths.quarantine
    assert (q / f"{r.sop_uid}.dcm").exists() and (q / f"{r.sop_uid}.json").exists()
    assert edge.spool.scan() == []


def test_spool_failure_is_out_of_resources(edge, ct, monkeypatch):
    def full(*a, **kw):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(edge.spool, "put", full)
    r = edge.receiver.store(encode(ct[0]))
    assert (r.kind, r.status) == ("spool_unavailable", 0xA700)


def test_vault_failure_is_out_of_resources_and_nothing_spooled(edge, ct, monkeypatch):
    def broken(record):
        raise OSError(5, "I/O error")
    monkeypatch.setattr(edge.vault, "remember", broken)
    r = edge.receiver.store(encode(ct[0]))
    assert (r.kind, r.status) == ("vault_unavailable", 0xA700)
    assert edge.spool.scan() == []


def test_stage_stats_add_up(edge, ct):
    for ds in ct:
        edge.receiver.store(encode(ds))
    stats = edge.receiver.stats.per_object_ms()
    assert list(stats) == list(STAGES)
    assert all(v["objects"] == 3 and v["cpu_ms"] is not None for v in stats.values())


def test_logs_carry_no_phi(edge, ct, caplog):
    caplog.set_level("DEBUG", logger="pacs")
    ds = add_phi_markers(ct[0], MARKER)
    ds.Modality = "US"
    edge.receiver.store(encode(ds))
    del ds.Rows
    edge.receiver.store(encode(ds))
    assert caplog.records and MARKER not in caplog.text and "Doe^Jane" not in caplog.text


def test_bench_hook_reports_every_stage():
    from deid.edge.bench import measure
    report = measure(count=5, size=16)
    assert report["outcomes"] == {"stored": 5}
    assert list(report["stages"]) == list(STAGES)
