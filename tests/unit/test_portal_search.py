"""Case search: the in-memory index against a brute-force reference, updates and snapshots,
query parsing, the feed reader, and the search page / API on an in-memory store."""
from __future__ import annotations

import random
from datetime import date

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from hl7_gateway.hospital.samples import sample_visit, sample_visits
from hl7_gateway.store_rows import feed_row, search_document
from pacs_hdfs.settings import Settings
from tests.memory_store import MemoryStore
from portal.search import feed
from portal.search.index import CaseIndex
from portal.search.query import CaseQuery, resolve
from portal.search.text import code_key, fold, words
from tests.portal_doubles import fast_hashing, login, portal_app

CODES = ["I10", "C50.9", "C50.1", "J18.9", "E11.9", "C34.9", "K35.8", "I25.1"]
ICD9 = [("250.00", "Diabetes mellitus"), ("401.9", "Essential hypertension")]
TEXTS = ["Chest X-ray: right lower lobe consolidation consistent with pneumonia.",
         "No acute findings.", "Mammography: spiculated mass in the left breast.",
         "CT head: hypodense area, ischaemic stroke."]
CITIES = ["Łódź", "Kraków", "Warszawa"]


def random_docs(n: int, patients: int, seed: int = 7) -> list[tuple[int, dict]]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        docs.append((1_000 + i, {
            "v": f"visit{i}", "p": f"RS{rng.randrange(patients):05d}", "s": rng.choice("MF"),
            "a": rng.randrange(95), "c": rng.choice(CITIES),
            "d": date(2015 + rng.randrange(10), rng.randrange(1, 13), rng.randrange(1, 29)).isoformat(),
            "x10": rng.sample(CODES, rng.randrange(0, 3)),
            "x9": [list(rng.choice(ICD9))] if rng.random() < 0.1 else [],
            "t": rng.choice(TEXTS) if rng.random() < 0.8 else "", "k": ["CT"]}))
    return docs


def brute(docs, q: CaseQuery) -> dict[str, int]:
    """Patients -> matching visits, the slow obvious way (latest version of each visit)."""
    latest = {}
    for received, d in docs:
        if received >= latest.get(d["v"], (-1,))[0]:
            latest[d["v"]] = (received, d)
    out: dict[str, int] = {}
    for _, d in latest.values():
        ok = ((not q.sex or d["s"] == q.sex)
              and (q.age_min is None or d["a"] >= q.age_min)
              and (q.age_max is None or d["a"] <= q.age_max)
              and (q.date_from is None or d["d"] >= q.date_from.isoformat())
              and (q.date_to is None or d["d"] <= q.date_to.isoformat())
              and (not q.city or fold(d["c"]) == fold(q.city))
              and (not q.icd10 or any(code_key(c).startswith(code_key(q.icd10)) for c in d["x10"]))
              and all(any(w2.startswith(w) for w2 in words(d["t"])) for w in words(q.text)))
        if ok:
            out[d["p"]] = out.get(d["p"], 0) + 1
    return out


@pytest.fixture(scope="module")
def docs():
    return random_docs(3000, 700)


@pytest.fixture(scope="module")
def index(docs):
    ix = CaseIndex()
    for k in range(0, len(docs), 250):      # several segments, then merges
        ix.apply(docs[k:k + 250])
    return ix


def all_hits(ix: CaseIndex, q: CaseQuery) -> dict[str, int]:
    page = ix.search(resolve(q, ix), per_page=10**6)
    return {c.patient: c.matching for c in page.cases}


QUERIES = [
    CaseQuery(icd10="C50"), CaseQuery(icd10="C50.9", sex="F"), CaseQuery(sex="M", age_min=40, age_max=60),
    CaseQuery(date_from=date(2018, 1, 1), date_to=date(2019, 6, 30)), CaseQuery(city="lodz"),
    CaseQuery(text="pneum consolid"), CaseQuery(text="breast", icd10="C5", city="KRAKÓW"),
    CaseQuery(icd10="J18", age_min=70, date_from=date(2020, 1, 1), sex="F", text="x-ray"),
    CaseQuery(text="nonexistentword"), CaseQuery(icd10="Z99"),
]


