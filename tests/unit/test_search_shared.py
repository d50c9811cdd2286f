"""The shared (Tantivy) case index answers exactly as the in-memory ``CaseIndex``: totals,
visits matched, every page in every sort order, case summaries; re-sent visits replace older
versions; only one indexer may write; a reader in another process sees new commits."""
from __future__ import annotations

import subprocess
import time
import sys
import textwrap

import pytest

from portal.search.index import CaseIndex
from portal.search.query import CaseQuery, resolve
from portal.search.shared import Indexer, IndexBusy, Reader
from tests.unit.test_portal_search import QUERIES, brute, random_docs


@pytest.fixture(scope="module")
def docs():
    return random_docs(3000, 700)


@pytest.fixture(scope="module")
def both(docs, tmp_path_factory):
    directory = tmp_path_factory.mktemp("shared")
    ix, writer = CaseIndex(), Indexer(directory)
    for k in range(0, len(docs), 250):
        ix.apply(docs[k:k + 250])
        writer.apply(docs[k:k + 250])
    writer.close()
    return ix, Reader(directory)


def page(index, q: CaseQuery, sort="latest", descending=True, number=1, per_page=20):
    return index.search(resolve(q, index), sort, descending, number, per_page)


@pytest.mark.parametrize("q", QUERIES, ids=[str(i) for i in range(len(QUERIES))])
def test_same_answers_as_the_in_memory_index(docs, both, q):
    ix, shared = both
    for sort in ("latest", "visits", "age", "patient"):
        for descending in (True, False):
            a = page(ix, q, sort, descending, 2, 7)
            b = page(shared, q, sort, descending, 2, 7)
            assert (b.total, b.visits_matched) == (a.total, a.visits_matched)
            assert b.cases == a.cases, (sort, descending)
    assert page(shared, q, per_page=100).total == len(brute(docs, q))


def test_resend_replaces_and_replays_are_ignored(docs, tmp_path):
    w = Indexer(tmp_path)
    w.apply(docs[:500])
    assert w.apply(docs[:500]) == 0
    old = docs[10][1]
    assert w.apply([(9_999, {**old, "x10": ["K35.8"], "t": "appendicitis"})]) == 1
    assert w.apply([(5, old)]) == 0                     # an older version arriving late loses
    r = Reader(tmp_path)
    assert r.size == 500
    got = page(r, CaseQuery(text="appendicitis"))
    assert [(c.patient, c.matching) for c in got.cases] == [(old["p"], 1)]


def test_one_indexer_at_a_time_and_position_survives(docs, tmp_path):
    w = Indexer(tmp_path)
    w.apply(docs[:100])
    with pytest.raises(IndexBusy):
        Indexer(tmp_path)
    w.close()
    del w
    again = Indexer(tmp_path)
    assert again.position == max(r for r, _ in docs[:100])


def test_a_reader_in_another_process_sees_new_commits(docs, tmp_path):
    w = Indexer(tmp_path)
    w.apply(docs[:50])
    script = textwrap.dedent(f"""
        import sys, time
        from portal.search.shared import Reader
        r = Reader({str(tmp_path)!r})
        print(r.size, flush=True)
        sys.stdin.readline()
        deadline = time.time() + 10
        while not r.refresh() and time.time() < deadline:
            time.sleep(0.05)
        print(r.size, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "50"
    w.apply(docs[50:80])
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "80"
    assert proc.wait(10) == 0


def test_patients_are_grouped_in_ranges_below_tantivys_bucket_limit(both, monkeypatch):
    from portal.search import shared
    ix, reader = both
    monkeypatch.setattr(shared, "GROUP", 97)           # 700 patients: 8 aggregations
    for q in (CaseQuery(sex="F"), CaseQuery(icd10="C50"), CaseQuery(text="pneum")):
        a, b = page(ix, q, "visits", True, 3, 20), page(reader, q, "visits", True, 3, 20)
        assert (b.total, b.visits_matched, b.cases) == (a.total, a.visits_matched, a.cases)


def test_one_process_indexes_the_feed_and_another_only_reads(tmp_path):
    from hl7_gateway.hospital.samples import sample_visits
    from hl7_gateway.store_rows import feed_row
    from pacs_hdfs.settings import Settings
    from portal.search.service import SharedSearch
    from tests.memory_store import MemoryStore
    store = MemoryStore()
    visits = sample_visits(30, seed=3)
    store.put_many("search", [feed_row(v, 1_700_000_000_000 + i) for i, v in enumerate(visits[:20])])
    first = SharedSearch(Settings(), hbase=store, directory=tmp_path, poll_s=0.05,
                         engine="tantivy").start()
    second = SharedSearch(Settings(), hbase=store, directory=tmp_path, poll_s=0.05,
                          engine="tantivy").start()
    try:
        assert first.ready.wait(10) and second.ready.wait(10)
        roles = {first.status()["role"], second.status()["role"]}
        assert roles == {"indexer", "reader"}
        assert second.index.size == first.index.size == 20
        store.put_many("search", [feed_row(v, 1_700_000_000_100 + i)
                                  for i, v in enumerate(visits[20:])])
        deadline = time.monotonic() + 5
        while second.index.size < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.index.size == 30
        q = CaseQuery(date_from=visits[25].admission.date(), date_to=visits[25].admission.date())
        found = second.index.search(resolve(q, second.index), per_page=100)
        assert visits[25].patient_id in {c.patient for c in found.cases}
        assert first.lag_metrics()["pacs_search_index_lag_seconds"][2][()] < 5
    finally:
        first.stop()
        second.stop()
