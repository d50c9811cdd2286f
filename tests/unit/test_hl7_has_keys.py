"""HAS keys come from the shared hospital vault and match the DICOM side's functions."""
import stat

from deid.pseudonyms import patient_pseudonym, pseudonymise_accession
from hl7_gateway.hospital.deidentify_visit import his_record_to_visit
from hl7_gateway.hospital.has_keys import has_keys, open_vault
from hl7_gateway.hospital.his_export import generate_records
from hl7_gateway.hospital.visit_crypto import decrypt_visit_id


def test_vault_created_once_and_keys_stable(tmp_path, monkeypatch):
    monkeypatch.delenv("PACS_VAULT_KEY", raising=False)
    keys = has_keys(open_vault(tmp_path))
    assert stat.S_IMODE((tmp_path / "hospital" / "master.key").stat().st_mode) == 0o600
    assert len(keys.visit_key) == 64 and len(keys.pseudonym_key) == 32
    assert has_keys(open_vault(tmp_path)) == keys


def test_visit_uses_the_dicom_pseudonym_and_accession(tmp_path, monkeypatch):
    monkeypatch.delenv("PACS_VAULT_KEY", raising=False)
    vault = open_vault(tmp_path)
    keys = has_keys(vault)
    record = next(r for r in generate_records(5, 40, seed=1)
                  if any(e["accession"] for e in r["exams"]))
    visit = his_record_to_visit(record, keys)
    assert visit.patient_id == patient_pseudonym(vault.key("pseudonym"),
                                                 record["patient"]["national_id"])
    accession = next(e["accession"] for e in record["exams"] if e["accession"])
    assert pseudonymise_accession(vault.key("pseudonym"), accession) in {
        e.accession for e in visit.exams}
    assert decrypt_visit_id(keys.visit_key, visit.visit_id) == record["his_visit_id"]
