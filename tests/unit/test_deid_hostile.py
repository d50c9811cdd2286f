"""A hostile tester's object (issue 14): a marker in every attribute class the de-identifier used
to miss - descriptors with a name and a PESEL, DA/DT ranges and multi-values, an SR content
tree, encrypted attributes, person names sent with the wrong VR, private and unknown tags,
patients with no identity - never reaches the bytes the edge writes (`deid.edge.encode`), and
what is kept is kept in its cleaned form."""
from __future__ import annotations

import datetime as dt
import io
import logging

import pydicom
import pytest
from pydicom import Dataset, Sequence
from pydicom.dataelem import DataElement
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from deid import DeidKeys, DeidOptions, deidentify
from deid.edge.encode import encode
from deid.verify import verify_deidentified
from pacs_hdfs.dicom.synthetic import ct_series

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

KEYS = DeidKeys.generate()
MARKER = "ZZHOSTILE"
PESEL = "85010112345"
#: Dates that appear nowhere else in the object: none may be stored unshifted.
DATES = {"d1": "19730405", "d2": "19730406", "d3": "19730407", "d4": "19730408",
         "d5": "19730409", "d6": "19730410", "d7": "19730411", "d8": "19730412"}


def _un(tag: int, data: bytes) -> DataElement:
    """An element sent as UN (pydicom would otherwise give a known tag its dictionary VR)."""
    pydicom.config.replace_un_with_known_vr = False
    try:
        return DataElement(tag, "UN", data)
    finally:
        pydicom.config.replace_un_with_known_vr = True


def _item(**attrs) -> Dataset:
    item = Dataset()
    for keyword, value in attrs.items():
        setattr(item, keyword, value)
    return item


def hostile(patient_id: str = "PID-HOSTILE", name: str = "Kowalska^Anna", study: str | None = None
            ) -> Dataset:
    """A small CT carrying MARKER (or one of DATES) in every attribute class of issue 14."""
    ds = ct_series(1, patient_id=patient_id, patient_name=name, size=8, study_uid=study)[0]
    d = DATES
    # descriptors: free text with a name and a national id, and clean ones
    ds.StudyDescription = f"CT KLATKI Jan Kowalski {PESEL} {MARKER}"
    ds.SeriesDescription = f"AX {MARKER}"
    ds.ProtocolName = f"Thorax {MARKER}"
    ds.ImageComments = f"{MARKER} tel 600 123 456"
    ds.RequestAttributesSequence = Sequence([_item(
        RequestedProcedureDescription=f"Dr {MARKER}", ScheduledProcedureStepDescription="CT")])
    # dates: DT range, DA range, open ranges, multi-values, text after a date, TM garbage
    ds.AcquisitionDateTime = f"{d['d1']}101010-{d['d2']}111111"
    ds.add_new(0x00181012, "DA", [d["d3"], d["d4"]])            # DateOfSecondaryCapture
    ds.add_new(0x00080021, "DA", f"{d['d5']}-")                 # SeriesDate: open range
    ds.add_new(0x00080023, "DA", f"-{d['d6']}")                 # ContentDate: open range
    ds.add_new(0x00080012, "DA", f"{d['d7']}{MARKER}")          # InstanceCreationDate + text
    ds.add_new(0x00080013, "TM", f"10{MARKER}")                 # InstanceCreationTime: text
    # SR content tree, two levels deep
    when = _item(RelationshipType="HAS OBS CONTEXT", ValueType="DATETIME",
                 DateTime=f"{d['d8']}080000.5+0100")
    text = _item(RelationshipType="CONTAINS", ValueType="TEXT",
                 TextValue=f"Findings for {MARKER} Anna Kowalska")
    person = _item(RelationshipType="HAS OBS CONTEXT", ValueType="PNAME",
                   PersonName=f"{MARKER}^Observer")
    day = _item(RelationshipType="CONTAINS", ValueType="DATE", Date=d["d1"])
    tm = _item(RelationshipType="CONTAINS", ValueType="TIME", Time="0930")
    ref = _item(RelationshipType="CONTAINS", ValueType="NUM", TemporalRangeType="POINT")
    ref.ReferencedDateTime = [f"{d['d2']}120000", f"{d['d3']}130000"]
    container = _item(RelationshipType="CONTAINS", ValueType="CONTAINER")
    container.ContentSequence = Sequence([text, person, day, tm, ref])
    ds.ContentSequence = Sequence([when, container])
    # encrypted original values and the table's own record of original values
    ds.EncryptedAttributesSequence = Sequence([_item(
        EncryptedContentTransferSyntaxUID="1.2.840.10008.1.2.1",
        EncryptedContent=f"{MARKER}Encrypted".encode())])
    ds.OriginalAttributesSequence = Sequence([_item(
        SourceOfPreviousValues=MARKER, ModifyingSystem="X",
        AttributeModificationDateTime=f"{d['d4']}",
        ModifiedAttributesSequence=Sequence([_item(PatientName=f"{MARKER}^Orig")]))])
    # person names and text sent with another VR than the dictionary's
    ds[0x00081060] = DataElement(0x00081060, "CS", f"{MARKER}CS")        # PN as CS
    ds[0x00081048] = DataElement(0x00081048, "OB", f"{MARKER}OB".encode())  # PN as OB
    ds[0x00101001] = _un(0x00101001, f"{MARKER}UN".encode())                  # PN as UN
    ds[0x00101080] = DataElement(0x00101080, "OB", f"{MARKER}LO".encode())  # LO as OB
    ds[0x00080090] = DataElement(0x00080090, "LO", f"{MARKER}^Ref")         # PN as LO
    # private block with text and a sequence; a public tag no dictionary knows
    block = ds.private_block(0x0011, "HOSTILE 1.0", create=True)
    block.add_new(0x01, "LO", f"{MARKER}Private")
    block.add_new(0x02, "SQ", Sequence([_item(PatientName=f"{MARKER}^Priv")]))
    ds.add_new(0x00231234, "LO", f"{MARKER}Unknown")
    # characteristics: an old patient, a birth date
    ds.PatientAge = "097Y"
    ds.PatientBirthDate = "19260101"
    return ds


