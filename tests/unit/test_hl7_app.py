"""Gateway answers that do not need a server: storage failure and oversize bodies."""
from hl7_gateway.ack import build_ack, parse_ack
from hl7_gateway.app import _too_large, storage_failed
from hl7_gateway.builder import build_batch, build_message
from hl7_gateway.parser import parse_request
from hl7_gateway.hospital.samples import sample_visit, visit_token


def test_storage_failure_turns_accepted_visits_into_ae_and_keeps_other_errors():
    good = sample_visit(visit_id=visit_token("good"))
    bad = build_message(sample_visit(visit_id=visit_token("bad"))).replace(
        b"<administrativeGenderCode", b"<birthTime value=\"19570304\"/><administrativeGenderCode")
    outcome = parse_request(build_batch([good]))
    failed = storage_failed(outcome, "StorageError")
    ack = parse_ack(build_ack(failed))
    assert [(m.message_id, m.type_code, m.details[0].code) for m in ack.messages] == [
        (good.visit_id, "AE", "STORAGE_UNAVAILABLE")]
    assert failed.visits == []
    phi = storage_failed(parse_request(bad), "x")
    assert phi.results[0].errors[0].code == "PHI_BIRTH_DATE"


def test_too_large_is_a_request_rejection():
    ack = parse_ack(build_ack(_too_large(1024)))
    assert ack.type_code == "AR" and ack.messages[0].details[0].code == "BODY_TOO_LARGE"
