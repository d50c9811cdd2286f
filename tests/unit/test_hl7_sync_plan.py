"""End-to-end HAS -> in-process gateway loop: interrupted sync resumes, nothing lost or doubled."""
from hl7_gateway.ack import build_ack, parse_ack
from hl7_gateway.hospital.his_export import generate_records
from hl7_gateway.hospital.link_table import LinkTable
from hl7_gateway.parser import parse_request
from hl7_gateway.hospital.samples import demo_keys
from hl7_gateway.hospital.sync_plan import next_batches, record_export

KEYS = demo_keys("sync")


class FakeGateway:
    """Parses like the real gateway and stores accepted visits keyed on the encrypted id."""

    def __init__(self):
        self.stored: dict[str, object] = {}
        self.received = 0

    def post(self, body: bytes) -> bytes:
        outcome = parse_request(body)
        self.received += len(outcome.results)
        self.stored.update({v.visit_id: v for v in outcome.visits})
        return build_ack(outcome)


def sync(table, visits, gateway, stop_after: int | None = None) -> int:
    sent = 0
    for batch in next_batches(table, visits, batch_size=7):
        table.mark_sent(batch.visit_ids, batch.batch_id)
        answer = gateway.post(batch.body)
        sent += 1
        if stop_after is not None and sent == stop_after:
            return sent  # crash after the POST, before the ack is applied
        table.apply_ack(parse_ack(answer), batch_id=batch.batch_id)
    return sent


def test_interrupted_sync_resumes_without_loss_or_duplicates(tmp_path):
    records = list(generate_records(patients=10, visits=30, seed=8))
    gateway = FakeGateway()
    with LinkTable(tmp_path / "links.db") as table:
        visits = record_export(records, KEYS, table)
        assert sync(table, visits, gateway, stop_after=2) == 2
        assert table.counts()["acked"] == 7 and table.counts()["sent"] == 7

    with LinkTable(tmp_path / "links.db") as table:  # restart: same export read again
        visits = record_export(records, KEYS, table)
        sync(table, visits, gateway)
        assert table.counts() == {"pending": 0, "sent": 0, "acked": 30, "rejected": 0}
        assert list(next_batches(table, visits)) == []
    assert set(gateway.stored) == set(visits)           # every visit arrived once per id
    assert gateway.received == 30 + 7                   # only the unacked batch was resent


def test_rejected_visit_is_not_resent(tmp_path):
    records = list(generate_records(patients=3, visits=5, seed=2))
    gateway = FakeGateway()
    with LinkTable(tmp_path / "links.db") as table:
        visits = record_export(records, KEYS, table)
        bad_id = next(iter(visits))
        visits[bad_id] = visits[bad_id].model_copy(update={"patient_id": ""})  # fails parsing
        sync(table, visits, gateway)
        assert [r.encrypted_visit_id for r in table.by_state("rejected")] == [bad_id]
        assert "patient" in table.by_encrypted_id(bad_id).last_error
        assert list(next_batches(table, visits)) == []


def test_refuse_policy_holds_visits_with_phi_and_releases_them_once_clean(tmp_path):
    """hl7_phi_policy = refuse: a record whose exam text holds PHI is not sent; the link table
    keeps it as rejected with the categories (no values); once its text is clean it is sent."""
    from hl7_gateway.hospital.phi_screen import PhiScreen
    records = list(generate_records(patients=6, visits=20, seed=8))
    clean_text = "Chest X-ray PA: lungs clear."
    for record in records:    # the generator puts the patient's own PHI into some texts
        for exam in record["exams"]:
            exam["text"] = clean_text
    dirty = next(r for r in records if r["exams"])
    dirty["exams"][0]["text"] = "Wynik przekazano córce Ewie, tel. 601 234 567."
    with LinkTable(tmp_path / "links.db") as table:
        visits = record_export(records, KEYS, table, PhiScreen("refuse"))
        held = table.held()
        assert [r.his_visit_id for r in held] == [dirty["his_visit_id"]]
        assert held[0].last_error.startswith("HOSPITAL_PHI_SCREEN: exam 1 text holds NAME, PHONE")
        assert "601" not in held[0].last_error and "Ew" not in held[0].last_error
        assert held[0].encrypted_visit_id not in visits
        assert all(r.his_visit_id != dirty["his_visit_id"] for r in table.unacknowledged())
        dirty["exams"][0]["text"] = clean_text        # corrected in the HIS
        visits = record_export(records, KEYS, table, PhiScreen("refuse"))
        assert table.held() == [] and held[0].encrypted_visit_id in visits
        assert table.by_his_visit_id(dirty["his_visit_id"]).state == "pending"


def test_has_visit_restores_true_dates_for_hospital_staff():
    from datetime import datetime, timedelta
    from hl7_gateway.hospital.deidentify_visit import his_record_to_visit, shift_days
    from hl7_gateway.hospital.has_visit import restore_dates
    record = next(r for r in generate_records(patients=2, visits=4, seed=8) if r["discharge"])
    stored = his_record_to_visit(record, KEYS).model_dump(mode="json")
    shown = restore_dates(stored, shift_days(KEYS, record["patient"]["national_id"]))
    assert datetime.fromisoformat(shown["admission"]) == datetime.fromisoformat(record["admission"])
    assert datetime.fromisoformat(shown["discharge"]) == datetime.fromisoformat(record["discharge"])
    assert datetime.fromisoformat(stored["admission"]) <= datetime.fromisoformat(
        record["admission"]) - timedelta(days=1)
