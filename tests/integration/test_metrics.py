"""`/metrics` of the edge, the gateway and the MDC DIMSE service, scraped around a real ingest
(issue 17, item 3): every counter moves by exactly what was sent.

    storescu --5 CT--> `pacs edge` --STOW-RS (mTLS)--> `pacs gateway` --> HDFS + HBase
    storescu --1 CT, a calling AE allowed to query only--> `pacs scp` (refused 0x0124)
    HAS-like client --1 good visit + 1 hostile message--> gateway (HL7 acks AA + AR)
"""
from __future__ import annotations

import json
import socket
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from hl7_gateway.builder import build_batch_element, to_bytes
from hl7_gateway.hospital.samples import sample_visit
from tests.integration.dicom_support import HOST, dcmtk, fresh_copy, scp_process, store

pytestmark = pytest.mark.cluster
EDGE_PORT, DEST_PORT = 11140, 11141


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of a /metrics page: (name, sorted labels) -> value."""
    text = requests.get(f"http://{HOST}:{port}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def moved(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


@pytest.fixture(scope="module")
def world(cluster, tmp_path_factory):
    ports = {"edge": _free_port(), "scp": _free_port(), "gateway": _free_port()}
    mp = pytest.MonkeyPatch()
    mp.setenv("PACS_METRICS_PORTS", json.dumps(ports))
    try:
        with scp_process(tmp_path_factory.mktemp("metrics"), port=EDGE_PORT,
                         dest_port=DEST_PORT) as scp:
            deadline = time.monotonic() + 30
            while True:  # the listeners start with the services
                try:
                    [scrape(p) for p in ports.values()]
                    break
                except requests.ConnectionError:
                    assert time.monotonic() < deadline, "a /metrics listener did not start"
                    time.sleep(0.3)
            yield scp, ports
    finally:
        mp.undo()


def test_ingest_counters_move_by_exactly_what_was_sent(world, tmp_path):
    scp, ports = world
    files = [fresh_copy("CT_small.dcm", tmp_path / "ct")[0] for _ in range(5)]
    before = {name: scrape(port) for name, port in ports.items()}

    store(files, port=EDGE_PORT)                      # waits until the edge has forwarded
    # FINDSCU may query the MDC but not store there: associated, then the C-STORE refused
    refused = dcmtk("storescu", "-aet", "FINDSCU", "-aec", "MDC", HOST, str(scp.qr_port),
                    str(files[0]))
    assert "Association Rejected" not in refused.stderr, refused.stderr

    after = {name: scrape(port) for name, port in ports.items()}
    e0, e1 = before["edge"], after["edge"]
    assert moved(e0, e1, "pacs_dicom_store_total", service="edge", status="0x0000") == 5
    assert moved(e0, e1, "pacs_dicom_store_seconds_count", service="edge") == 5
    assert e1[("pacs_edge_spool_objects", ())] == 0
    assert e1[("pacs_edge_spool_oldest_seconds", ())] == 0

    g0, g1 = before["gateway"], after["gateway"]
    assert moved(g0, g1, "pacs_stow_instances_total", status="0x0000") == 5
    requests_200 = moved(g0, g1, "pacs_stow_requests_total", code="200")
    assert 1 <= requests_200 <= 5                      # the edge batches; every batch 200
    assert moved(g0, g1, "pacs_stow_seconds_count") == requests_200
    assert not [k for k in g1 if k[0] == "pacs_storage_errors_total" and g1[k]]

    s0, s1 = before["scp"], after["scp"]
    assert moved(s0, s1, "pacs_dicom_store_total", service="scp", status="0x0124") == 1
    assert moved(s0, s1, "pacs_dicom_store_total", service="scp", status="0x0000") == 0


def test_hl7_acknowledgements_are_counted_by_code(world):
    scp, ports = world
    before = scrape(ports["gateway"])
    session = scp.gateway.session()
    good = to_bytes(build_batch_element([sample_visit()]))
    assert session.post(f"{scp.gateway.url}/hl7/v3", data=good, timeout=60).status_code == 200
    bad = session.post(f"{scp.gateway.url}/hl7/v3", data=b"<not-hl7/>", timeout=60)
    assert bad.status_code == 400
    after = scrape(ports["gateway"])
    assert moved(before, after, "pacs_hl7_acks_total", code="AA") == 1
    assert moved(before, after, "pacs_hl7_acks_total", code="AR") == 1
