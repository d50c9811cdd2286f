"""What standard viewers call, on the real cluster against a real `pacs portal` (issue 18 item 2):
QIDO at /studies, /series and /instances with includefield, limit/offset and their Warnings;
WADO-RS transfer-syntax negotiation (a JPEG-LS object and its frames passed through untouched
for transfer-syntax=*, decoded only when uncompressed is asked); thumbnails at every level;
BulkDataURIs in /metadata (a nested OW LUT) and the bulkdata resource; CORS only for configured
origins; the case page's viewer launch and its study-scoped token; the audit trail.

Objects arrive through the real path (hospital edge -> STOW-RS -> MDC).
"""
from __future__ import annotations

import json
import time
import uuid
from io import BytesIO
from types import SimpleNamespace

import numpy as np
import pytest
import requests
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.sequence import Sequence

from tests.integration.dicom_support import (DCMTK, deid_uid, fresh_copy, instance_key,
                                             scp_process, store)
from tests.integration.dicomweb_viewer_support import case_with_exam
from tests.namespace_support import environment
from tests.portal_support import free_port, make_user, portal_process

pytestmark = pytest.mark.cluster

ORIGIN = "http://127.0.0.1:39999"          # the viewer origin the portal allows (nothing listens)
VIEWER = "http://127.0.0.1:39999/viewer"
JLS = "1.2.840.10008.1.2.4.80"
ELE = "1.2.840.10008.1.2.1"
MULTI_DICOM = 'multipart/related; type="application/dicom"'
MULTI_OCTET = 'multipart/related; type="application/octet-stream"'


@pytest.fixture(scope="module")
def stores(settings):
    from pacs_hdfs import clients
    return SimpleNamespace(hbase=clients.hbase(settings), hdfs=clients.hdfs(settings))


@pytest.fixture(scope="module")
def archive(cluster, tmp_path_factory):
    """A 5-slice CT whose slice 2 carries a VOI LUT (OW, 4 KiB) and a JPEG-LS MR, in one
    study, sent through the edge."""
    if not DCMTK:
        pytest.skip("dcmtk is not installed (apt-get install -y dcmtk)")
    from pacs_hdfs.dicom.synthetic import ct_series, write_files
    d = tmp_path_factory.mktemp("dw-viewers")
    accession = f"VW{uuid.uuid4().hex[:10].upper()}"
    ct = ct_series(5, patient_id=f"VW-{uuid.uuid4().hex[:8]}", patient_name="Viewer^Bulk",
                   size=64, accession=accession)
    lut = Dataset()
    lut.LUTDescriptor = [2048, 0, 16]
    lut.add_new("LUTData", "OW", np.arange(2048, dtype="<u2").tobytes())
    lut.LUTExplanation = "TEST"
    ct[2].VOILUTSequence = Sequence([lut])
    port = free_port()
    with scp_process(d, port, free_port()) as scp:
        jls_path, jls = fresh_copy("MR_small_jpeg_ls_lossless.dcm", d / "jls",
                                   study_uid=ct[0].StudyInstanceUID)
        jls.PatientID = ct[0].PatientID
        jls.PatientName = ct[0].PatientName
        jls.AccessionNumber = accession
        jls.save_as(jls_path, enforce_file_format=True)
        store(write_files(ct, d / "ct"), port=port)
        store([jls_path], "-xt", port=port)              # proposes JPEG-LS lossless
        yield SimpleNamespace(
            scp=scp, ct=ct, jls=jls, study=deid_uid(scp, ct[0].StudyInstanceUID),
            ct_series=deid_uid(scp, ct[0].SeriesInstanceUID),
            ct_sops=[deid_uid(scp, ds.SOPInstanceUID) for ds in ct],
            jls_series=deid_uid(scp, jls.SeriesInstanceUID),
            jls_sop=deid_uid(scp, jls.SOPInstanceUID))


@pytest.fixture(scope="module")
def portal(cluster):
    with environment(PACS_PORTAL_CORS_ORIGINS=json.dumps([ORIGIN]),
                     PACS_PORTAL_VIEWER_URL=VIEWER):
        with portal_process() as p:
            yield p


@pytest.fixture(scope="module")
def teacher(cluster, settings):
    return make_user(settings, "teacher", "dw-viewers")


@pytest.fixture(scope="module")
def base(portal):
    return portal.url + "/dicomweb"


