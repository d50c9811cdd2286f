"""DICOMweb and the viewer endpoints on the real cluster, driven by the `dicomweb-client` package.

Studies arrive through the real path (hospital edge with its own vault -> STOW-RS -> gateway,
tests/integration/dicom_support.py); a real `pacs portal` subprocess answers on a free port. Checked: QIDO
search at three levels, WADO retrieve bytes == what HDFS holds (sha256), metadata
without pixel data, frames, rendered PNG/JPEG, no PHI markers, an object held at the edge absent,
404 for unknown UIDs, 401 without or with wrong credentials, the accession link.
"""
from __future__ import annotations

import hashlib
import secrets
import uuid
from io import BytesIO
from types import SimpleNamespace

import numpy as np
import pytest
import requests
from PIL import Image
from pydicom import dcmread

from tests.portal_support import free_port, portal_process
from tests.integration.dicom_support import (DCMTK, deid_uid, fresh_copy, instance_key,
                                             scp_process, store)

pytestmark = pytest.mark.cluster
dicomweb_client = pytest.importorskip("dicomweb_client", reason="needs dicomweb-client (test extra)")
from dicomweb_client.api import DICOMwebClient  # noqa: E402
from dicomweb_client.session_utils import create_session_from_user_pass  # noqa: E402

SCP_PORT, SCP_DEST_PORT = free_port(), free_port()


@pytest.fixture(scope="module")
def stores(settings):
    from pacs_hdfs import clients
    return SimpleNamespace(hbase=clients.hbase(settings), hdfs=clients.hdfs(settings))


@pytest.fixture(scope="module")
def archive(cluster, stores, tmp_path_factory):
    """Two clean studies (a CT series with a PHI marker, a vendor MR) and a quarantined object."""
    if not DCMTK:
        pytest.skip("dcmtk is not installed (apt-get install -y dcmtk)")
    from pacs_hdfs.dicom.synthetic import add_phi_markers, ct_series, write_files
    d = tmp_path_factory.mktemp("dicomweb")
    marker = f"ZQW{uuid.uuid4().hex[:8].upper()}"
    with scp_process(d, SCP_PORT, SCP_DEST_PORT) as scp:
        ct = [add_phi_markers(ds, marker) for ds in
              ct_series(4, patient_id=f"{marker}PID", patient_name=f"{marker}^N", size=64,
                        accession=f"{marker}ACC")]
        mr_path, mr = fresh_copy("MR_small.dcm", d / "mr")
        q_path, held = fresh_copy("SC_rgb_small_odd.dcm", d / "q")   # burned-in PHI suspect
        store(write_files(ct, d / "ct") + [mr_path, q_path], port=SCP_PORT)
        yield SimpleNamespace(
            scp=scp, marker=marker, ct=ct, mr=mr, held=held,
            ct_study=deid_uid(scp, ct[0].StudyInstanceUID),
            ct_series=deid_uid(scp, ct[0].SeriesInstanceUID),
            ct_sops=[deid_uid(scp, ds.SOPInstanceUID) for ds in ct],
            mr_study=deid_uid(scp, mr.StudyInstanceUID),
            held_study=deid_uid(scp, held.StudyInstanceUID),
            held_series=deid_uid(scp, held.SeriesInstanceUID),
            held_sop=deid_uid(scp, held.SOPInstanceUID))


@pytest.fixture(scope="module")
def teacher(cluster, stores):
    from portal.users import UserStore
    name, pw = f"dw-{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    UserStore(stores.hbase).add(name, "teacher", pw)
    return name, pw


@pytest.fixture(scope="module")
def portal_url(cluster):
    with portal_process() as portal:
        yield portal


@pytest.fixture(scope="module")
def client(portal_url, teacher):
    return DICOMwebClient(portal_url.url + "/dicomweb",
                          session=create_session_from_user_pass(*teacher))


def _stored(stores, scp, ds) -> bytes:
    from pacs_hdfs.dicom.stored import read_bytes
    key = instance_key(stores, scp, ds)
    return read_bytes(stores.hbase, stores.hdfs, key, stores.hbase.get("instance", key))


def _value(obj: dict, tag: str):
    return obj.get(tag, {}).get("Value", [None])[0]


