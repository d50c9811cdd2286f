"""Shared case index on the real cluster (issue 20): a visit acknowledged by the real HL7
gateway (HTTPS, mTLS, HDFS + HBase) is found through a real `pacs portal`'s `/api/search`
within 5 s; a second portal process reads the same index without indexing it again."""
from __future__ import annotations

import secrets
import string
import time
from datetime import datetime

import pytest
import requests

from hl7_gateway.ack import parse_ack
from hl7_gateway.builder import build_batch_element, to_bytes
from hl7_gateway.hospital.samples import sample_visit, visit_token
from pacs_hdfs import clients
from portal.users import UserStore
from tests.integration.hl7_support import Gateway
from tests.portal_doubles import LOGIN_TOKEN
from tests.portal_support import free_port, portal_process

pytestmark = pytest.mark.cluster
FRESHNESS_S = 5.0


def signed_in(url: str, name: str, password: str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    token = LOGIN_TOKEN.search(s.get(url + "/login", timeout=10).text).group(1)
    r = s.post(url + "/login", data={"username": name, "password": password,
                                     "csrf_token": token, "next": "/"},
               allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.text[:300]
    return s


def found(s: requests.Session, url: str, params: dict, patient: str) -> dict | None:
    r = s.get(url + "/api/search", params={**params, "per_page": 100}, timeout=30)
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    return body if patient in {c["patient"] for c in body["cases"]} else None


@pytest.fixture(scope="module")
def gateway(cluster, tmp_path_factory):
    gw = Gateway(tmp_path_factory.mktemp("gateway"), free_port()).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def teacher(settings):
    name, password = f"fresh-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    UserStore(clients.hbase(settings)).add(name, "teacher", password)
    return name, password


def test_an_acknowledged_visit_is_searchable_within_5_s(gateway, teacher):
    with portal_process() as first, portal_process() as second:
        s1, s2 = signed_in(first.url, *teacher), signed_in(second.url, *teacher)
        warm = {"sex": "F", "per_page": 5}
        for s, url in ((s1, first.url), (s2, second.url)):    # both answer before the visit
            deadline = time.monotonic() + 120
            while not s.get(url + "/api/search", params=warm, timeout=60).json()["index"]["ready"]:
                assert time.monotonic() < deadline, "index never became ready"
                time.sleep(0.5)
        roles = {s.get(url + "/api/search", params=warm, timeout=30).json()["index"]["role"]
                 for s, url in ((s1, first.url), (s2, second.url))}
        assert "reader" in roles                # one indexer at most; the other only reads

        patient = "RS" + "".join(secrets.choice(string.ascii_uppercase) for _ in range(16))
        day = datetime(2011, 1 + secrets.randbelow(12), 1 + secrets.randbelow(28), 9, 30)
        visit = sample_visit(visit_id=visit_token(f"fresh-{secrets.token_hex(6)}"),
                             patient_id=patient, admission=day, discharge=day)
        params = {"date_from": day.date().isoformat(), "date_to": day.date().isoformat(),
                  "icd10": "I10", "sex": "F"}
        r = gateway.session().post(f"{gateway.url}/hl7/v3",
                                   data=to_bytes(build_batch_element([visit])), timeout=120)
        acked = time.monotonic()
        assert r.status_code == 200 and parse_ack(r.content).type_code == "AA", r.text[:500]

        seen: dict[str, float] = {}
        while len(seen) < 2 and time.monotonic() - acked < 30:
            for s, url in ((s1, first.url), (s2, second.url)):
                if url not in seen and found(s, url, params, patient):
                    seen[url] = time.monotonic() - acked
            time.sleep(0.1)
        print(f"searchable after {seen} s")
        assert len(seen) == 2, f"not found by both portals within 30 s: {seen}"
        assert max(seen.values()) <= FRESHNESS_S, seen
        body = found(s2, second.url, params, patient)
        case = next(c for c in body["cases"] if c["patient"] == patient)
        assert case["matching"] == 1 and "I10" in case["codes"] and case["city"] == "Wrocław"