def _bytes(ds: Dataset, syntax=ExplicitVRLittleEndian) -> bytes:
    ds.file_meta.TransferSyntaxUID = syntax
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def _received(ds: Dataset, syntax=ExplicitVRLittleEndian) -> Dataset:
    """As the edge gets it: parsed lazily from the bytes a modality sent."""
    return pydicom.dcmread(io.BytesIO(_bytes(ds, syntax)), force=True)


def _secrets(source: Dataset) -> list[bytes]:
    return [MARKER.encode(), PESEL.encode(), b"Kowalsk", b"19260101", source.PatientID.encode(),
            *(v.encode() for v in DATES.values())]


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                                    ExplicitVRBigEndian], ids=["explicit", "implicit", "big"])
@pytest.mark.parametrize("options", [
    DeidOptions(),
    DeidOptions(clean_structured_content=False, clean_descriptors=False),
    DeidOptions(retain_longitudinal_modified_dates=False, clean_graphics=True),
], ids=["default", "no-clean-options", "dates-removed"])
def test_no_marker_reaches_the_encoded_bytes(syntax, options):
    source = hostile()
    sent = _bytes(source, syntax)
    assert MARKER.encode() in sent and PESEL.encode() in sent  # the object really carries them
    out = deidentify(_received(source, syntax), KEYS, options).dataset
    data = encode(out)
    for secret in _secrets(source):
        assert secret not in data, secret
    assert verify_deidentified(out) == []
    assert verify_deidentified(pydicom.dcmread(io.BytesIO(data))) == []


def _shifted(result, value: str) -> str:
    day = dt.datetime.strptime(value, "%Y%m%d") + dt.timedelta(result.reid_record.date_shift_days)
    return day.strftime("%Y%m%d")


def test_descriptors_with_a_name_or_a_national_id_are_removed_clean_ones_kept():
    source = hostile()
    source.SeriesDescription = "AX T2 FLAIR 5MM Z KONTRASTEM"
    source.add_new(0x00180015, "CS", "CHEST")  # BodyPartExamined: a code, kept as is
    out = deidentify(_received(source), KEYS).dataset
    assert "StudyDescription" not in out  # X: removed
    assert out.SeriesDescription == "AX T2 FLAIR 5MM Z KONTRASTEM"
    assert out.ProtocolName == "ANONYMIZED"  # X/D: a dummy where the IOD may need a value
    assert "ImageComments" not in out
    request = out.RequestAttributesSequence[0]
    assert request.RequestedProcedureDescription == ""  # X/Z: emptied
    assert request.ScheduledProcedureStepDescription == "CT"


def test_date_ranges_both_ends_open_ends_and_multi_values_are_shifted():
    result = deidentify(_received(hostile()), KEYS)
    out, d = result.dataset, DATES
    assert out.AcquisitionDateTime == (f"{_shifted(result, d['d1'])}101010-"
                                       f"{_shifted(result, d['d2'])}111111")
    assert list(out.DateOfSecondaryCapture) == [_shifted(result, d["d3"]), _shifted(result, d["d4"])]
    assert out.SeriesDate == f"{_shifted(result, d['d5'])}-"
    assert out.ContentDate == f"-{_shifted(result, d['d6'])}"


def test_dates_and_times_with_text_in_them_are_dropped():
    out = deidentify(_received(hostile()), KEYS).dataset
    assert out.InstanceCreationDate == "" and out.InstanceCreationTime == ""
    assert out.StudyTime == "101500"  # a well-formed time is kept (whole-day shifts)


def test_sr_content_tree_dates_shifted_text_and_names_removed():
    result = deidentify(_received(hostile()), KEYS)
    when, container = result.dataset.ContentSequence
    assert when.DateTime == f"{_shifted(result, DATES['d8'])}080000.5+0100"
    text, person, day, tm, ref = container.ContentSequence
    assert "TextValue" not in text
    assert person.PersonName == "ANONYMIZED"
    assert day.Date == _shifted(result, DATES["d1"])
    assert tm.Time == "0930"
    assert list(ref.ReferencedDateTime) == [f"{_shifted(result, DATES['d2'])}120000",
                                            f"{_shifted(result, DATES['d3'])}130000"]


