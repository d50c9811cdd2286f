"""Hospital side: read a de-identified study back from the data center and restore its patient.

The study is read directly from storage (HBase index -> HDFS byte ranges, sha256-checked);
`deid.reidentify` restores the original patient, study UID and dates from the local vault's
record. Quarantined instances are not handed out.
"""
from __future__ import annotations

from io import BytesIO
from pathlib import Path

from pydicom import dcmread

from deid import reidentify, remap_uid
from pacs_hdfs import clients
from pacs_hdfs.dicom.stored import read_bytes
from pacs_hdfs.dicom.config import ScpConfig
from pacs_hdfs.dicom.vault_access import open_vault
from pacs_hdfs.schema import row_key
from pacs_hdfs.settings import Settings


class PersonaliseError(LookupError):
    pass


def personalise_study(settings: Settings, study_uid: str, out: Path,
                      cfg: ScpConfig | None = None) -> dict:
    """Write the study's instances with original identity to `out`; return a small report."""
    cfg = cfg or ScpConfig()
    vault = open_vault(cfg.vault_path(settings), cfg.key_path(settings))
    deid_uid = study_uid
    record = vault.reid_record(deid_uid)
    if record is None:  # given the original UID: the de-identified one is its keyed remap
        deid_uid = remap_uid(vault.deid_keys().uid, study_uid)
        record = vault.reid_record(deid_uid)
    if record is None:
        raise PersonaliseError(f"study {study_uid} is not known to this hospital's vault")
    hbase, hdfs = clients.hbase(settings), clients.hdfs(settings)
    rows = [(k, r) for k, r in hbase.scan("instance", row_prefix=row_key(deid_uid) + b"\x00")
            if b"l:quarantine" not in r]
    if not rows:
        raise PersonaliseError(f"study {study_uid} has no retrievable instances")
    out.mkdir(parents=True, exist_ok=True)
    for i, (key, row) in enumerate(rows, 1):
        ds = dcmread(BytesIO(read_bytes(hbase, hdfs, key, row)))
        reidentify(ds, record).save_as(out / f"IM{i:05d}.dcm", enforce_file_format=True)
    return {"study_uid": record.original_study_uid, "files": len(rows), "out": str(out)}