def test_qido_searches_studies_series_instances(archive, client):
    studies = client.search_for_studies(search_filters={"StudyInstanceUID": archive.ct_study})
    assert len(studies) == 1
    s = studies[0]
    assert _value(s, "0020000D") == archive.ct_study
    assert _value(s, "00201208") == 4 and _value(s, "00080061") == "CT"   # instances, modalities
    assert _value(s, "00100020").startswith("RS")                          # pseudonym
    by_patient = client.search_for_studies(search_filters={"PatientID": _value(s, "00100020"),
                                                           "StudyDate": "19000101-20991231"})
    assert archive.ct_study in [_value(x, "0020000D") for x in by_patient]
    assert client.search_for_studies(search_filters={"StudyInstanceUID": archive.ct_study,
                                                     "StudyDate": "18000101-18001231"}) == []
    two = client.search_for_studies(search_filters={
        "StudyInstanceUID": f"{archive.ct_study},{archive.mr_study}"})
    assert {_value(x, "0020000D") for x in two} == {archive.ct_study, archive.mr_study}
    assert len(client.search_for_studies(
        search_filters={"StudyInstanceUID": f"{archive.ct_study},{archive.mr_study}"},
        limit=1, offset=1)) == 1

    series = client.search_for_series(archive.ct_study, search_filters={"Modality": "CT"})
    assert [_value(x, "0020000E") for x in series] == [archive.ct_series]
    assert _value(series[0], "00201209") == 4
    assert client.search_for_series(archive.ct_study, search_filters={"Modality": "MR"}) == []

    inst = client.search_for_instances(archive.ct_study, archive.ct_series)
    assert [_value(x, "00080018") for x in inst] == archive.ct_sops       # InstanceNumber order
    one = client.search_for_instances(archive.ct_study,
                                      search_filters={"SOPInstanceUID": archive.ct_sops[2]})
    assert [_value(x, "00080018") for x in one] == [archive.ct_sops[2]]


def _parts(r: requests.Response) -> list[bytes]:
    """The bodies of a multipart/related answer."""
    assert r.status_code == 200, r.text[:300]
    boundary = r.headers["content-type"].split("boundary=")[1].split(";")[0].strip('"')
    chunks = r.content.split(b"--" + boundary.encode())[1:-1]
    return [c.split(b"\r\n\r\n", 1)[1][:-2] for c in chunks]


def test_wado_retrieve_returns_the_stored_bytes(archive, client, stores, teacher):
    for ds, sop in zip(archive.ct[:2], archive.ct_sops[:2]):
        got = client.retrieve_instance(archive.ct_study, archive.ct_series, sop)
        stored = _stored(stores, archive.scp, ds)
        buf = BytesIO()
        got.save_as(buf, enforce_file_format=True)
        assert got.SOPInstanceUID == sop and got.PixelData == dcmread(BytesIO(stored)).PixelData
    # the raw multipart part is the stored object, byte for byte
    url = (f"{client.base_url}/studies/{archive.ct_study}/series/{archive.ct_series}"
           f"/instances/{archive.ct_sops[0]}")
    parts = _parts(requests.get(url, auth=teacher))
    assert len(parts) == 1
    assert hashlib.sha256(parts[0]).hexdigest() == \
        hashlib.sha256(_stored(stores, archive.scp, archive.ct[0])).hexdigest()
    study = client.retrieve_study(archive.ct_study)
    assert sorted(d.SOPInstanceUID for d in study) == sorted(archive.ct_sops)


def test_metadata_frames_and_rendered(archive, client, stores):
    meta = client.retrieve_study_metadata(archive.ct_study)
    assert len(meta) == 4
    assert all("InlineBinary" not in m["7FE00010"] and "BulkDataURI" in m["7FE00010"]
               for m in meta)
    assert {_value(m, "00020010") for m in meta} == {"1.2.840.10008.1.2.1"}
    stored = dcmread(BytesIO(_stored(stores, archive.scp, archive.ct[1])))
    frames = client.retrieve_instance_frames(archive.ct_study, archive.ct_series,
                                             archive.ct_sops[1], frame_numbers=[1])
    assert frames[0] == stored.pixel_array.astype("<u2").tobytes()
    png = client.retrieve_instance_rendered(archive.ct_study, archive.ct_series,
                                            archive.ct_sops[1], media_types=("image/png",),
                                            params={"window": "40,400,linear"})
    img = np.asarray(Image.open(BytesIO(png)))
    assert img.shape == (64, 64) and img.max() > img.min()
    jpeg = client.retrieve_instance_frames_rendered(
        archive.ct_study, archive.ct_series, archive.ct_sops[1], frame_numbers=[1],
        media_types=("image/jpeg",))
    assert jpeg[:2] == b"\xff\xd8"


def test_no_phi_in_any_answer(archive, client, portal_url, teacher):
    needle = archive.marker
    answers = [client.search_for_studies(search_filters={"StudyInstanceUID": archive.ct_study}),
               client.search_for_instances(archive.ct_study),
               client.retrieve_study_metadata(archive.ct_study)]
    assert needle not in repr(answers)
    auth = teacher
    raw = requests.get(f"{portal_url.url}/dicomweb/studies/{archive.ct_study}", auth=auth,
                       headers={"Accept": 'multipart/related; type="application/dicom"'})
    assert raw.status_code == 200 and needle.encode() not in raw.content
    assert needle not in portal_url.log.read_text()


