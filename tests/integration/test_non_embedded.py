"""`embedded = false` end to end, against the running embedded cluster treated as a real one.

The `pacs` commands run as a site would run them: PACS_EMBEDDED=false, no endpoint in the
settings, only HADOOP_CONF_DIR / HBASE_CONF_DIR / SPARK_CONF_DIR, here written from the embedded
cluster's own generated configuration ($PACS_HOME/conf/). They use a scratch HDFS root and
HBase table prefix (their own "site" on the shared cluster), so the embedded job runner never
sees their jobs. A `sitecustomize` on their path makes importing `deploy.supervisor` fail, so
any use of the embedded supervisor (the bug of issue 16) fails the test. The spark-defaults.conf
sets shuffle partitions to 5: the job's provenance must show the administrator's value.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parents[2]

BLOCKER = '''
import importlib.abc, sys
class _NoSupervisor(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "deploy.supervisor":
            raise ImportError("embedded = false must not use deploy.supervisor")
        return None
sys.meta_path.insert(0, _NoSupervisor())
'''


def _make_site(settings, base: Path, **extra: str):
    """Conf dirs written from the embedded cluster's, and the environment of a 'site' with its
    own HDFS root and table prefix; yields it, then drops what it stored."""
    conf = settings.path("conf")
    hadoop, hbase, spark, blocker = (base / d for d in ("hadoop", "hbase", "spark", "py"))
    for d in (hadoop, hbase, spark, blocker):
        d.mkdir()
    shutil.copy(conf / "namenode" / "core-site.xml", hadoop)
    shutil.copy(conf / "namenode" / "hdfs-site.xml", hadoop)
    shutil.copy(conf / "hbase-thrift" / "hbase-site.xml", hbase)
    (spark / "spark-defaults.conf").write_text(
        f"spark.master  {settings.spark_master}\nspark.sql.shuffle.partitions  5\n")
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    tag = secrets.token_hex(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACS_", "HADOOP_",
                                                                    "HBASE_", "SPARK_"))}
    env.update(PACS_EMBEDDED="false", PACS_HOME=str(base / "home"),
               HADOOP_CONF_DIR=str(hadoop), HBASE_CONF_DIR=str(hbase), SPARK_CONF_DIR=str(spark),
               PACS_HDFS_ROOT=f"/pacs-site-{tag}", PACS_HBASE_TABLE_PREFIX=f"site{tag}",
               PYTHONPATH=f"{blocker}:{REPO}", **extra)   # REPO: packages newer than the install
    yield env
    _stop_spawned_runner(Path(env["PACS_HOME"]))
    from pacs_hdfs.settings import Settings
    from pacs_hdfs.storage import drop_storage
    drop_storage(Settings(hdfs_root=env["PACS_HDFS_ROOT"],
                          hbase_table_prefix=env["PACS_HBASE_TABLE_PREFIX"]))


@pytest.fixture(scope="module")
def site(cluster, settings, tmp_path_factory):
    """Environment of a non-embedded 'site' on the running cluster; dropped afterwards."""
    yield from _make_site(settings, tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="module")
def shipping_site(cluster, settings, site, tmp_path_factory):
    """A site whose executors get the packed venv and our code zip, as on YARN. The archive is
    kept in the tests' home between runs (packing takes minutes; it is rebuilt only when the
    venv changes). The first site's warm runner is stopped first: it holds its Spark cores
    until its idle exit (15 min), and with the tests' own runner holding the rest, this site's
    job would wait that long for an executor."""
    _stop_spawned_runner(Path(site["PACS_HOME"]))
    yield from _make_site(settings, tmp_path_factory.mktemp("shipping"),
                          PACS_SPARK_SHIP_PYTHON="true",
                          PACS_SPARK_PYTHON_ARCHIVE=str(settings.path("data", "pacs-env.tar.gz")))


def _stop_spawned_runner(home: Path) -> None:
    try:
        pid = int((home / "run" / "job-runner.pid").read_text())
        if b"pacs.daemon=job-runner" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass


def pacs(env, *args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pacs_cli", *args], env=env, text=True,
                          capture_output=True, timeout=timeout, cwd=env["PACS_HOME"].rsplit(
                              "/", 1)[0])


def test_settings_come_from_the_conf_dirs(site, settings):
    out = subprocess.run([sys.executable, "-c", (
        "import json; from pacs_hdfs.settings import get_settings as g; s = g(); "
        "print(json.dumps({'fields': s.from_conf_dirs, 'embedded': s.embedded}, default=str))")],
        env=site, text=True, capture_output=True, timeout=60, check=True)
    got = json.loads(out.stdout)
    assert got["embedded"] is False
    assert got["fields"]["webhdfs_url"] == settings.webhdfs_url
    assert got["fields"]["namenode_rpc"] == settings.namenode_rpc
    assert got["fields"]["spark_master"] == settings.spark_master
    assert got["fields"]["thrift_port"] == settings.thrift_port


def test_doctor_before_init_names_what_to_do(site):
    out = pacs(site, "doctor", "--json", timeout=180)
    report = json.loads(out.stdout)
    failing = {c["name"]: c for c in report["checks"] if not c["ok"]}
    assert out.returncode == 1 and not report["ok"]
    assert set(failing) == {"hdfs-write", "hbase"}, failing
    assert failing["hbase"]["fix"] == "run `pacs init`"
    assert f"{site['PACS_HBASE_TABLE_PREFIX']}_jobs" in failing["hbase"]["detail"]


def test_init_and_a_job_run_without_the_supervisor(site):
    init = pacs(site, "init", "--json")
    assert init.returncode == 0, init.stderr[-2000:]
    t0 = time.monotonic()
    run = pacs(site, "job", "submit", "spark-selftest", "--n", "10000", "--wait", "--json")
    assert run.returncode == 0, run.stderr[-3000:]
    rec = json.loads(run.stdout)
    assert rec["state"] == "succeeded", rec["error"]
    assert rec["app_id"], "the job records its Spark application"
    result = json.loads(pacs(site, "job", "result", rec["id"]).stdout)
    assert result["numbers"]["sum"] == 10000 * 9999 // 2
    spark = result["provenance"]["spark"]
    assert spark["spark.sql.shuffle.partitions"] == "5", "spark-defaults.conf was overridden"
    print(f"non-embedded submit -> result (runner start included): "
          f"{time.monotonic() - t0:.1f} s")
    runner_log = Path(site["PACS_HOME"]) / "logs" / "job-runner.log"
    assert "deploy.supervisor" not in runner_log.read_text()


def test_status_and_list_answer(site):
    listed = pacs(site, "job", "list", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    job = json.loads(listed.stdout)[0]
    status = pacs(site, "job", "status", job["id"], "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["state"] == "succeeded"


def test_doctor_finds_the_cluster_healthy(site):
    assert pacs(site, "init").returncode == 0
    out = pacs(site, "doctor", "--json", timeout=180)
    report = json.loads(out.stdout)
    failing = [c for c in report["checks"] if not c["ok"]]
    assert out.returncode == 0 and report["ok"], failing
    names = {c["name"] for c in report["checks"]}
    assert {"webhdfs", "datanodes", "hdfs-write", "hbase", "spark"} <= names


def test_shipped_environment_runs_the_job(shipping_site):
    """What YARN executors get, checked on the standalone cluster: spark.archives with the
    packed venv (built and uploaded on first use), ./env/bin/python, our code as a zip."""
    assert pacs(shipping_site, "init").returncode == 0
    t0 = time.monotonic()
    run = pacs(shipping_site, "job", "submit", "spark-selftest", "--n", "5000", "--wait",
               "--json", timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]
    rec = json.loads(run.stdout)
    assert rec["state"] == "succeeded", rec["error"]
    spark = json.loads(pacs(shipping_site, "job", "result", rec["id"]).stdout)["provenance"]["spark"]
    assert spark["spark.executorEnv.PYSPARK_PYTHON"] == "./env/bin/python"
    assert "/env/pacs-env-" in spark["spark.archives"] and spark["spark.archives"].endswith("#env")
    print(f"shipped-environment job, submit -> result: {time.monotonic() - t0:.1f} s")
