"""`deid.edge.encode` writes exactly what pydicom's dcmwrite writes, for every test file."""
from __future__ import annotations

from io import BytesIO

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_files

from deid.deidentify import deidentify
from deid.edge.encode import _fast_encoding, encode
from deid.keys import DeidKeys
from pacs_hdfs.dicom.synthetic import add_phi_markers, ct_series

try:
    from pacs_hdfs.dicom.part10 import serialize
except ImportError:
    from pacs_hdfs.dicom.ingest import serialize

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
KEYS = DeidKeys.generate()


def _deidentified(raw: bytes):
    return deidentify(dcmread(BytesIO(raw), force=True), KEYS).dataset


def _cases():
    for path in sorted(get_testdata_files("*.dcm")):
        raw = open(path, "rb").read()
        try:
            ds = dcmread(BytesIO(raw), force=True)
            if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
                continue
            serialize(deidentify(ds, KEYS).dataset)
        except Exception:  # noqa: BLE001 - files pydicom itself cannot write back
            continue
        yield pytest.param(raw, id=path.rsplit("/", 1)[-1])


@pytest.mark.parametrize("raw", list(_cases()))
def test_same_bytes_as_pydicom(raw):
    assert encode(_deidentified(raw)) == serialize(_deidentified(raw))


def test_fast_path_is_taken_for_the_common_case():
    ds = add_phi_markers(ct_series(1, patient_id="E1", patient_name="Enc^Pat", size=16)[0], "M")
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    out = _deidentified(buf.getvalue())
    assert _fast_encoding(out) == (False, True)
    assert encode(out) == serialize(_deidentified(buf.getvalue()))


def test_a_series_through_the_cache_is_still_pydicoms_bytes():
    """Most changed elements repeat across a series and come from the cache the second time."""
    raws = []
    for ds in ct_series(5, patient_id="E2", patient_name="Enc^Series", size=16):
        buf = BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        raws.append(buf.getvalue())
    for _ in range(2):
        assert [encode(_deidentified(r)) for r in raws] == \
               [serialize(_deidentified(r)) for r in raws]