def _stored(stores, scp, ds) -> bytes:
    from pacs_hdfs.dicom.stored import read_bytes
    key = instance_key(stores, scp, ds)
    return read_bytes(stores.hbase, stores.hdfs, key, stores.hbase.get("instance", key))


def _parts(r: requests.Response) -> list[tuple[str, bytes]]:
    """(Content-Type, body) of each part of a multipart/related answer."""
    assert r.status_code == 200, r.text[:300]
    boundary = r.headers["content-type"].split("boundary=")[1].split(";")[0].strip('"')
    out = []
    for chunk in r.content.split(b"--" + boundary.encode())[1:-1]:
        head, body = chunk.split(b"\r\n\r\n", 1)
        ctype = next(h.split(b":", 1)[1].strip().decode() for h in head.split(b"\r\n")
                     if h.lower().startswith(b"content-type"))
        out.append((ctype, body[:-2]))
    return out


def _value(obj: dict, tag: str):
    return obj.get(tag, {}).get("Value", [None])[0]


def test_qido_at_every_level_with_paging_and_includefield(archive, base, teacher):
    series = requests.get(f"{base}/series", auth=teacher,
                          params={"StudyInstanceUID": archive.study}).json()
    assert {_value(s, "0020000E") for s in series} == {archive.ct_series, archive.jls_series}
    pid = _value(requests.get(f"{base}/studies", auth=teacher,
                              params={"StudyInstanceUID": archive.study}).json()[0], "00100020")
    by_patient = requests.get(f"{base}/series", auth=teacher,           # a study key at /series
                              params={"PatientID": pid, "Modality": "MR"}).json()
    assert [_value(s, "0020000E") for s in by_patient] == [archive.jls_series]
    inst = requests.get(f"{base}/instances", auth=teacher,
                        params={"SeriesInstanceUID": archive.ct_series,
                                "includefield": "00280010,Columns"}).json()
    assert [_value(i, "00080018") for i in inst] == archive.ct_sops
    assert all(_value(i, "00280010") == 64 and _value(i, "00280011") == 64 for i in inst)

    page = requests.get(f"{base}/instances", auth=teacher,
                        params={"StudyInstanceUID": archive.study, "limit": "2", "offset": "1"})
    assert page.status_code == 200 and len(page.json()) == 2
    assert "3 additional results" in page.headers["Warning"]          # 6 instances, 1 + 2 seen
    fuzzy = requests.get(f"{base}/studies", auth=teacher,
                         params={"StudyInstanceUID": archive.study, "fuzzymatching": "true"})
    assert fuzzy.status_code == 200 and len(fuzzy.json()) == 1
    assert "fuzzymatching parameter is not supported" in fuzzy.headers["Warning"]
    assert "Warning" not in requests.get(f"{base}/studies", auth=teacher,
                                         params={"StudyInstanceUID": archive.study}).headers


def test_stored_object_passes_through_and_is_decoded_only_when_asked(archive, base, teacher,
                                                                    stores):
    url = f"{base}/studies/{archive.study}/series/{archive.jls_series}/instances/{archive.jls_sop}"
    stored = _stored(stores, archive.scp, archive.jls)
    assert dcmread(BytesIO(stored)).file_meta.TransferSyntaxUID == JLS    # kept by the edge
    for accept in (f"{MULTI_DICOM}; transfer-syntax=*", f"{MULTI_DICOM}; transfer-syntax={JLS}"):
        [(ctype, body)] = _parts(requests.get(url, auth=teacher, headers={"Accept": accept}))
        assert body == stored and ctype == f"application/dicom; transfer-syntax={JLS}"
    [(ctype, body)] = _parts(requests.get(url, auth=teacher, headers={"Accept": MULTI_DICOM}))
    decoded = dcmread(BytesIO(body))
    assert ctype.endswith(ELE) and decoded.file_meta.TransferSyntaxUID == ELE
    assert np.array_equal(decoded.pixel_array, dcmread(BytesIO(stored)).pixel_array)
    refused = requests.get(url, auth=teacher, headers={
        "Accept": f"{MULTI_DICOM}; transfer-syntax=1.2.840.10008.1.2.4.90"})
    assert refused.status_code == 406


