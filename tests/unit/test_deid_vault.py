"""Encrypted key vault: persistence, wrong keys, re-identification map, concurrency."""

from __future__ import annotations

import threading

import pytest
from pydicom import Dataset
from pydicom.uid import CTImageStorage

from deid import Vault, VaultError, deidentify, generate_master_key, reidentify
from deid.keys import KEY_NAMES


def _ct(patient_id="MRN-1", name="Roe^Richard", study="1.2.826.0.1.3680043.55.1") -> Dataset:
    ds = Dataset()
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = patient_id, name, "19610203", "M"
    ds.SOPClassUID = CTImageStorage
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = study + ".1"
    ds.SOPInstanceUID = study + ".1.1"
    ds.StudyDate = "20240101"
    ds.Modality = "CT"
    return ds


def test_keys_are_created_once_and_persist(tmp_path):
    master = generate_master_key()
    vault = Vault.open(tmp_path / "vault.bin", master)
    first = vault.key("pseudonym")
    assert len(first) == 32 and first != vault.key("uid")
    reopened = Vault.open(tmp_path / "vault.bin", master)
    assert reopened.key("pseudonym") == first
    keys = reopened.deid_keys()  # creates every standard key
    assert keys.pseudonym == first
    created = {name: reopened.key(name) for name in KEY_NAMES}
    again = Vault.open(tmp_path / "vault.bin", master)
    assert {name: again.key(name) for name in KEY_NAMES} == created


def test_wrong_master_key_fails_cleanly(tmp_path):
    Vault.open(tmp_path / "vault.bin", generate_master_key()).key("pseudonym")
    with pytest.raises(VaultError, match="wrong master key"):
        Vault.open(tmp_path / "vault.bin", generate_master_key())
    with pytest.raises(VaultError):
        Vault.open(tmp_path / "other.bin", "not base64 at all!")


def test_corrupt_or_foreign_file_fails_cleanly(tmp_path):
    path = tmp_path / "vault.bin"
    master = generate_master_key()
    Vault.open(path, master).key("pseudonym")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(VaultError):
        Vault.open(path, master)
    (tmp_path / "plain.json").write_text("{}")
    with pytest.raises(VaultError, match="not a PACS vault"):
        Vault.open(tmp_path / "plain.json", master)


def test_master_key_from_env_and_file(tmp_path, monkeypatch):
    master = generate_master_key()
    monkeypatch.setenv("PACS_VAULT_KEY", master)
    key = Vault.open(tmp_path / "v.bin").key("pseudonym")
    (tmp_path / "master.key").write_text(master + "\n")
    monkeypatch.delenv("PACS_VAULT_KEY")
    assert Vault.open(tmp_path / "v.bin", master_key_file=tmp_path / "master.key").key("pseudonym") == key
    with pytest.raises(VaultError):
        Vault.open(tmp_path / "v.bin")


def test_remember_lookup_and_reidentify_from_vault(tmp_path):
    master = generate_master_key()
    vault = Vault.open(tmp_path / "vault.bin", master)
    source = _ct()
    result = deidentify(source, vault.deid_keys())
    assert vault.remember(result.reid_record) is True
    assert vault.remember(result.reid_record) is False  # nothing new: no rewrite

    raw = (tmp_path / "vault.bin").read_bytes()
    assert b"Roe" not in raw and b"MRN-1" not in raw and result.patient_pseudonym.encode() not in raw

    reopened = Vault.open(tmp_path / "vault.bin", master)
    patient = reopened.lookup_patient(result.patient_pseudonym)
    assert patient["patient_id"] == "MRN-1" and patient["patient_name"] == "Roe^Richard"
    assert patient["birth_date"] == "19610203" and patient["sex"] == "M"
    study = reopened.lookup_study(result.deid_study_uid)
    assert study["original_study_uid"] == source.StudyInstanceUID
    assert reopened.lookup_patient("RSUNKNOWN") is None and reopened.lookup_study("2.25.1") is None

    restored = reidentify(result.dataset, reopened.reid_record(result.deid_study_uid))
    assert str(restored.PatientName) == "Roe^Richard" and restored.PatientID == "MRN-1"
    assert restored.StudyInstanceUID == source.StudyInstanceUID
    assert restored.StudyDate == source.StudyDate


def test_concurrent_remember_keeps_every_record(tmp_path):
    master = generate_master_key()
    vault = Vault.open(tmp_path / "vault.bin", master)
    keys = vault.deid_keys()
    results = [deidentify(_ct(f"MRN-{n}", study=f"1.2.826.0.1.3680043.55.{n}"), keys) for n in range(24)]
    threads = [threading.Thread(target=vault.remember, args=(r.reid_record,)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reopened = Vault.open(tmp_path / "vault.bin", master)
    for r in results:
        assert reopened.lookup_study(r.deid_study_uid)["patient_pseudonym"] == r.patient_pseudonym
    assert not list(tmp_path.glob(".*.tmp"))


def test_two_handles_on_one_vault_agree_and_keep_both_records(tmp_path):
    """Like two processes (SCP and HL7 sync) sharing the vault file."""
    master = generate_master_key()
    first = Vault.open(tmp_path / "vault.bin", master)
    second = Vault.open(tmp_path / "vault.bin", master)
    assert first.key("pseudonym") == second.key("pseudonym")
    keys = first.deid_keys()
    a = deidentify(_ct("MRN-A", study="1.2.826.0.1.3680043.56.1"), keys)
    b = deidentify(_ct("MRN-B", study="1.2.826.0.1.3680043.56.2"), keys)
    first.remember(a.reid_record)
    second.remember(b.reid_record)  # must not overwrite first's record with a stale copy
    assert first.lookup_study(b.deid_study_uid)["patient_pseudonym"] == b.patient_pseudonym
    reopened = Vault.open(tmp_path / "vault.bin", master)
    assert reopened.lookup_patient(a.patient_pseudonym)["patient_id"] == "MRN-A"
    assert reopened.lookup_patient(b.patient_pseudonym)["patient_id"] == "MRN-B"
