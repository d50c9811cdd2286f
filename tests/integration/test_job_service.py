"""The job service on the real cluster: submit -> warm runner on Spark -> result on HDFS,
status/list in HBase, failure reasons, cancel."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def service(cluster, settings):
    from analytics_jobs.service import JobService
    return JobService(settings)


def test_submit_runs_on_spark_and_stores_result(service):
    rec = service.submit("spark-selftest", {"n": "10000", "partitions": "4"})
    assert rec.state == "queued"
    done = service.wait(rec.id, timeout=300)
    assert done.state == "succeeded", done.error
    result = json.loads(service.artifact(rec.id, "result.json"))
    assert result["numbers"]["sum"] == 10000 * 9999 // 2
    assert result["provenance"]["spark"]["spark.master"].startswith("spark://")
    assert done.result_path.startswith("/pacs/jobs/")
    assert rec.id in [r.id for r in service.list(10)]


def test_warm_runner_answers_a_small_job_fast(service):
    service.wait(service.submit("spark-selftest", {"n": "100"}).id, timeout=300)  # warm
    t0 = time.monotonic()
    done = service.wait(service.submit("spark-selftest", {"n": "1000"}).id, timeout=120)
    assert done.state == "succeeded"
    assert time.monotonic() - t0 < 20, "submit-to-result must not pay a fresh Spark session"


def test_invalid_parameters_are_refused_before_queueing(service):
    from pydantic import ValidationError
    with pytest.raises(ValidationError):
        service.submit("spark-selftest", {"n": "-5"})


def test_cancel_running_job(service):
    rec = service.submit("spark-selftest", {"n": "100", "partitions": "2", "sleep_s": "60"})
    deadline = time.monotonic() + 120
    while service.status(rec.id).state != "running":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    time.sleep(2)
    service.cancel(rec.id)
    done = service.wait(rec.id, timeout=90)
    assert done.state == "cancelled"


def test_cli_submit_wait_json(cluster):
    out = subprocess.run([sys.executable, "-m", "pacs_cli", "job", "submit", "spark-selftest",
                          "--n", "500", "--wait", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)
    assert rec["state"] == "succeeded" and rec["params"]["n"] == 500
    bad = subprocess.run([sys.executable, "-m", "pacs_cli", "job", "submit", "no-such-kind"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown job kind" in bad.stderr


def test_job_states_for_metrics_count_every_job_once(service):
    """`pacs_jobs{kind,state}` of the runner's /metrics (read at scrape from the job table)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from pacs_hdfs.metrics import ReadAtScrape
    before = service.store.state_counts()
    done = service.wait(service.submit("spark-selftest", {"n": "100"}).id, timeout=300)
    assert done.state == "succeeded"
    after = service.store.state_counts()
    assert after[("spark-selftest", "succeeded")] == before.get(
        ("spark-selftest", "succeeded"), 0) + 1
    assert sum(after.values()) == len(service.store.list(100_000))
    registry = CollectorRegistry()
    registry.register(ReadAtScrape(lambda: {"pacs_jobs": (
        "jobs by kind and state", ("kind", "state"), service.store.state_counts())}))
    text = generate_latest(registry).decode()
    assert 'pacs_jobs{kind="spark-selftest",state="succeeded"}' in text
