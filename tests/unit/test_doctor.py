"""`pacs doctor`'s judgements on recorded answers of the NameNode, Spark master and YARN RM,
and its reachability probe on real sockets (pacs_hdfs/doctor.py)."""
from __future__ import annotations

import socket

from pacs_hdfs.doctor import (judge_datanodes, judge_driver, judge_namenodes, judge_spark_master,
                              judge_tables, judge_yarn, tcp_reachable)


def dn(info: str, last: int = 0) -> dict:
    return {"infoAddr": info, "xferaddr": info.replace("98", "99"), "lastContact": last}


LIVE = {"w1:9866": dn("10.0.0.11:9864"), "w2:9866": dn("10.0.0.12:9864"),
        "w3:9866": dn("10.0.0.13:9864")}


def test_one_active_namenode_is_healthy_and_a_silent_standby_is_named():
    assert judge_namenodes({"http://m1:9870": "active", "http://m2:9870": "standby"}).ok
    c = judge_namenodes({"http://m1:9870": "active", "http://m2:9870": "unreachable (Timeout)"})
    assert not c.ok and "http://m2:9870" in c.detail and c.fix
    none = judge_namenodes({"http://m1:9870": "standby"})
    assert not none.ok and "0 active" in none.detail


def test_all_datanodes_live_and_reachable():
    c = judge_datanodes(LIVE, {}, 3, {})
    assert c.ok and c.detail == "3 live, 0 dead"


def test_a_cut_off_datanode_host_is_named():
    c = judge_datanodes(LIVE, {}, 3, {"w2:9866": "TimeoutError: timed out"})
    assert not c.ok
    assert "w2:9866" in c.detail and "10.0.0.12:9864" in c.detail and "WebHDFS" in c.fix
    assert "w1:9866" not in c.detail


def test_dead_stale_and_missing_datanodes_are_named():
    live = {**LIVE, "w3:9866": dn("10.0.0.13:9864", last=45)}
    c = judge_datanodes(live, {"w4:9866": {}}, 5, {})
    assert not c.ok
    assert "dead: w4:9866" in c.detail and "stale" in c.detail and "w3:9866" in c.detail
    assert "3 live of 5 expected" in c.detail


def test_missing_tables_say_run_init():
    c = judge_tables(["jobs", "studies"], ["jobs", "studies", "users"], "pacs")
    assert not c.ok and "pacs_users" in c.detail and c.fix == "run `pacs init`"
    assert judge_tables(["jobs"], ["jobs"], "pacs").ok


def test_spark_master_needs_a_live_worker():
    assert judge_spark_master({"url": "spark://m:7077", "status": "ALIVE", "aliveworkers": 2}).ok
    assert not judge_spark_master({"url": "spark://m:7077", "status": "ALIVE",
                                   "aliveworkers": 0}).ok
    assert not judge_spark_master({"url": "spark://m:7077", "status": "STANDBY"}).ok


def test_yarn_queue_and_nodes():
    queues = {"default": {"state": "RUNNING"}, "analytics": {"state": "STOPPED"}}
    ok = judge_yarn({"http://rm:8088": "ACTIVE"}, {"activeNodes": 3}, queues, "default")
    assert ok.ok and "3 NodeManager" in ok.detail
    missing = judge_yarn({"http://rm:8088": "ACTIVE"}, {"activeNodes": 3}, queues, "pacs")
    assert not missing.ok and "'pacs' does not exist" in missing.detail
    assert not judge_yarn({"http://rm:8088": "ACTIVE"}, {"activeNodes": 3}, queues,
                          "analytics").ok
    assert not judge_yarn({"http://rm:8088": "ACTIVE"}, {"activeNodes": 0}, queues,
                          "default").ok
    standby = judge_yarn({"http://rm1:8088": "STANDBY", "http://rm2:8088": "unreachable"},
                         None, {}, "default")
    assert not standby.ok and "rm2" in standby.detail


def test_loopback_driver_for_a_remote_cluster_fails():
    assert not judge_driver("127.0.0.1", "10.0.0.1").ok
    assert judge_driver("10.0.0.5", "10.0.0.1").ok and judge_driver("127.0.0.1", "127.0.0.1").ok


def test_reachability_probe_on_real_sockets():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        assert tcp_reachable(f"127.0.0.1:{srv.getsockname()[1]}") is None
        port = srv.getsockname()[1]
    assert "Refused" in (tcp_reachable(f"127.0.0.1:{port}") or "")