def test_frames_pass_through_for_transfer_syntax_any(archive, base, teacher, stores):
    from pydicom.encaps import get_frame
    url = (f"{base}/studies/{archive.study}/series/{archive.jls_series}/instances/"
           f"{archive.jls_sop}/frames/1")
    stored = dcmread(BytesIO(_stored(stores, archive.scp, archive.jls)))
    [(ctype, body)] = _parts(requests.get(url, auth=teacher, headers={
        "Accept": f"{MULTI_OCTET}; transfer-syntax=*"}))        # what OHIF sends
    assert ctype == f"application/octet-stream; transfer-syntax={JLS}"
    assert body == get_frame(stored.PixelData, 0, number_of_frames=1)   # the stored bytes
    [(ctype, body)] = _parts(requests.get(url, auth=teacher, headers={
        "Accept": 'multipart/related; type="image/jls"'}))
    assert ctype == f"image/jls; transfer-syntax={JLS}" and body[:2] == b"\xff\xd8"
    [(ctype, body)] = _parts(requests.get(url, auth=teacher, headers={"Accept": MULTI_OCTET}))
    assert ctype.endswith(ELE)                                  # default: decoded
    assert body == stored.pixel_array.astype("<u2").tobytes()
    assert requests.get(url, auth=teacher, headers={
        "Accept": 'multipart/related; type="image/jp2"'}).status_code == 406


def test_thumbnails_at_every_level(archive, base, teacher):
    study = f"{base}/studies/{archive.study}"
    inst = f"{study}/series/{archive.ct_series}/instances/{archive.ct_sops[1]}"
    for path in ("/thumbnail", f"/series/{archive.ct_series}/thumbnail",
                 f"/series/{archive.jls_series}/thumbnail"):
        r = requests.get(study + path, auth=teacher, headers={"Accept": "image/jpeg"})
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", path
        img = Image.open(BytesIO(r.content))
        assert max(img.size) <= 128 and np.asarray(img).std() > 5, path
    for path in ("/thumbnail", "/frames/1/thumbnail"):
        r = requests.get(inst + path, auth=teacher, params={"viewport": "32,32"},
                         headers={"Accept": "image/png"})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert Image.open(BytesIO(r.content)).size == (32, 32)
    assert requests.get(inst + "/thumbnail", auth=teacher,
                        params={"viewport": "0,9"}).status_code == 400
    assert requests.get(f"{base}/studies/2.25.7/thumbnail", auth=teacher).status_code == 404


def test_metadata_gives_bulk_data_by_uri(archive, base, teacher):
    series = f"{base}/studies/{archive.study}/series/{archive.ct_series}"
    meta = requests.get(f"{series}/instances/{archive.ct_sops[2]}/metadata", auth=teacher,
                        headers={"Accept": "application/dicom+json"}).json()[0]
    lut = meta["00283010"]["Value"][0]["00283006"]
    assert "InlineBinary" not in lut and "Value" not in lut
    uri = lut["BulkDataURI"]
    assert uri.endswith(f"/instances/{archive.ct_sops[2]}/bulkdata/00283010/0/00283006")
    [(ctype, body)] = _parts(requests.get(base.rsplit("/dicomweb", 1)[0] + uri, auth=teacher,
                                          headers={"Accept": MULTI_OCTET}))
    assert ctype == "application/octet-stream"
    assert body == np.arange(2048, dtype="<u2").tobytes()
    assert meta["7FE00010"]["BulkDataURI"].endswith(f"/instances/{archive.ct_sops[2]}/frames/1")
    assert requests.get(f"{series}/instances/{archive.ct_sops[2]}/bulkdata/00100010",
                        auth=teacher).status_code == 404                 # not a binary value
    assert requests.get(f"{series}/instances/{archive.ct_sops[2]}/bulkdata/nope",
                        auth=teacher).status_code == 400


def test_cors_only_for_configured_origins(archive, base, teacher):
    url = f"{base}/studies?StudyInstanceUID={archive.study}"
    pre = requests.options(url, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET",
                                         "Access-Control-Request-Headers": "authorization"})
    assert pre.status_code == 200 and pre.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "authorization" in pre.headers["Access-Control-Allow-Headers"]
    assert "DELETE" not in pre.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in pre.headers       # never the cookie
    got = requests.get(url, auth=teacher, headers={"Origin": ORIGIN})
    assert got.headers["Access-Control-Allow-Origin"] == ORIGIN
    denied = requests.get(url, headers={"Origin": ORIGIN})              # 401s carry CORS too
    assert denied.status_code == 401 and denied.headers["Access-Control-Allow-Origin"] == ORIGIN
    other = "http://evil.example"
    for r in (requests.options(url, headers={"Origin": other,
                                             "Access-Control-Request-Method": "GET"}),
              requests.get(url, auth=teacher, headers={"Origin": other})):
        assert "Access-Control-Allow-Origin" not in r.headers


