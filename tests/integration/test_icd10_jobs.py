"""The five ICD-10 analyses as jobs on the embedded cluster, over visits on HDFS, checked against
DuckDB over the same Parquet files."""
from __future__ import annotations

import json
import uuid

import duckdb
import pytest

from analytics_jobs.icd10 import duckdb_sql
from analytics_jobs.icd10.generator import generate_visits
from analytics_jobs.icd10.upload import upload_dataset
from pacs_hdfs import clients

pytestmark = pytest.mark.cluster

PERIOD = {"from": "2023-03-01", "to": "2023-11-30"}
CODES = "II,E11,J18.9"


@pytest.fixture(scope="module")
def dataset(cluster, settings, tmp_path_factory):
    local = tmp_path_factory.mktemp("visits")
    generate_visits(local, 30_000, months=12, seed=7)
    root = f"tmp/icd10-{uuid.uuid4().hex}"
    upload_dataset(clients.hdfs(settings), local, root)
    yield local, root
    clients.hdfs(settings).delete(root, recursive=True)


@pytest.fixture(scope="module")
def service(cluster, settings):
    from analytics_jobs.service import JobService
    return JobService(settings)


CASES = [
    ("icd10-age", {"bins": "0,18,40,65,200"}, "duckdb_age_groups",
     lambda: dict(bins=[0, 18, 40, 65, 200])),
    ("icd10-sex", {}, "duckdb_sex_distribution", dict),
    ("icd10-cases", {"codes": CODES, "subperiods": "9"}, "duckdb_cases_over_time",
     lambda: dict(codes=CODES.split(","), n_subperiods=9)),
    ("icd10-abnormal-labs", {"codes": CODES}, "duckdb_abnormal_labs",
     lambda: dict(codes=CODES.split(","))),
    ("icd10-visit-duration", {"codes": CODES}, "duckdb_visit_duration",
     lambda: dict(codes=CODES.split(","))),
]


@pytest.mark.parametrize("kind,extra,duck,duck_args", CASES, ids=[c[0] for c in CASES])
def test_job_matches_duckdb(service, dataset, kind, extra, duck, duck_args):
    local, root = dataset
    rec = service.submit(kind, {"date_from": PERIOD["from"], "date_to": PERIOD["to"],
                                "source": root, **extra})
    done = service.wait(rec.id, timeout=300)
    assert done.state == "succeeded", done.error
    result = json.loads(service.artifact(rec.id))
    assert set(done.artifacts) >= {"result.json", "chart.png"}
    assert service.artifact(rec.id, "chart.png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["provenance"]["rows_in_input"] == 30_000
    assert "definitions" in result["numbers"]

    con = duckdb.connect()
    expected = getattr(duckdb_sql, duck)(con, duckdb_sql.parquet_source(str(local)),
                                         date_from=PERIOD["from"], date_to=PERIOD["to"],
                                         **duck_args())
    assert json.loads(json.dumps(expected, default=str)) == result["numbers"]


def test_unknown_code_text_is_refused_before_queueing(service):
    from pydantic import ValidationError
    with pytest.raises(ValidationError):
        service.submit("icd10-cases", {"date_from": "2023-01-01", "date_to": "2023-02-01",
                                       "codes": "text:no-such-disease-zzzz"})
