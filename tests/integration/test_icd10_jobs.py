"""The five ICD-10 analyses as jobs on the embedded cluster, over visits on HDFS, checked against
DuckDB over the same Parquet files."""
from __future__ import annotations

import json
import uuid

import duckdb
import pytest

from analytics_jobs.icd10 import duckdb_sql, stay_index
from analytics_jobs.icd10.generator import generate_visits
from analytics_jobs.icd10.period import Period
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


@pytest.mark.parametrize("rule", ["overlap", "admitted"])
@pytest.mark.parametrize("kind,extra,duck,duck_args", CASES, ids=[c[0] for c in CASES])
def test_job_matches_duckdb(service, dataset, kind, extra, duck, duck_args, rule):
    """Both period rules; the job prunes months with the stay index, DuckDB scans them all."""
    local, root = dataset
    rec = service.submit(kind, {"date_from": PERIOD["from"], "date_to": PERIOD["to"],
                                "source": root, "period_rule": rule, **extra})
    done = service.wait(rec.id, timeout=1200)   # the shared runner may be busy with other jobs
    assert done.state == "succeeded", done.error
    result = json.loads(service.artifact(rec.id))
    assert set(done.artifacts) >= {"result.json", "chart.png"}
    assert service.artifact(rec.id, "chart.png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["provenance"]["rows_in_input"] == 30_000
    assert "definitions" in result["numbers"]
    assert result["parameters"]["period_rule"] == rule == result["numbers"]["period"]["rule"]
    months = result["provenance"]["months_read"]
    # admitted: March..November; overlap: also the earlier months whose long stays reach March
    index = stay_index.local_index(local)
    assert months == stay_index.months_to_read(sorted(index), index, Period.of(PERIOD["from"], PERIOD["to"]), rule)
    assert months[-1] == "2023-11" and (months[0] < "2023-03" if rule == "overlap" else months[0] == "2023-03")

    con = duckdb.connect()
    expected = getattr(duckdb_sql, duck)(con, duckdb_sql.parquet_source(str(local)),
                                         date_from=PERIOD["from"], date_to=PERIOD["to"],
                                         rule=rule, **duck_args())
    assert json.loads(json.dumps(expected, default=str)) == result["numbers"]


def test_period_rule_defaults_to_overlap_and_is_validated(service):
    from analytics_jobs.kinds import validate_params
    from pydantic import ValidationError
    params = validate_params("icd10-sex", {"date_from": "2023-01-01", "date_to": "2023-02-01"})
    assert params["period_rule"] == "overlap"
    with pytest.raises(ValidationError):
        validate_params("icd10-sex", {"date_from": "2023-01-01", "date_to": "2023-02-01",
                                      "period_rule": "discharged"})


def test_stay_index_over_webhdfs_equals_the_local_footers(dataset, settings):
    local, root = dataset
    fs = clients.hdfs(settings)
    files = [f for d in fs.list_status(root) for f in fs.list_status(d.path)]
    assert stay_index.hdfs_index(fs, files) == stay_index.local_index(local)
    assert stay_index.hdfs_index(fs, files, {"2023-01"}) == {"2023-01": stay_index.local_index(local)["2023-01"]}


def test_unknown_code_text_is_refused_before_queueing(service):
    from pydantic import ValidationError
    with pytest.raises(ValidationError):
        service.submit("icd10-cases", {"date_from": "2023-01-01", "date_to": "2023-02-01",
                                       "codes": "text:no-such-disease-zzzz"})
