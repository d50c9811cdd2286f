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
