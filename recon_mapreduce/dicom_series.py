"""A reconstructed volume as a DICOM CT series, and storing that series into the PACS.

Geometry: the volume is ``[z, y, x]`` with voxel centres at ``(i - (N - 1) / 2) * voxel_size``
(see ``geometry``). World axes are taken as the patient axes (LPS: +x left, +y posterior,
+z head), so slice ``k`` is an axial image whose rows run along +x and columns along +y:
ImageOrientationPatient ``1\\0\\0\\0\\1\\0``, normal +z, and ImagePositionPatient (centre of the
first pixel) steps by SliceThickness along the normal.

Values: attenuation (1/mm) becomes HU with ``HU = 1000 * (mu / mu_water - 1)`` and is stored as
int16 with RescaleSlope / RescaleIntercept (slope 1, intercept -1024 unless the range needs a
coarser slope), so a round trip is within half a HU.

Identity: no PHI exists for a simulated scan; the series carries a research-subject pseudonym
derived from the projection directory, fresh ``2.25.`` UIDs and PatientIdentityRemoved YES.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

from recon_mapreduce.geometry import ConeBeamGeometry

MU_WATER = 0.2  # 1/mm: the Shepp-Logan "brain" value, taken as water (0 HU)
INT16 = (-32768, 32767)


def rescale_for(hu_min: float, hu_max: float) -> tuple[float, float]:
    """(slope, intercept) for int16 storage: the CT default (1, -1024) when the range fits."""
    slope, intercept = 1.0, -1024.0
    if hu_min - intercept >= INT16[0] and hu_max - intercept <= INT16[1]:
        return slope, intercept
    slope = float(np.ceil((hu_max - hu_min) / (INT16[1] - INT16[0] - 2)))
    return slope, float(hu_min - (INT16[0] + 1) * slope)


def to_hu(mu: np.ndarray, mu_water: float = MU_WATER) -> np.ndarray:
    return 1000.0 * (np.asarray(mu, dtype=np.float64) / mu_water - 1.0)


def to_stored(hu: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    return np.clip(np.rint((hu - intercept) / slope), *INT16).astype(np.int16)


def pseudonym(source: str) -> str:
    """A stable research-subject id for a simulated scan (no PHI exists to protect)."""
    return "SIM-" + hashlib.sha256(source.encode()).hexdigest()[:12].upper()


def series_header(geom: ConeBeamGeometry, subject: str, description: str,
                  derivation: str) -> Dataset:
    """Study / series / frame-of-reference attributes shared by all slices (new UIDs)."""
    now = dt.datetime.now(dt.timezone.utc)
    ds = Dataset()
    ds.PatientID = subject
    ds.PatientName = subject
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "simulated scan; research subject pseudonym, no PHI"
    ds.StudyInstanceUID = generate_uid(prefix=None)
    ds.SeriesInstanceUID = generate_uid(prefix=None)
    ds.FrameOfReferenceUID = generate_uid(prefix=None)
    ds.StudyID = "FDK"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.AccessionNumber = ""
    ds.StudyDescription = "Cone-beam CT reconstruction"
    ds.SeriesDescription = description[:64]
    ds.Modality = "CT"
    ds.SeriesNumber = 1
    ds.BodyPartExamined = "HEAD"
    ds.Manufacturer = "pacs-mdc"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.DerivationDescription = derivation[:1024]
    ds.PixelSpacing = [f"{geom.voxel_size:.6g}", f"{geom.voxel_size:.6g}"]
    ds.SliceThickness = f"{geom.voxel_size:.6g}"
    ds.SpacingBetweenSlices = f"{geom.voxel_size:.6g}"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PositionReferenceIndicator = ""
    return ds


def slice_dataset(header: Dataset, geom: ConeBeamGeometry, k: int, mu_slice: np.ndarray,
                  slope: float, intercept: float) -> Dataset:
    """Slice ``k`` (0-based z index) of the volume as a CT Image Storage dataset."""
    coords = geom.voxel_coordinates()
    ds = Dataset()
    ds.update(header)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid(prefix=None)
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [f"{coords[0]:.6f}", f"{coords[0]:.6f}", f"{coords[k]:.6f}"]
    ds.SliceLocation = f"{coords[k]:.6f}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = mu_slice.shape  # rows along y, columns along x
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = f"{slope:.6g}"
    ds.RescaleIntercept = f"{intercept:.6g}"
    ds.RescaleType = "HU"
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    ds.KVP = ""
    ds.AcquisitionNumber = 1
    ds.PixelData = to_stored(to_hu(mu_slice), slope, intercept).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def volume_datasets(slabs, geom: ConeBeamGeometry, header: Dataset, mu_range: tuple[float, float]):
    """Yield one dataset per slice from ``(z0, slab)`` pairs (one slab in memory at a time)."""
    hu_min, hu_max = (float(v) for v in to_hu(np.array(mu_range)))
    slope, intercept = rescale_for(hu_min, hu_max)
    for z0, slab in slabs:
        for offset, mu_slice in enumerate(slab):
            yield slice_dataset(header, geom, z0 + offset, mu_slice, slope, intercept)


def hu_of(ds: Dataset) -> np.ndarray:
    """Pixel values in HU, as a viewer computes them."""
    stored = np.frombuffer(ds.PixelData, dtype="<i2").reshape(ds.Rows, ds.Columns)
    return stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


#: what the instance rows record as ``l:edge`` (the sender) for the FDK job's series
SOURCE = "recon:fdk"


def store_series_in_pacs(datasets, hdfs, hbase, source: str = SOURCE) -> dict:
    """Store the series through the archive's ingest path: each slice is serialised and read
    back like a received object (`received.made_in_mdc`: Part 10 reading, `validation.check`,
    the index attributes of `received.prepare`), then committed by `commit.Committer` in
    batches (verified batch files on HDFS, then instance, series and study rows and counters),
    so its rows are built by the same code as every ingested object's. There is no
    de-identification check: a simulated scan never carried PHI."""
    from pacs_hdfs.containers import ContainerWriter
    from pacs_hdfs.dicom.commit import Committer, Prepared, container_dir
    from pacs_hdfs.dicom.part10 import serialize
    from pacs_hdfs.dicom.received import made_in_mdc
    from pacs_hdfs.hdfs_store import StorageError

    committer = Committer(hbase, ContainerWriter(hdfs, writer="recon"))
    study = series = ""
    count = size = 0
    batch: list[Prepared] = []

    def flush():
        nonlocal count, size
        outcomes = committer.store_many(batch)
        failed = [o for o in outcomes if not o.acknowledged]
        if failed:
            raise StorageError(f"{len(failed)} reconstructed slice(s) not stored: "
                               f"{failed[0].comment}")
        count += len(batch)
        size += sum(len(p.data) for p in batch)
        batch.clear()

    for ds in datasets:
        got = made_in_mdc(serialize(ds), source)
        if got.failure is not None:
            raise ValueError(f"reconstructed slice refused by ingest rules ({got.kind}): "
                             f"{got.reason}")
        study, series = got.prepared.attrs["StudyInstanceUID"], got.prepared.attrs["SeriesInstanceUID"]
        batch.append(got.prepared)
        if sum(len(p.data) for p in batch) >= 32 << 20:
            flush()
    if batch:
        flush()
    return {"study_uid": study, "series_uid": series, "instances": count, "bytes": size,
            "container_dir": hdfs.abs(container_dir(study, series)) if count else None,
            "stored_via": "pacs_hdfs.dicom.received.made_in_mdc + commit.Committer",
            "source": source}


def store_volume_series(ctx, volume_meta: dict, geom: ConeBeamGeometry, params) -> dict:
    """The fdk job's last step: read the slabs back one at a time, store the series in the PACS."""
    from recon_mapreduce.projection_store import npy_load

    slabs = [(s["z0"], s["path"]) for s in volume_meta["slabs"]]
    lo = min(volume_meta.get("min", 0.0), 0.0)
    hi = max(volume_meta.get("max", MU_WATER), MU_WATER)
    derivation = (f"FDK cone-beam reconstruction on Spark (job {ctx.job_id}, filter "
                  f"{params.filter}, {geom.n_angles} projections, detector "
                  f"{geom.n_rows}x{geom.n_cols}) from {params.projections}")
    header = series_header(geom, pseudonym(params.projections),
                           f"FDK {params.filter} {geom.n_voxels}^3", derivation)
    loaded = ((z0, npy_load(ctx.hdfs.read(path))) for z0, path in slabs)
    return store_series_in_pacs(volume_datasets(loaded, geom, header, (lo, hi)), ctx.hdfs,
                                ctx.hbase)
