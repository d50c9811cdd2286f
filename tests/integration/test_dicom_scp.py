"""The DICOM path on the real cluster, driven by dcmtk's tools and pynetdicom as real peers:
modality -> `pacs edge` (hospital) -> STOW-RS over mTLS -> `pacs gateway` (MDC) -> HDFS + HBase,
and Query/Retrieve at the MDC's own DIMSE service (`pacs scp`, AE MDC).

The processes run with their own PKI and the edge with its own vault in a temp dir
(`dicom_support.scp_process`); every test sends fresh UIDs / patient IDs, so runs never collide.
The vault lets the test compute the de-identified UID of what it sent (keyed remap, as the edge
does).
"""
from __future__ import annotations

import hashlib
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.integration.dicom_support import (  # noqa: F401 - shared with other DICOM tests
    DCMTK, DEST_PORT, HOST, MDC_AE, PORT, STORE_AE, VENV_BIN, deid_uid, find, fresh_copy,
    instance_key, instance_row, scp_process, store, wait_forwarded)
from tests.integration.dicom_support import dcmtk as _dcmtk
from tests.integration.dicom_support import echo_ok as _echo_ok

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def scp(cluster, tmp_path_factory):
    if not DCMTK:
        pytest.skip("dcmtk is not installed (apt-get install -y dcmtk)")
    with scp_process(tmp_path_factory.mktemp("scp")) as running:
        yield running


@pytest.fixture(scope="module")
def stores(settings):
    from pacs_hdfs import clients
    return SimpleNamespace(hbase=clients.hbase(settings), hdfs=clients.hdfs(settings))


def synthetic_series(directory: Path, n: int, size: int = 64, **kw) -> list:
    from pacs_hdfs.dicom.synthetic import ct_series, write_files
    kw.setdefault("patient_id", f"SYN-{uuid.uuid4().hex[:10]}")
    kw.setdefault("patient_name", "Synthetic^Patient")
    series = ct_series(n, size=size, **kw)
    return series, write_files(series, directory)


def stored_bytes(stores, scp, ds) -> bytes:
    """The stored object's bytes, read from its batch file and verified."""
    from pacs_hdfs.dicom.stored import read_bytes
    key = instance_key(stores, scp, ds)
    return read_bytes(stores.hbase, stores.hdfs, key, stores.hbase.get("instance", key))


def dataset_body(data: bytes) -> bytes:
    """The bytes after preamble and file meta (meta group length at offset 140)."""
    glen = int.from_bytes(data[140:144], "little")
    return data[144 + glen:]


