"""Helpers for the DICOM Q/R security tests (`test_dicom_qr_*.py`).

- `non_loopback_address`: a host address that is not loopback, on an interface made for the test
  (a TEST-NET-2 /32 on a veth pair, so nothing outside this host can route to it), removed
  afterwards.
  Connecting from this host to it, the peer address the server sees is that same address: a
  real non-loopback peer without a second machine.
- `tls_pki`: the project's dev PKI (`hl7_gateway.certs.create_dev_pki`, read only) with a server
  certificate for the given address, and the client SSL contexts a peer uses.
- `in_process_mdc`: the MDC's DIMSE handlers (`pacs_hdfs.dicom.server`) on pynetdicom servers in
  this process, over an in-memory archive (`tests.memory_archive`) and an in-memory audit trail
  (`tests.memory_store.MemoryStore`), with real listeners (plain and TLS) on real addresses.
- `mdc_scp_process`: the real `pacs scp` in a subprocess, in a scratch namespace of the cluster.
- `associate` / `rejection`: one association from a pynetdicom peer, and the A-ASSOCIATE-RJ
  (result, source, reason) it got.
"""
from __future__ import annotations

import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from pydicom import Dataset
from pynetdicom import AE, build_role
from pynetdicom.sop_class import (CTImageStorage, StudyRootQueryRetrieveInformationModelFind,
                                  StudyRootQueryRetrieveInformationModelGet,
                                  StudyRootQueryRetrieveInformationModelMove, Verification)

from tests.integration.dicom_support import _stop as stop_process  # noqa: F401 - re-exported

HOST = "127.0.0.1"
MDC_AE = "MDC"
VENV_BIN = Path(sys.executable).parent
STORE_AE = "HOSPDEID"
#: the rows of the hostile test, reversed: (calling AE, called AE)
TESTER_CALLING, TESTER_CALLED = "ZZ_NOBODY", "WRONGCALLED"
#: A-ASSOCIATE-RJ as (result, source, reason): PS3.8 Table 9-21
CALLING_NOT_RECOGNIZED = (0x01, 0x01, 0x03)
CALLED_NOT_RECOGNIZED = (0x01, 0x01, 0x07)
NO_REASON = (0x01, 0x01, 0x01)
#: (calling AE, called AE, the A-ASSOCIATE-RJ it gets) for an MDC allow-listing FINDSCU
TESTER_ROWS = [(TESTER_CALLING, TESTER_CALLED, CALLED_NOT_RECOGNIZED),
               (TESTER_CALLING, MDC_AE, CALLING_NOT_RECOGNIZED),
               ("FINDSCU", TESTER_CALLED, CALLED_NOT_RECOGNIZED)]
QR_CONTEXTS = (Verification, StudyRootQueryRetrieveInformationModelFind,
               StudyRootQueryRetrieveInformationModelGet,
               StudyRootQueryRetrieveInformationModelMove)


def free_port(host: str = HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def can_make_interfaces() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


@contextmanager
def non_loopback_address():
    """Yields an IPv4 address of this host that is not loopback (see the module doc)."""
    name = f"pacssec{os.getpid() % 100000}"
    address = f"198.51.100.{random.randint(2, 250)}"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)
    # a veth pair (this kernel has no dummy interfaces); both ends stay in this namespace
    ip("link", "add", name, "type", "veth", "peer", "name", f"{name}p")
    try:
        ip("addr", "add", f"{address}/32", "dev", name)
        ip("link", "set", name, "up")
        ip("link", "set", f"{name}p", "up")
        yield address
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True, timeout=20)


def tls_pki(directory: Path, host: str) -> SimpleNamespace:
    """CA, a server certificate for `host`, a client certificate; and client contexts."""
    from hl7_gateway.certs import create_dev_pki
    paths = create_dev_pki(directory, hosts=(host, "127.0.0.1"))

    def client(with_cert: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(paths.ca_cert))
        if with_cert:
            ctx.load_cert_chain(str(paths.client_cert), str(paths.client_key))
        return ctx
    return SimpleNamespace(paths=paths, client=client,
                           client_subject="CN=pacs-mdc HAS client,O=pacs-mdc dev")


def associate(calling: str, port: int, called: str = MDC_AE, host: str = HOST,
              source: str | None = None, tls: ssl.SSLContext | None = None,
              storage: bool = False):
    """One association from a pynetdicom peer (Verification and Study Root Q/R; with
    `storage`, CT storage with the SCP role for C-GET), from `source` if given."""
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.network_timeout = 15
    for cx in QR_CONTEXTS:
        ae.add_requested_context(cx)
    ext = []
    if storage:
        ae.add_requested_context(CTImageStorage)
        ext = [build_role(CTImageStorage, scp_role=True)]
    kw = {"bind_address": (source, 0)} if source else {}
    if tls is not None:
        kw["tls_args"] = (tls, host)
    return ae.associate(host, port, ae_title=called, ext_neg=ext or None, **kw)


def rejection(assoc) -> tuple[int, int, int] | None:
    """(result, source, reason) of the A-ASSOCIATE-RJ this association got, else None."""
    if not assoc.is_rejected:
        return None
    rj = assoc.acceptor.primitive
    return (rj.result, rj.result_source, rj.diagnostic)


