"""Pure parts of the MDC DIMSE service: policy, index rows, ingest checks, C-MOVE contexts."""
from io import BytesIO

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from pacs_hdfs.dicom import index_rows as ix
from pacs_hdfs.dicom.commit import STATUS, Outcome
from pacs_hdfs.dicom.config import NOBODY, DimsePolicy, parse_destinations, ssl_context
from pacs_hdfs.dicom.part10 import check_lengths, serialize
from pacs_hdfs.settings import Settings
from pacs_hdfs.dicom.query import Stored, level_of, query_keys, QueryError
from pacs_hdfs.dicom.server import build_ae, move_contexts
from pacs_hdfs.dicom.synthetic import add_phi_markers, ct_series


def test_parse_destinations():
    assert parse_destinations("A=127.0.0.1:104, B = host:11113") == {
        "A": ("127.0.0.1", 104), "B": ("host", 11113)}
    with pytest.raises(ValueError):
        parse_destinations("A=nohostport")


def test_nobody_may_associate_by_default_and_tls_is_off():
    s = Settings()
    policy = DimsePolicy.from_settings(s)
    assert s.mdc_dimse_bind == "127.0.0.1" and ssl_context(s) is None
    assert build_ae("MDC", policy).require_calling_aet == [NOBODY]
    assert not policy.may_query("ANY") and not policy.may_store("ANY")


def test_allow_lists_separate_query_from_store():
    policy = DimsePolicy.from_settings(Settings(mdc_dimse_qr_aes="WS1, WS2",
                                                mdc_dimse_store_aes="HOSPDEID"))
    assert build_ae("MDC", policy).require_calling_aet == ["HOSPDEID", "WS1", "WS2"]
    assert policy.may_query("WS1") and not policy.may_store("WS1")
    assert policy.may_store("HOSPDEID") and not policy.may_query("HOSPDEID")


def test_statuses_are_dicom_classes():
    assert Outcome("stored").status == 0 and Outcome("duplicate").status == 0
    assert 0xA700 <= STATUS["storage_unavailable"][0] <= 0xA7FF
    assert all(0xC000 <= STATUS[k][0] <= 0xCFFF for k in ("malformed", "conflict", "cannot_process"))


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