def release_if_held(scp, sop: str) -> bool:
    """Release an object the edge holds for burned-in review (e.g. a Secondary Capture) and
    wait until it has been forwarded; False if it was not held."""
    held = scp.edge_home / "hospital" / "edge" / "quarantine" / f"{sop}.dcm"
    if not held.exists():
        return False
    res = subprocess.run([str(VENV_BIN / "pacs"), "edge", "quarantine", "release", sop],
                         env=scp.env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    wait_forwarded()
    return True


# --- tests -------------------------------------------------------------------------------

def test_echo(scp):
    assert _echo_ok()                        # the edge, for modalities
    assert _echo_ok(scp.qr_port, MDC_AE)     # the data center's DIMSE service


VENDOR_FILES = [  # (file, storescu flag proposing its transfer syntax; None: pynetdicom SCU)
    ("CT_small.dcm", "-xe"), ("MR_small.dcm", "-xe"), ("rtplan.dcm", "-xi"),
    ("MR_small_implicit.dcm", "-xi"), ("MR_small_RLE.dcm", "-xr"),
    ("image_dfl.dcm", "-xd"), ("MR_small_jpeg_ls_lossless.dcm", "-xt"),
    ("JPGExtended.dcm", "-xx"), ("SC_rgb_jpeg_dcmtk.dcm", "-xy"),
    ("MR_small_jp2klossless.dcm", None), ("JPEG2000.dcm", None),  # Debian dcmtk: no JPEG 2000 ("MR_small_bigendian.dcm", "-xb"),
]


@pytest.mark.parametrize("name,flag", VENDOR_FILES)
def test_vendor_file_stored_as_received(scp, stores, tmp_path, name, flag):
    path, ds = fresh_copy(name, tmp_path)
    if flag:
        store([path], flag)
    else:
        assoc = _scu_assoc(ds.file_meta.TransferSyntaxUID)
        try:
            assert assoc.send_c_store(ds).Status == 0
        finally:
            assoc.release()
        wait_forwarded()
    release_if_held(scp, deid_uid(scp, ds.SOPInstanceUID))
    row = instance_row(stores, scp, ds)
    assert row, f"{name} not indexed"
    assert row[b"l:ts"].decode() == ds.file_meta.TransferSyntaxUID
    stored = dcmread(BytesIO(stored_bytes(stores, scp, ds)))
    assert stored.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    if "PixelData" in ds:  # not decompressed, not re-encoded
        assert stored.PixelData == ds.PixelData
    assert stored.PatientID != ds.PatientID and stored.PatientIdentityRemoved == "YES"


def test_series_find_move_get_roundtrip(scp, stores, tmp_path):
    series, files = synthetic_series(tmp_path / "in", 20)
    store(files)
    study = deid_uid(scp, series[0].StudyInstanceUID)
    found = find(scp, tmp_path, "STUDY", f"StudyInstanceUID={study}", "PatientID",
                 "StudyDate=19000101-20991231", "ModalitiesInStudy", "NumberOfStudyRelatedInstances")
    assert len(found) == 1
    assert found[0].NumberOfStudyRelatedInstances == 20 and found[0].ModalitiesInStudy == "CT"
    assert found[0].PatientID.startswith("RS")
    assert find(scp, tmp_path, "STUDY", f"StudyInstanceUID={study}", "StudyDate=18000101-18001231") == []
    se = find(scp, tmp_path, "SERIES", f"StudyInstanceUID={study}", "SeriesInstanceUID",
              "Modality=C?", "NumberOfSeriesRelatedInstances")
    assert len(se) == 1 and se[0].NumberOfSeriesRelatedInstances == 20
    images = find(scp, tmp_path, "IMAGE", f"StudyInstanceUID={study}",
                  f"SeriesInstanceUID={se[0].SeriesInstanceUID}", "SOPInstanceUID")
    assert len(images) == 20
    pat = find(scp, tmp_path, "PATIENT", f"PatientID={found[0].PatientID}",
               "NumberOfPatientRelatedStudies", model="-P")
    assert len(pat) == 1 and pat[0].NumberOfPatientRelatedStudies == 1

    stored, stored_ds = {}, {}
    for ds in series:
        row = instance_row(stores, scp, ds)
        data = stored_bytes(stores, scp, ds)
        stored[row[b"a:SOPInstanceUID"].decode()] = hashlib.sha256(dataset_body(data)).hexdigest()
        stored_ds[row[b"a:SOPInstanceUID"].decode()] = dcmread(BytesIO(data))

    received = _move_to_receiver(scp, study)
    assert {k: hashlib.sha256(v).hexdigest() for k, v in received.items()} == stored

    out = tmp_path / "get"
    out.mkdir()
    res = _dcmtk("getscu", "-S", "-aec", MDC_AE, "-od", str(out), "-k", "QueryRetrieveLevel=SERIES",
                 "-k", f"StudyInstanceUID={study}", "-k",
                 f"SeriesInstanceUID={se[0].SeriesInstanceUID}", HOST, str(scp.qr_port))
    assert res.returncode == 0, res.stderr[-2000:]
    got = {(g := dcmread(p)).SOPInstanceUID: g for p in out.iterdir()}
    assert set(got) == set(stored)  # getscu may re-encode (its own TS choice): compare content
    for uid, g in got.items():
        assert g == stored_ds[uid] and g.PixelData == stored_ds[uid].PixelData


def _move_to_receiver(scp, study: str) -> dict[str, bytes]:
    """movescu (dcmtk) asks the MDC to send a study to a pynetdicom receiver on DEST_PORT."""
    from pynetdicom import AE, AllStoragePresentationContexts, evt
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
    received: dict[str, bytes] = {}

    def on_store(event):
        received[event.request.AffectedSOPInstanceUID] = event.encoded_dataset(include_meta=False)
        return 0x0000
    ae = AE(ae_title="MOVEDEST")
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    server = ae.start_server((HOST, DEST_PORT), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        res = _dcmtk("movescu", "-S", "-aec", MDC_AE, "-aem", "MOVEDEST", "-k",
                     "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}", HOST,
                     str(scp.qr_port))
        assert res.returncode == 0, res.stderr[-2000:]
    finally:
        server.shutdown()
    return received


def test_phi_markers_never_stored_or_logged(scp, stores, settings, tmp_path):
    from pacs_hdfs.dicom.synthetic import add_phi_markers
    marker = f"ZQX{uuid.uuid4().hex[:8].upper()}"
    series, _ = synthetic_series(tmp_path / "x", 3, patient_id=f"{marker}PID",
                                 patient_name=f"{marker}^Name", accession=f"{marker}ACC")
    from pacs_hdfs.dicom.synthetic import write_files
    files = write_files([add_phi_markers(ds, marker) for ds in series], tmp_path / "in")
    mr, mr_ds = fresh_copy("MR_small.dcm", tmp_path / "mr")
    add_phi_markers(mr_ds, marker)
    mr_ds.save_as(mr, enforce_file_format=True)
    store(files + [mr])
    assert marker.encode() in files[0].read_bytes()
    needle = marker.encode()
    for study in {deid_uid(scp, series[0].StudyInstanceUID), deid_uid(scp, mr_ds.StudyInstanceUID)}:
        paths = list(stores.hdfs.walk_files(f"dicom/containers/{study}"))
        assert paths
        for p in paths:
            assert needle not in stores.hdfs.read(p), p
    from pacs_hdfs.schema import TABLES
    for t in TABLES:
        for key, row in stores.hbase.scan(t.name, batch_size=20):
            assert needle not in key and not any(needle in k or needle in v for k, v in row.items()), t.name
    for log in scp.logs:
        assert needle not in log.read_bytes(), log


def test_hard_phi_never_stored_or_logged_and_every_date_shifted(scp, stores, tmp_path):
    """Issue 14's leaks, sent through edge -> STOW -> MDC: descriptors with a name and a PESEL,
    DT ranges and multi-valued dates, EncryptedAttributesSequence, names sent with the wrong
    VR, an SR content tree. No marker and no original date is stored or logged; the dates that
    are kept moved by the patient's one offset (both ends of the range)."""
    from datetime import date, timedelta

    from deid.pseudonyms import date_shift_days
    from pacs_hdfs.dicom.synthetic import (
        HARD_MARKER_DATES,
        add_hard_phi_markers,
        add_phi_markers,
        write_files,
    )
    marker = f"ZQH{uuid.uuid4().hex[:8].upper()}"
    pid = f"HARD-{uuid.uuid4().hex[:8]}"
    series, _ = synthetic_series(tmp_path / "x", 2, patient_id=pid)
    datasets = [add_hard_phi_markers(add_phi_markers(ds, marker), marker) for ds in series]
    files = write_files(datasets, tmp_path / "in")
    raw = files[0].read_bytes()
    assert marker.encode() in raw and all(d.encode() in raw for d in HARD_MARKER_DATES)
    store(files)

    needles = [marker.encode(), *(d.encode() for d in HARD_MARKER_DATES)]
    study = deid_uid(scp, series[0].StudyInstanceUID)
    paths = list(stores.hdfs.walk_files(f"dicom/containers/{study}"))
    assert paths
    for p in paths:
        data = stores.hdfs.read(p)
        assert not [n for n in needles if n in data], p
    from pacs_hdfs.schema import TABLES
    for t in TABLES:
        for key, row in stores.hbase.scan(t.name, batch_size=50):
            blob = key + b"".join(k + v for k, v in row.items())
            assert marker.encode() not in blob, t.name
    for log in scp.logs:
        assert marker.encode() not in log.read_bytes(), log

    out = dcmread(BytesIO(stored_bytes(stores, scp, datasets[0])))
    assert "EncryptedAttributesSequence" not in out
    for gone in ("NameOfPhysiciansReadingStudy", "PhysiciansOfRecord", "OtherPatientNames",
                 "PatientBirthDate"):
        assert not str(out.get(gone, "") or ""), gone
    # (add_phi_markers gave the patient a marker PatientID: the shift is keyed on that)
    offset = timedelta(days=date_shift_days(scp.keys.date_shift, str(datasets[0].PatientID)))

    def moved(day: str) -> str:
        return (date(int(day[:4]), int(day[4:6]), int(day[6:])) + offset).strftime("%Y%m%d")

    d1, d2 = HARD_MARKER_DATES[:2]
    assert out.AcquisitionDateTime == f"{moved(d1)}101010-{moved(d2)}111111"
    assert out.StudyDate == moved("20240312")
    assert "ZQH" not in str(out.get("StudyDescription", ""))


def test_two_studies_of_one_patient_share_pseudonym_and_shift(scp, stores, tmp_path):
    pid = f"SAME-{uuid.uuid4().hex[:8]}"
    a, fa = synthetic_series(tmp_path / "a", 2, patient_id=pid, study_date="20240312")
    b, fb = synthetic_series(tmp_path / "b", 2, patient_id=pid, study_date="20240401")
    store(fa + fb)
    from datetime import date
    from pacs_hdfs.schema import row_key
    rows = [stores.hbase.get("study", row_key(deid_uid(scp, s[0].StudyInstanceUID))) for s in (a, b)]
    assert rows[0][b"a:PatientID"] == rows[1][b"a:PatientID"]
    d = [date.fromisoformat(r[b"a:StudyDate"].decode()[:4] + "-" + r[b"a:StudyDate"].decode()[4:6]
                            + "-" + r[b"a:StudyDate"].decode()[6:]) for r in rows]
    assert (d[1] - d[0]).days == 20 and rows[0][b"a:StudyDate"] != b"20240312"
    subject = stores.hbase.get("subject", rows[0][b"a:PatientID"])
    assert sum(k.startswith(b"s:") for k in subject) == 2


def test_quarantine_held_at_the_edge_until_released(scp, stores, tmp_path):
    """A burned-in suspect (Secondary Capture) is held on the edge: nothing reaches HDFS or
    HBase until `pacs edge quarantine release`, then it arrives and answers Q/R."""
    path, ds = fresh_copy("SC_rgb_small_odd.dcm", tmp_path)
    store([path])
    study, sop = deid_uid(scp, ds.StudyInstanceUID), deid_uid(scp, ds.SOPInstanceUID)
    from pacs_hdfs.dicom.commit import container_dir
    from pacs_hdfs.schema import row_key
    assert not stores.hbase.get("sop", row_key(sop))
    assert not stores.hdfs.exists(container_dir(study, deid_uid(scp, ds.SeriesInstanceUID)))
    assert find(scp, tmp_path, "STUDY", f"StudyInstanceUID={study}") == []
    pacs = [str(VENV_BIN / "pacs"), "edge", "quarantine"]
    listed = subprocess.run(pacs + ["list", "--json"], capture_output=True, text=True,
                            env=scp.env)
    assert sop in listed.stdout, listed.stderr
    rel = subprocess.run(pacs + ["release", sop], capture_output=True, text=True, env=scp.env)
    assert rel.returncode == 0, rel.stderr
    deadline = time.monotonic() + 60
    while not (images := find(scp, tmp_path, "IMAGE", f"StudyInstanceUID={study}",
                              "SOPInstanceUID")):
        assert time.monotonic() < deadline, "the released object did not arrive"
        time.sleep(0.5)
    assert [i.SOPInstanceUID for i in images] == [sop]


def test_ultrasound_with_a_known_layout_arrives_blanked(scp, stores, tmp_path):
    """pydicom's Philips CX50 ultrasound: a pixel rule gives its banner, so the edge blanks it
    (rows 0-58) and forwards it, declaring Clean Pixel Data; the MDC stores it, not held."""
    import numpy as np
    path, ds = fresh_copy("examples_palette.dcm", tmp_path)
    assert ds.pixel_array[:59].any()  # the banner has content
    store([path])
    out = dcmread(BytesIO(stored_bytes(stores, scp, ds)))
    codes = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert "113101" in codes and out.BurnedInAnnotation == "NO"
    pixels = out.pixel_array
    assert not pixels[:59].any()
    np.testing.assert_array_equal(pixels[59:], ds.pixel_array[59:])


def _scu_assoc(transfer_syntax: str | None = None):
    """A pynetdicom SCU association (storage contexts in the given transfer syntax)."""
    from pynetdicom import AE, StoragePresentationContexts, build_context
    from pynetdicom.sop_class import Verification
    ae = AE(ae_title="PYSCU")
    ts = [transfer_syntax] if transfer_syntax else None
    ae.requested_contexts = [build_context(cx.abstract_syntax, ts)
                             for cx in StoragePresentationContexts[:120]]
    ae.add_requested_context(Verification)
    assoc = ae.associate(HOST, PORT, ae_title="PACS")
    assert assoc.is_established
    return assoc


def test_resend_is_idempotent_and_conflict_refused(scp, stores, tmp_path):
    """Identical re-send: success, no second copy. Changed content under the same SOP UID,
    sent after the first was forwarded: the edge accepts it, the data center refuses it
    (0xC001, first kept) and the edge keeps it in rejected/ for an admin."""
    series, files = synthetic_series(tmp_path, 1)
    store(files)
    row = instance_row(stores, scp, series[0])
    size = stores.hdfs.info(row[b"l:path"].decode()).length
    store(files)  # identical: success, no second copy
    assert instance_row(stores, scp, series[0]) == row
    assert stores.hdfs.info(row[b"l:path"].decode()).length == size
    changed = dcmread(files[0])
    changed.SeriesDescription = "CHANGED"
    assoc = _scu_assoc()
    try:
        assert assoc.send_c_store(changed).Status == 0
        assert assoc.send_c_echo().Status == 0
    finally:
        assoc.release()
    wait_forwarded()
    assert instance_row(stores, scp, series[0]) == row
    rejected = scp.edge_home / "hospital" / "edge" / "rejected"
    assert (rejected / f"{deid_uid(scp, series[0].SOPInstanceUID)}.dcm").exists()


def test_mdc_dimse_stores_only_deidentified_objects(scp, stores, tmp_path):
    """A hospital with its own de-identifier may C-STORE to the MDC (allow-listed AE): an
    identified object is refused and stored nowhere, a de-identified one is stored; any other
    calling AE may not store."""
    from deid import DeidKeys, deidentify
    from pacs_hdfs.schema import row_key
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage
    series, _ = synthetic_series(tmp_path, 2)
    clean = deidentify(series[1], DeidKeys.generate()).dataset
    ae = AE(ae_title=STORE_AE)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(HOST, scp.qr_port, ae_title=MDC_AE)
    assert assoc.is_established
    try:
        refused = assoc.send_c_store(series[0])
        assert refused.Status == 0xC000, hex(refused.Status)
        assert assoc.send_c_store(clean).Status == 0
    finally:
        assoc.release()
    assert not stores.hbase.get("sop", row_key(series[0].SOPInstanceUID))
    assert stores.hbase.get("sop", row_key(clean.SOPInstanceUID))
    other = AE(ae_title="FINDSCU")  # allowed Q/R, not store
    other.add_requested_context(CTImageStorage)
    assoc = other.associate(HOST, scp.qr_port, ae_title=MDC_AE)
    try:
        assert assoc.send_c_store(clean).Status == 0x0124
    finally:
        assoc.release()
    nobody = AE(ae_title="NOBODY")
    nobody.add_requested_context(CTImageStorage)
    assert not nobody.associate(HOST, scp.qr_port, ae_title=MDC_AE).is_established


def test_malformed_object_fails_and_association_stays_up(scp):
    from pynetdicom import _config
    _config.STORE_SEND_CHUNKED_DATASET = True  # send the file's bytes as they are
    try:
        assoc = _scu_assoc()
        try:
            status = assoc.send_c_store(Path(get_testdata_file("MR_truncated.dcm")))
            assert 0xC000 <= status.Status <= 0xCFFF
            assert assoc.send_c_echo().Status == 0
        finally:
            assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
    assert _echo_ok()


def test_eight_parallel_associations(scp, stores, tmp_path):
    study = generate_uid()
    batches = [synthetic_series(tmp_path / str(i), 5, study_uid=study) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda b: store(b[1]), batches))
    from pacs_hdfs.schema import row_key
    rows = stores.hbase.scan("instance", row_prefix=row_key(deid_uid(scp, study)) + b"\x00")
    assert len(rows) == 40
    counters = stores.hbase.get("study", row_key(deid_uid(scp, study)))
    assert int.from_bytes(counters[b"c:instances"], "big") == 40
    assert int.from_bytes(counters[b"c:series"], "big") == 8


def test_datanode_stopped_mid_ingest_keeps_acknowledged(scp, stores, cluster, settings, tmp_path):
    """The edge acknowledges from its own disk; what it acknowledged arrives intact."""
    from deploy.health import hdfs_health
    series, files = synthetic_series(tmp_path, 40, size=256)
    acked = []

    def send():
        assoc = _scu_assoc()
        try:
            for ds in series:
                if assoc.send_c_store(ds).Status == 0:
                    acked.append(ds)
        finally:
            assoc.release()
    t = threading.Thread(target=send)
    t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        cluster.stop_daemon("datanode-2")
        t.join(180)
    finally:
        cluster.start_daemon("datanode-2")
        deadline = time.monotonic() + 120
        while hdfs_health(settings).live_datanodes < settings.datanodes and time.monotonic() < deadline:
            time.sleep(1)
    assert acked, "nothing was acknowledged"
    wait_forwarded()
    for ds in acked:
        assert dcmread(BytesIO(stored_bytes(stores, scp, ds))).SOPInstanceUID == deid_uid(scp, ds.SOPInstanceUID)


def test_hbase_down_edge_keeps_acknowledging_and_delivers_later(scp, stores, cluster, settings,
                                                                 tmp_path):
    """With HBase Thrift down the data center cannot store; the edge still acknowledges the
    modality from its spool and delivers everything once Thrift is back."""
    from deploy.health import hbase_ok
    series, _ = synthetic_series(tmp_path, 4)
    try:
        cluster.stop_daemon("hbase-thrift")
        assoc = _scu_assoc()
        try:
            statuses = [assoc.send_c_store(ds).Status for ds in series]
        finally:
            assoc.release()
        assert statuses == [0] * 4, [hex(x) for x in statuses]
        time.sleep(2)
        assert any(scp.spool.glob("*.dcm")), "nothing could have been forwarded"
    finally:
        cluster.start_daemon("hbase-thrift")
        deadline = time.monotonic() + 120
        while not hbase_ok(settings) and time.monotonic() < deadline:
            time.sleep(1)
    wait_forwarded(timeout=180)
    for ds in series:
        assert dcmread(BytesIO(stored_bytes(stores, scp, ds))).PixelData == ds.PixelData


def test_personalise_restores_original_patient(scp, tmp_path):
    pid = f"PERS-{uuid.uuid4().hex[:8]}"
    series, files = synthetic_series(tmp_path / "in", 3, patient_id=pid,
                                     patient_name="Original^Person", study_date="20230505")
    store(files)
    out = tmp_path / "out"
    res = subprocess.run([str(VENV_BIN / "pacs"), "has", "personalise",  # on the edge host
                          series[0].StudyInstanceUID, "--out", str(out), "--json"],
                         env=scp.env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    written = [dcmread(p) for p in sorted(out.glob("*.dcm"))]
    assert len(written) == 3
    for ds in written:
        assert (ds.PatientID, str(ds.PatientName)) == (pid, "Original^Person")
        assert ds.StudyInstanceUID == series[0].StudyInstanceUID
        assert ds.StudyDate == "20230505" and ds.PatientIdentityRemoved == "NO"
