"""Pure parts of the SCP: config parsing, index rows, ingest checks, C-MOVE contexts."""
from io import BytesIO

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from pacs_hdfs.dicom import index_rows as ix
from pacs_hdfs.dicom.config import ScpConfig, parse_destinations
from pacs_hdfs.dicom.ingest import STATUS, Outcome, check_lengths, serialize
from pacs_hdfs.dicom.query import Stored, level_of, query_keys, QueryError
from pacs_hdfs.dicom.server import build_ae, move_contexts
from pacs_hdfs.dicom.synthetic import add_phi_markers, ct_series


def test_parse_destinations():
    assert parse_destinations("A=127.0.0.1:104, B = host:11113") == {
        "A": ("127.0.0.1", 104), "B": ("host", 11113)}
    with pytest.raises(ValueError):
        parse_destinations("A=nohostport")


def test_allow_list_and_tls_off_by_default():
    cfg = ScpConfig(allowed_aes="MOD1, MOD2", tls_cert="")
    assert cfg.allowed() == {"MOD1", "MOD2"}
    assert cfg.ssl_context() is None
    assert build_ae("PACS", cfg).require_calling_aet == ["MOD1", "MOD2"]


def test_statuses_are_dicom_classes():
    assert Outcome("stored").status == 0 and Outcome("duplicate").status == 0
    assert 0xA700 <= STATUS["storage_unavailable"][0] <= 0xA7FF
    assert all(0xC000 <= STATUS[k][0] <= 0xCFFF for k in ("malformed", "conflict", "deid_failed"))


def test_parent_rows_carry_levels_and_subject_link():
    ds = ct_series(1, patient_id="RSX", patient_name="RSX", size=8)[0]
    attrs = ix.attributes(ds, ix.ALL_KEYS)
    rows = ix.parent_rows(attrs)
    study_key, study_cols = rows["study"]
    assert study_key == ds.StudyInstanceUID.encode()
    assert study_cols[b"a:mod.CT"] == b"1" and study_cols[b"a:PatientID"] == b"RSX"
    assert rows["series"][0] == f"{ds.StudyInstanceUID}\x00{ds.SeriesInstanceUID}".encode()
    assert b"s:" + ds.StudyInstanceUID.encode() in rows["subject"][1]
    assert ix.modalities(study_cols) == ["CT"]


def test_truncated_stream_is_refused():
    ds = dcmread(get_testdata_file("MR_truncated.dcm"), force=True)
    with pytest.raises(ValueError):
        check_lengths(ds)
    check_lengths(dcmread(get_testdata_file("MR_small.dcm")))


def test_serialize_keeps_transfer_syntax_and_pixels():
    src = dcmread(get_testdata_file("MR_small_RLE.dcm"))
    back = dcmread(BytesIO(serialize(src)))
    assert back.file_meta.TransferSyntaxUID == src.file_meta.TransferSyntaxUID
    assert back.PixelData == src.PixelData


def test_phi_markers_reach_nested_and_private():
    ds = add_phi_markers(ct_series(1, patient_id="P", patient_name="N", size=8)[0], "MK")
    texts = [str(e.value) for e in ds.iterall() if e.VR != "SQ"]
    assert any("MKPriv" in t for t in texts) and any("MKDeep" in t for t in texts)


def test_query_keys_and_level():
    from pydicom import Dataset
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyDate = "20200101-20201231"
    q.PatientID = ""
    assert level_of(q) == "STUDY"
    assert query_keys(q) == {"StudyDate": ("20200101-20201231", "DA"), "PatientID": ("", "LO")}
    q.QueryRetrieveLevel = "FRAME"
    with pytest.raises(QueryError):
        level_of(q)


def test_move_contexts_offer_stored_syntax_first():
    cxs = move_contexts([Stored(b"k1", {}, "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.5"),
                         Stored(b"k2", {}, "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")])
    assert len(cxs) == 1
    assert cxs[0].transfer_syntax[0] == "1.2.840.10008.1.2.5"
