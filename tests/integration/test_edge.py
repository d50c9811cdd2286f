"""`pacs edge` as a process: dcmtk `storescu` -> edge -> spool -> STOW-RS stub over mTLS, with
`kill -9` of the edge mid-receive and mid-forward. Nothing acknowledged is lost, nothing
arrives twice (sha256 of every object compared). No cluster needed: the MDC is the stub of
tests/edge_support.py (the real MDC path is in the cluster tests)."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from pydicom import dcmread

from hl7_gateway.certs import create_dev_pki
from pacs_hdfs.dicom.synthetic import ct_series, write_files
from tests.edge_support import StowStub, sha

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.skipif(shutil.which("storescu") is None, reason="needs dcmtk")]
PACS = str(Path(sys.executable).parent / "pacs")
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class EdgeProcess:
    """`pacs edge` in a subprocess on its own $PACS_HOME."""

    def __init__(self, home: Path, certs, mdc_url: str, workers: int = 2):
        self.home, self.port = home, free_port()
        self.env = {**os.environ, "PACS_HOME": str(home), "PACS_EDGE_PORT": str(self.port),
                    "PACS_EDGE_REVIEW_PORT": "0", "PACS_EDGE_MDC_URL": mdc_url,
                    "PACS_EDGE_CLIENT_CERT": str(certs.client_cert),
                    "PACS_EDGE_CLIENT_KEY": str(certs.client_key),
                    "PACS_EDGE_MDC_CA": str(certs.ca_cert), "PACS_EDGE_BATCH_OBJECTS": "8",
                    "PACS_EDGE_RETRY_MAX_SECONDS": "0.5", "PACS_EDGE_WORKERS": str(workers)}
        self.proc = None

    def set_mdc(self, url: str) -> None:
        self.env["PACS_EDGE_MDC_URL"] = url

    def start(self) -> "EdgeProcess":
        log = open(self.home / "edge-stdout.log", "ab")
        self.proc = subprocess.Popen([PACS, "edge"], env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while subprocess.run(["echoscu", "-aec", "PACS", HOST, str(self.port)],
                             capture_output=True).returncode != 0:
            assert self.proc.poll() is None, (self.home / "edge-stdout.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "edge did not answer C-ECHO"
            time.sleep(0.3)
        return self

    def kill9(self) -> list[int]:
        children = [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        return children

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    @property
    def edge_dir(self) -> Path:
        return self.home / "hospital" / "edge"

    def spool(self) -> dict[str, str]:
        """{SOP UID: sha256} of the spooled objects (the forwarder may delete meanwhile)."""
        out = {}
        for f in (self.edge_dir / "spool").glob("*.dcm"):
            try:
                out[f.stem] = sha(f.read_bytes())
            except FileNotFoundError:
                pass
        return out

    def status(self) -> dict:
        import json
        out = subprocess.run([PACS, "edge", "status", "--json"], env=self.env,
                             capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout)


def storescu(port: int, files: list[Path]) -> subprocess.Popen:
    return subprocess.Popen(["storescu", "-v", "-aec", "PACS", HOST, str(port), *map(str, files)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def acknowledged(output: str) -> list[str]:
    """Files storescu sent and got a success status for (from its -v log)."""
    acked, current = [], None
    for line in output.splitlines():
        m = re.search(r"Sending file: (\S+)", line)
        if m:
            current = m.group(1)
        elif "Received Store Response (Success)" in line and current:
            acked.append(current)
            current = None
    return acked


def dead_port_url() -> str:
    return f"https://{HOST}:{free_port()}"


@pytest.fixture
def setup(tmp_path):
    certs = create_dev_pki(tmp_path / "pki")
    files = write_files(ct_series(120, patient_id="EDGE-IT", patient_name="Edge^Test"),
                        tmp_path / "ct")
    edge = EdgeProcess(tmp_path / "home", certs, dead_port_url())
    (tmp_path / "home").mkdir()
    yield certs, files, edge
    edge.stop()


def wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_kill9_mid_receive_loses_nothing_acknowledged(setup):
    certs, files, edge = setup
    edge.start()
    sender = storescu(edge.port, files)
    wait_for(lambda: len(list((edge.edge_dir / "spool").glob("*.dcm"))) >= 20, 60,
             "nothing arrived")
    children = edge.kill9()
    out, _ = sender.communicate(timeout=60)
    acked = acknowledged(out)
    assert 20 <= len(acked) < len(files), "the kill must land mid-receive"
    wait_for(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                             for p in children), 30, "receive workers outlived the edge")

    edge.start()  # recovers: temp leftovers removed, lock taken again
    from deid.pseudonyms import remap_uid
    from deid.vault import Vault
    vault = Vault.open(edge.home / "hospital" / "vault.bin",
                       master_key_file=edge.home / "hospital" / "master.key")
    uid_key = vault.deid_keys().uid
    spooled = {f.stem: f for f in (edge.edge_dir / "spool").glob("*.dcm")}
    for path in acked:
        original = dcmread(path, stop_before_pixels=True).SOPInstanceUID
        deid_uid = remap_uid(uid_key, original)
        assert deid_uid in spooled, f"acknowledged object {deid_uid} lost"
        ds = dcmread(spooled[deid_uid])
        assert len(ds.PixelData) == 512 * 512 * 2 and ds.PatientIdentityRemoved == "YES"
    assert list((edge.edge_dir / "tmp").iterdir()) == []
    # the rest is sent again: the edge takes it, duplicates included
    sender = storescu(edge.port, files)
    out, _ = sender.communicate(timeout=120)
    assert len(acknowledged(out)) == len(files)
    assert len(edge.spool()) == len(files)


def test_kill9_mid_forward_then_mdc_restart(setup):
    certs, files, edge = setup
    edge.start()
    out, _ = storescu(edge.port, files).communicate(timeout=120)
    assert len(acknowledged(out)) == len(files)
    expected = edge.spool()
    assert len(expected) == len(files)

    with StowStub(certs) as stub:
        stub.script = ["slow:3"]  # the first request is stored, its answer comes late
        edge.stop()
        edge.set_mdc(stub.url)
        edge.start()
        wait_for(lambda: stub.requests, 30, "the forwarder did not send")
        edge.kill9()               # mid-request: the MDC has the batch, the edge never heard
        first_batch = stub.requests[0]["parts"]
        assert len(edge.spool()) == len(files)  # nothing deleted without an answer
        edge.start()
        wait_for(lambda: not edge.spool(), 60, "spool did not drain")
        status = edge.status()
    assert {uid: sha(data) for uid, data in stub.stored.items()} == expected
    assert sum(r["parts"] for r in stub.requests) >= len(files) + first_batch  # re-sent batch
    assert status["spool"]["objects"] == 0 and status["running"] is True

    # the MDC goes away mid-forward and comes back on the same port: nothing lost
    port = stub.port
    out, _ = storescu(edge.port, write_files(ct_series(
        30, patient_id="EDGE-IT2", patient_name="Edge^Two", size=64),
        edge.home.parent / "ct2")).communicate(timeout=120)
    assert len(acknowledged(out)) == 30
    time.sleep(1.0)
    pending = edge.spool()
    assert pending, "the MDC is down: objects wait in the spool"
    with StowStub(certs, port=port) as stub2:
        wait_for(lambda: not edge.spool(), 60, "spool did not drain after the MDC came back")
    assert {uid: sha(data) for uid, data in stub2.stored.items()} == pending
