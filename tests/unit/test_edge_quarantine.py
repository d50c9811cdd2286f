"""`pacs edge quarantine list/show/release/reject`, `pacs edge status`, `pacs edge user add`:
through the real CLI (typer's runner), on a throw-away $PACS_HOME."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from deid.edge.layout import EdgePaths
from deid.edge.stages import STAGES
from pacs_hdfs.dicom.synthetic import ct_series
from tests.edge_support import edge_in
from tests.unit.test_edge_receive import encode

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def home(tmp_path, monkeypatch):
    from pacs_hdfs.settings import get_settings
    monkeypatch.setenv("PACS_HOME", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture
def held(home):
    """Two objects held (modality US), one spooled."""
    edge = edge_in(home / "hospital")
    assert edge.paths.root == EdgePaths(home / "hospital" / "edge").root
    uids = []
    for i, ds in enumerate(ct_series(3, patient_id="Q1", patient_name="Held^Pat", size=16)):
        if i < 2:
            ds.Modality = "US"
        r = edge.receiver.store(encode(ds))
        uids.append(r.sop_uid)
    return edge, uids[:2], uids[2]


def pacs(*args: str, input: str | None = None):
    from pacs_cli.main import app
    result = CliRunner().invoke(app, list(args), input=input)
    return result


def test_list_show_release_reject(held):
    edge, (a, b), spooled = held
    out = pacs("edge", "quarantine", "list", "--json")
    assert out.exit_code == 0, out.output
    listed = json.loads(out.stdout)
    assert sorted(h["sop_uid"] for h in listed) == sorted([a, b])
    assert all("US" in h["reason"] and h["study_uid"].startswith("2.25.") for h in listed)

    shown = json.loads(pacs("edge", "quarantine", "show", a, "--json").stdout)
    assert shown["sop_uid"] == a and shown["path"].endswith(f"quarantine/{a}.dcm")

    released = json.loads(pacs("edge", "quarantine", "release", a, "--json").stdout)
    assert released["state"] == "released"
    assert (edge.paths.spool / f"{a}.dcm").exists()
    assert not (edge.paths.quarantine / f"{a}.dcm").exists()
    assert not (edge.paths.quarantine / f"{a}.json").exists()

    rejected = json.loads(pacs("edge", "quarantine", "reject", b, "--json").stdout)
    assert rejected["state"] == "rejected"
    assert not any(edge.paths.quarantine.iterdir())
    assert not (edge.paths.spool / f"{b}.dcm").exists()

    audit = [json.loads(line) for line in edge.paths.audit.read_text().splitlines()]
    assert [(e["action"], e["sop_uid"]) for e in audit] == [("release", a), ("reject", b)]
    assert all(e["who"].startswith("cli") and "US" in e["reason"] for e in audit)
    assert json.loads(pacs("edge", "quarantine", "list", "--json").stdout) == []


def test_unknown_or_hostile_uid_fails_cleanly(held):
    for uid in ("2.25.1", "../../etc/passwd"):
        out = pacs("edge", "quarantine", "release", uid)
        assert out.exit_code == 1
    edge, uids, _ = held
    assert len(list(edge.paths.quarantine.glob("*.dcm"))) == 2


def test_status_json_keys(held):
    out = pacs("edge", "status", "--json")
    assert out.exit_code == 0, out.output
    s = json.loads(out.stdout)
    assert set(s) == {"edge", "running", "pid", "mdc_url", "spool", "quarantine", "rejected",
                      "received", "forwarded", "forwarder", "last_error", "last_success",
                      "stages", "state_age_seconds"}
    assert s["running"] is False and s["spool"]["objects"] == 1
    assert s["spool"]["oldest_age_seconds"] is not None
    assert s["quarantine"]["objects"] == 2 and s["rejected"] == {"objects": 0}
    assert set(s["forwarded"]) == {"objects", "bytes", "last_minute_objects", "rate_per_second"}
    assert list(s["stages"]) == list(STAGES)
    assert pacs("edge", "status").exit_code == 0


def test_user_add(home):
    out = pacs("edge", "user", "add", "reviewer", "--password-stdin", input="long enough pw\n")
    assert out.exit_code == 0, out.output
    users = home / "hospital" / "edge_users.json"
    doc = json.loads(users.read_text())
    assert doc["users"]["reviewer"]["hash"].startswith("$argon2id$")
    assert (users.stat().st_mode & 0o777) == 0o600
    assert pacs("edge", "user", "add", "reviewer", "--password-stdin",
                input="long enough pw\n").exit_code == 1
    assert pacs("edge", "user", "add", "x", "--password-stdin", input="short\n").exit_code == 1


def test_rejected_list_and_requeue(held):
    edge, _, spooled = held
    edge.spool.reject(spooled, "0xC000 cannot understand (not de-identified?)")
    listed = json.loads(pacs("edge", "rejected", "list", "--json").stdout)
    assert [(r["sop_uid"], r["reason"][:6]) for r in listed] == [(spooled, "0xC000")]
    out = pacs("edge", "rejected", "requeue", spooled, "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["state"] == "requeued"
    assert (edge.paths.spool / f"{spooled}.dcm").exists()
    assert not any(edge.paths.rejected.iterdir())
    assert pacs("edge", "rejected", "requeue", spooled).exit_code == 1
    audit = [json.loads(line) for line in edge.paths.audit.read_text().splitlines()]
    assert audit[-1]["action"] == "requeue" and "0xC000" in audit[-1]["reason"]