def study_query(**keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = keys.pop("StudyInstanceUID", "")
    ds.PatientID = ""
    for k, v in keys.items():
        setattr(ds, k, v)
    return ds


def find(assoc, query: Dataset | None = None) -> tuple[list[Dataset], int]:
    """The matches of a Study Root C-FIND, and the final status."""
    matches, final = [], None
    for status, ident in assoc.send_c_find(query or study_query(),
                                           StudyRootQueryRetrieveInformationModelFind):
        if status is None:
            raise AssertionError("C-FIND got no response")
        if status.Status in (0xFF00, 0xFF01):
            matches.append(ident)
        else:
            final = status.Status
    return matches, final


def get(assoc, study_uid: str) -> tuple[int, int]:
    """C-GET one study (answering every sub-operation's C-STORE with success): (final status,
    number of objects received)."""
    from pynetdicom import evt
    received = []

    def on_store(event):
        received.append(event.request.AffectedSOPInstanceUID)
        return 0x0000
    assoc.bind(evt.EVT_C_STORE, on_store)
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = study_uid
    final = None
    for status, _ident in assoc.send_c_get(q, StudyRootQueryRetrieveInformationModelGet):
        if status is not None and status.Status not in (0xFF00, 0xFF01):
            final = status.Status
    return final, len(received)


def deidentified_series(n_studies: int = 2, per_study: int = 3, size: int = 8) -> list:
    """Synthetic CT studies that verify as de-identified (what the MDC may hold)."""
    from deid import DeidKeys, deidentify
    from pacs_hdfs.dicom.synthetic import ct_series
    keys = DeidKeys.generate()
    out = []
    for i in range(n_studies):
        series = ct_series(per_study, patient_id=f"SEC-{os.getpid()}-{i}-{random.random()}",
                           patient_name=f"Security^Test{i}", size=size)
        out.append([deidentify(ds, keys).dataset for ds in series])
    return out


@contextmanager
def in_process_mdc(qr_aes: str, bind: str = HOST, tls: ssl.SSLContext | None = None,
                   studies: list | None = None, destinations: str = ""):
    """The MDC handlers on a plain listener (and a TLS one if `tls`) at `bind`; yields ports,
    the memory store (its `audit` table is the trail) and the stored studies."""
    from pacs_hdfs import audit
    from pacs_hdfs.dicom.config import DimsePolicy, grants, parse_destinations
    from pacs_hdfs.dicom.dimse_audit import DimseAudit
    from pacs_hdfs.dicom.server import Handlers, build_ae, event_handlers
    from tests.memory_store import MemoryStore
    from tests.memory_archive import MemoryFiles, commit_objects
    store, files = MemoryStore(), MemoryFiles()
    studies = studies if studies is not None else deidentified_series()
    for series in studies:
        commit_objects(store, files, series)
    policy = DimsePolicy(grants(qr_aes), (), parse_destinations(destinations))

    def sink(user, action, target, details):
        audit.record(None, user, action, target, store=store, **details)
    handlers = Handlers(None, store, files, policy, DimseAudit(MDC_AE, sink))
    ae = build_ae(MDC_AE, policy)
    plain = ae.start_server((bind, 0), block=False, evt_handlers=event_handlers(handlers))
    secure = ae.start_server((bind, 0), block=False, evt_handlers=event_handlers(handlers),
                             ssl_context=tls) if tls is not None else None
    try:
        yield SimpleNamespace(port=plain.server_address[1],
                              tls_port=secure.server_address[1] if secure else None,
                              store=store, studies=studies, handlers=handlers,
                              trail=lambda **kw: audit.query(None, store=store, **kw))
    finally:
        for server in (plain, secure):
            if server is not None:
                server.shutdown()


def wait_listening(host: str, port: int, proc: subprocess.Popen, log: Path,
                   timeout: float = 90) -> None:
    """Until `proc` (a service started by a test) accepts connections on host:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            pass
        assert proc.poll() is None, f"{proc.args} exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"{proc.args} did not listen:\n" \
            f"{log.read_text()[-3000:]}"
        time.sleep(0.3)


@contextmanager
def mdc_scp_process(directory: Path, namespace_env: dict, qr_aes: str, **settings: str):
    """`pacs scp` (the real service) in a subprocess with these `mdc_dimse_*` settings
    (keyword = setting name without the prefix) in a scratch namespace, once it listens;
    C-STORE is allowed to STORE_AE from loopback so a test can load de-identified objects."""
    port = int(settings.pop("port", 0)) or free_port()
    log = directory / "scp.log"
    env = {**namespace_env, "PACS_MDC_DIMSE_PORT": str(port), "PACS_MDC_DIMSE_QR_AES": qr_aes,
           "PACS_MDC_DIMSE_STORE_AES": STORE_AE, "PACS_MDC_DIMSE_LOG": str(log),
           **{f"PACS_MDC_DIMSE_{k.upper()}": str(v) for k, v in settings.items()}}
    proc = subprocess.Popen([str(VENV_BIN / "pacs"), "scp"], env=env, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT)
    try:
        wait_listening(env.get("PACS_MDC_DIMSE_BIND", HOST), port, proc, log)
        if "PACS_MDC_DIMSE_TLS_CERT" in env:
            wait_listening(env.get("PACS_MDC_DIMSE_TLS_BIND", HOST),
                           int(env["PACS_MDC_DIMSE_TLS_PORT"]), proc, log)
        yield SimpleNamespace(port=port, log=log, proc=proc, env=env)
    finally:
        stop_process(proc)


def store_studies(port: int, studies: list) -> None:
    """C-STORE de-identified studies to the MDC as STORE_AE (each must succeed)."""
    ae = AE(ae_title=STORE_AE)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(HOST, port, ae_title=MDC_AE)
    assert assoc.is_established
    try:
        for series in studies:
            for ds in series:
                assert assoc.send_c_store(ds).Status == 0
    finally:
        assoc.release()
