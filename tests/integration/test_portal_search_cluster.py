"""Case search on the real cluster: visits stored by the gateway's VisitStore (HDFS + HBase)
reach the portal's index through the HBase feed; the HDFS snapshot reloads to the same answers;
the tail picks up a visit stored later; `pacs search backfill` feeds visits from the visit table."""
from __future__ import annotations

import json
import secrets
import subprocess
import sys

import pytest

from hl7_gateway.hospital.samples import demo_keys, sample_visits
from hl7_gateway.store import VisitStore
from portal.search.feed import SNAPSHOT, LiveIndex
from portal.search.query import CaseQuery, resolve

pytestmark = pytest.mark.cluster


def patients_found(live: LiveIndex, q: CaseQuery) -> set[str]:
    page = live.index.search(resolve(q, live.index), per_page=100)
    return {c.patient for c in page.cases}


@pytest.fixture(scope="module")
def stored(cluster, settings):
    keys = demo_keys(f"search-it-{secrets.token_hex(4)}")   # pseudonyms unique to this run
    visits = sample_visits(41, seed=11, keys=keys)
    VisitStore(settings).store(visits[:40])
    return visits[:40], visits[40]        # the last one is stored later, by the test


def test_gateway_visits_are_searchable_and_snapshot_reloads(settings, stored):
    visits, later = stored
    live = LiveIndex(settings)
    live.refresh()
    target = next(v for v in visits if any(d.system == "ICD10" for d in v.diagnoses))
    code = next(d.code for d in target.diagnoses if d.system == "ICD10")
    q = CaseQuery(icd10=code, sex=target.sex, city=target.city or "")
    found = patients_found(live, q)
    assert target.patient_id in found
    expected = {v.patient_id for v in visits
                if v.sex == target.sex and (v.city or "") == (target.city or "")
                and any(d.code == code for d in v.diagnoses)}
    assert expected <= found                     # the shared cluster may hold other matches

    live.save_snapshot()
    assert live.hdfs.exists(SNAPSHOT)
    again = LiveIndex(settings)
    again._load_snapshot()
    assert again.index.size == live.index.size
    assert patients_found(again, q) == found

    VisitStore(settings).store([later])
    again.refresh()                              # the tail after the snapshot
    assert later.patient_id in patients_found(
        again, CaseQuery(date_from=later.admission.date(), date_to=later.admission.date(),
                         sex=later.sex))


def test_backfill_command_feeds_every_visit(settings, stored):
    out = subprocess.run([sys.executable, "-m", "pacs_cli", "search", "backfill", "--json"],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["visits"] >= len(stored[0])
    live = LiveIndex(settings, snapshots=False)
    live.refresh()
    assert {v.patient_id for v in stored[0]} <= set(live.index.patients.vocab.terms)
