"""The pure parts of the study lifecycle: the IOCM-style rejection note (a KOS that pydicom
writes and reads back as a valid Part 10 file) and the audit message it is recorded with."""
from __future__ import annotations

import io

import pytest
from pydicom import dcmread, dcmwrite


def _refs(n=3):
    from pacs_hdfs.dicom.rejection_note import Ref
    return [Ref("2.25.1", "2.25.2" if i < 2 else "2.25.3", f"2.25.10{i}",
                "1.2.840.10008.5.1.4.1.1.2") for i in range(n)]


@pytest.mark.parametrize("action,code", [("reject", "113001"), ("delete", "113039"),
                                         ("reject-patient-safety", "113037")])
def test_note_is_a_kos_with_the_reason_and_every_object(action, code):
    from pacs_hdfs.dicom.rejection_note import KOS_SOP_CLASS, kos_note, listed, reason_of
    note = kos_note(action, _refs(), "PSEUDO1", "PSEUDO1", "ACC")
    buf = io.BytesIO()
    dcmwrite(buf, note, enforce_file_format=True)
    back = dcmread(io.BytesIO(buf.getvalue()))
    assert back.SOPClassUID == KOS_SOP_CLASS and back.Modality == "KO"
    assert back.StudyInstanceUID == "2.25.1" and back.SOPInstanceUID.startswith("2.25.")
    assert reason_of(back)[0] == code and reason_of(back)[1] == "DCM"
    assert sorted(listed(back)) == [("2.25.2", "2.25.100"), ("2.25.2", "2.25.101"),
                                    ("2.25.3", "2.25.102")]
    assert len(back.ContentSequence) == 3
    assert all(i.ValueType == "IMAGE" for i in back.ContentSequence)


def test_note_refuses_objects_of_two_studies():
    from pacs_hdfs.dicom.rejection_note import Ref, kos_note
    with pytest.raises(ValueError):
        kos_note("delete", _refs() + [Ref("2.25.9", "2.25.2", "2.25.5", "1.2")])


def test_restorable_and_kept_bytes_are_table_rules():
    from pacs_hdfs.dicom.rejection_note import REASONS
    assert REASONS["reject"].restorable and REASONS["reject"].keeps_bytes
    assert not REASONS["delete"].restorable and not REASONS["delete"].keeps_bytes


def test_scope_refuses_what_is_not_a_uid():
    from pacs_hdfs.dicom.lifecycle import Scope
    assert Scope("1.2.3").level == "study" and Scope("1.2", "1.3").level == "series"
    assert Scope("1.2", "1.3", "1.4").level == "instance"
    for bad in (("../x",), ("1.2", "", "1.4"), ("",), ("1.2", "1.3/../..")):
        with pytest.raises(ValueError):
            Scope(*bad)


def test_deleted_audit_message_conforms_to_the_schema():
    from pacs_hdfs import audit_messages as am
    msg = am.message(am.Event("instances_deleted", "delete", description="delete study"),
                     [am.Participant("admin", True, address="127.0.0.1"),
                      am.Participant("pacs-lifecycle", False, "application")],
                     "pacs-lifecycle", [am.study("2.25.1", {"1.2.840.10008.5.1.4.1.1.2": 3},
                                                 anonymized=True), am.patient("PSEUDO1")])
    assert am.validate(msg) == []
    xml = am.to_bytes(msg).decode()
    assert 'csd-code="110105"' in xml and 'EventActionCode="D"' in xml


def test_lifecycle_audit_actions_are_listed_for_the_admin_filter():
    from pacs_hdfs import audit
    from pacs_hdfs.dicom.lifecycle import AUDIT_ACTIONS
    from pacs_hdfs.dicom.rejection_note import REASONS
    assert set(AUDIT_ACTIONS) <= set(audit.ACTIONS)
    assert {f"study-{a.split('-')[0]}" for a in REASONS} <= set(AUDIT_ACTIONS)


def test_admin_delete_needs_admin_csrf_and_a_known_reason_and_uid():
    from fastapi.testclient import TestClient

    from tests.portal_doubles import csrf_token, fast_hashing, login, portal_app
    with fast_hashing():
        app = portal_app({"t": "teacher", "a": "admin"}, "pw-unit-1234")
        url = "/dicomweb/studies/2.25.1/series/2.25.2"
        with TestClient(app) as teacher:
            login(teacher, "t", "pw-unit-1234")
            r = teacher.delete(url, headers={"X-CSRF-Token": csrf_token(teacher)})
            assert r.status_code == 403
        with TestClient(app) as admin:
            login(admin, "a", "pw-unit-1234")
            assert admin.delete(url).status_code == 403                     # no CSRF token
            h = {"X-CSRF-Token": csrf_token(admin)}
            assert admin.delete(url, params={"reason": "shred"}, headers=h).status_code == 400
            assert admin.delete("/dicomweb/studies/2.25.x", headers=h).status_code == 400
