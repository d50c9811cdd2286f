"""The foundation against the real daemons: HDFS, HBase (Thrift), Spark standalone."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from pacs_hdfs import clients
from pacs_hdfs.containers import ContainerWriter, read_object
from pacs_hdfs.rows import instance
from pacs_hdfs.schema import row_key

pytestmark = pytest.mark.cluster


def _wait_live_datanodes(sup, n: int, timeout: float = 60) -> None:
    from deploy.health import hdfs_health
    deadline = time.monotonic() + timeout
    while hdfs_health(sup.s).live_datanodes != n:
        assert time.monotonic() < deadline, f"expected {n} live DataNodes"
        time.sleep(0.5)


def test_status_json_reports_healthy_cluster(cluster, settings):
    out = subprocess.run([sys.executable, "-m", "pacs_cli", "cluster", "status", "--json"],
                         capture_output=True, text=True, timeout=60, env=os.environ.copy())
    status = json.loads(out.stdout)
    assert out.returncode == 0, out.stderr
    assert status["healthy"] is True
    assert status["hdfs"]["live_datanodes"] == settings.datanodes
    assert {d["name"] for d in status["daemons"] if d["alive"]} >= {
        "namenode", "datanode-1", "zookeeper", "hbase-master", "hbase-regionserver",
        "hbase-thrift", "spark-master", "spark-worker"}


def test_hdfs_round_trip_is_replicated_on_distinct_datanodes(cluster, settings):
    fs = clients.hdfs(settings)
    path = f"tmp/roundtrip-{uuid.uuid4().hex}.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    fs.write(path, data)
    assert fs.read(path) == data
    info = fs.info(path)
    assert info.length == len(data)
    assert info.replication == settings.effective_replication == 3
    for replicas in fs.block_locations(path):
        assert len(set(replicas)) == 3, replicas
    fs.delete(path)


def test_read_survives_a_stopped_datanode(cluster, settings):
    fs = clients.hdfs(settings)
    path = f"tmp/survive-{uuid.uuid4().hex}.bin"
    data = os.urandom(2 * 1024 * 1024)
    fs.write(path, data)
    victim = "datanode-2"
    assert cluster.stop_daemon(victim)
    try:
        for _ in range(5):  # several reads: each may be redirected to any replica
            assert fs.read(path) == data
        assert fs.read(path, offset=1000, length=5000) == data[1000:6000]
    finally:
        cluster.start_daemon(victim)
        _wait_live_datanodes(cluster, settings.datanodes)
    fs.delete(path)


def test_batch_file_ranged_read_and_manifest_match_index(cluster, settings):
    from pacs_hdfs.containers import read_manifest
    fs, hb = clients.hdfs(settings), clients.hbase(settings)
    directory = f"tmp/containers/{uuid.uuid4().hex}"
    writer = ContainerWriter(fs, writer="test")
    blobs = [os.urandom(n) for n in (1000, 250_000, 1, 512 * 1024)]
    locations = writer.write(directory, [(f"k{i}", b) for i, b in enumerate(blobs)])
    # One new immutable file for the batch, objects back to back, then the manifest footer.
    assert len({loc.path for loc in locations}) == 1
    assert [loc.offset for loc in locations] == [0, 1000, 251_000, 251_001]
    study = f"2.25.{uuid.uuid4().int}"
    for i, loc in enumerate(locations):
        hb.put("instance", row_key(study, "1", str(i)), instance.encode_location(loc))
    for i, blob in enumerate(blobs):
        row = hb.get("instance", row_key(study, "1", str(i)))
        loc = instance.location(row)
        data = read_object(fs, loc)
        assert hashlib.sha256(data).hexdigest() == loc.sha256 == hashlib.sha256(blob).hexdigest()
    manifest = read_manifest(fs, locations[0].path)
    assert [(e.key, e.offset, e.length, e.sha256) for e in manifest] == [
        (f"k{i}", loc.offset, loc.length, loc.sha256) for i, loc in enumerate(locations)]
    assert fs.info(locations[0].path).length > sum(map(len, blobs))  # + footer
    # A second batch never touches the first file: a new name.
    again = writer.put(directory, b"x" * 10)
    assert again.path != locations[0].path and again.offset == 0
    fs.delete(directory, recursive=True)


def test_hbase_put_get_scan_through_thrift(cluster, settings):
    hb = clients.hbase(settings)
    prefix = f"test-{uuid.uuid4().hex}".encode()
    rows = [(prefix + b"/%03d" % i, {b"j:n": str(i).encode()}) for i in range(50)]
    hb.put_many("jobs", rows)
    assert hb.get("jobs", prefix + b"/007") == {b"j:n": b"7"}
    scanned = hb.scan("jobs", row_prefix=prefix)
    assert [k for k, _ in scanned] == [k for k, _ in rows]
    assert hb.scan("jobs", row_prefix=prefix, limit=5)[-1][0] == prefix + b"/004"
    for k, _ in rows:
        hb.delete("jobs", k)
    assert hb.scan("jobs", row_prefix=prefix) == []


def test_spark_standalone_reads_parquet_from_hdfs(cluster, settings):
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs = clients.hdfs(settings)
    path = f"tmp/spark-{uuid.uuid4().hex}/part-0.parquet"
    table = pa.table({"k": [i % 7 for i in range(10_000)], "v": list(range(10_000))})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    fs.write(path, sink.getvalue().to_pybytes())

    spark = clients.spark_session(settings, app_name="test-foundation")
    try:
        assert spark.sparkContext.master == settings.spark_master
        df = spark.read.parquet(fs.url(path.rsplit("/", 1)[0]))
        got = {r["k"]: r["s"] for r in df.groupBy("k").sum("v").withColumnRenamed(
            "sum(v)", "s").collect()}
    finally:
        spark.stop()
    expected = {k: sum(v for v in range(10_000) if v % 7 == k) for k in range(7)}
    assert got == expected
    fs.delete(path.rsplit("/", 1)[0], recursive=True)
