"""Helpers for tests that send DICOM to a real `pacs scp` subprocess (dcmtk as the peer).

The SCP gets its own hospital vault in a temp dir, so a test can compute the de-identified UID of
what it sent (keyed remap, as the SCP does). Shared by the SCP and the portal quarantine tests.
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


def dcmtk(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=cwd)


def echo_ok(port: int = PORT) -> bool:
    return dcmtk("echoscu", "-aec", "PACS", HOST, str(port)).returncode == 0


@contextmanager
def scp_process(directory: Path, port: int = PORT, dest_port: int = DEST_PORT):
    """`pacs scp` (AE PACS) on `port` with a vault in `directory`; yields what tests need."""
    d = directory
    env = {**os.environ, "PACS_SCP_VAULT": str(d / "vault.bin"),
           "PACS_SCP_MASTER_KEY_FILE": str(d / "master.key"), "PACS_SCP_LOG": str(d / "scp.log"),
           "PACS_SCP_BIND": HOST, "PACS_SCP_PORT": str(port), "PACS_SCP_AE_TITLE": "PACS",
           "PACS_SCP_DESTINATIONS": f"MOVEDEST={HOST}:{dest_port}"}
    out = open(d / "stdout.log", "wb")
    proc = subprocess.Popen([str(VENV_BIN / "pacs"), "scp"], env=env, stdout=out,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not echo_ok(port):
            assert proc.poll() is None, (d / "stdout.log").read_text()
            assert time.monotonic() < deadline, "SCP did not answer C-ECHO"
            time.sleep(0.5)
        from deid.vault_access import open_vault
        vault = open_vault(d / "vault.bin", d / "master.key")
        yield SimpleNamespace(dir=d, env=env, keys=vault.deid_keys(), vault=vault, port=port,
                              logs=[d / "scp.log", d / "stdout.log"])
    finally:
        proc.terminate()
        proc.wait(20)
        out.close()


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
    """storescu the files to the SCP; every store must succeed."""
    res = dcmtk("storescu", *flags, "-aec", "PACS", HOST, str(port), *map(str, files))
    assert res.returncode == 0 and "Store Failed" not in res.stderr, res.stderr[-2000:]
    return res


def find(scp, tmp: Path, level: str, *keys: str, model: str = "-S") -> list:
    """findscu against the SCP; the responses as datasets."""
    out = tmp / f"find-{uuid.uuid4().hex[:6]}"
    out.mkdir()
    res = dcmtk("findscu", model, "-X", "-od", str(out), "-aec", "PACS", "-k",
                f"QueryRetrieveLevel={level}", *[a for k in keys for a in ("-k", k)],
                HOST, str(scp.port))
    assert res.returncode == 0, res.stderr[-2000:]
    return [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def instance_key(stores, scp, ds) -> bytes | None:
    from pacs_hdfs.schema import row_key
    ref = stores.hbase.get("sop", row_key(deid_uid(scp, ds.SOPInstanceUID)))
    return ref[b"r:key"] if ref else None


def instance_row(stores, scp, ds) -> dict:
    key = instance_key(stores, scp, ds)
    return stores.hbase.get("instance", key) if key else {}