@pytest.mark.parametrize("q", QUERIES, ids=[str(i) for i in range(len(QUERIES))])
def test_index_matches_brute_force(docs, index, q):
    expected = brute(docs, q)
    assert all_hits(index, q) == expected
    assert index.search(resolve(q, index)).total == len(expected)


def test_a_case_lists_all_its_visits_not_only_the_matching_ones(docs, index):
    q = CaseQuery(icd10="C34.9")
    for case in index.search(resolve(q, index), per_page=50).cases:
        assert case.visits == sum(1 for _, d in docs if d["p"] == case.patient)
        assert 1 <= case.matching <= case.visits and "C34.9" in case.codes


def test_pages_are_disjoint_and_sorted(index):
    q = CaseQuery(sex="F")
    crit = resolve(q, index)
    total = index.search(crit).total
    seen, latest = [], []
    for page in range(1, total // 20 + 2):
        got = index.search(crit, "latest", True, page, 20).cases
        seen += [c.patient for c in got]
        latest += [c.latest for c in got]
    assert len(seen) == len(set(seen)) == total
    assert latest == sorted(latest, reverse=True)
    names = [c.patient for c in index.search(crit, "patient", False, 1, 100).cases]
    assert names == sorted(names)
    counts = [c.matching for c in index.search(crit, "visits", True, 1, 100).cases]
    assert counts == sorted(counts, reverse=True)


def test_resend_replaces_the_old_version_and_replays_are_ignored(docs):
    ix = CaseIndex()
    ix.apply(docs[:500])
    old = docs[10][1]
    assert ix.apply(docs[:500]) == 0                   # the same feed read again: no change
    changed = {**old, "x10": ["K35.8"], "s": "F", "t": "appendicitis"}
    assert ix.apply([(9_999, changed)]) == 1
    assert ix.size == 500
    hits = all_hits(ix, CaseQuery(text="appendicitis"))
    assert hits == {old["p"]: 1}
    assert ix.apply([(5, old)]) == 0                   # an older version arriving late loses
    assert all_hits(ix, CaseQuery(text="appendicitis")) == {old["p"]: 1}


def test_snapshot_round_trip_answers_the_same(docs, index):
    again = CaseIndex.from_bytes(index.to_bytes())
    assert again.size == index.size and again.position == index.position
    for q in QUERIES:
        assert all_hits(again, q) == all_hits(index, q)
    again.apply(docs[:50])                              # still idempotent after loading
    assert again.size == index.size


def test_code_and_description_resolution():
    ix = CaseIndex()
    ix.apply(random_docs(400, 100))
    terms = lambda field, value: {ix.vocab[field].terms[i]  # noqa: E731
                                  for i in resolve(CaseQuery(**{field: value}), ix).terms[field][0]}
    assert terms("icd10", "C50") == {"C50.9", "C50.1"}
    assert terms("icd10", "c50.9") == {"C50.9"}
    assert terms("icd10", "malignant breast") == {"C50.9", "C50.1"}
    assert terms("icd10", "pneumonia, appendicitis") == {"J18.9", "K35.8"}
    assert terms("icd9", "250") == {"250.00"}
    assert terms("icd9", "diabetes") == {"250.00"}
    assert terms("icd10", "no such disease") == set()


@pytest.mark.parametrize("bad", [dict(age_min=50, age_max=40), dict(age_min=-1),
                                 dict(date_from="2020-02-01", date_to="2020-01-01"),
                                 dict(per_page=1000), dict(sort="ssn"), dict(unknown="x"),
                                 dict(date_from="yesterday")])
def test_query_validation(bad):
    with pytest.raises(ValidationError):
        CaseQuery(**bad)


def test_feed_reader_continues_across_chunks(monkeypatch):
    store = MemoryStore()
    visits = sample_visits(30, seed=3)
    store.put_many("search", [feed_row(v, 1_700_000_000_000 + i // 7) for i, v in enumerate(visits)])
    monkeypatch.setattr(feed, "CHUNK", 4)
    ix = CaseIndex()
    assert feed.catch_up(ix, store) == 30
    assert ix.size == 30 and ix.position == 1_700_000_000_000 + 29 // 7
    assert feed.catch_up(ix, store) == 0               # overlap re-read, nothing new


def test_search_document_has_no_more_than_the_visit():
    v = sample_visit()
    doc = search_document(v)
    assert doc["p"] == v.patient_id and doc["x10"] == ["I10"]
    assert doc["x9"] == [["250.00", "Diabetes mellitus"]] and "no acute findings" in doc["t"]


@pytest.fixture()
def portal_client():
    with fast_hashing():
        store = MemoryStore()
        app = portal_app({"tea": "teacher"}, "pw-123456", store)
        visits = sample_visits(60, seed=5) + [sample_visit()]
        store.put_many("search", [feed_row(v, 1_700_000_000_000 + i) for i, v in enumerate(visits)])
        c = TestClient(app)
        assert login(c, "tea", "pw-123456").status_code == 303
        yield c, visits


def test_search_page_and_api(portal_client):
    c, visits = portal_client
    form = c.get("/search")
    assert form.status_code == 200 and '<label for="icd10">' in form.text
    assert 'id="results"' not in form.text             # no criteria: no result table
    r = c.get("/api/search", params={"icd10": "I10", "city": "wroclaw", "sex": "F"})
    assert r.status_code == 200
    body = r.json()
    assert body["total"] >= 1 and body["index"]["ready"]
    assert "RSABCDEFGHIJKLMNOP" in {case["patient"] for case in body["cases"]}
    page = c.get("/search", params={"icd10": "I10", "city": "wroclaw", "sex": "F", "age_min": ""})
    assert page.status_code == 200 and 'href="/cases/RSABCDEFGHIJKLMNOP"' in page.text
    assert 'aria-sort="descending"' in page.text


def test_search_refuses_bad_queries_precisely(portal_client):
    c, _ = portal_client
    r = c.get("/api/search", params={"age_min": "60", "age_max": "20"})
    assert r.status_code == 422 and "age_min is above age_max" in r.json()["detail"]
    assert c.get("/api/search").status_code == 422
    page = c.get("/search", params={"date_from": "not-a-date"})
    assert page.status_code == 422 and 'role="alert"' in page.text


def test_backfill_feeds_visits_stored_before_the_feed():
    from hl7_gateway.store_rows import visit_row
    from pacs_hdfs.containers import Location
    store = MemoryStore()
    visits = sample_visits(25, seed=9)
    where = Location("hl7/archive/x", 0, 1, "0" * 64)
    store.put_many("visit", [(v.visit_id.encode(), visit_row(v, where, "2024-01-01", []))
                             for v in visits])
    assert feed.backfill(store, batch=7) == 25
    ix = CaseIndex()
    feed.catch_up(ix, store)
    assert ix.size == 25
    assert {d.patient_id for d in visits} == set(ix.patients.vocab.terms)


def test_searches_stay_consistent_while_visits_arrive():
    """Readers never fail while a writer adds patients, segments and merges."""
    import threading
    docs = random_docs(6000, 3000, seed=21)
    ix = CaseIndex()
    ix.apply(docs[:200])
    errors, done = [], threading.Event()

    def reader():
        q = CaseQuery(sex="F")
        while not done.is_set():
            try:
                page = ix.search(resolve(q, ix), "patient", False, 1, 20)
                assert page.total >= len(page.cases)
            except Exception as exc:  # noqa: BLE001 - collected for the assertion below
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for k in range(200, len(docs), 100):
        ix.apply(docs[k:k + 100])
    done.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert all_hits(ix, CaseQuery(sex="F")) == brute(docs, CaseQuery(sex="F"))


def test_a_failing_snapshot_is_not_retried_on_every_poll(monkeypatch):
    class BrokenHdfs:
        writes = 0

        def write(self, *a, **k):
            BrokenHdfs.writes += 1
            raise OSError("no space left")

    store = MemoryStore()
    store.put_many("search", [feed_row(v, 1_700_000_000_000 + i)
                              for i, v in enumerate(sample_visits(30, seed=4))])
    monkeypatch.setattr(feed, "LONG_REPLAY", 10)
    live = feed.LiveIndex(Settings(), hbase=store, hdfs=BrokenHdfs())
    assert live.refresh() == 30              # served from memory although the snapshot failed
    live.refresh()
    live.refresh()
    assert BrokenHdfs.writes == 1 and live.index.size == 30