def _signed_in(url: str, name: str, password: str) -> requests.Session:
    from tests.portal_doubles import LOGIN_TOKEN
    s = requests.Session()
    token = LOGIN_TOKEN.search(s.get(url + "/login").text).group(1)
    r = s.post(url + "/login", data={"username": name, "password": password, "next": "/",
                                     "csrf_token": token}, allow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    return s


def test_launch_link_token_reads_one_study_only(archive, portal, base, teacher, stores,
                                                settings):
    from urllib.parse import parse_qs, urlsplit
    from pacs_hdfs import audit
    accession = archive.ct[0].AccessionNumber
    acc = _value(requests.get(f"{base}/studies", auth=teacher,
                              params={"StudyInstanceUID": archive.study}).json()[0], "00080050")
    assert acc and acc != accession                                   # de-identified
    with case_with_exam(stores.hbase, acc) as pseudonym:
        s = _signed_in(portal.url, *teacher)
        page = s.get(f"{portal.url}/cases/{pseudonym}")
        link = f"/cases/{pseudonym}/viewer/{acc}"
        assert page.status_code == 200 and f'href="{link}"' in page.text
        r = s.get(portal.url + link, allow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith(VIEWER + "?")
        q = parse_qs(urlsplit(r.headers["location"]).query)
        assert q["StudyInstanceUIDs"] == [archive.study]
        token = q["token"][0]
        assert s.get(f"{portal.url}/cases/{pseudonym}/viewer/NOPE1",
                     allow_redirects=False).status_code == 404        # not this case's exam
    bearer = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{base}/studies/{archive.study}/metadata",
                        headers=bearer).status_code == 200
    # top-level QIDO with a token answers for its study only, whatever is asked
    everything = requests.get(f"{base}/studies", headers=bearer).json()
    assert [_value(x, "0020000D") for x in everything] == [archive.study]
    assert {_value(x, "0020000D") for x in requests.get(f"{base}/series", headers=bearer).json()} \
        == {archive.study}
    other = requests.get(f"{base}/studies/2.25.12345/series", headers=bearer)
    assert other.status_code == 403
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    bad = requests.get(f"{base}/studies/{archive.study}/series",
                       headers={"Authorization": f"Bearer {forged}"})
    assert bad.status_code == 401 and bad.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.get(f"{base}/studies/{archive.study}/series",
                        headers={"Authorization": "Bearer nonsense"}).status_code == 401

    events = audit.query(settings, user=teacher[0], limit=500)
    assert any(e.action == "view-study" and e.target == archive.study
               and e.details.get("via") == "viewer-launch" for e in events)
    assert any(e.action == "wado" and e.details.get("auth") == "viewer-token"
               and e.details.get("what") == "metadata" for e in events)

    # a new password revokes the token, as it ends the user's sessions
    from portal.users import UserStore
    UserStore(stores.hbase).set_password(teacher[0], teacher[1])
    time.sleep(0.1)
    revoked = requests.get(f"{base}/studies/{archive.study}/series", headers=bearer)
    assert revoked.status_code == 401 and "revoked" in revoked.text


def test_viewer_launch_absent_without_a_viewer_url(archive, stores, settings):
    """Default settings: no Open-in-viewer link and its route answers 404."""
    assert settings.portal_viewer_url == ""
    name, pw = make_user(settings, "teacher", "dw-nolaunch")
    with environment(PACS_PORTAL_CORS_ORIGINS=None, PACS_PORTAL_VIEWER_URL=None), \
            portal_process() as plain, case_with_exam(stores.hbase, "NOSUCHACC1") as pseudonym:
        s = _signed_in(plain.url, name, pw)
        page = s.get(f"{plain.url}/cases/{pseudonym}")
        assert page.status_code == 200 and "open-viewer" not in page.text
        assert s.get(f"{plain.url}/cases/{pseudonym}/viewer/NOSUCHACC1",
                     allow_redirects=False).status_code == 404
        r = requests.options(f"{plain.url}/dicomweb/studies",
                             headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
        assert "Access-Control-Allow-Origin" not in r.headers           # CORS off by default
