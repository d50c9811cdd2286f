"""Helpers for tests that send DICOM through the real path, dcmtk as the peer:

    modality --C-STORE--> `pacs edge` (hospital: de-identify, spool) --STOW-RS, mTLS-->
    `pacs gateway` (MDC: verify, group commit to HDFS + HBase);  `pacs scp` (MDC DIMSE) for Q/R

`scp_process` starts the three processes with their own PKI (the embedded one's shape: a CA,
the gateway's server certificate, an edge certificate) in a temp dir. The edge gets its own
`$PACS_HOME` there, so its vault is the test's: a test can compute the de-identified UID of what
it sent (keyed remap, as the edge does). `store` waits until the edge has forwarded everything,
so a test may query the data center right after it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

PORT, DEST_PORT = 11112, 11113
HOST = "127.0.0.1"
VENV_BIN = Path(sys.executable).parent
DCMTK = shutil.which("storescu")
EDGE_NAME = "test-edge"
MDC_AE = "MDC"
#: calling AE titles the test MDC lets query and retrieve (dcmtk's and our test SCUs' defaults)
QR_AES = ("FINDSCU", "GETSCU", "MOVESCU", "ECHOSCU", "PYSCU", "GETTER", "MOVER", "FAULTS",
          "PYNETDICOM", "FUZZ", "PYGET", "PYMOVE", "RDLOGTEST")
#: calling AE allowed to C-STORE already de-identified objects straight to the MDC
STORE_AE = "HOSPDEID"
#: spools of the edges running in this test process: `store` waits until they are empty
_SPOOLS: list[Path] = []


def dcmtk(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=cwd)


def echo_ok(port: int = PORT, called: str = "PACS") -> bool:
    return dcmtk("echoscu", "-aec", called, HOST, str(port)).returncode == 0


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _start(args: list[str], env: dict, out: Path) -> subprocess.Popen:
    return subprocess.Popen([str(VENV_BIN / "pacs"), *args], env=env,
                            stdout=open(out, "ab"), stderr=subprocess.STDOUT)


def _wait(what: str, ready, proc: subprocess.Popen, out: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"{what} exited:\n{out.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"{what} did not answer"
        time.sleep(0.3)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def scp_process(directory: Path, port: int = PORT, dest_port: int = DEST_PORT,
                qr_port: int | None = None, edge_home: Path | None = None):
    """Edge (AE PACS on `port`) -> gateway -> MDC, and the MDC DIMSE (AE MDC on `qr_port`,
    C-MOVE destination MOVEDEST = `dest_port`); yields what tests need. `edge_home` is the
    edge's $PACS_HOME (default: in `directory`); give a HAS home to share its hospital vault."""
    from deid.vault_access import open_vault
    from hl7_gateway.certs import issue_edge_cert
    from tests.integration.hl7_support import Gateway

    d = directory
    qr_port = qr_port or _free_port()
    gateway = Gateway(d / "gateway", _free_port())
    edge_cert = issue_edge_cert(gateway.certs.directory, EDGE_NAME)
    edge_home = edge_home or d / "edge-home"
    edge_env = {**os.environ, "PACS_HOME": str(edge_home), "PACS_EDGE_NAME": EDGE_NAME,
                "PACS_EDGE_PORT": str(port), "PACS_EDGE_BIND": HOST, "PACS_EDGE_AE_TITLE": "PACS",
                "PACS_EDGE_MDC_URL": gateway.url, "PACS_EDGE_CLIENT_CERT": str(edge_cert.cert),
                "PACS_EDGE_CLIENT_KEY": str(edge_cert.key),
                "PACS_EDGE_MDC_CA": str(edge_cert.ca_cert), "PACS_EDGE_REVIEW_PORT": "0",
                "PACS_EDGE_LOG": str(d / "edge.log")}
    mdc_env = {**os.environ, "PACS_MDC_DIMSE_PORT": str(qr_port), "PACS_MDC_DIMSE_BIND": HOST,
               "PACS_MDC_DIMSE_QR_AES": ",".join(QR_AES), "PACS_MDC_DIMSE_STORE_AES": STORE_AE,
               "PACS_MDC_DIMSE_DESTINATIONS": f"MOVEDEST={HOST}:{dest_port}",
               "PACS_MDC_DIMSE_LOG": str(d / "scp.log")}
    gateway.start()
    # as under the supervisor: the service's stdout/stderr and its log file are one file
    mdc = _start(["scp"], mdc_env, d / "scp.log")
    edge = _start(["edge"], edge_env, d / "edge.out")
    spool = edge_home / "hospital" / "edge" / "spool"
    _SPOOLS.append(spool)
    try:
        _wait("MDC DIMSE", lambda: echo_ok(qr_port, MDC_AE), mdc, d / "scp.log")
        _wait("edge", lambda: echo_ok(port), edge, d / "edge.out")
        vault = open_vault(edge_home / "hospital" / "vault.bin",
                           edge_home / "hospital" / "master.key")
        yield SimpleNamespace(dir=d, env=edge_env, mdc_env=mdc_env, keys=vault.deid_keys(),
                              vault=vault, port=port, qr_port=qr_port, edge_home=edge_home,
                              spool=spool, gateway=gateway, edge_proc=edge, mdc_proc=mdc,
                              mdc_log=d / "scp.log",
                              logs=[d / "scp.log", d / "edge.log", d / "edge.out",
                                    gateway.log_file, gateway.out_file])
    finally:
        _SPOOLS.remove(spool)
        _stop(edge)
        _stop(mdc)
        gateway.stop()


