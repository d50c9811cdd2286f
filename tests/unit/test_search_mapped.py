"""The shared, memory-mapped case index answers exactly as the in-memory ``CaseIndex``
(totals, visits matched, pages in every sort order, summaries), also after merges, re-sent
visits and a restarted indexer (so does the Tantivy candidate it was measured against); only
one indexer may write; a reader in another process follows the indexer's commits."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from portal.search.index import CaseIndex
from portal.search.mapped import IndexBusy, MappedIndex, MappedIndexer
from portal.search.query import CaseQuery, resolve
from tests.unit.test_portal_search import QUERIES, brute, random_docs


@pytest.fixture(scope="module")
def docs():
    return random_docs(3000, 700)


def engine(name: str):
    """(indexer factory, reader factory): the chosen engine, or the Tantivy candidate that
    benchmarks/portal/bench_engines.py measures against it (same answers required)."""
    if name == "mapped":
        return MappedIndexer, MappedIndex
    pytest.importorskip("tantivy", reason="the Tantivy candidate needs the test extras")
    from benchmarks.portal.tantivy_engine import Indexer, Reader
    return Indexer, Reader


@pytest.fixture(scope="module", params=["mapped", "tantivy"])
def both(request, docs, tmp_path_factory):
    indexer, reader = engine(request.param)
    directory = tmp_path_factory.mktemp(request.param)
    ix, writer = CaseIndex(), indexer(directory)
    for k in range(0, 1500, 250):                       # several segments, then merges
        ix.apply(docs[k:k + 250])
        writer.apply(docs[k:k + 250])
    writer.close()
    writer = indexer(directory)                         # a restarted indexer goes on
    for k in range(1500, len(docs), 250):
        ix.apply(docs[k:k + 250])
        writer.apply(docs[k:k + 250])
    writer.close()
    return ix, reader(directory)


def page(index, q: CaseQuery, sort="latest", descending=True, number=1, per_page=20):
    return index.search(resolve(q, index), sort, descending, number, per_page)


@pytest.mark.parametrize("q", QUERIES, ids=[str(i) for i in range(len(QUERIES))])
def test_same_answers_as_the_in_memory_index(docs, both, q):
    ix, shared = both
    for sort in ("latest", "visits", "age", "patient"):
        for descending in (True, False):
            a = page(ix, q, sort, descending, 2, 7)
            b = page(shared, q, sort, descending, 2, 7)
            assert (b.total, b.visits_matched, b.cases) == (a.total, a.visits_matched, a.cases)
    assert page(shared, q, per_page=100).total == len(brute(docs, q))


def test_resend_replaces_and_replays_are_ignored(docs, tmp_path):
    w = MappedIndexer(tmp_path)
    w.apply(docs[:500])
    assert w.apply(docs[:500]) == 0
    old = docs[10][1]
    assert w.apply([(9_999, {**old, "x10": ["K35.8"], "t": "appendicitis"})]) == 1
    assert w.apply([(5, old)]) == 0                     # an older version arriving late loses
    r = MappedIndex(tmp_path)
    assert r.size == 500 and r.position == 9_999
    got = page(r, CaseQuery(text="appendicitis"))
    assert [(c.patient, c.matching) for c in got.cases] == [(old["p"], 1)]
    with pytest.raises(TypeError):
        r.apply(docs[:1])


def test_one_indexer_at_a_time(docs, tmp_path):
    w = MappedIndexer(tmp_path)
    w.apply(docs[:100])
    with pytest.raises(IndexBusy):
        MappedIndexer(tmp_path)
    w.close()
    again = MappedIndexer(tmp_path)
    assert again.position == max(r for r, _ in docs[:100]) and again.ix.size == 100


def test_a_reader_in_another_process_follows_commits(docs, tmp_path):
    w = MappedIndexer(tmp_path)
    w.apply(docs[:50])
    script = textwrap.dedent(f"""
        import sys, time
        from portal.search.mapped import MappedIndex
        r = MappedIndex({str(tmp_path)!r})
        print(r.size, flush=True)
        sys.stdin.readline()
        deadline = time.time() + 10
        while not r.refresh() and time.time() < deadline:
            time.sleep(0.05)
        print(r.size, len(r.patients.vocab), flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "50"
    for k in range(50, 1050, 100):                     # new segments, merges
        w.apply(docs[k:k + 100])
    proc.stdin.write("go\n")
    proc.stdin.flush()
    patients = len({d["p"] for _, d in docs[:1050]})
    assert proc.stdout.readline().split() == ["1050", str(patients)]
    assert proc.wait(10) == 0


def test_one_process_indexes_the_feed_and_another_only_reads(tmp_path):
    from hl7_gateway.hospital.samples import sample_visits
    from hl7_gateway.store_rows import feed_row
    from pacs_hdfs.settings import Settings
    from portal.search.service import SharedSearch
    from tests.memory_store import MemoryStore
    store = MemoryStore()
    visits = sample_visits(30, seed=3)
    store.put_many("search", [feed_row(v, 1_700_000_000_000 + i) for i, v in enumerate(visits[:20])])
    first = SharedSearch(Settings(), hbase=store, directory=tmp_path, poll_s=0.05).start()
    second = SharedSearch(Settings(), hbase=store, directory=tmp_path, poll_s=0.05).start()
    try:
        assert first.ready.wait(10) and second.ready.wait(10)
        assert {first.status()["role"], second.status()["role"]} == {"indexer", "reader"}
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
        assert second.status()["patients"] == len({v.patient_id for v in visits})
    finally:
        first.stop()
        second.stop()


def test_an_index_written_before_epochs_existed_still_opens(docs, tmp_path):
    import json
    w = MappedIndexer(tmp_path)
    w.apply(docs[:20])
    w.close()
    manifest = tmp_path / "manifest.json"
    m = json.loads(manifest.read_text())
    del m["epoch"]
    manifest.write_text(json.dumps(m))
    r = MappedIndex(tmp_path)
    w = MappedIndexer(tmp_path)
    w.apply(docs[20:30])
    assert r.refresh() and r.size == 30 and not r.stale
