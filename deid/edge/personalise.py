"""`pacs has personalise STUDY --out DIR`: a study back from the data center, with its patient.

Runs at the hospital, on the edge host: it fetches the de-identified study from the MDC over
HTTPS with the edge's own client certificate (WADO-RS on the gateway,
`pacs_hdfs/dicom/edge_retrieve.py`, which hands an edge only the objects it sent), then
`deid.reidentify` restores the original patient, study UID and dates from the local vault's
record. Nothing identifying ever travels: the request names the de-identified study UID.
"""
from __future__ import annotations

from io import BytesIO
from pathlib import Path

import requests
from pydicom import dcmread

from deid import reidentify, remap_uid
from deid.edge.forwarder import Target
from deid.vault_access import open_vault
from pacs_hdfs.dicom.multipart import MultipartError, MultipartReader, parse_content_type
from pacs_hdfs.settings import Settings


class PersonaliseError(LookupError):
    pass


def fetch_study(target: Target, study_uid: str, timeout: float = 300) -> list[bytes]:
    """The de-identified study's objects (Part 10 bytes) from the MDC; PersonaliseError when
    the MDC refuses, has nothing, or reports unreadable objects."""
    url = f"{target.url.rstrip('/')}/dicomweb/studies/{study_uid}"
    try:
        r = requests.get(url, cert=(str(target.client_cert), str(target.client_key)),
                         verify=str(target.ca), timeout=(10, timeout), stream=True,
                         headers={"Accept": 'multipart/related; type="application/dicom"'})
    except requests.RequestException as e:
        raise PersonaliseError(f"the data center is not reachable: {type(e).__name__}") from e
    with r:
        if r.status_code != 200:
            raise PersonaliseError(f"the data center answered {r.status_code}: "
                                   f"{r.text[:200]}")
        try:
            _media, params = parse_content_type(r.headers.get("content-type"))
            reader = MultipartReader(params["boundary"])
            parts = [p for chunk in r.iter_content(1 << 20) for p in reader.feed(chunk)]
            parts += reader.close()
        except (MultipartError, KeyError) as e:
            raise PersonaliseError(f"unreadable answer from the data center: {e}") from e
    errors = [p for p in parts if p.media_type == "application/json"]
    if errors:
        raise PersonaliseError(f"the data center could not read part of the study: "
                               f"{errors[0].body[:300].decode(errors='replace')}")
    return [p.body for p in parts]


def personalise_study(settings: Settings, study_uid: str, out: Path,
                      target: Target | None = None) -> dict:
    """Write the study's instances with original identity to `out`; return a small report."""
    from deid.edge.runner import target as edge_target
    target = target or edge_target(settings)
    vault = open_vault(settings.path("hospital", "vault.bin"),
                       settings.path("hospital", "master.key"))
    deid_uid = study_uid
    record = vault.reid_record(deid_uid)
    if record is None:  # given the original UID: the de-identified one is its keyed remap
        deid_uid = remap_uid(vault.deid_keys().uid, study_uid)
        record = vault.reid_record(deid_uid)
    if record is None:
        raise PersonaliseError(f"study {study_uid} is not known to this hospital's vault")
    objects = fetch_study(target, deid_uid)
    out.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(objects, 1):
        ds = dcmread(BytesIO(data))
        reidentify(ds, record).save_as(out / f"IM{i:05d}.dcm", enforce_file_format=True)
    return {"study_uid": record.original_study_uid, "files": len(objects), "out": str(out)}