def wait_forwarded(timeout: float = 120) -> None:
    """Until every running test edge has forwarded its spool (the MDC acknowledged it all)."""
    deadline = time.monotonic() + timeout
    while any(any(s.glob("*.dcm")) for s in _SPOOLS if s.exists()):
        assert time.monotonic() < deadline, "the edge did not forward its spool"
        time.sleep(0.2)


def deid_uid(scp, uid: str) -> str:
    from deid import remap_uid
    return remap_uid(scp.keys.uid, uid)


def fresh_copy(name: str, directory: Path, study_uid: str | None = None) -> tuple[Path, object]:
    """A pydicom test file with new study/series/SOP UIDs (same transfer syntax and pixels)."""
    ds = dcmread(get_testdata_file(name))
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientID = f"T-{uuid.uuid4().hex[:10]}"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path, ds


def store(files, *flags, port: int = PORT) -> subprocess.CompletedProcess:
    """storescu the files to the edge (every store must succeed), then wait until the edge has
    forwarded them to the data center."""
    res = dcmtk("storescu", *flags, "-aec", "PACS", HOST, str(port), *map(str, files))
    assert res.returncode == 0 and "Store Failed" not in res.stderr, res.stderr[-2000:]
    wait_forwarded()
    return res


def find(scp, tmp: Path, level: str, *keys: str, model: str = "-S") -> list:
    """findscu against the MDC's DIMSE service; the responses as datasets."""
    out = tmp / f"find-{uuid.uuid4().hex[:6]}"
    out.mkdir()
    res = dcmtk("findscu", model, "-X", "-od", str(out), "-aec", MDC_AE, "-k",
                f"QueryRetrieveLevel={level}", *[a for k in keys for a in ("-k", k)],
                HOST, str(scp.qr_port))
    assert res.returncode == 0, res.stderr[-2000:]
    return [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def instance_key(stores, scp, ds) -> bytes | None:
    from pacs_hdfs.schema import row_key
    ref = stores.hbase.get("sop", row_key(deid_uid(scp, ds.SOPInstanceUID)))
    return ref[b"r:key"] if ref else None


def instance_row(stores, scp, ds) -> dict:
    key = instance_key(stores, scp, ds)
    return stores.hbase.get("instance", key) if key else {}
