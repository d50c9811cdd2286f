"""Per-source de-identification profiles: pacs.toml -> DeidOptions per calling AE, checked at edge
start, applied by the receive path to each object by the AE that sent it (in the SCP threads and
in the receive worker processes)."""
from __future__ import annotations

import socket
import time
from io import BytesIO
from types import SimpleNamespace

import pytest
from pydicom import dcmread
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE

from deid.edge.layout import EdgePaths
from deid.edge.receive import Receiver
from deid.edge.scp import Handlers
from deid.edge.spool import Spool
from deid.options import DeidOptions
from deid.profiles import DeidProfiles, ProfileError, build, from_settings, options_from
from pacs_hdfs.dicom.synthetic import ct_series
from deid.vault import Vault, generate_master_key
from pacs_hdfs.settings import Settings

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def receiver_in(tmp_path, profiles: DeidProfiles | None = None) -> Receiver:
    """A receiver with its own vault and spool under ``tmp_path``."""
    vault = Vault.open(tmp_path / "vault.bin", master_key=generate_master_key())
    return Receiver(vault.deid_keys(), vault, Spool(EdgePaths(tmp_path / "edge")),
                    profiles=profiles)


def _codes(path) -> list[str]:
    return [i.CodeValue for i in dcmread(path).DeidentificationMethodCodeSequence]


def test_settings_give_a_default_profile_and_overrides_per_calling_ae():
    settings = Settings(deid_profile={"clean_structured_content": False},
                        deid_profiles_by_ae={"CT1": {"retain_device_identity": True,
                                                     "safe_private": [["ACME 1.0", "0x10"]]}})
    profiles = from_settings(settings)
    assert profiles.default == DeidOptions(clean_structured_content=False)
    ct1 = profiles.for_ae("CT1 ")  # AE titles compare without their padding
    assert ct1.retain_device_identity and not ct1.clean_structured_content
    assert ct1.safe_private == frozenset({("ACME 1.0", 0x10)})
    assert profiles.for_ae("OTHER") is profiles.default and profiles.for_ae("") is profiles.default
    assert "CT1: 113100,113105,113107,113108,113109,113111" in profiles.describe()


def test_date_policy_sets_the_longitudinal_options():
    assert options_from({}, "shift").retain_longitudinal_modified_dates
    retain = options_from({}, "retain")
    assert retain.retain_longitudinal_full_dates and not retain.retain_longitudinal_modified_dates
    off = options_from({"retain_longitudinal_modified_dates": False}, "shift")
    assert off.temporal_information == "REMOVED"


@pytest.mark.parametrize("profile, key", [
    ({"clean_everything": True}, "deid_profile.clean_everything"),
    ({"clean_descriptors": "yes"}, "deid_profile.clean_descriptors"),
    ({"retain_longitudinal_full_dates": True}, "deid_profile.retain_longitudinal_full_dates"),
    ({"safe_private": [["ACME", "zz"]]}, "deid_profile.safe_private"),
    ({"safe_private": [["ACME", 5]]}, "deid_profile.safe_private"),
])
def test_a_bad_profile_is_refused_naming_the_key(profile, key):
    with pytest.raises(ProfileError, match=key.replace(".", r"\.")):
        build(profile, {}, "shift")


def test_a_bad_per_ae_profile_names_the_ae():
    with pytest.raises(ProfileError, match="deid_profiles_by_ae.CT9.retain_uids"):
        build({}, {"CT9": {"retain_uids": 1}})
    with pytest.raises(ProfileError, match="not an AE title"):
        build({}, {"A_VERY_LONG_AE_TITLE_X": {}})


def test_equal_profiles_share_one_options_object():
    profiles = build({}, {"CT1": {"clean_descriptors": True}, "CT2": {}})
    assert profiles.for_ae("CT1") is profiles.for_ae("CT2") is profiles.default


def test_receiver_applies_the_calling_aes_options(tmp_path):
    receiver = receiver_in(tmp_path, build({}, {"CT1": {"retain_device_identity": True}}))
    ds = ct_series(2, patient_id="PID-AE", patient_name="Ae^Pat", size=8)
    for item in ds:
        item.DeviceSerialNumber = "SN-4711"
    raws = []
    for item in ds:
        buf = BytesIO()
        item.save_as(buf, enforce_file_format=True)
        raws.append(buf.getvalue())
    from_ct1 = receiver.store(raws[0], "CT1")
    from_other = receiver.store(raws[1], "MR7")
    assert from_ct1.kind == from_other.kind == "stored"
    ct1_path = receiver.spool.paths.spool / f"{from_ct1.sop_uid}.dcm"
    other_path = receiver.spool.paths.spool / f"{from_other.sop_uid}.dcm"
    assert "113109" in _codes(ct1_path) and "113109" not in _codes(other_path)
    assert dcmread(ct1_path).DeviceSerialNumber == "SN-4711"
    assert dcmread(other_path).DeviceSerialNumber == "ANONYMIZED"  # X/Z/D without the option


def test_scp_handler_passes_the_calling_ae_title():
    seen = []

    def receive(raw, calling_ae):
        seen.append((raw, calling_ae))
        return SimpleNamespace(status=0, accepted=True, comment="", sop_uid="2.25.1")

    event = SimpleNamespace(encoded_dataset=lambda include_meta: b"DICM...",
                            assoc=SimpleNamespace(requestor=SimpleNamespace(ae_title="CT1")))
    assert Handlers(receive).store(event) == 0x0000
    assert seen == [(b"DICM...", "CT1")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("workers", [0, 1], ids=["in-thread", "worker-process"])
def test_edge_picks_the_profile_of_the_association(tmp_path, workers):
    from deid.edge.runner import start
    settings = Settings(home=tmp_path, edge_port=_free_port(), edge_review_port=0,
                        edge_mdc_url="https://127.0.0.1:9", edge_workers=workers,
                        deid_profiles_by_ae={"CT1": {"retain_device_identity": True}})
    edge = start(settings)
    try:
        for calling, pid in (("CT1", "PID-CT1"), ("MR7", "PID-MR7")):
            ae = AE(ae_title=calling)
            ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
            assoc = ae.associate("127.0.0.1", settings.edge_port, ae_title="PACS")
            assert assoc.is_established
            try:
                ds = ct_series(1, patient_id=pid, patient_name="Scp^Pat", size=8)[0]
                ds.DeviceSerialNumber = "SN-4711"
                assert assoc.send_c_store(ds).Status == 0
            finally:
                assoc.release()
        deadline = time.monotonic() + 10
        while len(list(edge.paths.spool.glob("*.dcm"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        by_serial = {dcmread(p).DeviceSerialNumber: _codes(p)
                     for p in edge.paths.spool.glob("*.dcm")}
    finally:
        edge.stop()
    assert "113109" in by_serial["SN-4711"] and "113109" not in by_serial["ANONYMIZED"]


def test_a_bad_profile_stops_the_edge_before_it_listens(tmp_path):
    from deid.edge.runner import start
    settings = Settings(home=tmp_path, edge_port=_free_port(), edge_review_port=0,
                        edge_workers=0, deid_profile={"retain_everything": True})
    with pytest.raises(ProfileError, match="retain_everything"):
        start(settings)


def test_default_profiles_are_the_default_options():
    assert DeidProfiles().for_ae("ANY") == DeidOptions()
    assert Receiver.__init__.__defaults__[-1] is None  # no profiles given: the defaults
