"""`search-rebuild` on the real cluster: the Spark job turns the stored visit Parquet into exactly
the documents the gateway's feed carries, and a live shared index is rebuilt from them and
swapped in (then still found by a search)."""
from __future__ import annotations

import secrets

import pytest

from analytics_jobs.context import JobContext
from analytics_jobs.jobs import JobRecord, JobStore, new_job_id
from analytics_jobs.kinds import kind_spec
from hl7_gateway.hospital.samples import demo_keys, sample_visits
from hl7_gateway.store import VisitStore
from hl7_gateway.store_rows import search_document
from pacs_hdfs import clients
from portal.search import rebuild
from portal.search.mapped import MappedIndex
from portal.search.query import CaseQuery, resolve

pytestmark = pytest.mark.cluster


def run_job(settings) -> dict:
    """The job kind's ``run`` on the cluster's Spark master, with a real job record and
    context (the way the job runner calls it; a runner started before this kind existed
    would not know it)."""
    hbase = clients.hbase(settings)
    store = JobStore(hbase)
    rec = JobRecord(id=new_job_id(), kind="search-rebuild", params={}, user="it")
    store.create(rec)
    spark = clients.spark_session(settings, app_name="search-rebuild-it")
    try:
        ctx = JobContext(rec, settings, clients.hdfs(settings), hbase, store,
                         spark_factory=lambda: spark)
        params_model, run = kind_spec("search-rebuild")
        return run(ctx, params_model())
    finally:
        spark.stop()


def test_spark_documents_equal_the_feed_and_the_rebuilt_index_is_swapped_in(
        cluster, settings, tmp_path):
    keys = demo_keys(f"rebuild-it-{secrets.token_hex(4)}")    # pseudonyms unique to this run
    visits = sample_visits(12, seed=17, keys=keys)
    VisitStore(settings).store(visits)
    result = run_job(settings)
    hdfs = clients.hdfs(settings)
    try:
        docs = [d for batch in rebuild.read_documents(hdfs, result["documents"],
                                                      result["received_ms"]) for d in batch]
        assert result["visits"] == len(docs) >= len(visits)
        by_id = {d["v"]: d for _, d in docs}
        for v in visits:
            assert by_id[v.visit_id] == search_document(v)

        live = tmp_path / "index"
        fresh = rebuild.build(tmp_path / "index.rebuild", [docs])
        swapped = rebuild.swap(live, fresh, clients.hbase(settings))
        assert swapped["position"] >= result["received_ms"]
        ix = MappedIndex(live)
        assert ix.size >= len(visits)
        target = visits[3]
        q = CaseQuery(sex=target.sex, date_from=target.admission.date(),
                      date_to=target.admission.date())
        assert target.patient_id in {c.patient for c in
                                     ix.search(resolve(q, ix), per_page=100).cases}
    finally:
        hdfs.delete(result["documents"], recursive=True)