def test_object_held_at_the_edge_never_answers(archive, client, stores, portal_url, teacher):
    assert instance_key(stores, archive.scp, archive.held) is None, "held at the edge"
    assert (archive.scp.edge_home / "hospital" / "edge" / "quarantine"
            / f"{archive.held_sop}.dcm").exists()
    assert client.search_for_studies(search_filters={"StudyInstanceUID": archive.held_study}) == []
    assert client.search_for_instances(archive.held_study) == []
    base = f"{portal_url.url}/dicomweb/studies/{archive.held_study}"
    for path in ("", f"/series/{archive.held_series}",
                 f"/series/{archive.held_series}/instances/{archive.held_sop}",
                 f"/series/{archive.held_series}/instances/{archive.held_sop}/metadata",
                 f"/series/{archive.held_series}/instances/{archive.held_sop}/rendered",
                 "/metadata"):
        assert requests.get(base + path, auth=teacher).status_code == 404, path
    # nor through the viewer
    s = _signed_in(portal_url.url, *teacher)
    assert s.get(f"{portal_url.url}/viewer/study/{archive.held_study}").status_code == 404


def test_unknown_uid_404_bad_uid_400_and_406(archive, portal_url, teacher):
    base = portal_url.url + "/dicomweb"
    assert requests.get(f"{base}/studies/2.25.1/metadata", auth=teacher).status_code == 404
    assert requests.get(f"{base}/studies/2.25.1/series", auth=teacher).json() == []
    assert requests.get(f"{base}/studies/not-a-uid/metadata", auth=teacher).status_code == 400
    assert requests.get(f"{base}/studies?limit=-1", auth=teacher).status_code == 400
    assert requests.get(f"{base}/studies?NoSuchKeyword=1", auth=teacher).status_code == 400
    inst = f"{base}/studies/{archive.ct_study}/series/{archive.ct_series}/instances/{archive.ct_sops[0]}"
    assert requests.get(inst, auth=teacher, headers={"Accept": "text/html"}).status_code == 406
    assert requests.get(inst + "/rendered", auth=teacher,
                        headers={"Accept": "image/gif"}).status_code == 406
    assert requests.get(inst + "/frames/9", auth=teacher).status_code == 404
    assert requests.get(inst + "/frames/0", auth=teacher).status_code == 400
    assert requests.get(inst + "/rendered?window=40", auth=teacher).status_code == 400


def test_credentials_required(archive, portal_url, teacher):
    url = f"{portal_url.url}/dicomweb/studies"
    anon = requests.get(url)
    assert anon.status_code == 401 and anon.headers["WWW-Authenticate"].startswith("Basic")
    wrong = requests.get(url, auth=(teacher[0], "wrong-password"))
    assert wrong.status_code == 401
    with pytest.raises(requests.HTTPError):
        DICOMwebClient(portal_url.url + "/dicomweb").search_for_studies()
    # the portal session cookie works too
    s = _signed_in(portal_url.url, *teacher)
    assert s.get(url, params={"StudyInstanceUID": archive.ct_study}).status_code == 200


def _signed_in(url: str, name: str, password: str) -> requests.Session:
    from tests.portal_doubles import LOGIN_TOKEN
    s = requests.Session()
    token = LOGIN_TOKEN.search(s.get(url + "/login").text).group(1)  # signed for the pre-session
    r = s.post(url + "/login", data={"username": name, "password": password, "next": "/",
                                     "csrf_token": token}, allow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    return s


def test_viewer_endpoints_and_accession_link(archive, client, portal_url, teacher):
    s = _signed_in(portal_url.url, *teacher)
    acc = _value(client.search_for_studies(
        search_filters={"StudyInstanceUID": archive.ct_study})[0], "00080050")
    assert acc and archive.marker not in acc
    from pacs_hdfs.dicom.index_rows import accession_key
    from pacs_hdfs import clients
    indexed = clients.hbase().scan("search", row_prefix=accession_key(acc))
    assert [k.split(b"\x00")[2].decode() for k, _ in indexed] == [archive.ct_study]  # by ingest
    r = s.get(f"{portal_url.url}/viewer/accession/{acc}", allow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/viewer/study/{archive.ct_study}"
    missing = s.get(f"{portal_url.url}/viewer/accession/NOPE{uuid.uuid4().hex[:8]}")
    assert missing.status_code == 404 and "has arrived" in missing.text
    page = s.get(f"{portal_url.url}/viewer/study/{archive.ct_study}")
    assert page.status_code == 200 and archive.ct_series in page.text and "<script>" not in page.text
    api = f"{portal_url.url}/api/viewer/studies/{archive.ct_study}/series/{archive.ct_series}"
    listed = s.get(api).json()["instances"]
    assert [i["sop"] for i in listed] == archive.ct_sops
    px = s.get(f"{api}/instances/{archive.ct_sops[0]}/frames/1")
    assert px.status_code == 200 and px.headers["X-Dtype"] == "float32"
    values = np.frombuffer(px.content, "<f4").reshape(64, 64)
    assert values.min() == -1024 and values.max() == 1000          # HU after rescale
