"""Export manifest and README: contents, sha256 of every file, verification of a whole zip."""
import hashlib
import io
import json
import re
import zipfile

import pytest

from analytics_jobs.export import layout
from analytics_jobs.export.manifest import (FORMAT, build_manifest, code_version, manifest_bytes,
                                            readme_text, verify_zip)
from analytics_jobs.export.zipstream import Entry, ZipStreamWriter

SEL = {"criteria": {"icd10": "C50", "sex": "F"}}
COUNTS = {"cases": 2, "studies": 3, "instances": 4}
CODE = {"package": "0.1.0", "git": "abc123"}


def test_code_version_knows_this_checkout():
    v = code_version()
    assert v.get("package") or v.get("git"), v
    if "git" in v:
        assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", v["git"])


def test_manifest_contents():
    entries = [Entry("README.md", 5, "a" * 64), Entry("dicom/P/1.2/3.4/5.6.dcm", 10, "b" * 64)]
    m = build_manifest(entries, selection=SEL, counts=COUNTS, created="2026-12-03T18:00:00Z",
                       code=CODE, skipped=[{"series": "3.4", "reason": "dcm2niix is not installed"}])
    assert m["format"] == FORMAT and m["created"] == "2026-12-03T18:00:00Z"
    assert m["selection"] == SEL and m["code_version"] == CODE
    assert m["counts"] == {"cases": 2, "instances": 4, "studies": 3}
    assert m["totals"] == {"files": 2, "bytes": 15}
    assert m["files"][1] == {"path": "dicom/P/1.2/3.4/5.6.dcm", "size": 10, "sha256": "b" * 64}
    assert m["skipped"][0]["reason"].startswith("dcm2niix")
    assert m["excludes"] == ["manifest.json"]
    assert json.loads(manifest_bytes(m)) == m
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                        build_manifest([], selection=SEL, counts={}, code=CODE)["created"])


@pytest.mark.parametrize("entries", [[Entry("a", 1, "0" * 64), Entry("a", 1, "0" * 64)],
                                     [Entry("manifest.json", 1, "0" * 64)]])
def test_manifest_refuses_duplicates_and_itself(entries):
    with pytest.raises(ValueError):
        build_manifest(entries, selection=SEL, counts={}, code=CODE)


def test_readme_for_recipient():
    text = readme_text(selection=SEL, counts=COUNTS, created="2026-12-03T18:00:00Z", code=CODE)
    for needed in ("icd10=C50", "- studies: 3", "manifest.json", "nifti/", "visits/visits.csv",
                   "re-identify", "git abc123", "sha256"):
        assert needed in text, needed
    by_list = readme_text(selection={"pseudonyms": ["RSA1", "RSB2"]}, counts={}, created="t",
                          code=CODE)
    assert "2 case pseudonym(s)" in by_list and "RSA1" not in by_list


def _export(members: dict[str, bytes]) -> bytes:
    sink = io.BytesIO()
    with ZipStreamWriter(sink) as z:
        z.add(layout.README, readme_text(selection=SEL, counts=COUNTS, created="t", code=CODE)
              .encode())
        for path, data in members.items():
            z.add(path, iter([data[:7], data[7:]]))
        z.add(layout.MANIFEST, manifest_bytes(
            build_manifest(z.entries, selection=SEL, counts=COUNTS, code=CODE)))
    return sink.getvalue()


def test_manifest_hashes_every_member_and_verifies():
    members = {"dicom/P/1.2/3.4/5.6.dcm": b"DICM" * 1000, "visits/visits.csv": b"a,b\n1,2\n"}
    blob = _export(members)
    assert verify_zip(io.BytesIO(blob)) == []
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        m = json.loads(zf.read("manifest.json"))
        listed = {f["path"]: f["sha256"] for f in m["files"]}
        assert set(listed) == set(zf.namelist()) - {"manifest.json"}
        for path in listed:
            assert listed[path] == hashlib.sha256(zf.read(path)).hexdigest()


def test_verify_zip_reports_tampering():
    blob = _export({"visits/visits.csv": b"a,b\n1,2\n"})
    with zipfile.ZipFile(io.BytesIO(blob)) as src:
        m = json.loads(src.read("manifest.json"))
        readme = src.read("README.md")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:      # same manifest, one file changed, one added
        zf.writestr("README.md", readme)
        zf.writestr("visits/visits.csv", b"a,b\n1,3\n")
        zf.writestr("extra.txt", b"x")
        zf.writestr("manifest.json", json.dumps(m))
    assert verify_zip(io.BytesIO(out.getvalue())) == [
        "not in manifest: extra.txt", "mismatch: visits/visits.csv"]
