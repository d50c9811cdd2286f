"""Builder -> parser -> ack round trips, and the stored row schema."""
import time
import pyarrow as pa

from hl7_gateway.ack import acknowledgement_for, build_ack, parse_ack
from hl7_gateway.builder import build_batch, build_message
from hl7_gateway.parser import parse_request
from hl7_gateway.hospital.samples import sample_visit, sample_visits
from hl7_gateway.visit_row import visit_to_row
from pacs_hdfs.visit_schema import VISIT_SCHEMA


def test_single_message_round_trip_preserves_every_field():
    visit = sample_visit()
    outcome = parse_request(build_message(visit))
    assert outcome.rejection is None
    assert [r.visit for r in outcome.results] == [visit]
    assert outcome.results[0].message_id == visit.visit_id


def test_batch_round_trip_of_generated_visits():
    visits = sample_visits(40, seed=7)
    outcome = parse_request(build_batch(visits, batch_id="batch-1"))
    assert outcome.request_id == "batch-1"
    assert outcome.visits == visits


def test_round_trip_of_optional_fields_absent():
    visit = sample_visit(discharge=None, city=None, diagnoses=[], labs=[],
                         exams=[])
    assert parse_request(build_message(visit)).visits == [visit]


def test_visit_rows_build_an_arrow_table_with_the_fixed_schema():
    visits = sample_visits(30, seed=2) + [sample_visit(discharge=None)]
    rows = [visit_to_row(v) for v in visits]
    assert all(list(row) == VISIT_SCHEMA.names for row in rows)
    table = pa.Table.from_pylist(rows, schema=VISIT_SCHEMA)
    assert table.num_rows == len(visits)
    first = table.slice(0, 1).to_pylist()[0]
    assert first["visit_month"] == visits[0].admission.strftime("%Y-%m")
    assert first["icd10"] == [d.code for d in visits[0].diagnoses if d.system == "ICD10"]
    assert table.column("discharge").null_count == sum(v.discharge is None for v in visits)


def test_ack_round_trip_for_accepted_batch():
    visits = sample_visits(5, seed=1)
    outcome = parse_request(build_batch(visits))
    ack = parse_ack(build_ack(outcome, ack_id="ack-1"))
    assert ack.ack_id == "ack-1"
    assert ack.type_code == "AA"
    assert [m.message_id for m in ack.messages] == [v.visit_id for v in visits]
    assert ack == acknowledgement_for(outcome, "ack-1")


def test_ack_round_trip_keeps_error_details():
    visit = sample_visit()
    body = build_message(visit).replace(b'value="20240305120030"',
                                                 b'value="20230305120030"')
    outcome = parse_request(body)
    ack = parse_ack(build_ack(outcome))
    assert ack.type_code == "AE"
    (detail,) = ack.messages[0].details
    assert detail.code == "DISCHARGE_BEFORE_ADMISSION"
    assert detail.location.endswith("effectiveTime/high/@value")
    assert ack.messages[0].message_id == visit.visit_id


def test_parse_throughput_for_batch_of_100(capsys):
    body = build_batch(sample_visits(100, seed=3))
    runs = 10
    start = time.perf_counter()
    for _ in range(runs):
        outcome = parse_request(body)
    rate = 100 * runs / (time.perf_counter() - start)
    assert len(outcome.visits) == 100
    with capsys.disabled():
        print(f"\nHL7 parse+validate: {rate:,.0f} visits/s ({len(body):,} bytes per 100 visits)")
    assert rate > 200  # sanity floor only: the CPU is shared; the measured rate is printed