def test_sr_content_is_emptied_without_clean_structured_content():
    options = DeidOptions(clean_structured_content=False)
    out = deidentify(_received(hostile()), KEYS, options).dataset
    assert len(out.ContentSequence) == 0  # D: a sequence without items


def test_encrypted_and_original_attributes_are_removed():
    out = deidentify(_received(hostile()), KEYS).dataset
    assert "EncryptedAttributesSequence" not in out
    assert "OriginalAttributesSequence" not in out


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ExplicitVRBigEndian])
def test_wrong_vr_elements_are_judged_by_the_dictionary_vr(syntax):
    source = hostile()
    order = "little" if syntax == ExplicitVRLittleEndian else "big"
    source[0x00280010] = _un(0x00280010, (8).to_bytes(2, order))  # a number sent as UN
    source[0x00280011] = DataElement(0x00280011, "LO", "ZZROWSXX")  # 8 bytes: 4 numbers, VM 1
    source[0x0020000D] = DataElement(0x0020000D, "LO", source.StudyInstanceUID)  # UID as LO
    out = deidentify(_received(source, syntax), KEYS).dataset
    for tag in (0x00081060, 0x00081048, 0x00101001, 0x00101080):  # X: removed
        assert tag not in out, hex(tag)
    assert out[0x00080090].VR == "PN" and out.ReferringPhysicianName == ""  # Z: emptied
    assert out[0x00280010].VR == "US" and out.Rows == 8  # a number sent as UN: kept, as US
    assert 0x00280011 not in out  # text sent where a number belongs: removed
    assert out[0x0020000D].VR == "UI" and out.StudyInstanceUID.startswith("2.25.")


def test_private_and_unknown_public_tags_are_removed():
    out = deidentify(_received(hostile()), KEYS).dataset
    assert not any(elem.tag.is_private for elem in out.iterall())
    assert 0x00231234 not in out


def test_age_is_top_coded_and_birth_date_emptied():
    source = hostile()
    out = deidentify(_received(source), KEYS).dataset
    assert out.PatientAge == "090Y" and out.PatientBirthDate == ""
    source.PatientAge = "089Y"
    assert deidentify(_received(source), KEYS).dataset.PatientAge == "089Y"
    source.PatientAge = "1100M"  # not an age string: dropped
    assert deidentify(_received(source), KEYS).dataset.PatientAge == ""


def test_patients_without_identity_get_distinct_pseudonyms_and_shifts(caplog):
    caplog.set_level(logging.INFO, logger="deid.deidentify")
    results = []
    for n in range(8):
        source = hostile(patient_id="", name="", study=f"1.2.826.0.1.3680043.55.{n}")
        results.append(deidentify(_received(source), KEYS))
    assert len({r.patient_pseudonym for r in results}) == 8
    assert len({r.reid_record.date_shift_days for r in results}) > 1
    # objects of one study stay together
    again = deidentify(_received(hostile(patient_id="", name="",
                                         study="1.2.826.0.1.3680043.55.0")), KEYS)
    assert again.patient_pseudonym == results[0].patient_pseudonym
    # the log names the de-identified study only, once per study
    lines = [r.getMessage() for r in caplog.records if r.name == "deid.deidentify"]
    assert len(lines) == 8
    assert all(r.deid_study_uid in line for r, line in zip(results, lines))
    assert not any("1.2.826.0.1.3680043.55" in line or MARKER in line for line in lines)


def test_patient_id_keys_the_shift_that_visits_use():
    """The HL7 side shifts a visit with date_shift_days(key, national id, issuer=''): the same
    function, key and identity as a DICOM object whose PatientID is that national id."""
    from deid import date_shift_days
    result = deidentify(_received(hostile(patient_id=PESEL)), KEYS)
    assert result.reid_record.date_shift_days == date_shift_days(KEYS.date_shift, PESEL, "")


def test_the_edge_logs_and_warns_no_marker(tmp_path, caplog, recwarn):
    """pydicom quotes an invalid value when it warns (a name typed into a date): on the edge it
    must not, so nothing the receive path logs or warns carries the object's PHI."""
    import warnings

    from deid.edge.layout import EdgePaths
    from deid.edge.receive import Receiver
    from deid.edge.spool import Spool
    from deid.vault import Vault, generate_master_key
    vault = Vault.open(tmp_path / "vault.bin", master_key=generate_master_key())
    receiver = Receiver(vault.deid_keys(), vault, Spool(EdgePaths(tmp_path / "edge")))
    caplog.set_level(logging.DEBUG)
    warnings.simplefilter("always")
    receipt = receiver.store(_bytes(hostile()))
    assert receipt.accepted
    assert MARKER not in caplog.text and PESEL not in caplog.text
    assert not any(MARKER in str(w.message) for w in recwarn)
