"""The whole edge in one process (runner.start): a pynetdicom SCU stores to its SCP, the objects
are de-identified and spooled, and the forwarder delivers them to a STOW-RS stub over mTLS."""
from __future__ import annotations

import socket
import time

import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from deid.edge.runner import EdgeBusy, start
from deid.edge.state import status
from hl7_gateway.certs import create_dev_pki
from pacs_hdfs.dicom.synthetic import add_phi_markers, ct_series
from pacs_hdfs.settings import Settings
from tests.edge_support import StowStub, sha

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def certs(tmp_path):
    return create_dev_pki(tmp_path / "pki")


def settings(home, certs, url, **kw) -> Settings:
    kw.setdefault("edge_workers", 0)
    return Settings(home=home, edge_port=free_port(), edge_review_port=0, edge_mdc_url=url,
                    edge_client_cert=certs.client_cert, edge_client_key=certs.client_key,
                    edge_mdc_ca=certs.ca_cert, edge_retry_max_seconds=0.2, **kw)


def send(port: int, datasets, calling="MODALITY") -> list[int]:
    ae = AE(ae_title=calling)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    if not assoc.is_established:
        return []
    try:
        return [assoc.send_c_store(ds).Status for ds in datasets]
    finally:
        assoc.release()


@pytest.mark.parametrize("workers", [0, 2], ids=["in-thread", "worker-processes"])
def test_store_spool_forward(tmp_path, certs, workers, caplog):
    datasets = [add_phi_markers(ds, "ZZMARK") for ds in
                ct_series(6, patient_id="SCP-1", patient_name="Scp^Pat", size=32)]
    with StowStub(certs) as stub:
        stub.script = ["503"]
        s = settings(tmp_path, certs, stub.url, edge_batch_objects=4, edge_workers=workers)
        edge = start(s)
        try:
            assert send(s.edge_port, datasets) == [0] * 6
            bad = ct_series(1, patient_id="SCP-2", patient_name="Scp^Bad", size=32)[0]
            del bad.Rows
            assert send(s.edge_port, [bad])[0] in (0xA900, 0xC000)  # refused, and logged
            assert send(s.edge_port, datasets[:2]) == [0, 0]  # re-sent
            deadline = time.monotonic() + 20
            while len(stub.stored) < 6 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert status(edge.paths, s.edge_name, s.edge_mdc_url)["running"] is True
        finally:
            edge.stop()  # writes the final reports
        report = status(edge.paths, s.edge_name, s.edge_mdc_url)
    assert len(stub.stored) == 6
    assert all(b"ZZMARK" not in data for data in stub.stored.values())
    assert report["spool"]["objects"] == 0
    # a re-send is a duplicate while the first copy is still spooled; once forwarded, it is
    # spooled and sent again, and the MDC answers it as stored without keeping a second copy
    received = report["received"]
    assert received.pop("refused") == 1
    assert set(received) <= {"stored", "duplicate"} and sum(received.values()) == 8
    assert "refused 0x" in caplog.text  # a worker's log line reaches the edge's log
    assert report["forwarded"]["objects"] == received["stored"]
    assert all(v["objects"] >= 8 for v in report["stages"].values())
    assert not list(edge.paths.spool.iterdir())
    assert len({sha(d) for d in stub.stored.values()}) == 6


def test_allow_list_and_single_instance(tmp_path, certs):
    s = settings(tmp_path, certs, "https://127.0.0.1:9", edge_allowed_aes="CT1, CT2")
    edge = start(s)
    try:
        ds = ct_series(1, patient_id="A1", patient_name="Allow^Pat", size=16)
        assert send(s.edge_port, ds, calling="INTRUDER") == []
        assert send(s.edge_port, ds, calling="CT2") == [0]
        with pytest.raises(EdgeBusy):
            start(s)
    finally:
        edge.stop()
    assert len(list(edge.paths.spool.glob("*.dcm"))) == 1
