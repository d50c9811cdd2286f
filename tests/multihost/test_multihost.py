"""The MDC on several hosts (issue 16 items 3 and 5): embedded = false on the service host, the
cluster on a master and two workers, jobs on YARN, every address a real, distinct one.

This namespace (10.77.0.1 on the bridge) plays the hospital and the users: the HAS syncs
visits to the gateway, a hospital edge receives DICOM by C-STORE and forwards it by STOW-RS
(mTLS) to the gateway, a teacher searches the portal. Jobs of every kind are submitted with
`pacs job submit` on the service host, whose runner's Spark driver gets executors from the
workers' NodeManagers. The tests run in file order and build on each other (the search needs
the synced visits); the last ones cut a worker off and check that `pacs doctor` names it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.multihost.topology import (GATEWAY_PORT, HOSTS, MASTER, PACS, PORTAL_PORT, SERVICE,
                                      WORKERS)

TIMINGS: dict[str, float] = {}
STATE: dict[str, object] = {}


def hospital_env(topology, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACS_", "HADOOP_"))}
    env.update(PACS_HOME=str(home), NO_PROXY="*", no_proxy="*", **extra)
    return env


def listeners(topology, host) -> set[str]:
    """Addresses of the TCP sockets listening in a host's namespace (from /proc/net/tcp)."""
    out = topology.run(host, "cat", "/proc/net/tcp").stdout.splitlines()[1:]
    found = set()
    for line in out:
        cols = line.split()
        if cols[3] == "0A":
            hexip = cols[1].split(":")[0]
            found.add(".".join(str(int(hexip[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


# --- the cluster across hosts ----------------------------------------------------------------

def test_yarn_config_binds_the_cluster_bind_address_and_names_the_rm():
    """Pure: every YARN listener binds cluster_bind; a NodeManager names itself by its own
    address and finds the ResourceManager where yarn_rm_url says (not on loopback)."""
    from deploy.configs import capacity_scheduler, yarn_site
    from deploy.daemons import daemon_table
    from pacs_hdfs.settings import Settings
    s = Settings(yarn=True, cluster_bind="10.11.12.13", yarn_rm_url="http://10.0.0.1:8088",
                 yarn_queue="mdc")
    y = yarn_site(s)
    assert y["yarn.resourcemanager.bind-host"] == y["yarn.nodemanager.bind-host"] == "10.11.12.13"
    assert all(v.startswith("10.11.12.13:") for k, v in y.items()
               if k.startswith("yarn.nodemanager.") and k.endswith(".address"))
    assert all(str(v).startswith("10.0.0.1") for k, v in y.items()
               if k.startswith("yarn.resourcemanager.") and k.endswith("address"))
    assert not [k for k, v in y.items() if "0.0.0.0" in str(v)]
    assert capacity_scheduler(s)["yarn.scheduler.capacity.root.queues"] == "mdc"
    names = [d.name for d in daemon_table(s)]
    assert "resourcemanager" in names and "nodemanager" in names
    assert "spark-master" not in names and "spark-worker" not in names
    assert "resourcemanager" not in [d.name for d in daemon_table(Settings())]


def test_every_listener_is_on_its_own_hosts_address(topology):
    for host in HOSTS:
        found = listeners(topology, host)
        assert host.address in found, f"{host.name} listens on nothing of its own: {found}"
        assert found <= {host.address, "127.0.0.1"}, f"{host.name}: {sorted(found)}"


def test_yarn_sees_both_workers(topology):
    from deploy.health import yarn_nodemanagers
    states = yarn_nodemanagers(topology.settings(MASTER))
    assert states and states.get("RUNNING") == len(WORKERS), states
    r = requests.get(f"http://{MASTER.address}:8088/ws/v1/cluster/nodes",
                     headers={"Accept": "application/json"}, timeout=10)
    hosts = {n["nodeHostName"] for n in r.json()["nodes"]["node"]}
    assert hosts == {w.name for w in WORKERS}, hosts      # named by /etc/netns/<ns>/hosts


def test_webhdfs_redirects_to_datanodes_on_their_own_hosts(topology):
    from hdfs import InsecureClient
    nn = f"http://{MASTER.address}:9870"
    client = InsecureClient(nn, user="pacs")
    path = f"/tmp/multihost-{uuid.uuid4().hex[:8]}"
    data = os.urandom(256 * 1024)
    client.write(path, data=data)
    try:
        r = requests.get(f"{nn}/webhdfs/v1{path}", params={"op": "OPEN", "user.name": "pacs"},
                         allow_redirects=False, timeout=10)
        assert r.status_code == 307
        worker = r.headers["Location"].split("//")[1].split(":")[0]
        assert worker in {w.address for w in WORKERS}
        with client.read(path) as f:
            assert f.read() == data
    finally:
        client.delete(path)


# --- ingest: HL7 gateway, DICOM by C-STORE -> edge -> STOW-RS -> MDC ------------------------------

def test_hl7_visits_synced_to_the_gateway_on_the_service_host(topology, tmp_path_factory):
    home = tmp_path_factory.mktemp("hospital")
    export = home / "export.jsonl"
    env = hospital_env(topology, home)
    subprocess.run([PACS, "has", "generate", "--patients", "20", "--visits", "80", "--out",
                    str(export), "--seed", "5"], env=env, check=True, capture_output=True,
                   timeout=300)
    t0 = time.monotonic()
    r = subprocess.run([PACS, "has", "sync", str(export), "--batch", "40", "--url",
                        f"https://{SERVICE.address}:{GATEWAY_PORT}", "--certs",
                        str(topology.certs_dir()), "--json"], env=env, capture_output=True,
                       text=True, timeout=600)
    TIMINGS["hl7_sync_80_s"] = round(time.monotonic() - t0, 1)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    from pacs_hdfs import clients
    rows = clients.hbase(topology.settings(SERVICE)).scan("visit", columns=[b"v:json"],
                                                          limit=1000)
    assert len(rows) >= 80, len(rows)


@pytest.fixture(scope="module")
def edge(topology, tmp_path_factory):
    """A hospital edge in this namespace, forwarding to the gateway on the service host."""
    from hl7_gateway.certs import issue_edge_cert
    from tests.portal_support import free_port
    d = tmp_path_factory.mktemp("edge")
    cert = issue_edge_cert(topology.certs_dir(), "mh-edge")
    port = free_port()
    env = hospital_env(topology, d / "home", PACS_EDGE_NAME="mh-edge",
                       PACS_EDGE_PORT=str(port), PACS_EDGE_BIND="127.0.0.1",
                       PACS_EDGE_AE_TITLE="PACS",
                       PACS_EDGE_MDC_URL=f"https://{SERVICE.address}:{GATEWAY_PORT}",
                       PACS_EDGE_CLIENT_CERT=str(cert.cert), PACS_EDGE_CLIENT_KEY=str(cert.key),
                       PACS_EDGE_MDC_CA=str(cert.ca_cert), PACS_EDGE_REVIEW_PORT="0",
                       PACS_EDGE_LOG=str(d / "edge.log"), PACS_EDGE_WORKERS="0")
    proc = subprocess.Popen([PACS, "edge"], env=env, stdout=open(d / "edge.out", "ab"),
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while subprocess.run(["echoscu", "-aec", "PACS", "127.0.0.1", str(port)],
                             capture_output=True).returncode != 0:
            assert proc.poll() is None, (d / "edge.out").read_text()[-3000:]
            assert time.monotonic() < deadline, "edge did not answer"
            time.sleep(0.5)
        yield {"port": port, "home": d / "home", "dir": d}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_dicom_through_edge_and_stow_to_the_service_host(topology, edge, tmp_path):
    assert shutil.which("storescu"), "dcmtk's storescu is needed (make system installs dcmtk)"
    from tests.integration.dicom_support import fresh_copy
    files = [fresh_copy("CT_small.dcm", tmp_path)[0] for _ in range(3)]
    t0 = time.monotonic()
    r = subprocess.run(["storescu", "-aec", "PACS", "127.0.0.1", str(edge["port"]),
                        *map(str, files)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Store Failed" not in r.stderr, r.stderr[-2000:]
    spool = edge["home"] / "hospital" / "edge" / "spool"
    deadline = time.monotonic() + 180
    while any(spool.glob("*.dcm")):
        assert time.monotonic() < deadline, "the edge did not forward to the MDC"
        time.sleep(0.5)
    TIMINGS["dicom_3_objects_s"] = round(time.monotonic() - t0, 1)
    log = (topology.home(SERVICE) / "logs" / "gateway.log").read_text(errors="replace")
    assert "stow" in log.lower(), log[-2000:]


def test_mdc_dimse_answers_across_hosts_and_keeps_its_allow_list(topology):
    """The MDC's DIMSE service listens on the service host's address and answers from another
    host; a caller from off-host is refused unless allowed with its address over TLS
    (pacs_hdfs/dicom/config.py), which holds across hosts as on one."""
    r = subprocess.run(["echoscu", "-aet", "FINDSCU", "-aec", "MDC", SERVICE.address,
                        str(topology.settings(SERVICE).mdc_dimse_port)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "Calling AE Title Not Recognized" in r.stderr, r.stderr


# --- jobs on YARN --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def visits_on_hdfs(topology, tmp_path_factory):
    from analytics_jobs.icd10.generator import generate_visits
    from analytics_jobs.icd10.upload import upload_dataset
    from pacs_hdfs import clients
    local = tmp_path_factory.mktemp("visits")
    generate_visits(local, 5_000, months=12, seed=7)
    root = f"tmp/icd10-mh-{uuid.uuid4().hex[:8]}"
    upload_dataset(clients.hdfs(topology.settings(SERVICE)), local, root)
    return root


@pytest.fixture(scope="module")
def projections_on_hdfs(topology):
    from pacs_hdfs import clients
    from recon_mapreduce import phantom, projection_store
    from recon_mapreduce.geometry import ConeBeamGeometry
    hdfs = clients.hdfs(topology.settings(SERVICE))
    directory = f"tmp/recon-mh-{uuid.uuid4().hex[:8]}"
    geom = ConeBeamGeometry.for_volume(24, 32, detector_shape=(32, 40))
    projections = phantom.project(phantom.shepp_logan_ellipsoids(geom), geom)
    projection_store.write_projections(hdfs, directory, projections, geom, band_size=8)
    return directory


def submit(topology, kind: str, *args: str, timeout: float = 900) -> dict:
    t0 = time.monotonic()
    r = topology.pacs(SERVICE, "job", "submit", kind, *args, "--wait", "--json",
                      check=False, timeout=timeout)
    TIMINGS[f"job_{kind}_s"] = round(time.monotonic() - t0, 1)
    assert r.returncode == 0, f"{kind}: {r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    rec = json.loads(r.stdout)
    assert rec["state"] == "succeeded", rec
    return rec


def test_selftest_job_runs_on_yarn_executors_on_the_workers(topology):
    rec = submit(topology, "spark-selftest", "--n", "2000", "--partitions", "4")
    out = topology.pacs(SERVICE, "job", "result", rec["id"]).stdout
    result = json.loads(out)
    assert result["numbers"]["sum"] == 2000 * 1999 // 2
    assert result["provenance"]["spark"]["spark.master"] == "yarn"


PERIOD = ("--date-from", "2023-01-01", "--date-to", "2023-12-31")
ICD10_JOBS = [("icd10-age", ("--bins", "0,18,40,65,200")), ("icd10-sex", ()),
              ("icd10-cases", ("--codes", "E11,J18.9", "--subperiods", "4")),
              ("icd10-abnormal-labs", ("--codes", "E11,J18.9")),
              ("icd10-visit-duration", ("--codes", "E11,J18.9"))]


@pytest.mark.parametrize("kind,extra", ICD10_JOBS, ids=[k for k, _ in ICD10_JOBS])
def test_icd10_job_on_yarn(topology, visits_on_hdfs, kind, extra):
    rec = submit(topology, kind, *PERIOD, "--source", visits_on_hdfs, *extra)
    result = json.loads(topology.pacs(SERVICE, "job", "result", rec["id"]).stdout)
    assert result["provenance"]["rows_in_input"] > 0


def test_fdk_job_on_yarn(topology, projections_on_hdfs):
    rec = submit(topology, "fdk", "--projections", projections_on_hdfs, "--size", "24",
                 "--band-rows", "8", "--slab-size", "8", "--angle-chunk", "4")
    assert "result.json" in rec.get("artifacts", {}) or rec["state"] == "succeeded"


def test_scc_sweep_job_on_yarn(topology):
    rec = submit(topology, "scc-sweep", "--inputs", "16", "--outputs", "16", "--pairs", "2",
                 "--seed", "7")
    assert rec["state"] == "succeeded"


# --- the portal -------------------------------------------------------------------------------

def test_portal_search_on_the_service_host_finds_synced_visits(topology, tmp_path):
    from tests.portal_doubles import LOGIN_TOKEN
    name, password = f"mh-teacher-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    pw = tmp_path / "pw"
    pw.write_text(password)
    topology.pacs(SERVICE, "user", "add", name, "--role", "teacher", "--password-file", str(pw))
    base = f"http://{SERVICE.address}:{PORTAL_PORT}"
    s = requests.Session()
    s.trust_env = False
    token = LOGIN_TOKEN.search(s.get(f"{base}/login", timeout=30).text).group(1)
    r = s.post(f"{base}/login", data={"username": name, "password": password,
                                      "csrf_token": token, "next": "/"},
               allow_redirects=False, timeout=60)
    assert r.status_code == 303, r.text[:500]
    deadline = time.monotonic() + 180
    while True:          # the portal's index follows the HBase feed; give it a few refreshes
        r = s.get(f"{base}/api/search", params={"date_from": "1990-01-01"}, timeout=60)
        assert r.status_code == 200, r.text[:500]
        if r.json()["total"] > 0:
            break
        assert time.monotonic() < deadline, f"no synced visit found: {r.json()}"
        time.sleep(3)


# --- pacs doctor: healthy, then a worker cut off ----------------------------------------------------

def doctor(topology) -> tuple[int, str]:
    r = topology.pacs(SERVICE, "doctor", "--json", check=False, timeout=300)
    return r.returncode, r.stdout + r.stderr


def test_doctor_reports_the_topology_healthy(topology):
    rc, out = doctor(topology)
    assert rc == 0, out[-4000:]


def test_doctor_names_the_worker_that_is_cut_off(topology):
    cut = WORKERS[-1]
    topology.cut(cut)
    try:
        deadline = time.monotonic() + 120
        while True:       # the NameNode marks it dead, the RM lost, after missed heartbeats
            rc, out = doctor(topology)
            if rc != 0 and (cut.address in out or cut.name in out):
                break
            assert time.monotonic() < deadline, f"doctor did not name {cut.name}: {out[-3000:]}"
            time.sleep(5)
    finally:
        topology.heal(cut)


def test_timings_recorded(topology):
    topology.timings.update(TIMINGS)
    print(json.dumps(topology.timings, indent=1), file=sys.stderr)
