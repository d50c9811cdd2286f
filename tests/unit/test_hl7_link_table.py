"""HIS-MDC link table: idempotent recording, sync states, resume after an interrupt."""
from hl7_gateway.ack import acknowledgement_for, build_ack, parse_ack
from hl7_gateway.builder import build_batch
from hl7_gateway.hospital.link_table import LinkTable
from hl7_gateway.models import AckDetail, Acknowledgement, MessageAck
from hl7_gateway.parser import parse_request
from hl7_gateway.hospital.samples import sample_visit, visit_token


def links(n: int, start: int = 0):
    return [(f"V{i:03d}", f"enc{i:03d}", f"nid{i % 3}", f"RSP{i % 3}") for i in range(start, n)]


def test_record_is_idempotent(tmp_path):
    with LinkTable(tmp_path / "links.db") as table:
        assert table.record(links(5)) == 5
        assert table.record(links(7)) == 2
        assert table.counts() == {"pending": 7, "sent": 0, "acked": 0, "rejected": 0}
        row = table.by_encrypted_id("enc003")
        assert (row.his_visit_id, row.national_id, row.pseudonym) == ("V003", "nid0", "RSP0")


def test_resume_after_interrupt_resends_unacked_without_duplicates(tmp_path):
    path = tmp_path / "links.db"
    table = LinkTable(path)
    table.record(links(6))
    table.mark_sent(["enc000", "enc001", "enc002"], batch_id="b1")
    table.apply_ack(Acknowledgement(ack_id="a", messages=[
        MessageAck(message_id="enc000", type_code="AA"),
        MessageAck(message_id="enc001", type_code="AA")]))
    table.mark_sent(["enc003"], batch_id="b2")
    table.close()  # crash: b2 and enc002 never acknowledged

    with LinkTable(path) as resumed:
        todo = [r.his_visit_id for r in resumed.unacknowledged()]
        assert todo == ["V002", "V003", "V004", "V005"]
        assert resumed.record(links(6)) == 0  # re-reading the export adds nothing
        resumed.mark_sent(["enc000", "enc002", "enc003"], batch_id="b3")
        assert resumed.by_encrypted_id("enc000").state == "acked"  # acked never goes back
        resumed.apply_ack(Acknowledgement(ack_id="b", messages=[
            MessageAck(message_id=f"enc00{i}", type_code="AA") for i in (2, 3, 4, 5)]))
        assert resumed.unacknowledged() == []
        assert resumed.counts()["acked"] == 6


def test_ae_marks_only_that_visit_rejected_with_error(tmp_path):
    with LinkTable(tmp_path / "links.db") as table:
        table.record(links(3))
        table.mark_sent(["enc000", "enc001", "enc002"], batch_id="b1")
        table.apply_ack(Acknowledgement(ack_id="a", messages=[
            MessageAck(message_id="enc000", type_code="AA"),
            MessageAck(message_id="enc001", type_code="AE", details=[
                AckDetail(code="PHI_NAME", text="name present", location="/x/name")]),
            MessageAck(message_id="enc002", type_code="AA")]))
        rejected = table.by_state("rejected")
        assert [r.his_visit_id for r in rejected] == ["V001"]
        assert "PHI_NAME" in rejected[0].last_error and "/x/name" in rejected[0].last_error
        assert table.unacknowledged() == []


def test_ar_puts_the_whole_batch_back_to_pending(tmp_path):
    with LinkTable(tmp_path / "links.db") as table:
        table.record(links(4))
        table.mark_sent(["enc000", "enc001"], batch_id="b1")
        table.mark_sent(["enc002"], batch_id="b2")
        outcome = parse_request(b"<not-xml")
        ack = acknowledgement_for(outcome)
        assert table.apply_ack(ack, batch_id="b1") == 2
        assert [r.state for r in table.unacknowledged()] == ["pending", "pending", "sent",
                                                             "pending"]
        assert "NOT_XML" in table.by_his_visit_id("V000").last_error


def test_real_ack_from_gateway_updates_states(tmp_path):
    visits = [sample_visit(visit_id=visit_token(f"enc00{i}")) for i in range(3)]
    body = build_batch(visits, batch_id="b1").replace(b'code="F"', b'code="X"', 2)
    ack = parse_ack(build_ack(parse_request(body)))
    with LinkTable(tmp_path / "links.db") as table:
        table.record([(f"V00{i}", v.visit_id, "nid", "RSP") for i, v in enumerate(visits)])
        table.mark_sent([v.visit_id for v in visits], batch_id="b1")
        table.apply_ack(ack)
        states = [table.by_his_visit_id(f"V00{i}").state for i in range(3)]
        assert states == ["rejected", "rejected", "acked"]
