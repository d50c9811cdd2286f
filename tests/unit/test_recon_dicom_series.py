"""A reconstructed volume as a DICOM CT series: geometry, rescale, identity."""
import io

import numpy as np
import pydicom
import pytest
from pydicom.filewriter import dcmwrite

from recon_mapreduce import dicom_series as ds_mod
from recon_mapreduce.geometry import ConeBeamGeometry


@pytest.fixture(scope="module")
def series():
    geom = ConeBeamGeometry.for_volume(12, 8, voxel_size=0.7)
    rng = np.random.default_rng(3)
    volume = rng.uniform(-0.05, 1.0, (12, 12, 12)).astype(np.float32)
    header = ds_mod.series_header(geom, ds_mod.pseudonym("tmp/scan"), "FDK test", "FDK of a test")
    slabs = [(0, volume[:5]), (5, volume[5:])]
    datasets = list(ds_mod.volume_datasets(slabs, geom, header, (volume.min(), volume.max())))
    return geom, volume, datasets


def roundtrip(ds):
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def test_positions_step_by_slice_thickness_along_the_normal(series):
    geom, _, datasets = series
    read = [roundtrip(ds) for ds in datasets]
    orientation = np.array(read[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    positions = np.array([np.array(ds.ImagePositionPatient, dtype=float) for ds in read])
    steps = np.diff(positions @ normal)
    assert np.allclose(steps, float(read[0].SliceThickness), atol=1e-5)
    assert np.allclose(np.diff(positions, axis=0) - np.outer(steps, normal), 0, atol=1e-5)
    assert [float(v) for v in read[0].PixelSpacing] == pytest.approx([0.7, 0.7])
    # the first pixel of slice k is voxel (k, 0, 0): its world centre
    coords = geom.voxel_coordinates()
    assert positions[3] == pytest.approx([coords[0], coords[0], coords[3]], abs=1e-5)
    assert [ds.InstanceNumber for ds in read] == list(range(1, 13))


def test_rescale_round_trip_within_one_hu(series):
    _, volume, datasets = series
    for k, ds in enumerate(datasets):
        ds = roundtrip(ds)
        assert ds.pixel_array.dtype == np.int16
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.abs(hu - ds_mod.to_hu(volume[k])).max() <= 1.0
        assert np.array_equal(ds.pixel_array.shape, volume[k].shape)


def test_wide_ranges_get_a_coarser_slope_and_still_fit_int16():
    slope, intercept = ds_mod.rescale_for(-1000.0, 200_000.0)
    assert slope > 1
    stored = ds_mod.to_stored(np.array([-1000.0, 200_000.0]), slope, intercept)
    back = stored * slope + intercept
    assert np.abs(back - [-1000.0, 200_000.0]).max() <= slope / 2
    assert ds_mod.rescale_for(-1000.0, 3000.0) == (1.0, -1024.0)


def test_identity_is_new_uids_and_a_pseudonym(series):
    _, _, datasets = series
    first = datasets[0]
    uids = {ds.SOPInstanceUID for ds in datasets}
    assert len(uids) == len(datasets)
    for uid in (first.StudyInstanceUID, first.SeriesInstanceUID, first.FrameOfReferenceUID,
                *uids):
        assert uid.startswith("2.25.") and len(uid) <= 64
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    assert list(first.ImageType) == ["DERIVED", "SECONDARY", "AXIAL"]
    assert first.DerivationDescription and first.Modality == "CT"
    assert first.PatientIdentityRemoved == "YES"
    assert first.PatientID == ds_mod.pseudonym("tmp/scan") != ds_mod.pseudonym("tmp/other")
    assert "PatientBirthDate" not in first and "InstitutionName" not in first


def _ingested_ct_rows():
    """Rows of a de-identified CT series stored the way STOW-RS stores it (receive, Committer)."""
    from deid import DeidKeys, deidentify
    from pacs_hdfs.containers import ContainerWriter
    from pacs_hdfs.dicom.commit import Committer
    from pacs_hdfs.dicom.part10 import serialize
    from pacs_hdfs.dicom.received import receive
    from pacs_hdfs.dicom.synthetic import ct_series
    from tests.memory_store import MemoryStore
    from tests.memory_archive import MemoryFiles

    keys = DeidKeys.generate()
    hbase = MemoryStore()
    committer = Committer(hbase, ContainerWriter(MemoryFiles(), writer="unit"))
    datasets = [deidentify(ds, keys).dataset
                for ds in ct_series(3, patient_id="MRN-1", patient_name="Doe^J", size=16)]
    received = [receive(serialize(ds), "edge-a") for ds in datasets]
    assert all(r.failure is None for r in received)
    assert all(o.acknowledged for o in committer.store_many([r.prepared for r in received]))
    return hbase, [serialize(ds) for ds in datasets]


def test_series_rows_are_built_by_the_ingest_code(series):
    from pacs_hdfs.dicom.received import made_in_mdc, receive
    from tests.memory_store import MemoryStore
    from tests.memory_archive import MemoryFiles

    geom, volume, _ = series
    header = ds_mod.series_header(geom, ds_mod.pseudonym("tmp/scan"), "FDK test", "FDK of a test")
    hbase, files = MemoryStore(), MemoryFiles()
    result = ds_mod.store_series_in_pacs(
        ds_mod.volume_datasets([(0, volume)], geom, header, (volume.min(), volume.max())),
        files, hbase)
    assert result["instances"] == 12 and result["source"] == ds_mod.SOURCE
    ingested, ingested_bytes = _ingested_ct_rows()
    # the same function prepares a received object and a reconstructed one
    for data in ingested_bytes:
        assert made_in_mdc(data, "edge-a").prepared == receive(data, "edge-a").prepared
    for table in ("instance", "series", "study", "sop"):
        ours = hbase.tables[table].values()
        theirs = ingested.tables[table].values()
        columns = lambda rows: set().union(*map(set, rows))  # noqa: E731
        # every bookkeeping column (location, transfer syntax, sender, counters) is the same;
        # attribute columns differ only by which attributes the two series carry
        assert ({c for c in columns(ours) if not c.startswith(b"a:")}
                == {c for c in columns(theirs) if not c.startswith(b"a:")}), table
    rows = list(hbase.tables["instance"].values())
    assert {r[b"l:edge"] for r in rows} == {ds_mod.SOURCE.encode()}
    assert {r[b"a:Modality"] for r in rows} == {b"CT"}


def test_a_slice_the_ingest_rules_refuse_is_not_stored(series):
    from tests.memory_store import MemoryStore
    from tests.memory_archive import MemoryFiles

    _, _, datasets = series
    broken = datasets[0].copy()
    broken.file_meta = datasets[0].file_meta
    broken.Rows = 13  # pixel data no longer matches Rows x Columns
    hbase = MemoryStore()
    with pytest.raises(ValueError, match="refused by ingest rules"):
        ds_mod.store_series_in_pacs([broken], MemoryFiles(), hbase)
    assert not hbase.tables.get("instance")
